"""The Protector: ``protect()`` and ``unprotect()`` for one open queue handle.

Bytes in, bytes out. The Protector reads messages through the one wire parser (``ams._wire``),
applies AMS's rules in the order ``ams._rules`` lists them, and leaves certificates to a
:class:`~ams.verify.Verifier` (shared per connection, or its own). It holds what AMS ties to a
queue handle: the sender's signature writers and reusable keys, and the receiver's cached key.

One change of IBM's order, which security needs: for privacy, everything between the RSA
unwrap and an authenticated signer is one step with one error (``ams._privacy``); for
confidentiality everything after the unwrap is (format.md §6, SECURITY.md).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping

import attrs
from cryptography import x509

from ams import _rules, _wire
from ams._privacy import check_size, decryption_failed, open_privacy
from ams._sending import Sender
from ams.algorithms import KEYREUSE_DISABLED, EncryptionAlgorithm, QoP, SignatureAlgorithm
from ams.dn import DistinguishedName
from ams.errors import (
    DecryptionError,
    EmptyFlagError,
    MalformedMessageError,
    NotARecipientError,
    NotProtectedError,
    SizeMismatchError,
    summarise,
)
from ams.hazmat.enveloped import EnvelopedContent, RecipientRef, build_enveloped_data, cbc_decrypt, cbc_encrypt
from ams.hazmat.oids import ID_SIGNED_DATA
from ams.hazmat.pdmq import PdmqHeader
from ams.keys.keystore import Identity, Keystore
from ams.keys.revocation import RevocationChecker
from ams.keys.revocation_settings import RevocationSettings
from ams.keys.unwrap import unwrap_content_key
from ams.limits import DEFAULT_LIMITS, Limits
from ams.message import Protected, Unprotected
from ams.mqconstants import MQCCSI_UTF8, MQENC_NATIVE, MQFMT_NONE, MQFMT_STRING
from ams.policy.model import Policy
from ams.verify import Verifier

_EMPTY_MARKER = b"\x00"  # AMS protects this byte in place of an empty payload (format.md §1)


@attrs.define
class ProtectorStats:
    """Counts of the expensive operations, so tests and benchmarks can see the work done."""

    rsa_private_operations: int = 0
    key_reuse_hits: int = 0
    messages_protected: int = 0
    messages_unprotected: int = 0


@attrs.frozen
class _Opened:
    """What a QoP's opening hands back: the payload, and who and what protected it."""

    content: bytes | memoryview
    signer: x509.Certificate | None = None
    digest: SignatureAlgorithm | None = None
    cipher: EncryptionAlgorithm | None = None


