"""CMS EnvelopedData as AMS writes it (format.md §4-5): a writer, a strict parser, CBC. Syntax only.

One KeyTransRecipientInfo per recipient (issuer and serial, RSAES-PKCS1-v1_5), a fresh
content key and IV, CBC with PKCS#7 padding. The ciphertext is written with ``update_into``
into one preallocated buffer: the fastest way cryptography offers, and one copy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

import attrs
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import BlockCipherAlgorithm, Cipher, modes

from ams.algorithms import EncryptionAlgorithm
from ams.dn import DistinguishedName
from ams.errors import (
    DecryptionError,
    DistinguishedNameError,
    MalformedMessageError,
    UnsupportedAlgorithmError,
)
from ams.hazmat import der
from ams.hazmat.buffers import fresh_bytes, wipe
from ams.hazmat.certificates import issuer_and_serial, issuer_bytes, subject_key_identifier
from ams.hazmat.oids import ID_ENVELOPED_DATA, RC2_PARAMETER_VERSION_128, RSA_ENCRYPTION
from ams.hazmat.recipient_layouts import (
    ENVELOPE_KEPT_SIZE,
    ENVELOPES,
    ENVELOPES_KEPT,
    LAYOUT_KEPT_SIZE,
    LAYOUTS,
    LAYOUTS_KEPT,
    RSA_KEY_PREFIX,
    EnvelopeLayout,
    RecipientsLayout,
    key_ranges,
)
from ams.hazmat.signed import Chunk
from ams.limits import DEFAULT_LIMITS, Limits

_RSA_ALGORITHM = der.algorithm_identifier(RSA_ENCRYPTION)
_PKCS1 = padding.PKCS1v15()  # stateless: one for every key wrapped


def cipher_parameters(algorithm: EncryptionAlgorithm, iv: bytes) -> bytes:
    """The content-encryption algorithm's DER parameters (format.md §4): the IV; for RC2, version 58 and the IV."""
    if algorithm is EncryptionAlgorithm.RC2:
        return der.tlv(der.SEQUENCE, der.integer(RC2_PARAMETER_VERSION_128) + der.tlv(der.OCTET_STRING, iv))
    return der.tlv(der.OCTET_STRING, iv)


def cbc_encrypt(
    algorithm: EncryptionAlgorithm,
    key: bytes,
    iv: bytes,
    parts: Sequence[Chunk],
    *,
    cipher: BlockCipherAlgorithm | None = None,
) -> memoryview:
    """PKCS#7-padded CBC over the concatenation of ``parts``, without joining them.

    ``cipher`` is ``algorithm``'s primitive already made with ``key``, for a key used again.
    """
    return PendingCiphertext(algorithm, key, iv, parts, cipher).compute()


class PendingCiphertext:
    """A PKCS#7-padded CBC ciphertext whose length is known before it is computed.

    The DER around a ciphertext needs only its length, so a writer can lay the framing out first
    and then encrypt straight into the place the ciphertext keeps (``write_into``): a large
    message is then encrypted once, into its final buffer, with no copy after.
    """

    __slots__ = ("_cipher", "_iv", "_pad", "_parts", "_spec", "size")

    def __init__(
        self,
        algorithm: EncryptionAlgorithm,
        key: bytes,
        iv: bytes,
        parts: Sequence[Chunk],
        cipher: BlockCipherAlgorithm | None = None,
    ) -> None:
        self._spec = algorithm.spec
        self._cipher = cipher or self._spec.factory(key)
        self._iv = iv
        self._parts = parts
        total = sum(len(p) for p in parts)
        self._pad = self._spec.block_size - total % self._spec.block_size
        self.size = total + self._pad

    def __len__(self) -> int:
        return self.size

    def compute(self) -> memoryview:
        """The ciphertext in a buffer of its own."""
        buffer = bytearray(self.size + self._spec.block_size)  # update_into wants a block of room
        view = memoryview(buffer)
        encryptor = Cipher(self._cipher, modes.CBC(self._iv)).encryptor()
        if self.size <= _JOIN_BELOW:  # one pass over a small copy costs less than a pass per part
            encryptor.update_into(b"".join([*self._parts, _PADDING[self._pad]]), view)
        else:
            position = 0
            for part in self._parts:
                if len(part):
                    position += encryptor.update_into(part, view[position:])
            encryptor.update_into(_PADDING[self._pad], view[position:])
        encryptor.finalize()  # CBC over whole blocks leaves nothing buffered
        return view[: self.size]

    def write_into(self, out: memoryview) -> None:
        """Encrypt into ``out``, exactly ``size`` bytes long, with no buffer of its own.

        update_into wants block_size - 1 bytes of room past what it writes; the last few bytes of
        the stream, where ``out`` has no such room, go through update() instead.
        """
        if len(out) != self.size:
            raise ValueError(f"the ciphertext is {self.size} bytes, the place for it {len(out)}")
        encryptor = Cipher(self._cipher, modes.CBC(self._iv)).encryptor()
        slack = self._spec.block_size - 1
        stream = [p for p in self._parts if len(p)]
        stream.append(_PADDING[self._pad])
        remaining = self.size
        position = 0
        for part in stream:
            remaining -= len(part)
            direct = len(part) if remaining >= slack else max(0, len(part) - (slack - remaining))
            if direct:
                position += encryptor.update_into(part[:direct], out[position:])
            if direct < len(part):
                produced = encryptor.update(part[direct:])
                out[position : position + len(produced)] = produced
                position += len(produced)
        encryptor.finalize()


