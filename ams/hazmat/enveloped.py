"""CMS EnvelopedData as AMS writes it (format.md §4-5): a writer, a strict parser, CBC. Syntax only.

One KeyTransRecipientInfo per recipient (issuer and serial, RSAES-PKCS1-v1_5), a fresh
content key and IV, CBC with PKCS#7 padding. The ciphertext is written with ``update_into``
into one preallocated buffer: the fastest way cryptography offers, and one copy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import attrs
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from ams.algorithms import EncryptionAlgorithm
from ams.dn import DistinguishedName
from ams.errors import (
    DecryptionError,
    DistinguishedNameError,
    MalformedMessageError,
    UnsupportedAlgorithmError,
)
from ams.hazmat import der
from ams.hazmat.certificates import issuer_and_serial, issuer_bytes, subject_key_identifier
from ams.hazmat.oids import ID_ENVELOPED_DATA, RC2_PARAMETER_VERSION_128, RSA_ENCRYPTION
from ams.hazmat.signed import Chunk
from ams.limits import DEFAULT_LIMITS, Limits

_RSA_ALGORITHM = der.algorithm_identifier(RSA_ENCRYPTION)


def cipher_parameters(algorithm: EncryptionAlgorithm, iv: bytes) -> bytes:
    """The content-encryption algorithm's DER parameters (format.md §4): the IV; for RC2, version 58 and the IV."""
    if algorithm is EncryptionAlgorithm.RC2:
        return der.tlv(der.SEQUENCE, der.integer(RC2_PARAMETER_VERSION_128) + der.tlv(der.OCTET_STRING, iv))
    return der.tlv(der.OCTET_STRING, iv)


def cbc_encrypt(algorithm: EncryptionAlgorithm, key: bytes, iv: bytes, parts: Sequence[Chunk]) -> memoryview:
    """PKCS#7-padded CBC over the concatenation of ``parts``, without joining them."""
    spec = algorithm.spec
    total = sum(len(p) for p in parts)
    pad = spec.block_size - total % spec.block_size
    size = total + pad
    buffer = bytearray(size + spec.block_size)
    view = memoryview(buffer)
    encryptor = Cipher(spec.factory(key), modes.CBC(iv)).encryptor()
    position = 0
    for part in parts:
        if len(part):
            position += encryptor.update_into(part, view[position:])
    position += encryptor.update_into(bytes((pad,)) * pad, view[position:])
    encryptor.finalize()  # CBC over whole blocks leaves nothing buffered
    return view[:size]


def cbc_decrypt(
    algorithm: EncryptionAlgorithm, key: bytes, iv: bytes, ciphertext: Chunk, *, what: str, headroom: int = 0
) -> memoryview:
    """Decrypt and strip PKCS#7 padding; bad length or padding is a DecryptionError.

    The result is a view into a fresh buffer that has ``headroom`` spare bytes before it, so a
    caller can put a DER header in front without copying the plaintext.
    """
    spec = algorithm.spec
    if len(ciphertext) == 0 or len(ciphertext) % spec.block_size:
        raise DecryptionError(
            f"{what}: ciphertext of {len(ciphertext)} bytes is not a whole number of "
            f"{spec.block_size}-byte {algorithm} blocks"
        )
    if len(iv) != spec.block_size:
        raise DecryptionError(f"{what}: {algorithm} IV must be {spec.block_size} bytes, found {len(iv)}")
    buffer = bytearray(headroom + len(ciphertext) + spec.block_size)
    view = memoryview(buffer)[headroom:]
    decryptor = Cipher(spec.factory(key), modes.CBC(iv)).decryptor()
    size = decryptor.update_into(ciphertext, view)
    decryptor.finalize()
    pad = view[size - 1] if size else 0
    if not 1 <= pad <= spec.block_size or size < pad or any(b != pad for b in view[size - pad : size]):
        raise DecryptionError(
            f"{what}: bad {algorithm} padding after decryption: the content key is wrong or the ciphertext was changed"
        )
    return view[: size - pad]


def recipient_info(certificate: x509.Certificate, key: bytes) -> bytes:
    """A version 0 KeyTransRecipientInfo for ``certificate``: ``key`` wrapped with RSAES-PKCS1-v1_5.

    UnsupportedAlgorithmError when the certificate's key is not RSA.
    """
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise UnsupportedAlgorithmError(
            f"recipient {DistinguishedName.from_x509(certificate.subject)} has no RSA key; AMS wraps keys with RSA only"
        )
    wrapped = public_key.encrypt(key, padding.PKCS1v15())
    return der.tlv(
        der.SEQUENCE,
        der.integer(0) + issuer_and_serial(certificate) + _RSA_ALGORITHM + der.tlv(der.OCTET_STRING, wrapped),
    )