class Protector:
    """Protects and unprotects messages for one open queue handle.

    ``policies`` maps queue names to policies (a :class:`~ams.policy.PolicyStore` or any
    mapping); queues without a policy pass through untouched. ``verifier`` validates
    certificates (default: one of its own, with the revocation checks the keystore.conf
    configures, or ``revocation``, and with ``clock_skew`` and ``strict_dn``: exact DN
    comparison, as IBM's documentation says, instead of the way IBM's Java client compares).
    ``allow_deprecated`` opts in to writing MD5, SHA1, RC2, DES and 3DES. ``at`` fixes the
    validation time (default: now). ``limits`` bounds what a received message may hold.
    ``diagnose_decryption`` records which step of a failed decryption failed in
    ``DecryptionError.diagnostic``: a local diagnostic for the key owner, off by default, that
    must never be shown to senders (it is exactly the oracle the single error denies them).
    """

    def __init__(
        self,
        keystore: Keystore,
        policies: Mapping[str, Policy],
        *,
        verifier: Verifier | None = None,
        allow_deprecated: bool = False,
        at: datetime.datetime | None = None,
        clock_skew: datetime.timedelta = datetime.timedelta(minutes=5),
        strict_dn: bool = False,
        revocation: RevocationSettings | None = None,
        limits: Limits = DEFAULT_LIMITS,
        diagnose_decryption: bool = False,
    ) -> None:
        self.keystore = keystore
        self.policies = policies
        self.at = at
        self.limits = limits
        self.diagnose_decryption = diagnose_decryption
        self.verifier = verifier or _verifier(keystore, clock_skew, strict_dn, revocation)
        self.stats = ProtectorStats()
        self._sender = Sender(keystore, allow_deprecated=allow_deprecated)
        self._receiver_keys: dict[str, tuple[bytes, bytes, EncryptionAlgorithm]] = {}

    def __repr__(self) -> str:
        return f"Protector({self.keystore!r}, {len(self.policies)} policies)"

    def prepare(self, queue: str, *, sending: bool, receiving: bool) -> Policy | None:
        """What an MQOPEN does under AMS: check now what this handle will need for ``queue``.

        Sending looks up every recipient's certificate (a missing one fails with its DN) and checks
        the signing key; receiving checks that there is a private key when the policy encrypts.
        """
        policy = self.policies.get(queue)
        if policy is None or policy.qop is QoP.NONE:
            return policy
        if sending:
            self._sender.check_algorithms(policy)
            if policy.encryption_algorithm is not EncryptionAlgorithm.NONE:
                self.verifier.recipients(policy, self.at)
            if policy.signature_algorithm is not SignatureAlgorithm.NONE:
                self._sender.writer(policy)
        if receiving and policy.encryption_algorithm is not EncryptionAlgorithm.NONE:
            self._sender.identity(f"reading {queue}, whose policy encrypts,")
        return policy

    # -- protect ------------------------------------------------------------------------------

    def protect(
        self,
        queue: str,
        body: bytes | memoryview,
        format: str = MQFMT_STRING,
        *,
        encoding: int = MQENC_NATIVE,
        ccsid: int = MQCCSI_UTF8,
        one_shot: bool = False,
    ) -> Protected:
        """Protect ``body`` (the message data after the MQMD) under ``queue``'s policy.

        Returns the protected body and the Format the MQMD must now carry: blank when the body
        has no clear headers (their last Format is blanked instead). ``one_shot`` is MQPUT1,
        which never reuses a key.
        """
        policy = self.policies.get(queue)
        if policy is None or policy.qop is QoP.NONE:
            return Protected(bytes(body), format, QoP.NONE)
        self._sender.check_algorithms(policy)
        wire = _wire.parse(body, format, encoding=encoding, ccsid=ccsid, limits=self.limits)
        payload: bytes | memoryview = wire.payload
        empty = len(payload) == 0
        if empty:
            payload = _EMPTY_MARKER
        header = PdmqHeader(qop=policy.qop, orig_size=len(payload), orig_format=wire.chain.last_format, name=queue)
        if policy.qop is QoP.INTEGRITY:
            parts: list[bytes | memoryview] = self._sender.writer(policy).content_info(payload)
        elif policy.qop is QoP.PRIVACY:
            signed = self._sender.writer(policy).content_parts(payload)
            recipients = self.verifier.recipients(policy, self.at)
            parts, _ = build_enveloped_data(recipients, policy.encryption_algorithm, ID_SIGNED_DATA, signed)
        else:
            header, parts = self._confidential_parts(queue, policy, header, payload, one_shot)
        header = attrs.evolve(header, empty=empty)
        self.stats.messages_protected += 1
        out = _wire.assemble(wire.body, wire.chain, [header.pack(), *parts])
        return Protected(out, MQFMT_NONE if wire.chain.format_offset is None else format, policy.qop)

    def _confidential_parts(
        self, queue: str, policy: Policy, header: PdmqHeader, payload: bytes | memoryview, one_shot: bool
    ) -> tuple[PdmqHeader, list[bytes | memoryview]]:
        recipients = self.verifier.recipients(policy, self.at)
        key, key_block = self._sender.confidentiality_key(queue, policy, recipients, one_shot=one_shot)
        iv = os.urandom(policy.encryption_algorithm.spec.block_size)
        ciphertext = cbc_encrypt(policy.encryption_algorithm, key, iv, [payload])
        sized = attrs.evolve(
            header,
            key_reuse=policy.key_reuse != KEYREUSE_DISABLED,
            key_block_size=len(key_block),
            iv_block_size=len(iv),
            enc_block_size=len(ciphertext),
        )
        return sized, [key_block, iv, ciphertext]

    # -- unprotect ----------------------------------------------------------------------------

    def unprotect(
        self,
        queue: str,
        data: bytes | memoryview | Protected,
        format: str = MQFMT_NONE,
        *,
        encoding: int = MQENC_NATIVE,
        ccsid: int = MQCCSI_UTF8,
        at: datetime.datetime | None = None,
        policy: Policy | None = None,
    ) -> Unprotected:
        """Check and unprotect a message got from ``queue``; any failure raises SecurityError.

        ``format``, ``encoding`` and ``ccsid`` are the MQMD's (a :class:`~ams.Protected` brings
        its own Format). ``policy`` judges the message by that policy instead of the queue's. No
        plaintext is returned from a message that failed any check, and no error text holds a
        byte that decryption revealed.
        """
        body = data.body if isinstance(data, Protected) else data
        format = data.format if isinstance(data, Protected) else format
        policy = policy if policy is not None else self.policies.get(queue)
        if policy is None or policy.qop is QoP.NONE:
            return Unprotected(bytes(body), format, QoP.NONE)  # not AMS's business
        wire = _wire.parse(body, format, encoding=encoding, ccsid=ccsid, limits=self.limits)
        if wire.header is None:
            if policy.tolerate:
                return Unprotected(bytes(body), format, QoP.NONE)
            raise _not_protected(queue, policy, wire)
        header = wire.header
        _rules.check_qop(queue, policy.qop, header.qop, header.name)
        when = at or self.at or datetime.datetime.now(datetime.UTC)
        if header.qop is QoP.INTEGRITY:
            opened = self._open_integrity(policy, wire, header, when)
        elif header.qop is QoP.PRIVACY:
            opened = self._open_privacy(policy, wire, header, when)
        else:
            opened = self._open_confidential(queue, policy, wire, header)
        self.stats.messages_unprotected += 1
        restored, restored_format = wire.restore(opened.content)
        return Unprotected(
            restored, restored_format, header.qop, opened.signer, opened.digest, opened.cipher, header
        )

    def _open_integrity(self, policy: Policy, wire: _wire.Wire, header: PdmqHeader, when: datetime.datetime) -> _Opened:
        """Integrity: the content is readable anyway, so each check may fail with its own error."""
        signed = wire.signed_data()
        _rules.check_digest_strength(policy.name, policy.signature_algorithm, signed.digest_algorithm)
        certificate = self.verifier.signer_certificate(signed)
        self.verifier.validate_signer(certificate, when)
        self.verifier.verify_signature(signed, certificate)
        self.verifier.check_authorised(policy, certificate)
        if len(signed.content) != header.orig_size:
            raise SizeMismatchError(
                f"the signed payload is {len(signed.content)} bytes but the PDMQ header's origSize says "
                f"{header.orig_size}: the header was changed"
            )
        if header.empty and bytes(signed.content) != _EMPTY_MARKER:
            raise EmptyFlagError(
                "the PDMQ empty-message flag is set, so the signed content must be the single byte 0x00; "
                f"it is {len(signed.content)} byte(s): the header was changed"
            )
        return _Opened(b"" if header.empty else signed.content, certificate, signed.digest_algorithm)

    def _open_privacy(self, policy: Policy, wire: _wire.Wire, header: PdmqHeader, when: datetime.datetime) -> _Opened:
        """Privacy: public checks, then one step that fails in one way, then the signer's checks."""
        envelope = wire.enveloped_data()
        _rules.check_cipher_strength(policy.name, policy.encryption_algorithm, envelope.algorithm)
        identity = self._sender.identity("decrypting a privacy message")
        key, unwrapped = self._unwrap(envelope, identity)
        steps = ["unwrapping the content key with RSA"]
        try:
            if not unwrapped:
                raise DecryptionError("implicit rejection")
            opened = open_privacy(
                envelope,
                key,
                orig_size=header.orig_size,
                empty=header.empty,
                limits=self.limits,
                load=self.verifier.certificate,
                steps=steps,
            )
            # the inner signature does not cover the certificate: until its issuer's signature is
            # verified, its fields are bytes an attacker may have steered
            steps.append("chaining the signer's certificate to a CA in this keystore")
            self.verifier.authenticate(opened.certificate)
        except Exception as error:  # every failure here is the same error, whatever its kind
            raise self._failed(header, envelope.algorithm, len(envelope.ciphertext), identity, steps, error) from None
        # the content and the signer's certificate are authentic: a failure now reveals nothing
        _rules.check_digest_strength(policy.name, policy.signature_algorithm, opened.signed.digest_algorithm)
        self.verifier.validate_signer(opened.certificate, when)
        self.verifier.check_authorised(policy, opened.certificate)
        return _Opened(opened.content, opened.certificate, opened.signed.digest_algorithm, envelope.algorithm)

    def _open_confidential(self, queue: str, policy: Policy, wire: _wire.Wire, header: PdmqHeader) -> _Opened:
        """Confidentiality: public checks on the key block, then every later failure is one error.

        A reused key is cached only after a message decrypted with it was accepted, and dropped
        when one fails, so that a failing message always costs the receiver an RSA operation (the
        key-reuse flag is not authenticated and must not make probing cheaper).
        """
        parts = wire.confidential()
        cached = self._receiver_keys.pop(queue, None) if header.key_reuse else None
        identity = self.keystore.identity
        if cached is not None and cached[0] == parts.key_block:
            _, key, algorithm = cached
            self.stats.key_reuse_hits += 1
            _check_cipher(policy, header, algorithm)
            steps, step_error = ["using the key cached for this key block"], None
        else:
            envelope = wire.key_block(parts)
            algorithm = envelope.algorithm
            _check_cipher(policy, header, algorithm)
            identity = self._sender.identity("decrypting a confidentiality message")
            content_key, unwrapped = self._unwrap(envelope, identity)
            steps = ["unwrapping the key block's key with RSA"]
            key, step_error = _message_key(envelope, content_key, unwrapped, steps)
        try:
            if step_error is not None:
                raise step_error
            steps.append("decrypting and unpadding the payload")
            decrypted = cbc_decrypt(algorithm, key, parts.iv, parts.ciphertext, what="confidentiality payload")
            steps.append("checking origSize and the empty flag")
            content = check_size(decrypted, header.orig_size, header.empty)
        except Exception as error:  # every failure after the unwrap is the same error
            raise self._failed(header, algorithm, header.enc_block_size, identity, steps, error) from None
        if header.key_reuse:
            self._receiver_keys[queue] = (bytes(parts.key_block), key, algorithm)
        return _Opened(content, cipher=algorithm)

    def _unwrap(self, envelope: EnvelopedContent, identity: Identity) -> tuple[bytes, bool]:
        """This identity's content key (implicit rejection: a failed unwrap still gives a key)."""
        index = envelope.recipient_index(identity.certificate)
        if index is None:
            refs = envelope.recipient_refs()
            listed = summarise([self._describe_recipient(ref) for ref in refs[:5]], total=len(refs))
            raise NotARecipientError(
                f"this message was encrypted for {len(refs)} recipient(s): {listed}; this identity is "
                f"{identity.dn} (issuer {DistinguishedName.from_x509(identity.certificate.issuer)}, serial "
                f"{identity.certificate.serial_number:#x}). Add this identity's DN to the sender's policy "
                "recipients (-r), or read with a recipient's keystore"
            )
        wrapped = envelope.wrapped_key(index)
        self.stats.rsa_private_operations += 1
        return unwrap_content_key(identity, wrapped, envelope.algorithm.spec.key_size)

    def _describe_recipient(self, ref: RecipientRef) -> str:
        if ref.issuer is not None and ref.serial is not None:
            for certificate in self.keystore.certificates:
                if ref.matches(certificate):
                    return f"{DistinguishedName.from_x509(certificate.subject)} ({ref.describe()})"
        return ref.describe()

    def _failed(
        self,
        header: PdmqHeader,
        algorithm: EncryptionAlgorithm,
        ciphertext_size: int,
        identity: Identity | None,
        steps: list[str],
        error: Exception,
    ) -> DecryptionError:
        """The one decryption error; with diagnostics on, it also records the step that failed
        (its name and the exception's class only: never what the step read)."""
        step = f"{steps[-1]} failed ({type(error).__name__})" if self.diagnose_decryption else None
        reader = identity.dn if identity is not None else None
        return decryption_failed(header.qop, algorithm, ciphertext_size, reader, step=step)