_JOIN_BELOW = 16 * 1024


_PADDING = [bytes((pad,)) * pad for pad in range(17)]  # PKCS#7 padding of each length, by length


def cbc_decrypt(
    algorithm: EncryptionAlgorithm,
    key: bytes,
    iv: bytes,
    ciphertext: Chunk,
    *,
    what: str,
    headroom: int = 0,
    into: memoryview | None = None,
    cipher: BlockCipherAlgorithm | None = None,
) -> memoryview:
    """Decrypt and strip PKCS#7 padding; bad length or padding is a DecryptionError.

    The result is a view into a fresh buffer (or ``into``, which must hold ``headroom`` plus
    the ciphertext plus one block) that has ``headroom`` spare bytes before it, so a caller can
    put a DER header in front without copying the plaintext. ``cipher`` is ``algorithm``'s
    primitive already made with ``key``, for a key used again.
    """
    if cipher is None:
        cipher = algorithm.spec.factory(key)
    block = cipher.block_size // 8
    if len(ciphertext) == 0 or len(ciphertext) % block or len(iv) != block:  # checked inline; errors there
        check_cbc_input(algorithm, block, iv, ciphertext, what)
    into, needed = _output_room(into, headroom, len(ciphertext), block, what)
    decryptor = Cipher(cipher, modes.CBC(iv)).decryptor()
    end = headroom + decryptor.update_into(ciphertext, into[headroom:needed])
    decryptor.finalize()
    return unpadded(into, headroom, end, block, algorithm, what)


def _output_room(into: memoryview | None, headroom: int, size: int, block: int, what: str) -> tuple[memoryview, int]:
    """The buffer a CBC decryption of ``size`` ciphertext bytes writes into after ``headroom``
    (``into``, or a fresh one), and the bytes it needs: update_into wants a block of room past
    what it writes."""
    needed = headroom + size + block
    if into is None:
        return memoryview(bytearray(needed)), needed
    if len(into) < needed:
        raise ValueError(f"{what}: the output buffer holds {len(into)} bytes; {needed} are needed")
    return into, needed


def unpadded(
    into: memoryview, start: int, end: int, block: int, algorithm: EncryptionAlgorithm, what: str
) -> memoryview:
    """The plaintext from ``start`` to ``end`` in ``into`` without its PKCS#7 padding; DecryptionError when
    the padding is bad."""
    pad = into[end - 1] if end > start else 0
    if not 1 <= pad <= min(block, end - start) or bytes(into[end - pad : end]) != _PADDING[pad]:
        raise DecryptionError(
            f"{what}: bad {algorithm} padding after decryption: the content key is wrong or the ciphertext was changed"
        )
    return into[start : end - pad]


def check_cbc_input(algorithm: EncryptionAlgorithm, block: int, iv: bytes, ciphertext: Chunk, what: str) -> None:
    """DecryptionError unless ``ciphertext`` is whole blocks and ``iv`` one block."""
    if len(ciphertext) == 0 or len(ciphertext) % block:
        raise DecryptionError(
            f"{what}: ciphertext of {len(ciphertext)} bytes is not a whole number of {block}-byte {algorithm} blocks"
        )
    if len(iv) != block:
        raise DecryptionError(f"{what}: {algorithm} IV must be {block} bytes, found {len(iv)}")