def build_enveloped_data(
    recipients: Sequence[x509.Certificate],
    algorithm: EncryptionAlgorithm,
    content_type: str,
    plaintext: Sequence[Chunk],
    *,
    key: bytes | None = None,
) -> tuple[list[Chunk], bytes]:
    """A DER ContentInfo(envelopedData), as chunks to join once, and its content key."""
    spec = algorithm.spec
    content_key = key if key is not None else os.urandom(spec.key_size)
    iv = os.urandom(spec.block_size)
    infos = sorted(recipient_info(c, content_key) for c in recipients)
    ciphertext = cbc_encrypt(algorithm, content_key, iv, plaintext)
    algorithm_id = der.algorithm_identifier(spec.oid, cipher_parameters(algorithm, iv))
    content_header = der.header(der.CONTEXT_0_PRIMITIVE, len(ciphertext))
    eci_prefix = der.oid(content_type) + algorithm_id + content_header
    eci_header = der.header(der.SEQUENCE, len(eci_prefix) + len(ciphertext))
    before = der.integer(0) + der.tlv(der.SET, b"".join(infos)) + eci_header + eci_prefix
    enveloped_header = der.header(der.SEQUENCE, len(before) + len(ciphertext))
    explicit_header = der.header(der.CONTEXT_0_CONSTRUCTED, len(enveloped_header) + len(before) + len(ciphertext))
    type_oid = der.oid(ID_ENVELOPED_DATA)
    outer = der.header(
        der.SEQUENCE, len(type_oid) + len(explicit_header) + len(enveloped_header) + len(before) + len(ciphertext)
    )
    return [outer + type_oid + explicit_header + enveloped_header + before, ciphertext], content_key


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


@attrs.frozen
class EnvelopedContent:
    """A parsed EnvelopedData: cipher, recipients and the still-encrypted content."""

    algorithm: EncryptionAlgorithm
    content_type: str
    iv: bytes
    recipients: tuple[tuple[RecipientRef, der.Reader], ...]  # each ref, and a reader at its remaining fields
    ciphertext: memoryview

    def recipient_refs(self) -> list[RecipientRef]:
        """Who each RecipientInfo is for, in the message's order."""
        return [ref for ref, _ in self.recipients]

    def recipient_index(self, certificate: x509.Certificate) -> int | None:
        """Which RecipientInfo is for ``certificate`` (None when the message is not for it)."""
        for index, (ref, _) in enumerate(self.recipients):
            if ref.matches(certificate):
                return index
        return None

    def wrapped_key(self, index: int) -> bytes:
        """The encryptedKey of one RecipientInfo; only this one is read in full (the others are never used)."""
        rest = self.recipients[index][1]
        return _wrapped_key(der.Reader(rest.data, rest.what, rest.offset, rest.stop))

    def decrypt(self, key: bytes, *, what: str, headroom: int = 0) -> memoryview:
        """The content decrypted with ``key`` (see :func:`cbc_decrypt`); DecryptionError on a bad length or padding."""
        return cbc_decrypt(self.algorithm, key, self.iv, self.ciphertext, what=what, headroom=headroom)


def parse_enveloped_data(encoded: bytes | memoryview, *, limits: Limits = DEFAULT_LIMITS) -> EnvelopedContent:
    """Parse a ContentInfo(envelopedData) with key-transport recipients, strictly, without copies.

    Syntax only; at most ``limits.recipients`` RecipientInfos are read.
    """
    try:
        content_type, enveloped = der.content_info(encoded, "the EnvelopedData ContentInfo")
        if content_type != ID_ENVELOPED_DATA:
            raise MalformedMessageError(
                f"expected a ContentInfo of type envelopedData ({ID_ENVELOPED_DATA}), found {content_type}"
            )
        der.expect_tag(enveloped, der.SEQUENCE, "EnvelopedData")
        fields = enveloped.children("EnvelopedData")
        version = fields.read("version", der.INTEGER).integer("EnvelopedData version")
        if fields.peek() == der.CONTEXT_0_CONSTRUCTED:
            raise der.DerError("EnvelopedData has originatorInfo, which AMS does not write")
        refs: list[tuple[RecipientRef, der.Reader]] = []
        all_v0 = True
        infos = fields.read("recipientInfos", der.SET).children("recipientInfos")
        for choice in infos.all("RecipientInfo", limit=limits.recipients):
            if choice.tag != der.SEQUENCE:
                raise UnsupportedAlgorithmError(
                    f"RecipientInfo with tag {choice.tag:#04x}: AMS uses key transport (RSA) only"
                )
            ref, rest, ktri_version = _key_trans(choice)
            all_v0 = all_v0 and ktri_version == 0
            refs.append((ref, rest))
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
    return EnvelopedContent(algorithm, inner_type, iv, tuple(refs), encrypted.content)


def _key_trans(choice: der.Element) -> tuple[RecipientRef, der.Reader, int]:
    """The recipient identifier and version of a KeyTransRecipientInfo; the rest is read on use."""
    fields = choice.children("KeyTransRecipientInfo")
    version = fields.read("version", der.INTEGER).integer("KeyTransRecipientInfo version")
    rid = fields.read("rid")
    if rid.tag == der.SEQUENCE:
        parts = rid.children("issuerAndSerialNumber")
        ref = RecipientRef(
            bytes(parts.read("issuer", der.SEQUENCE).encoded),
            parts.read("serialNumber", der.INTEGER).integer("serialNumber"),
            None,
        )
        parts.end()
        expected = 0
    elif rid.tag == der.CONTEXT_0_PRIMITIVE:
        ref, expected = RecipientRef(None, None, bytes(rid.content)), 2
    else:
        raise der.DerError(f"KeyTransRecipientInfo rid has tag {rid.tag:#04x}")
    if version != expected:
        raise der.DerError(f"KeyTransRecipientInfo version {version}: expected {expected} for its rid")
    return ref, fields, version


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
