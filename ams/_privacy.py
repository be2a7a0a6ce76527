"""The inside of a privacy message, opened as one step that fails in one way.

Everything between the RSA unwrap and a verified inner signature runs on bytes an attacker can
steer without the key (CBC lets them choose blocks of the plaintext). So decrypting, unpadding,
parsing the SignedData, loading the signer's certificate, checking the digest and signature,
and the PDMQ size and empty-flag checks form one step: any failure in it is the same
DecryptionError with the same text, naming only public facts. Only a message whose inner
signature verified is handed on to the checks that may fail distinctly (trust, authorisation,
revocation, strength).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
from cryptography import x509

from ams._signature import load_certificate, signer_certificate, verify_signed_data
from ams.algorithms import EncryptionAlgorithm, QoP
from ams.dn import DistinguishedName
from ams.errors import DecryptionError, MalformedMessageError
from ams.hazmat import der
from ams.hazmat.enveloped import EnvelopedContent
from ams.hazmat.oids import ID_SIGNED_DATA
from ams.hazmat.signed import SignedContent, parse_signed_data
from ams.limits import DEFAULT_LIMITS, Limits

_SEQUENCE_HEADROOM = 6  # room for a SEQUENCE tag and a length of up to 4 bytes
EMPTY_MARKER = b"\x00"  # what AMS protects in place of an empty payload (PDMQ flag[0] = 1)


def decryption_failed(
    qop: QoP,
    algorithm: EncryptionAlgorithm,
    ciphertext_size: int,
    reader: DistinguishedName | None,
    *,
    step: str | None = None,
) -> DecryptionError:
    """The one error of the decryption path: its text depends on public facts only.

    ``step`` is the receiver's local diagnostic (None unless it was asked for); it goes to
    ``error.diagnostic``, never into the text.
    """
    who = f"the key of {reader}" if reader is not None else "this identity's key"
    error = DecryptionError(
        f"cannot decrypt and verify this {qop} message ({algorithm}, {ciphertext_size} bytes of ciphertext) with "
        f"{who}: it was not encrypted for this key, or it was changed after it was protected, or its signer's "
        "certificate does not chain to a CA in this keystore. Which "
        "check failed is not reported, because that would help an attacker; the key owner can see it with "
        "decryption diagnostics on (ams unprotect --diagnose-decryption), which must never be shown to senders"
    )
    error.diagnostic = step
    return error


@attrs.frozen
class OpenedPrivacy:
    """A privacy message whose inner signature verified with the certificate it carries.

    Nothing about the signer is trusted yet: the receiver's chain, authorisation and revocation
    checks come next, and may fail distinctly.
    """

    signed: SignedContent
    certificate: x509.Certificate
    content: bytes | memoryview  # the payload, b"" when the PDMQ empty flag was set


def check_size(content: bytes | memoryview, orig_size: int, empty: bool) -> bytes | memoryview:
    """origSize and the empty flag against the unprotected content; the payload AMS hands back."""
    if len(content) != orig_size:
        raise MalformedMessageError("the unprotected payload's length differs from the PDMQ header's origSize")
    if empty:
        if bytes(content) != EMPTY_MARKER:
            raise MalformedMessageError("the PDMQ empty flag is set but the content is not the single byte 0x00")
        return b""
    return content


def open_privacy(
    envelope: EnvelopedContent,
    key: bytes,
    *,
    orig_size: int,
    empty: bool,
    limits: Limits = DEFAULT_LIMITS,
    load: Callable[[bytes], x509.Certificate] = load_certificate,
    steps: list[str] | None = None,
) -> OpenedPrivacy:
    """Decrypt with the content key, parse, verify the inner signature and check the sizes.

    Raises whatever the failing step raised (any exception): callers turn every failure into
    :func:`decryption_failed`, so that none can be told from another. Each step's name is
    appended to ``steps`` before it runs (the last one is the one that failed), for the key
    owner's local diagnostic.
    """
    progress = steps if steps is not None else []
    progress.append("decrypting and unpadding the content")
    plaintext = envelope.decrypt(key, what="privacy content", headroom=_SEQUENCE_HEADROOM)
    progress.append("parsing the decrypted SignedData")
    signed = _parse_privacy_plaintext(plaintext, limits)
    progress.append("loading the signer's certificate")
    certificate = signer_certificate(signed, load)
    progress.append("verifying the inner signature")
    verify_signed_data(signed, certificate)
    progress.append("checking origSize and the empty flag")
    return OpenedPrivacy(signed, certificate, check_size(signed.content, orig_size, empty))


def _parse_privacy_plaintext(plaintext: memoryview, limits: Limits) -> SignedContent:
    """The decrypted privacy content: SignedData content octets (what AMS writes).

    The SEQUENCE header goes into the headroom the decryption left, so the plaintext is not
    copied. Also accepted, because some CMS libraries encrypt them: a whole SignedData SEQUENCE
    or a whole ContentInfo(signedData).
    """
    if len(plaintext) and plaintext[0] == der.INTEGER:
        head = der.header(der.SEQUENCE, len(plaintext))
        buffer = memoryview(plaintext.obj)
        start = _SEQUENCE_HEADROOM - len(head)
        buffer[start:_SEQUENCE_HEADROOM] = head
        return parse_signed_data(buffer[start : _SEQUENCE_HEADROOM + len(plaintext)], wrapped=False, limits=limits)
    if len(plaintext) and plaintext[0] == der.SEQUENCE:
        try:
            found, _ = der.content_type(plaintext)
        except ValueError:
            found = ""
        return parse_signed_data(plaintext, wrapped=found == ID_SIGNED_DATA, limits=limits)
    raise MalformedMessageError("the decrypted privacy content is not SignedData")