class CbcDecryptor:
    """CBC decryption of many messages under one key (a reused confidentiality key) with one
    OpenSSL context, made once: making a context costs more than decrypting a small message.

    CBC decrypts block i as D(C[i]) xor C[i-1], with C[0] the IV. So a message's IV, put through
    the context as a block of its own (its output thrown away), becomes the chaining value for the
    message's first block, whatever the context decrypted before, even a call that failed half
    way. The context is never finalised. One user at a time: the Protector takes a cached key out
    of its cache while it decrypts with it.
    """

    __slots__ = ("_block", "_context", "_scratch", "algorithm")

    def __init__(self, algorithm: EncryptionAlgorithm, cipher: BlockCipherAlgorithm) -> None:
        self.algorithm = algorithm
        self._block = cipher.block_size // 8
        self._context = Cipher(cipher, modes.CBC(bytes(self._block))).decryptor()
        self._scratch = memoryview(bytearray(2 * self._block))  # the IV block's output, thrown away

    def decrypt(
        self, iv: bytes, ciphertext: Chunk, *, what: str, headroom: int = 0, into: memoryview | None = None
    ) -> memoryview:
        """As :func:`cbc_decrypt` with this decryptor's key."""
        block, algorithm = self._block, self.algorithm
        if len(ciphertext) == 0 or len(ciphertext) % block or len(iv) != block:  # as cbc_decrypt
            check_cbc_input(algorithm, block, iv, ciphertext, what)
        into, needed = _output_room(into, headroom, len(ciphertext), block, what)
        context = self._context
        context.update_into(iv, self._scratch)  # the IV is now the chaining value
        end = headroom + context.update_into(ciphertext, into[headroom:needed])
        return unpadded(into, headroom, end, block, algorithm, what)

    def decrypt_exact(self, iv: bytes, ciphertext: Chunk, size: int, *, what: str) -> bytes:
        """The plaintext, which must be ``size`` bytes once unpadded, decrypted straight into a new
        ``bytes`` object (no buffer of its own, no copy after): DecryptionError when the padding is
        bad, MalformedMessageError when the length is not ``size``.

        All but the last two blocks go straight to their place (update_into wants a block of room
        past what it writes, which the padding leaves); the last two through a small buffer.
        """
        block, algorithm = self._block, self.algorithm
        check_cbc_input(algorithm, block, iv, ciphertext, what)
        fresh = fresh_bytes(size) if len(ciphertext) - block <= size < len(ciphertext) else None
        if fresh is None:  # a size the padding cannot give, or no such object here: decrypt, then copy
            return _exact(self.decrypt(iv, ciphertext, what=what), size)
        out, view = fresh
        head = max(0, len(ciphertext) - 2 * block)
        context = self._context
        tail = memoryview(bytearray(3 * block))
        try:
            context.update_into(iv, self._scratch)  # the IV is now the chaining value
            if head:
                context.update_into(ciphertext[:head], view)
            last = unpadded(tail, 0, context.update_into(ciphertext[head:], tail), block, algorithm, what)
            if head + len(last) != size:
                raise _size_differs()
            view[head:] = last
        except BaseException:  # a refused plaintext is not left in memory that nobody can zero later
            wipe(view)
            wipe(tail)
            raise
        finally:  # the view does not keep ``out`` alive: never let it outlive this call
            view.release()
        return out


def _exact(plaintext: memoryview, size: int) -> bytes:
    if len(plaintext) != size:
        raise _size_differs()
    return bytes(plaintext)


class PayloadSizeError(MalformedMessageError):
    """The payload decrypted and unpadded, and its length is not origSize: a step of its own, which
    the key owner's diagnostic names (the error any sender sees is the one error all the same)."""


def _size_differs() -> PayloadSizeError:
    return PayloadSizeError("the unprotected payload's length differs from the PDMQ header's origSize")


def recipient_info(certificate: x509.Certificate, key: bytes) -> bytes:
    """A version 0 KeyTransRecipientInfo for ``certificate``: ``key`` wrapped with RSAES-PKCS1-v1_5.

    UnsupportedAlgorithmError when the certificate's key is not RSA.
    """
    return Recipient.of(certificate).info(key)


