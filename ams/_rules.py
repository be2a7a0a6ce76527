"""AMS's rules as data, in the order a receiver applies them (format.md §6).

One place for what the Protector, ``inspect``, ``ams errors explain`` and ``ams doctor`` all
need to agree on: which message QoPs a policy accepts, the strength order of digests and
ciphers, which PDMQ version carries which QoP, and the key-size rule for long digests. The
checks here raise; they take names and algorithms, not policies, so that this module imports
nothing but the algorithms and the errors.
"""

from __future__ import annotations

from ams.algorithms import EncryptionAlgorithm, QoP, SignatureAlgorithm
from ams.errors import AlgorithmTooWeakError, KeyTooWeakError, QopMismatchError

#: The checks of an unprotect, in order. Everything from "decrypt" to "authenticate the signer's
#: certificate" is one step that fails with one error (SECURITY.md).
RECEIVER_CHECKS = (
    "the queue has a policy (none: the message is returned as it is)",
    "the message is protected (or the policy tolerates it unprotected)",
    "the policy accepts the message's QoP",
    "the PDMQ header agrees with the CMS content it carries",
    "the cipher is at least as strong as the policy's",
    "this identity is a recipient",
    "decrypt, parse, verify the inner signature, check origSize and the empty flag, authenticate the signer",
    "the digest is at least as strong as the policy's",
    "the signer's certificate is valid: key usage, dates, revocation",
    "the signer is one of the policy's authorised signers",
)

#: Which message QoPs a policy of each QoP accepts (privacy also satisfies integrity).
ACCEPTS: dict[QoP, tuple[QoP, ...]] = {
    QoP.INTEGRITY: (QoP.INTEGRITY, QoP.PRIVACY),
    QoP.PRIVACY: (QoP.PRIVACY,),
    QoP.CONFIDENTIALITY: (QoP.CONFIDENTIALITY,),
}

#: The PDMQ header version that carries each QoP.
PDMQ_VERSION: dict[QoP, int] = {QoP.INTEGRITY: 2, QoP.PRIVACY: 2, QoP.CONFIDENTIALITY: 3}

#: Strength ranks are the algorithms' PCF values: weakest first.
DIGEST_ORDER = tuple(sorted(set(SignatureAlgorithm) - {SignatureAlgorithm.NONE}, key=lambda a: a.value))
CIPHER_ORDER = tuple(sorted(set(EncryptionAlgorithm) - {EncryptionAlgorithm.NONE}, key=lambda a: a.value))

#: SHA384 and SHA512 need RSA signing keys longer than this many bits (IBM's documentation).
LONG_DIGEST_KEY_BITS = 768
LONG_DIGESTS = (SignatureAlgorithm.SHA384, SignatureAlgorithm.SHA512)


def check_qop(queue: str, required: QoP, found: QoP, sender_policy: str) -> None:
    """The policy of ``queue`` (``required``) accepts a message protected with ``found``."""
    if found not in ACCEPTS[required]:
        raise QopMismatchError(
            f"queue {queue}'s policy requires {required} but the message is protected with {found}: the sender's "
            f"policy for {sender_policy or queue} differs from the receiver's; make both sides use the same setmqspl "
            "policy"
        )


def check_digest_strength(policy: str, required: SignatureAlgorithm, found: SignatureAlgorithm) -> None:
    # the policy's own algorithm is strong enough for it (and reading .value is a Python call each)
    if found is not required and found.value < required.value:
        raise AlgorithmTooWeakError(
            f"the message is signed with {found}, weaker than the policy's {required} for queue {policy} (strength "
            f"{' < '.join(map(str, DIGEST_ORDER))}): the sender must use {required} or stronger"
        )


def check_cipher_strength(policy: str, required: EncryptionAlgorithm, found: EncryptionAlgorithm) -> None:
    if found is not required and found.value < required.value:  # as check_digest_strength
        raise AlgorithmTooWeakError(
            f"the message is encrypted with {found}, weaker than the policy's {required} for queue {policy} "
            f"(strength {' < '.join(map(str, CIPHER_ORDER))}): the sender must use {required} or stronger"
        )


def key_too_small(algorithm: SignatureAlgorithm, key_bits: int) -> bool:
    """Whether an RSA key of ``key_bits`` is too small to sign with ``algorithm``."""
    return algorithm in LONG_DIGESTS and key_bits <= LONG_DIGEST_KEY_BITS


def check_signing_key(policy: str, algorithm: SignatureAlgorithm, signer: str, key_bits: int) -> None:
    if key_too_small(algorithm, key_bits):
        raise KeyTooWeakError(
            f"policy {policy} signs with {algorithm}, which needs an RSA key longer than {LONG_DIGEST_KEY_BITS} bits; "
            f"{signer} has {key_bits} bits: use SHA256 or a longer key"
        )
