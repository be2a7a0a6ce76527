"""One exception tree for the whole library.

Two branches, as h11 separates local and remote protocol errors:

* :class:`UsageError` and :class:`ConfigurationError`: the caller, a policy or a keystore is
  wrong. Fix the call or the configuration.
* :class:`SecurityError`: the message or its sender is bad. The message goes to the error
  queue; the application sees MQ reason 2063.

Every error carries the MQ reason code AMS reports (``reason``), a stable machine-readable
``code`` and a message that says what was expected, what was found and what to do next.
"""

from __future__ import annotations

from collections.abc import Sequence

from ams.mqconstants import MQRC_SECURITY_ERROR

MAX_MESSAGE_LENGTH = 1000


def bounded(text: str, limit: int = MAX_MESSAGE_LENGTH) -> str:
    """``text`` cut to about ``limit`` characters, saying how much was left out.

    Error texts reach logs and operators' screens; a hostile message must not be able to make
    them megabytes long.
    """
    if len(text) <= limit:
        return text
    kept = limit - 40
    return f"{text[:kept]}... ({len(text) - kept:,} more characters)"


def summarise(items: Sequence[str], shown: int = 5, *, total: int | None = None) -> str:
    """``a, b, c and 19,997 more``: a list for an error text, however long the list is.

    ``total`` is the length of the whole list when ``items`` holds only its first entries (so
    that a long list need not be described in full just to be cut).
    """
    count = len(items) if total is None else total
    if count == 0:
        return "none"
    head = ", ".join(items[:shown])
    rest = count - min(shown, len(items))
    return f"{head} and {rest:,} more" if rest > 0 else head


def clip(text: str, limit: int = 200) -> str:
    """``text`` for an error message: non-printable characters escaped, cut to at most ``limit`` characters.

    For values an attacker or a broken file may have chosen (URLs, status lines, names): newlines,
    terminal escapes and bidi controls must not reach a log as such.
    """
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def quoted(text: str, limit: int = 60) -> str:
    """``text`` quoted for an error message about a line or value someone wrote, cut to ``limit``
    characters with the full length said."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text):,} characters)"


def plural(count: int, singular: str, several: str | None = None) -> str:
    """``1 policy``, ``2 policies``, ``0 errors``: a count and its noun, agreeing."""
    return f"{count:,} {singular if count == 1 else several or singular + 's'}"


def parse_failure(error: Exception) -> str:
    """What went wrong parsing untrusted bytes with cryptography, without echoing them."""
    if type(error).__name__ == "UnsupportedAlgorithm":
        return "it uses an algorithm this library does not support"
    if isinstance(error, ValueError):
        return "it is malformed (not valid DER for its type)"
    return f"reading it failed ({type(error).__name__})"


class AmsError(Exception):
    """Base of every error this library raises.

    ``message`` is bounded (about 1,000 characters) and names public facts only.
    """

    code: str = "ams_error"
    reason: int = MQRC_SECURITY_ERROR

    def __init__(self, message: str) -> None:
        message = bounded(message)
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


# -- the caller or the configuration is wrong -------------------------------------------------


class UsageError(AmsError, ValueError):
    """The library was called wrongly (a programming error)."""

    code = "usage"


class DeprecatedAlgorithmError(UsageError):
    """Writing a deprecated algorithm was asked for without the explicit opt-in."""

    code = "deprecated_algorithm"


class ConfigurationError(AmsError):
    """A policy, keystore or certificate set-up cannot work."""

    code = "configuration"


class PolicyError(ConfigurationError):
    """A policy breaks one of IBM's setmqspl / SET POLICY rules."""

    code = "policy"


class DistinguishedNameError(PolicyError):
    """A distinguished name cannot be parsed."""

    code = "bad_dn"


class PolicyRequiredError(PolicyError):
    """``require_policy`` is on and a queue has no policy that protects it: nothing is sent or read in the clear."""

    code = "policy_required"


class KeystoreError(ConfigurationError):
    """A keystore.conf, PKCS#12 or PEM keystore cannot be used."""

    code = "keystore"


class RecipientNotFoundError(KeystoreError):
    """A policy names a recipient whose certificate is not in the sender's keystore."""

    code = "recipient_not_found"


class RecipientCertificateError(KeystoreError):
    """Every certificate the keystore holds for a recipient's DN is unusable (expired, untrusted,
    without keyEncipherment...): nothing is encrypted for it."""

    code = "recipient_certificate"


class KeyTooWeakError(ConfigurationError):
    """The identity's key is too small for the policy's algorithm."""

    code = "key_too_weak"