class Recipient:
    """What a KeyTransRecipientInfo for one certificate needs, made once: its RSA key and the DER
    before the wrapped key (version, issuer and serial, rsaEncryption)."""

    __slots__ = ("certificate", "prefix", "public_key")

    def __init__(self, certificate: x509.Certificate, public_key: rsa.RSAPublicKey, prefix: bytes) -> None:
        self.certificate = certificate
        self.public_key = public_key
        self.prefix = prefix

    @classmethod
    def of(cls, certificate: x509.Certificate) -> Recipient:
        """The recipient ``certificate`` names; UnsupportedAlgorithmError when its key is not RSA."""
        public_key = certificate.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise UnsupportedAlgorithmError(
                f"recipient {DistinguishedName.from_x509(certificate.subject)} has no RSA key; "
                "AMS wraps keys with RSA only"
            )
        return cls(certificate, public_key, der.integer(0) + issuer_and_serial(certificate) + _RSA_ALGORITHM)

    def info(self, key: bytes) -> bytes:
        """The KeyTransRecipientInfo carrying ``key`` wrapped for this recipient."""
        wrapped = self.public_key.encrypt(key, _PKCS1)
        return der.tlv(der.SEQUENCE, self.prefix + der.tlv(der.OCTET_STRING, wrapped))


def build_enveloped_data(
    recipients: Sequence[x509.Certificate | Recipient],
    algorithm: EncryptionAlgorithm,
    content_type: str,
    plaintext: Sequence[Chunk],
    *,
    key: bytes | None = None,
) -> tuple[list[Chunk], bytes]:
    """A DER ContentInfo(envelopedData), as chunks to join once, and its content key.

    ``recipients`` are certificates, or :class:`Recipient` values made from them once.
    """
    (framing, ciphertext), content_key = enveloped_data_parts(recipients, algorithm, content_type, plaintext, key=key)
    return [framing, ciphertext.compute()], content_key


def enveloped_data_parts(
    recipients: Sequence[x509.Certificate | Recipient],
    algorithm: EncryptionAlgorithm,
    content_type: str,
    plaintext: Sequence[Chunk],
    *,
    key: bytes | None = None,
) -> tuple[tuple[bytes, PendingCiphertext], bytes]:
    """:func:`build_enveloped_data` with the ciphertext not yet computed: the DER before it, the
    ciphertext to come (it ends the ContentInfo), and the content key."""
    spec = algorithm.spec
    content_key = key if key is not None else os.urandom(spec.key_size)
    iv = os.urandom(spec.block_size)
    infos = sorted((r if isinstance(r, Recipient) else Recipient.of(r)).info(content_key) for r in recipients)
    ciphertext = PendingCiphertext(algorithm, content_key, iv, plaintext)
    size = len(ciphertext)
    algorithm_id = der.algorithm_identifier(spec.oid, cipher_parameters(algorithm, iv))
    content_header = der.header(der.CONTEXT_0_PRIMITIVE, size)
    eci_prefix = der.oid(content_type) + algorithm_id + content_header
    eci_header = der.header(der.SEQUENCE, len(eci_prefix) + size)
    before = der.integer(0) + der.tlv(der.SET, b"".join(infos)) + eci_header + eci_prefix
    enveloped_header = der.header(der.SEQUENCE, len(before) + size)
    explicit_header = der.header(der.CONTEXT_0_CONSTRUCTED, len(enveloped_header) + len(before) + size)
    type_oid = der.oid(ID_ENVELOPED_DATA)
    outer = der.header(der.SEQUENCE, len(type_oid) + len(explicit_header) + len(enveloped_header) + len(before) + size)
    return (outer + type_oid + explicit_header + enveloped_header + before, ciphertext), content_key


@attrs.frozen
class RecipientRef:
    """Who a RecipientInfo is for: issuer and serial, or a subjectKeyIdentifier."""

    issuer: bytes | None  # DER of the issuer Name
    serial: int | None
    key_identifier: bytes | None

    def matches(self, certificate: x509.Certificate) -> bool:
        """Whether ``certificate`` is the one named: serial and issuer DER byte for byte, or the same key identifier."""
        if self.issuer is not None:
            if certificate.serial_number != self.serial:
                return False
            # byte-exact: the RecipientInfo is not signed, so no loose matching here
            return issuer_bytes(certificate) == self.issuer
        ski = subject_key_identifier(certificate)
        return ski is not None and ski == self.key_identifier

    def describe(self) -> str:
        """The reference in words, for error texts (a key identifier cut to 32 bytes of hex)."""
        if self.issuer is not None:
            try:
                issuer = str(DistinguishedName.from_der(self.issuer))
            except DistinguishedNameError:
                issuer = f"(an unparseable Name of {len(self.issuer)} bytes)"
            return f"issuer {issuer} serial {self.serial:#x}"
        identifier = self.key_identifier or b""
        shown = identifier[:32].hex() + ("..." if len(identifier) > 32 else "")
        return f"subjectKeyIdentifier {shown or '(empty)'}"


