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
from typing import NamedTuple

from cryptography import x509

from ams._signature import CarriedCertificate, carried_certificate, signer_certificate, verify_signed_data
from ams.algorithms import EncryptionAlgorithm, QoP
from ams.dn import DistinguishedName
from ams.errors import DecryptionError, MalformedMessageError
from ams.hazmat import der, enveloped
from ams.hazmat.enveloped import EnvelopedContent
from ams.hazmat.oids import ID_SIGNED_DATA
from ams.hazmat.signed import SignedContent, parse_signed_data, parse_signed_data_strictly, read_ams_signed_content
from ams.limits import DEFAULT_LIMITS, Limits

SEQUENCE_HEADROOM = 6  # room for a SEQUENCE tag and a length of up to 4 bytes
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


class OpenedPrivacy(NamedTuple):
    """A privacy message whose inner signature verified with the certificate it carries.

    Nothing about the signer is trusted yet: the receiver's chain, authorisation and revocation
    checks come next, and may fail distinctly. (A named tuple: one is made per message.)
    """

    signed: SignedContent
    carried: CarriedCertificate
    content: bytes | memoryview  # the payload, b"" when the PDMQ empty flag was set
    offset: int = 0  # where the payload starts in the buffer it was decrypted into

    @property
    def certificate(self) -> x509.Certificate:
        """The signer's certificate, as the message carries it (not yet authenticated)."""
        return self.carried.certificate


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
    load: Callable[[bytes], CarriedCertificate] = carried_certificate,
    steps: list[str] | None = None,
    into: memoryview | None = None,
    headroom: int = 0,
) -> OpenedPrivacy:
    """Decrypt with the content key, parse, verify the inner signature and check the sizes.

    Raises whatever the failing step raised (any exception): callers turn every failure into
    :func:`decryption_failed`, so that none can be told from another. Each step's name is
    appended to ``steps`` before it runs (the last one is the one that failed), for the key
    owner's local diagnostic. The plaintext is written once, into ``into`` when given (after
    ``headroom`` spare bytes; it must hold them, the ciphertext and one block), else into a
    fresh buffer; the payload returned is a view of it.
    """
    progress = steps if steps is not None else []
    progress.append("decrypting and unpadding the content")
    start = headroom + SEQUENCE_HEADROOM
    if into is None:
        into = memoryview(bytearray(plaintext_room(envelope, headroom)))
    # EnvelopedContent.decrypt's one call, without its layer (through the module, as tests spy on it there)
    plaintext = enveloped.cbc_decrypt(
        envelope.algorithm, key, envelope.iv, envelope.ciphertext, what="privacy content", headroom=start, into=into
    )
    # judge_plaintext's two steps, without its layer (one call fewer a message)
    progress.append("parsing the decrypted SignedData")
    base, signed = _parse_privacy_plaintext(into, start, len(plaintext), limits)
    return verified(signed, base, orig_size=orig_size, empty=empty, load=load, steps=progress)


def judge_plaintext(
    buffer: memoryview,
    start: int,
    size: int,
    *,
    orig_size: int,
    empty: bool,
    limits: Limits,
    load: Callable[[bytes], CarriedCertificate],
    steps: list[str],
) -> OpenedPrivacy:
    """The decrypted, unpadded privacy content (``size`` bytes at ``start`` in ``buffer``, with
    room for a SEQUENCE header before it) parsed, its inner signature verified and its size checked."""
    steps.append("parsing the decrypted SignedData")
    base, signed = _parse_privacy_plaintext(buffer, start, size, limits)
    return verified(signed, base, orig_size=orig_size, empty=empty, load=load, steps=steps)


def verified(
    signed: SignedContent,
    base: int,
    *,
    orig_size: int,
    empty: bool,
    load: Callable[[bytes], CarriedCertificate],
    steps: list[str],
) -> OpenedPrivacy:
    """A parsed privacy SignedData (read from ``base`` in its buffer) whose inner signature verified
    with the certificate it carries, and whose content has the PDMQ header's size."""
    steps.append("loading the signer's certificate")
    carried = signer_certificate(signed, load)
    steps.append("verifying the inner signature")
    verify_signed_data(signed, carried)
    steps.append("checking origSize and the empty flag")
    content = check_size(signed.content, orig_size, empty)
    return OpenedPrivacy(signed, carried, content, base + signed.content_offset)


