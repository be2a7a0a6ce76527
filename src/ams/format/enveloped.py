"""CMS EnvelopedData as AMS writes it (AMS-FORMAT sections 4 and 5), and its decryption.

One KeyTransRecipientInfo per recipient (issuer and serial, RSAES-PKCS1-v1_5), a fresh
content key and IV, CBC with PKCS#7 padding. The ciphertext is written with ``update_into``
into one preallocated buffer: the fastest way cryptography offers, and one copy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import attrs
from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from ams.algorithms import EncryptionAlgorithm
from ams.dn import DistinguishedName
from ams.errors import DecryptionError, MalformedMessageError, NotARecipientError, UnsupportedAlgorithmError
from ams.format import der
from ams.format.oids import ID_ENVELOPED_DATA, RC2_PARAMETER_VERSION_128, RSA_ENCRYPTION
from ams.format.signed import Chunk, check_null_parameters, check_version, issuer_and_serial

_RSA_ALGORITHM = der.algorithm_identifier(RSA_ENCRYPTION)


def cipher_parameters(algorithm: EncryptionAlgorithm, iv: bytes) -> bytes:
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


def cbc_decrypt(algorithm: EncryptionAlgorithm, key: bytes, iv: bytes, ciphertext: Chunk, *, what: str) -> memoryview:
    """Decrypt and strip PKCS#7 padding; bad length or padding is a DecryptionError."""
    spec = algorithm.spec
    if len(ciphertext) == 0 or len(ciphertext) % spec.block_size:
        raise DecryptionError(
            f"{what}: ciphertext of {len(ciphertext)} bytes is not a whole number of "
            f"{spec.block_size}-byte {algorithm} blocks"
        )
    if len(iv) != spec.block_size:
        raise DecryptionError(f"{what}: {algorithm} IV must be {spec.block_size} bytes, found {len(iv)}")
    buffer = bytearray(len(ciphertext) + spec.block_size)
    view = memoryview(buffer)
    decryptor = Cipher(spec.factory(key), modes.CBC(iv)).decryptor()
    size = decryptor.update_into(ciphertext, view)
    decryptor.finalize()
    pad = buffer[size - 1] if size else 0
    if not 1 <= pad <= spec.block_size or size < pad or any(b != pad for b in buffer[size - pad : size]):
        raise DecryptionError(
            f"{what}: bad {algorithm} padding after decryption: the content key is wrong or the ciphertext was changed"
        )
    return view[: size - pad]


def recipient_info(certificate: x509.Certificate, key: bytes) -> bytes:
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
) -> tuple[bytes, bytes]:
    """A DER ContentInfo(envelopedData) and the content key it was encrypted with."""
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
    blob = b"".join([outer, type_oid, explicit_header, enveloped_header, before, ciphertext])
    return blob, content_key


@attrs.frozen
class RecipientRef:
    """Who a RecipientInfo is for: issuer and serial, or a subjectKeyIdentifier."""

    issuer: bytes | None  # DER of the issuer Name
    serial: int | None
    key_identifier: bytes | None

    def matches(self, certificate: x509.Certificate) -> bool:
        if self.issuer is not None:
            if certificate.serial_number != self.serial:
                return False
            # byte-exact: the RecipientInfo is not signed, so no loose matching here
            return certificate.issuer.public_bytes() == self.issuer
        try:
            ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            return False
        return ski == self.key_identifier

    def describe(self) -> str:
        if self.issuer is not None:
            return f"issuer {DistinguishedName.from_der(self.issuer)} serial {self.serial:#x}"
        return f"subjectKeyIdentifier {self.key_identifier.hex() if self.key_identifier else '?'}"


@attrs.frozen
class EnvelopedContent:
    """A parsed EnvelopedData: cipher, recipients and the still-encrypted content."""

    algorithm: EncryptionAlgorithm
    content_type: str
    iv: bytes
    recipients: tuple[tuple[RecipientRef, bytes], ...]
    ciphertext: bytes

    def recipient_refs(self) -> list[RecipientRef]:
        return [ref for ref, _ in self.recipients]

    def unwrap_key(
        self,
        certificate: x509.Certificate,
        private_key: rsa.RSAPrivateKey,
        *,
        describe_recipient: Callable[[RecipientRef], str],
        on_rsa: Callable[[], None] = lambda: None,
    ) -> bytes:
        """The content key, unwrapped for this identity; NotARecipientError when it is not one."""
        for ref, wrapped in self.recipients:
            if ref.matches(certificate):
                on_rsa()
                try:
                    key = private_key.decrypt(wrapped, padding.PKCS1v15())
                except ValueError:
                    raise DecryptionError(
                        f"the wrapped content key ({len(wrapped)} bytes) cannot be decrypted with the "
                        f"{private_key.key_size}-bit key of {DistinguishedName.from_x509(certificate.subject)}"
                    ) from None
                # With implicit rejection a wrong key yields random bytes: check the length here
                # and rely on the signature or size checks for the rest.
                if len(key) != self.algorithm.spec.key_size:
                    raise DecryptionError(
                        f"the unwrapped {self.algorithm} key is {len(key)} bytes, expected "
                        f"{self.algorithm.spec.key_size}: the message key was not wrapped for this private key"
                    )
                return key
        listed = "; ".join(describe_recipient(ref) for ref, _ in self.recipients) or "nobody"
        raise NotARecipientError(
            f"this message was encrypted for {len(self.recipients)} recipient(s): {listed}; this identity "
            f"is {DistinguishedName.from_x509(certificate.subject)} (issuer "
            f"{DistinguishedName.from_x509(certificate.issuer)}, serial {certificate.serial_number:#x}). "
            "Add this identity's DN to the sender's policy recipients (-r), or read with a recipient's keystore"
        )

    def decrypt(self, key: bytes, *, what: str) -> memoryview:
        return cbc_decrypt(self.algorithm, key, self.iv, self.ciphertext, what=what)