class EnvelopedContent(NamedTuple):
    """A parsed EnvelopedData: cipher, recipients and the still-encrypted content.

    Each RecipientInfo is kept as the exact DER of its recipient identifier (checked strictly:
    an issuerAndSerialNumber or a [0] subjectKeyIdentifier) and where its remaining fields lie;
    only the one this receiver uses is read in full. A named tuple, not a frozen attrs class: one
    is made per message read, and a frozen attrs instance costs a Python call per field to make.
    """

    algorithm: EncryptionAlgorithm
    content_type: str
    iv: bytes
    ciphertext: memoryview
    recipient_ids: tuple[bytes, ...]  # each RecipientInfo's rid, as it is encoded
    rests: tuple[tuple[int, int], ...]  # where each RecipientInfo's fields after the rid start and end in ``data``
    data: memoryview

    def recipient_refs(self) -> list[RecipientRef]:
        """Who each RecipientInfo is for, in the message's order."""
        return [_recipient_ref(rid) for rid in self.recipient_ids]

    def recipient_index(self, certificate: x509.Certificate) -> int | None:
        """Which RecipientInfo is for ``certificate`` (None when the message is not for it)."""
        return self.index_of(recipient_ids(certificate))

    def index_of(self, ids: tuple[bytes, ...]) -> int | None:
        """Which RecipientInfo names one of ``ids`` (:func:`recipient_ids` of a certificate), byte for byte."""
        for index, rid in enumerate(self.recipient_ids):
            if rid in ids:
                return index
        return None

    def wrapped_key(self, index: int) -> bytes:
        """The encryptedKey of one RecipientInfo; only this one is read in full (the others are never used)."""
        start, stop = self.rests[index]
        rest = self.data[start:stop]
        # AMS's rsaEncryption (NULL parameters) and a short encryptedKey, recognised by their bytes
        # (the length octets too must be there: a RecipientInfo that ends inside them is the strict reader's)
        head = len(_RSA_ALGORITHM) + 4
        if len(rest) > head and bytes(rest[: head - 2]) == RSA_KEY_PREFIX:
            size = rest[head - 2] << 8 | rest[head - 1]
            if size >= 0x100 and head + size == len(rest):
                return bytes(rest[head:])
        return _wrapped_key(der.Reader(self.data, "KeyTransRecipientInfo", start, stop))

    def decrypt(self, key: bytes, *, what: str, headroom: int = 0, into: memoryview | None = None) -> memoryview:
        """The content decrypted with ``key`` (see :func:`cbc_decrypt`); DecryptionError on a bad length or padding."""
        return cbc_decrypt(self.algorithm, key, self.iv, self.ciphertext, what=what, headroom=headroom, into=into)


def recipient_ids(certificate: x509.Certificate) -> tuple[bytes, ...]:
    """The recipient identifiers that name ``certificate``: its issuerAndSerialNumber and, when it
    has one, its [0] subjectKeyIdentifier, as DER (a RecipientInfo is not signed: only exact bytes match)."""
    ski = subject_key_identifier(certificate)
    by_issuer = issuer_and_serial(certificate)
    return (by_issuer,) if ski is None else (by_issuer, der.tlv(der.CONTEXT_0_PRIMITIVE, ski))


def _recipient_ref(rid: bytes) -> RecipientRef:
    """The RecipientRef of a recipient identifier the parser already checked."""
    element = der.Reader(rid, "rid").read("rid")
    if element.tag == der.CONTEXT_0_PRIMITIVE:
        return RecipientRef(None, None, bytes(element.content))
    parts = element.children("issuerAndSerialNumber")
    issuer = bytes(parts.read("issuer", der.SEQUENCE).encoded)
    return RecipientRef(issuer, parts.read("serialNumber", der.INTEGER).integer("serialNumber"), None)


def parse_enveloped_data(encoded: bytes | memoryview, *, limits: Limits = DEFAULT_LIMITS) -> EnvelopedContent:
    """Parse a ContentInfo(envelopedData) with key-transport recipients, strictly, without copies.

    Syntax only; at most ``limits.recipients`` RecipientInfos are read. The shape AMS writes is read
    by :func:`read_ams_enveloped_data`, anything else by :func:`parse_enveloped_data_strictly`;
    both give the same value or the same verdict.
    """
    found = read_ams_enveloped_data(encoded, limits=limits)
    return found if found is not None else parse_enveloped_data_strictly(encoded, limits=limits)