class InternalError(AmsError):
    """An unexpected failure inside ams (a bug): it is reported typed, and no message is lost to it."""

    code = "internal"


# -- the message or its sender is bad ---------------------------------------------------------


class SecurityError(AmsError):
    """A protected message failed a check; it must not be delivered.

    ``signer`` is the DN of the message's signer when the failed check had verified it (an
    unauthorised signer), "" otherwise: a structured field for logs, so that nobody parses the text.
    """

    code = "security"
    signer: str = ""


class MalformedMessageError(SecurityError):
    """The PDMQ header, the MQ header chain or the CMS blob cannot be parsed."""

    code = "malformed"


class HeaderContentMismatchError(SecurityError):
    """The PDMQ header's protection type disagrees with the CMS content it carries."""

    code = "header_content_mismatch"


class NotProtectedError(SecurityError):
    """A policy requires protection but the message is not protected."""

    code = "not_protected"


class QopMismatchError(SecurityError):
    """The message's quality of protection is not acceptable under the queue's policy."""

    code = "qop_mismatch"


class SizeMismatchError(SecurityError):
    """The unprotected payload's length differs from the header's origSize."""

    code = "size_mismatch"


class EmptyFlagError(SecurityError):
    """The empty-message flag contradicts the protected content."""

    code = "empty_flag_mismatch"


class AlgorithmTooWeakError(SecurityError):
    """The message uses a weaker digest or cipher than the policy requires."""

    code = "algorithm_too_weak"


class UnsupportedAlgorithmError(SecurityError):
    """The message uses an algorithm AMS does not define."""

    code = "unsupported_algorithm"


class SignerCertificateError(SecurityError):
    """The SignedData does not carry exactly one usable signer certificate."""

    code = "signer_certificate"


class UntrustedSignerError(SecurityError):
    """The signer's certificate does not chain to a trust anchor of the receiver."""

    code = "untrusted_signer"


class CertificatePathError(UntrustedSignerError):
    """A certificate path breaks an RFC 5280 rule: a name outside a CA's name constraints, a
    pathLenConstraint exceeded, a critical extension AMS does not process, or an explicit policy
    demanded. Its code is its base's, ``untrusted_signer``, for a signer and a recipient alike."""


class CertificateValidityError(SecurityError):
    """A certificate is expired or not yet valid at the validation time."""

    code = "certificate_validity"


class CertificateUsageError(SecurityError):
    """A certificate's keyUsage, extendedKeyUsage or basicConstraints forbid this use."""

    code = "certificate_usage"


class BadSignatureError(SecurityError):
    """The signature or the message digest does not verify."""

    code = "bad_signature"


class UnauthorisedSignerError(SecurityError):
    """The signer is valid but is not one of the policy's authorised signers (``signer``: its DN)."""

    code = "unauthorised_signer"

    def __init__(self, message: str, *, signer: str = "") -> None:
        super().__init__(message)
        self.signer = signer


class ForgedPropertyError(SecurityError):
    """A message already carries the message property a re-protection proxy sets itself (the
    original signer's DN): a reader could take the sender's copy for the proxy's."""

    code = "forged_property"


class NotARecipientError(SecurityError):
    """The message was not encrypted for this identity."""

    code = "not_a_recipient"


class DecryptionError(SecurityError):
    """The content could not be decrypted and checked.

    Deliberately one error for every failure on the decryption path (RSA unwrap, padding, the
    decrypted structure, the inner signature, the sizes): which step failed is never said, so a
    sender who changes ciphertext learns nothing from the error. ``diagnostic`` holds the step
    only when the receiver asked for it (``Protector(..., diagnose_decryption=True)``); it is for
    the key owner's eyes and must never be shown to senders.
    """

    code = "decryption_failed"
    diagnostic: str | None = None


class AmsDeprecationWarning(UserWarning):
    """A deprecated algorithm (MD5, SHA1, RC2, DES, 3DES) is named by a policy or used to write."""


class AmsSecurityWarning(UserWarning):
    """A set-up works but is weaker than it should be (an unprotected key file, a revocation check
    that could not be made in soft-fail mode, a recipient certificate without dataEncipherment)."""


class CertificateRevokedError(SecurityError):
    """A certificate in the signer's chain is revoked (by CRL or OCSP)."""

    code = "certificate_revoked"


class RevocationUnknownError(SecurityError):
    """Revocation status could not be established and the check is configured to hard-fail."""

    code = "revocation_unknown"
