"""The inside of a privacy message: SignedData content octets, decrypted without copying."""

from __future__ import annotations

from ams.errors import DecryptionError, MalformedMessageError
from ams.format import der
from ams.format.enveloped import EnvelopedContent
from ams.format.oids import ID_SIGNED_DATA
from ams.format.signed import SignedContent, parse_signed_data

_SEQUENCE_HEADROOM = 6  # room for a SEQUENCE tag and a length of up to 4 bytes


def open_privacy_content(envelope: EnvelopedContent, key: bytes) -> SignedContent:
    """Decrypt a privacy envelope with its content key and parse the SignedData inside."""
    plaintext = envelope.decrypt(key, what="privacy content", headroom=_SEQUENCE_HEADROOM)
    return _parse_privacy_plaintext(plaintext)


def _parse_privacy_plaintext(plaintext: memoryview) -> SignedContent:
    """The decrypted privacy content: SignedData content octets (what AMS writes).

    The SEQUENCE header goes into the headroom the decryption left, so the plaintext is not
    copied. Also accepted, because some CMS libraries encrypt them: a whole SignedData SEQUENCE
    or a whole ContentInfo(signedData).
    """
    try:
        if len(plaintext) and plaintext[0] == der.INTEGER:
            head = der.header(der.SEQUENCE, len(plaintext))
            buffer = memoryview(plaintext.obj)
            start = _SEQUENCE_HEADROOM - len(head)
            buffer[start:_SEQUENCE_HEADROOM] = head
            return parse_signed_data(buffer[start : _SEQUENCE_HEADROOM + len(plaintext)], wrapped=False)
        if len(plaintext) and plaintext[0] == der.SEQUENCE:
            try:
                found, _ = der.content_type(plaintext)
            except ValueError:
                found = ""
            return parse_signed_data(plaintext, wrapped=found == ID_SIGNED_DATA)
    except MalformedMessageError as error:
        raise DecryptionError(
            f"the decrypted privacy content is not a valid SignedData ({error.message}): the content key is "
            "wrong or the ciphertext was changed"
        ) from None
    raise DecryptionError(
        "the decrypted privacy content is not SignedData: the content key is wrong or the ciphertext was changed"
    )