def parse_enveloped_data_strictly(encoded: bytes | memoryview, *, limits: Limits = DEFAULT_LIMITS) -> EnvelopedContent:
    """The general strict reader behind :func:`parse_enveloped_data`: every field read in full."""
    data = encoded if isinstance(encoded, memoryview) else memoryview(encoded)
    try:
        content_type, enveloped = der.content_info(data, "the EnvelopedData ContentInfo")
        if content_type != ID_ENVELOPED_DATA:
            raise MalformedMessageError(
                f"expected a ContentInfo of type envelopedData ({ID_ENVELOPED_DATA}), found {content_type}"
            )
        der.expect_tag(enveloped, der.SEQUENCE, "EnvelopedData")
        fields = enveloped.children("EnvelopedData")
        version = fields.read("version", der.INTEGER).integer("EnvelopedData version")
        if fields.peek() == der.CONTEXT_0_CONSTRUCTED:
            raise der.DerError("EnvelopedData has originatorInfo, which AMS does not write")
        rids: list[bytes] = []
        rests: list[tuple[int, int]] = []
        all_v0 = True
        infos = fields.read("recipientInfos", der.SET).children("recipientInfos")
        for choice in infos.all("RecipientInfo", limit=limits.recipients):
            if choice.tag != der.SEQUENCE:
                raise UnsupportedAlgorithmError(
                    f"RecipientInfo with tag {choice.tag:#04x}: AMS uses key transport (RSA) only"
                )
            rid, rest, ktri_version = _key_trans(choice)
            all_v0 = all_v0 and ktri_version == 0
            rids.append(rid)
            rests.append((rest.offset, rest.stop))
        eci = fields.read("encryptedContentInfo", der.SEQUENCE).children("encryptedContentInfo")
        inner_type = eci.read("contentType", der.OID).oid("contentType")
        oid, parameters = der.algorithm(eci.read("contentEncryptionAlgorithm", der.SEQUENCE), "cipher")
        encrypted = eci.optional(der.CONTEXT_0_PRIMITIVE, "encryptedContent")
        eci.end()
        if encrypted is None:
            raise MalformedMessageError("the EnvelopedData has no encryptedContent (primitive [0])")
        if fields.peek() is not None:
            raise der.DerError("EnvelopedData has unprotectedAttrs, which AMS does not write")
        # RFC 5652 6.1: version 0 when every RecipientInfo is v0 and there are no extras, else 2
        expected_version = 0 if all_v0 else 2
        if version != expected_version:
            raise MalformedMessageError(f"EnvelopedData version {version}: expected {expected_version}")
    except der.DerError as error:
        raise MalformedMessageError(f"cannot parse the EnvelopedData: {error}") from None
    algorithm = EncryptionAlgorithm.from_oid(oid)
    if algorithm is None:
        raise UnsupportedAlgorithmError(
            f"content encryption algorithm {oid} is not one AMS defines (RC2, DES, 3DES, AES128, AES256)"
        )
    iv = _iv(algorithm, parameters)
    return EnvelopedContent(algorithm, inner_type, iv, encrypted.content, tuple(rids), tuple(rests), data)


def _key_trans(choice: der.Element) -> tuple[bytes, der.Reader, int]:
    """The recipient identifier (its DER) and version of a KeyTransRecipientInfo; the rest is read on use."""
    fields = choice.children("KeyTransRecipientInfo")
    version = fields.read("version", der.INTEGER).integer("KeyTransRecipientInfo version")
    rid = fields.read("rid")
    if rid.tag == der.SEQUENCE:
        parts = rid.children("issuerAndSerialNumber")
        parts.read("issuer", der.SEQUENCE)
        parts.read("serialNumber", der.INTEGER).integer("serialNumber")
        parts.end()
        expected = 0
    elif rid.tag == der.CONTEXT_0_PRIMITIVE:
        expected = 2
    else:
        raise der.DerError(f"KeyTransRecipientInfo rid has tag {rid.tag:#04x}")
    if version != expected:
        raise der.DerError(f"KeyTransRecipientInfo version {version}: expected {expected} for its rid")
    return bytes(rid.encoded), fields, version