def plaintext_room(envelope: EnvelopedContent, headroom: int = 0) -> int:
    """How many bytes :func:`open_privacy` needs in ``into``: ``headroom``, room for a SEQUENCE
    header, the ciphertext and one block."""
    return headroom + SEQUENCE_HEADROOM + len(envelope.ciphertext) + envelope.algorithm.spec.block_size


class PrivacyRefused(Exception):
    """Raised by :func:`open_unwrapped` for any failure: ``error`` is what really failed and
    ``steps`` the steps run, for the key owner's diagnostic only. Callers turn it into
    :func:`decryption_failed`; it never leaves the library."""

    def __init__(self, error: Exception, steps: list[str]) -> None:
        super().__init__("the privacy content did not open")
        self.error = error
        self.steps = steps


def open_unwrapped(
    envelope: EnvelopedContent,
    key: bytes,
    unwrapped: bool,
    *,
    orig_size: int,
    empty: bool,
    authenticate: Callable[[CarriedCertificate], object],
    steps: list[str],
    limits: Limits = DEFAULT_LIMITS,
    load: Callable[[bytes], CarriedCertificate] = carried_certificate,
    into: memoryview | None = None,
    headroom: int = 0,
    opener: Callable[..., OpenedPrivacy] | None = None,
) -> OpenedPrivacy:
    """The one decryption of a privacy message for every reader (unprotect, inspect, explain).

    ``key`` and ``unwrapped`` are what :func:`ams.keys.unwrap.unwrap_content_key` gave: a key
    that did not unwrap is used as a real one would be (implicit rejection), so that a bad RSA
    block costs what a wrong key of the right length costs, through the same decryption,
    parsing and signature check, and fails with it. The signer's certificate is then
    authenticated with ``authenticate`` (the inner signature does not cover it). Any failure
    raises :class:`PrivacyRefused`, whose steps stop at the unwrap when the key did not unwrap.
    ``opener`` decrypts, parses and verifies instead of :func:`open_privacy` (with its arguments).
    """
    try:
        opened = (opener or open_privacy)(
            envelope,
            key,
            orig_size=orig_size,
            empty=empty,
            limits=limits,
            load=load,
            steps=steps,
            into=into,
            headroom=headroom,
        )
        steps.append("chaining the signer's certificate to a CA in this keystore")
        authenticate(opened.carried)
        if not unwrapped:  # never reached in practice: garbage that decrypted, parsed and verified
            raise DecryptionError("implicit rejection")
    except Exception as error:  # every failure here is the same error, whatever its kind
        if unwrapped:
            raise PrivacyRefused(error, steps) from None
        raise PrivacyRefused(DecryptionError("implicit rejection"), steps[:1]) from None
    return opened


def _parse_privacy_plaintext(buffer: memoryview, start: int, size: int, limits: Limits) -> tuple[int, SignedContent]:
    """The decrypted privacy content (``size`` bytes at ``start`` in ``buffer``): SignedData content
    octets (what AMS writes), and where the bytes parsed start in ``buffer``.

    The SEQUENCE header goes into the headroom the decryption left, so the plaintext is not
    copied. The reader learns no template from these bytes: no state of the receiver (and so no
    timing) may depend on decrypted bytes beyond the signer-certificate cache. Also accepted,
    because some CMS libraries encrypt them: a whole SignedData SEQUENCE
    or a whole ContentInfo(signedData).
    """
    first = buffer[start] if size else -1
    if first == der.INTEGER:
        head = der.header(der.SEQUENCE, size)
        base = start - len(head)
        buffer[base:start] = head
        encoded = buffer[base : start + size]
        # the SignedData's content is read straight (its SEQUENCE header is the one written above),
        # in full, by the reader of AMS's shape; anything else by the strict reader, as parse_signed_data does
        found = read_ams_signed_content(encoded, len(head))
        if found is not None:
            return base, found
        return base, parse_signed_data_strictly(encoded, wrapped=False, limits=limits)
    if first == der.SEQUENCE:
        plaintext = buffer[start : start + size]
        try:
            content_type, _ = der.content_type(plaintext)
        except ValueError:
            content_type = ""
        wrapped = content_type == ID_SIGNED_DATA
        return start, parse_signed_data(plaintext, wrapped=wrapped, limits=limits, templates=False)
    raise MalformedMessageError("the decrypted privacy content is not SignedData")