def _verifier(
    keystore: Keystore, clock_skew: datetime.timedelta, strict_dn: bool, revocation: RevocationSettings | None
) -> Verifier:
    if revocation is None:
        return Verifier.from_keystore(keystore, clock_skew=clock_skew, strict_dn=strict_dn)
    checker = RevocationChecker.online(revocation) if revocation.enabled else None
    return Verifier(keystore, clock_skew=clock_skew, strict_dn=strict_dn, revocation=checker)


def _message_key(
    envelope: EnvelopedContent, content_key: bytes, unwrapped: bool, steps: list[str]
) -> tuple[bytes, Exception | None]:
    """The confidentiality message key from its key block; a failure is returned, to be raised as the one error."""
    size = envelope.algorithm.spec.key_size
    try:
        if not unwrapped:
            raise DecryptionError("implicit rejection")
        steps.append("decrypting the key block")
        key = bytes(envelope.decrypt(content_key, what="confidentiality key block"))
        if len(key) != size:
            raise DecryptionError("the key block does not hold a key of the cipher's size")
    except Exception as error:
        return content_key, error
    return key, None


def _check_cipher(policy: Policy, header: PdmqHeader, algorithm: EncryptionAlgorithm) -> None:
    """The key block's cipher is strong enough, and the PDMQ IV size is its block size."""
    _rules.check_cipher_strength(policy.name, policy.encryption_algorithm, algorithm)
    if header.iv_block_size != algorithm.spec.block_size:
        raise MalformedMessageError(
            f"PDMQ IVBlockSize {header.iv_block_size} does not match {algorithm}'s block size "
            f"{algorithm.spec.block_size}"
        )


def _not_protected(queue: str, policy: Policy, wire: _wire.Wire) -> NotProtectedError:
    return NotProtectedError(
        f"queue {queue} requires {policy.qop} (policy: -s {policy.signature_algorithm} "
        f"-e {policy.encryption_algorithm}) but the message is not protected: expected a blank Format followed "
        f"by a PDMQ header, found {wire.unprotected_reason()}. Check that the sender has AMS (and this policy) "
        "enabled, or set -t 1 to tolerate"
    )