def parse_enveloped_data(encoded: bytes) -> EnvelopedContent:
    """Parse a ContentInfo(envelopedData) with key-transport recipients."""
    try:
        der.check_strict(encoded)
        info = asn1_cms.ContentInfo.load(encoded, strict=True)
        if info["content_type"].dotted != ID_ENVELOPED_DATA:
            raise MalformedMessageError(
                f"expected a ContentInfo of type envelopedData ({ID_ENVELOPED_DATA}), found "
                f"{info['content_type'].dotted}"
            )
        enveloped = info["content"]
        eci = enveloped["encrypted_content_info"]
        content_type = eci["content_type"].dotted
        algorithm_id = eci["content_encryption_algorithm"]
        oid = algorithm_id["algorithm"].dotted
        encrypted = eci["encrypted_content"]
        if encrypted.native is None:
            raise MalformedMessageError("the EnvelopedData has no encryptedContent")
        ciphertext = bytes(encrypted)
        _ = enveloped["recipient_infos"].native, algorithm_id.native  # damage fails here, typed
        refs: list[tuple[RecipientRef, bytes]] = []
        for choice in enveloped["recipient_infos"]:
            if choice.name != "ktri":
                raise UnsupportedAlgorithmError(
                    f"RecipientInfo of kind {choice.name}: AMS uses key transport (RSA) only"
                )
            ktri = choice.chosen
            if ktri["key_encryption_algorithm"]["algorithm"].dotted != RSA_ENCRYPTION:
                raise UnsupportedAlgorithmError(
                    f"key encryption algorithm {ktri['key_encryption_algorithm']['algorithm'].dotted}: "
                    f"AMS uses rsaEncryption ({RSA_ENCRYPTION}, PKCS#1 v1.5)"
                )
            rid = ktri["rid"]
            check_version(ktri["version"], 0 if rid.name == "issuer_and_serial_number" else 2, "KeyTransRecipientInfo")
            check_null_parameters(ktri["key_encryption_algorithm"])
            if rid.name == "issuer_and_serial_number":
                ref = RecipientRef(rid.chosen["issuer"].dump(), rid.chosen["serial_number"].native, None)
            else:
                ref = RecipientRef(None, None, rid.chosen.native)
            refs.append((ref, ktri["encrypted_key"].native))
        parameters = algorithm_id["parameters"]
        all_v0 = all(choice.chosen["version"].native == "v0" for choice in enveloped["recipient_infos"])
        plain = all_v0 and enveloped["originator_info"].native is None and enveloped["unprotected_attrs"].native is None
        check_version(enveloped["version"], 0 if plain else 2, "EnvelopedData")
    except (MalformedMessageError, UnsupportedAlgorithmError):
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        raise MalformedMessageError(f"cannot parse the EnvelopedData: {error}") from None
    algorithm = EncryptionAlgorithm.from_oid(oid)
    if algorithm is None:
        raise UnsupportedAlgorithmError(
            f"content encryption algorithm {oid} is not one AMS defines (RC2, DES, 3DES, AES128, AES256)"
        )
    iv = _iv(algorithm, parameters)
    return EnvelopedContent(algorithm, content_type, iv, tuple(refs), ciphertext)


def _iv(algorithm: EncryptionAlgorithm, parameters: object) -> bytes:
    try:
        if algorithm is EncryptionAlgorithm.RC2:
            native = getattr(parameters, "native", None)
            if isinstance(native, dict):
                version = native.get("rc2_parameter_version")
                if version not in (None, RC2_PARAMETER_VERSION_128):
                    raise UnsupportedAlgorithmError(
                        f"RC2 parameter version {version}: only 128-bit RC2 (version 58) is supported"
                    )
                iv = native["iv"]
            else:
                iv = native
        else:
            iv = getattr(parameters, "native", None)
    except (ValueError, TypeError, KeyError) as error:
        raise MalformedMessageError(f"cannot read the {algorithm} parameters: {error}") from None
    if not isinstance(iv, bytes) or len(iv) != algorithm.spec.block_size:
        raise MalformedMessageError(
            f"{algorithm} IV: expected {algorithm.spec.block_size} bytes in the algorithm parameters, found {iv!r}"
        )
    return iv