def _wrapped_key(fields: der.Reader) -> bytes:
    """keyEncryptionAlgorithm (rsaEncryption, NULL) and the encryptedKey of a KeyTransRecipientInfo."""
    try:
        oid, parameters = der.algorithm(fields.read("keyEncryptionAlgorithm", der.SEQUENCE), "keyEncryptionAlgorithm")
        if oid != RSA_ENCRYPTION:
            raise UnsupportedAlgorithmError(
                f"key encryption algorithm {oid}: AMS uses rsaEncryption ({RSA_ENCRYPTION}, PKCS#1 v1.5)"
            )
        der.null_or_absent(parameters, "keyEncryptionAlgorithm")
        wrapped = bytes(fields.read("encryptedKey", der.OCTET_STRING).content)
        fields.end()
    except der.DerError as error:
        raise MalformedMessageError(f"cannot parse the KeyTransRecipientInfo: {error}") from None
    return wrapped


def _iv(algorithm: EncryptionAlgorithm, parameters: der.Element | None) -> bytes:
    what = f"{algorithm} parameters"
    try:
        if parameters is None:
            raise der.DerError("absent")
        if algorithm is EncryptionAlgorithm.RC2 and parameters.tag == der.SEQUENCE:
            fields = parameters.children(what)
            if fields.peek() == der.INTEGER:
                version = fields.read("rc2ParameterVersion").integer(what)
                if version != RC2_PARAMETER_VERSION_128:
                    raise UnsupportedAlgorithmError(
                        f"RC2 parameter version {version}: only 128-bit RC2 (version 58) is supported"
                    )
            iv = bytes(fields.read("iv", der.OCTET_STRING).content)
            fields.end()
        else:
            iv = bytes(parameters.octets(what))
    except der.DerError as error:
        raise MalformedMessageError(f"cannot read the {what}: {error}") from None
    if len(iv) != algorithm.spec.block_size:
        raise MalformedMessageError(
            f"{algorithm} IV: expected {algorithm.spec.block_size} bytes in the algorithm parameters, found {len(iv)}"
        )
    return iv


# -- the specialised reader: the shape AMS writes, in fewer steps -------------------------------

_ENVELOPED_DATA_TYPE = der.oid(ID_ENVELOPED_DATA)
_V0 = b"\x02\x01\x00"
# the OID TLV of each cipher whose parameters are an OCTET STRING IV (RC2's are not: the strict reader's)
_CIPHER_OIDS = {
    der.oid(a.spec.oid): a for a in EncryptionAlgorithm if a not in (EncryptionAlgorithm.NONE, EncryptionAlgorithm.RC2)
}
_CHECKED_RIDS: set[bytes] = set()  # issuerAndSerialNumbers already found well formed, byte for byte
_CHECKED_RIDS_KEPT = 4096
_CHECKED_RID_SIZE = 1024  # a larger rid (a sender's choice) is checked each time, never kept: at most 4 MiB is


def read_ams_enveloped_data(encoded: bytes | memoryview, *, limits: Limits = DEFAULT_LIMITS) -> EnvelopedContent | None:
    """The EnvelopedData of the shape AMS writes (format.md §4-5), or None for any other input.

    Version 0, version 0 KeyTransRecipientInfos by issuer and serial (at most ``limits.recipients``),
    a cipher whose parameters are its IV, the encrypted content, nothing else: each checked as the
    strict reader checks it, so that a value returned here is the one
    :func:`parse_enveloped_data_strictly` returns. Anything else, valid or not, is None.
    """
    data = encoded if isinstance(encoded, memoryview) else memoryview(encoded)
    layout = ENVELOPES.get(len(data))
    if layout is not None and layout.matches(data, limits.recipients):
        iv_start, iv_stop = layout.iv
        iv, ciphertext = bytes(data[iv_start:iv_stop]), data[layout.content_start :]
        return EnvelopedContent(layout.algorithm, layout.content_type, iv, ciphertext, layout.rids, layout.rests, data)
    try:
        start, stop = der.content_bounds(data, _ENVELOPED_DATA_TYPE)
        if bytes(data[start : start + 3]) != _V0:
            return None
        set_start, set_stop = der.expect(data, start + 3, stop, der.SET)
        found = _recipients(data, set_start, set_stop, limits.recipients)
        eci_start, eci_stop = der.expect(data, set_stop, stop, der.SEQUENCE)
        type_start, type_stop = der.expect(data, eci_start, eci_stop, der.OID)
        inner_type = der.decode_oid(bytes(data[type_start:type_stop]))
        algorithm_start, algorithm_stop = der.expect(data, type_stop, eci_stop, der.SEQUENCE)
        oid_stop = der.expect(data, algorithm_start, algorithm_stop, der.OID)[1]
        algorithm = _CIPHER_OIDS.get(bytes(data[algorithm_start:oid_stop]))
        iv_start, iv_stop = der.expect(data, oid_stop, algorithm_stop, der.OCTET_STRING)
        content_start, content_stop = der.expect(data, algorithm_stop, eci_stop, der.CONTEXT_0_PRIMITIVE)
    except der.DerError:
        return None
    if (
        found is None
        or algorithm is None
        or iv_stop != algorithm_stop
        or iv_stop - iv_start != algorithm.spec.block_size
        or content_stop != eci_stop
        or eci_stop != stop
    ):
        return None
    rids, rests = found
    keys = key_ranges(data, rests)
    if keys is not None and content_start <= ENVELOPE_KEPT_SIZE:
        if len(ENVELOPES) >= ENVELOPES_KEPT:
            ENVELOPES.clear()
        read = (algorithm, inner_type, (iv_start, iv_stop), content_start)
        ENVELOPES[len(data)] = EnvelopeLayout(data, [*keys, (iv_start, iv_stop), (content_start, stop)], read, found)
    iv, ciphertext = bytes(data[iv_start:iv_stop]), data[content_start:content_stop]
    return EnvelopedContent(algorithm, inner_type, iv, ciphertext, rids, rests, data)


