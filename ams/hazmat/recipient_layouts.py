"""EnvelopedData and RecipientInfos SETs recognised by their layout: the reader of the
EnvelopedData AMS writes (:func:`ams.hazmat.enveloped.read_ams_enveloped_data`) keeps the layout of
the last EnvelopedData, and of the last RecipientInfos SET, of each length it read, and one whose
bytes match it everywhere but in the wrapped keys (and the IV and the ciphertext) is not read again.

A sender's messages to one recipient list repeat their RecipientInfos byte for byte but for the
encryptedKey values (RSA output, fresh per message, of a fixed length). Those values are never
interpreted by the reader; the framing around them (tags, lengths, versions, recipient
identifiers, the key-encryption algorithm) is what the reader checked, and is compared here.
The same holds of the whole EnvelopedData of one length: its framing is fixed by the recipients,
the cipher and the ciphertext's length; the IV and the ciphertext, never interpreted either, are
the other values. These are public bytes: the message as it arrived, before any decryption.
"""

from __future__ import annotations

from ams.algorithms import EncryptionAlgorithm
from ams.hazmat import der
from ams.hazmat.oids import RSA_ENCRYPTION

# rsaEncryption with NULL parameters, then an encryptedKey of 256 to 65535 bytes
RSA_KEY_PREFIX = der.algorithm_identifier(RSA_ENCRYPTION) + b"\x04\x82"


class RecipientsLayout:
    """A RecipientInfos SET that the EnvelopedData reader read in full, kept as a template: a SET with the same
    bytes everywhere but in the encryptedKeys' content (which no reader interprets; their lengths are
    in the bytes compared) reads the same, so it is recognised by comparing those bytes instead of
    being read again. Only public bytes (the message before any decryption) are compared."""

    __slots__ = ("last", "rests", "rids", "segments")

    def __init__(
        self, segments: tuple[tuple[int, bytes], ...], rids: tuple[bytes, ...], rests: tuple[tuple[int, int], ...]
    ):
        self.segments = segments  # (offset in the SET's content, the bytes there) between the wrapped keys
        self.rids = rids
        self.rests = rests  # relative to the SET's content
        self.last: tuple[int, tuple[tuple[int, int], ...]] = (-1, ())  # the rests at the position used last

    @classmethod
    def of(
        cls, data: memoryview, position: int, stop: int, found: tuple[tuple[bytes, ...], tuple[tuple[int, int], ...]]
    ) -> RecipientsLayout | None:
        """The layout of the SET read at ``position``; None unless every RecipientInfo ends with
        AMS's rsaEncryption and an encryptedKey of 256 to 65535 bytes (what ``EnvelopedContent.wrapped_key``
        recognises by its bytes)."""
        rids, rests = found
        ranges = key_ranges(data, rests)
        if ranges is None:
            return None
        segments = []
        at = position
        for start, end in ranges:
            segments.append((at - position, bytes(data[at:start])))
            at = end
        if at != stop:
            return None
        relative = tuple((start - position, end - position) for start, end in rests)
        return cls(tuple(segments), rids, relative)

    def match(
        self, data: memoryview, position: int, stop: int, limit: int
    ) -> tuple[tuple[bytes, ...], tuple[tuple[int, int], ...]] | None:
        """The rids and rests of the SET at ``position`` (of this layout's length) if it fits; None otherwise."""
        if len(self.rids) > limit:
            return None
        region = bytes(data[position:stop])  # one copy: bytes compare in place, a view's slices do not
        for offset, segment in self.segments:
            if not region.startswith(segment, offset):
                return None
        last = self.last  # read once: another thread may replace it meanwhile
        if last[0] != position:
            last = self.last = (position, tuple((position + start, position + end) for start, end in self.rests))
        return self.rids, last[1]


LAYOUTS_KEPT = 64  # a few recipient lists' worth
LAYOUT_KEPT_SIZE = 16 * 1024  # larger SETs (a sender's choice) are read, never kept: at most 1 MiB is
LAYOUTS: dict[int, RecipientsLayout] = {}  # by the SET's length: the layout read last


def key_ranges(data: memoryview, rests: tuple[tuple[int, int], ...]) -> list[tuple[int, int]] | None:
    """Where each RecipientInfo's encryptedKey content lies, when every one ends with AMS's
    rsaEncryption and an encryptedKey of 256 to 65535 bytes (what ``EnvelopedContent.wrapped_key``
    recognises by its bytes); None otherwise."""
    head = len(RSA_KEY_PREFIX) + 2
    ranges = []
    for start, end in rests:
        size = end - start - head
        if not 0x100 <= size <= 0xFFFF:
            return None
        if bytes(data[start : start + head]) != RSA_KEY_PREFIX + size.to_bytes(2, "big"):
            return None
        ranges.append((start + head, end))
    return ranges


class EnvelopeLayout:
    """An EnvelopedData that the reader read in full, kept as a template: one of the same length with
    the same bytes everywhere but in the wrapped keys, the IV and the ciphertext reads the same."""

    __slots__ = ("algorithm", "content_start", "content_type", "iv", "rests", "rids", "segments")

    def __init__(
        self,
        data: memoryview,
        varying: list[tuple[int, int]],
        read: tuple[EncryptionAlgorithm, str, tuple[int, int], int],
        recipients: tuple[tuple[bytes, ...], tuple[tuple[int, int], ...]],
    ) -> None:
        """The layout of ``data``, whose bytes in the ``varying`` ranges (in order, the ciphertext's
        last) are values no reader interprets; ``read``: the cipher, the content type, where the IV
        lies and where the ciphertext starts; ``recipients``: the rids and rests read."""
        segments = []
        at = 0
        for start, end in varying:
            segments.append((at, bytes(data[at:start])))
            at = end
        self.segments = tuple(segments)  # (offset, the bytes there) between the values that vary
        self.algorithm, self.content_type, self.iv, self.content_start = read
        self.rids, self.rests = recipients

    def matches(self, data: memoryview, limit: int) -> bool:
        """Whether ``data`` (of this layout's length) fits it, with at most ``limit`` recipients."""
        if len(self.rids) > limit:
            return False
        region = bytes(data[: self.content_start])  # one copy: bytes compare in place, a view's slices do not
        for offset, segment in self.segments:  # noqa: SIM110 - a loop: all() over a generator costs a frame per segment
            if not region.startswith(segment, offset):
                return False
        return True


ENVELOPES_KEPT = 64  # a few senders' message sizes
ENVELOPE_KEPT_SIZE = 16 * 1024  # larger framings (a sender's choice) are read, never kept
ENVELOPES: dict[int, EnvelopeLayout] = {}  # by the EnvelopedData's length: the layout read last