def _recipients(
    data: memoryview, position: int, stop: int, limit: int
) -> tuple[tuple[bytes, ...], tuple[tuple[int, int], ...]] | None:
    """:func:`_read_recipients`, or the same answer from the layout of the last RecipientInfos SET of
    this length that it read, when these public bytes match it everywhere but in the wrapped keys."""
    layout = LAYOUTS.get(stop - position)
    if layout is not None:
        found = layout.match(data, position, stop, limit)
        if found is not None:
            return found
    found = _read_recipients(data, position, stop, limit)
    if found is not None and stop - position <= LAYOUT_KEPT_SIZE:
        layout = RecipientsLayout.of(data, position, stop, found)
        if layout is not None:
            if len(LAYOUTS) >= LAYOUTS_KEPT:
                LAYOUTS.clear()
            LAYOUTS[stop - position] = layout
    return found


def _read_recipients(
    data: memoryview, position: int, stop: int, limit: int
) -> tuple[tuple[bytes, ...], tuple[tuple[int, int], ...]] | None:
    """Version 0 KeyTransRecipientInfos by issuer and serial, from ``position`` to ``stop``: each rid
    and where the fields after it lie; None for anything else (or more than ``limit``)."""
    rids: list[bytes] = []
    rests: list[tuple[int, int]] = []
    region = bytes(data[position:stop])  # one copy of the SET: bytes index and slice faster than a view
    at, end = 0, len(region)
    while at < end:
        info_start, info_stop = der.expect(region, at, end, der.SEQUENCE)
        if len(rids) == limit or not region.startswith(_V0, info_start):
            return None
        rid_stop = der.expect(region, info_start + 3, info_stop, der.SEQUENCE)[1]
        rid = region[info_start + 3 : rid_stop]
        if rid not in _CHECKED_RIDS:
            _check_rid(rid)
        rids.append(rid)
        rests.append((position + rid_stop, position + info_stop))
        at = info_stop
    return (tuple(rids), tuple(rests)) if rids else None


def _check_rid(rid: bytes) -> None:
    """An issuerAndSerialNumber as the strict reader requires it (a Name SEQUENCE, then a minimal
    INTEGER of at most 32 octets, filling it); remembered once it passed. DerError otherwise."""
    start, stop = der.expect(rid, 0, len(rid), der.SEQUENCE)
    issuer_stop = der.expect(rid, start, stop, der.SEQUENCE)[1]
    serial_start, serial_stop = der.expect(rid, issuer_stop, stop, der.INTEGER)
    if serial_stop != stop:
        raise der.DerError("not an issuerAndSerialNumber")
    der.decode_integer(rid[serial_start:serial_stop], "serialNumber")
    if len(rid) > _CHECKED_RID_SIZE:
        return
    if len(_CHECKED_RIDS) >= _CHECKED_RIDS_KEPT:
        _CHECKED_RIDS.clear()
    _CHECKED_RIDS.add(rid)
