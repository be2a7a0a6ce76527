"""What the strictest reader requires of a message a peer wrote: AMS's format exactly as format.md
describes it, with no tolerance for the variants a reader accepts (§1-5).

:func:`deviations` lists every difference between a protected body and what AMS writes for the
request it answered: the clear headers untouched but for the blanked last Format; every PDMQ
field (reserved bytes and flags zero, the policy name NUL-padded, origSize and origFormat
right); one certificate, one version 1 SignerInfo by issuer and serial, the three signed
attributes, rsaEncryption, the policy's own digest; privacy encrypting the SignedData's content
octets for exactly the policy's recipients with the policy's cipher; confidentiality's key block,
IV and ciphertext. It decrypts with the recipients' keys from the conformance world, and reads
with the general strict CMS readers, never the receive path's specialised ones: a second opinion.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import padding as symmetric_padding
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from ams.algorithms import EncryptionAlgorithm, QoP
from ams.errors import AmsError
from ams.hazmat import der, mqheaders
from ams.hazmat.enveloped import EnvelopedContent, parse_enveloped_data_strictly
from ams.hazmat.oids import ID_CONTENT_TYPE, ID_DATA, ID_MESSAGE_DIGEST, ID_SIGNED_DATA, ID_SIGNING_TIME, RSA_ENCRYPTION
from ams.hazmat.pdmq import PdmqHeader
from ams.hazmat.signed import parse_signed_data_strictly
from ams.mqconstants import MQCCSI_UTF8, MQENC_NATIVE, MQFMT_NONE
from ams.testing.conformance.protocol import Request
from ams.testing.conformance.world import World


def deviations(body: bytes, request: Request, world: World) -> list[str]:
    """How ``body``, written by a peer for ``request`` (a protect), differs from what AMS writes."""
    original = mqheaders.walk(request.data, request.format, MQENC_NATIVE, MQCCSI_UTF8)
    found: list[str] = []
    start = original.payload_offset
    expected_prefix = bytearray(request.data[:start])
    if original.format_offset is not None:
        blank = mqheaders.encode_format(MQFMT_NONE, original.format_charset)
        expected_prefix[original.format_offset : original.format_offset + 8] = blank
    if body[:start] != bytes(expected_prefix):
        differs = next((i for i, (a, b) in enumerate(zip(body, expected_prefix, strict=False)) if a != b), len(body))
        found.append(
            f"the clear headers changed (first difference at offset {differs}): only the last Format may change, "
            "to blanks"
        )
        return found
    payload = request.data[start:]
    try:
        header = PdmqHeader.unpack(body[start:])
    except AmsError as error:
        return [*found, f"no PDMQ header that a reader accepts at offset {start}: {error}"]
    found += _header_deviations(body[start : start + header.size], header, request, payload, original.last_format)
    blob = body[start + header.size :]
    content = payload or b"\x00"
    try:
        if header.qop is QoP.INTEGRITY:
            found += _signed_deviations(blob, True, content, request, world)
        elif header.qop is QoP.PRIVACY:
            found += _privacy_deviations(blob, content, request, world)
        else:
            found += _confidential_deviations(blob, header, content, request, world)
    except (AmsError, ValueError, IndexError) as error:
        found.append(f"the {header.qop} blob cannot be read strictly: {error}")
    return found


def _header_deviations(raw: bytes, header: PdmqHeader, request: Request, payload: bytes, last_format: str) -> list[str]:
    """Every PDMQ field against what AMS writes (format.md §2)."""
    found = []
    if header.qop is not request.qop:
        found.append(f"PDMQ protType says {header.qop}, the policy asks for {request.qop}")
    checks = [
        (raw[7] == 0, f"PDMQ dynamic-queue byte: expected 0, found {raw[7]}"),
        (
            header.orig_size == max(len(payload), 1),
            f"PDMQ origSize: expected {max(len(payload), 1)}, found {header.orig_size}",
        ),
        (
            header.empty == (payload == b""),
            f"PDMQ empty flag: expected {int(payload == b'')}, found {int(header.empty)}",
        ),
        (header.orig_format == last_format, f"PDMQ origFormat: expected {last_format!r}, found {header.orig_format!r}"),
        (raw[41:48] == bytes(7), f"PDMQ flags bytes 1-7: expected zeros, found {raw[41:48].hex()}"),
        (raw[48:56] == bytes(8), f"PDMQ reserved bytes 48-55: expected zeros, found {raw[48:56].hex()}"),
        (not header.key_reuse, "PDMQ key-reuse flag set, but the policy's key reuse is DISABLED"),
    ]
    name = request.queue.encode("utf-8").ljust(48, b"\x00")[:48]
    checks.append(
        (raw[56:104] == name, f"PDMQ policy name: expected {name.rstrip(bytes(1))!r} NUL-padded, found {raw[56:104]!r}")
    )
    if header.version == 2:
        checks.append((raw[28:32] == bytes(4), f"PDMQ bytes 28-31 (v2): expected zeros, found {raw[28:32].hex()}"))
    elif request.cipher is not EncryptionAlgorithm.NONE:
        block = request.cipher.spec.block_size
        checks.append(
            (header.iv_block_size == block, f"PDMQ IVBlockSize: expected {block}, found {header.iv_block_size}")
        )
    return [text for ok, text in checks if not ok]


def _signed_deviations(encoded: bytes, wrapped: bool, content: bytes, request: Request, world: World) -> list[str]:
    """A SignedData as AMS writes it (format.md §3), signed by the request's identity with the policy's digest."""
    signed = parse_signed_data_strictly(encoded, wrapped=wrapped)
    signer = world.issued(request.identity).certificate
    digest = f"{request.digest.oid} ({request.digest})"
    checks = [
        (signed.version == 1, f"SignedData version: expected 1, found {signed.version}"),
        (
            list(signed.digest_oids) == [request.digest.oid],
            f"SignedData digestAlgorithms: expected [{digest}], found {list(signed.digest_oids)}",
        ),
        (
            list(signed.certificates) == [signer.public_bytes(serialization.Encoding.DER)],
            f"SignedData certificates: expected exactly the signer's own, found {len(signed.certificates)} that differ",
        ),
        (
            bytes(signed.content) == content,
            f"the signed content: expected the payload ({len(content):,} bytes), found {len(signed.content):,} others",
        ),
    ]
    found = [text for ok, text in checks if not ok]
    if len(signed.signer_infos) != 1:
        return [*found, f"SignerInfos: expected one, found {len(signed.signer_infos)}"]
    info = signed.signer_infos[0]
    checks = [
        (
            info.version == 1 and info.issuer == signer.issuer.public_bytes() and info.serial == signer.serial_number,
            "SignerInfo: expected version 1 identifying the signer by its issuer and serial number",
        ),
        (
            info.digest_oid == request.digest.oid,
            f"SignerInfo digestAlgorithm: expected {digest}, found {info.digest_oid}",
        ),
        (
            info.signature_oid == RSA_ENCRYPTION,
            f"SignerInfo signatureAlgorithm: expected rsaEncryption ({RSA_ENCRYPTION}), found {info.signature_oid}",
        ),
    ]
    return found + [text for ok, text in checks if not ok] + _attribute_deviations(info.signed_attributes)


def _attribute_deviations(attributes: memoryview | None) -> list[str]:
    """The signed attributes AMS writes: contentType (id-data), signingTime and messageDigest, nothing else."""
    if attributes is None:
        return ["SignerInfo: expected signed attributes (contentType, signingTime, messageDigest), found none"]
    reader = der.Reader(bytes(attributes), "signedAttrs")
    found: dict[str, bytes] = {}
    for attribute in reader.all("Attribute", der.SEQUENCE):
        fields = attribute.children("Attribute")
        oid = fields.read("attrType", der.OID).oid("attrType")
        found[oid] = bytes(fields.read("attrValues", der.SET).content)
    expected = {ID_CONTENT_TYPE, ID_SIGNING_TIME, ID_MESSAGE_DIGEST}
    out = []
    if set(found) != expected:
        out.append(
            f"signed attributes: expected exactly contentType, signingTime and messageDigest, found {sorted(found)}"
        )
    if ID_CONTENT_TYPE in found and found[ID_CONTENT_TYPE] != der.oid(ID_DATA):
        out.append("the contentType signed attribute: expected id-data")
    return out


def _recipient_deviations(envelope: EnvelopedContent, request: Request, world: World, what: str) -> list[str]:
    found = []
    if envelope.algorithm is not request.cipher:
        found.append(f"the {what}'s cipher: expected {request.cipher} (the policy's), found {envelope.algorithm}")
    refs = envelope.recipient_refs()
    expected = sorted(
        (world.issued(n).certificate.issuer.public_bytes(), world.issued(n).certificate.serial_number)
        for n in request.recipients
    )
    named = sorted((ref.issuer or b"", ref.serial or 0) for ref in refs)
    if any(ref.issuer is None for ref in refs):
        found.append(f"the {what}'s RecipientInfos: expected issuer and serial number, found a subjectKeyIdentifier")
    elif named != expected:
        found.append(
            f"the {what}'s RecipientInfos: expected exactly the policy's {len(expected)} recipient(s), "
            f"found {len(refs)} that differ"
        )
    return found


def _open(envelope: EnvelopedContent, request: Request, world: World) -> bytes | None:
    """The envelope's plaintext, decrypted with the first of the request's recipients it is for."""
    for name in request.recipients:
        issued = world.issued(name)
        index = envelope.recipient_index(issued.certificate)
        if index is None:
            continue
        key = issued.key.decrypt(envelope.wrapped_key(index), padding.PKCS1v15())
        return _cbc_decrypt(envelope.algorithm, key, envelope.iv, bytes(envelope.ciphertext))
    return None


def _cbc_decrypt(algorithm: EncryptionAlgorithm, key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    decryptor = Cipher(algorithm.spec.factory(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = symmetric_padding.PKCS7(algorithm.spec.block_size * 8).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def _privacy_deviations(blob: bytes, content: bytes, request: Request, world: World) -> list[str]:
    """Privacy (format.md §4): the SignedData's content octets, encrypted for exactly the policy's recipients."""
    envelope = parse_enveloped_data_strictly(blob)
    found = _recipient_deviations(envelope, request, world, "EnvelopedData")
    if envelope.content_type != ID_SIGNED_DATA:
        found.append(f"the EnvelopedData's content type: expected signedData, found {envelope.content_type}")
    plaintext = _open(envelope, request, world)
    if plaintext is None:
        return [*found, "no recipient of the policy can open the EnvelopedData"]
    if plaintext[:1] == bytes([der.SEQUENCE]):
        return [
            *found,
            "the EnvelopedData encrypts a whole SignedData (or ContentInfo): AMS encrypts its content octets",
        ]
    inner = der.header(der.SEQUENCE, len(plaintext)) + plaintext
    return found + _signed_deviations(inner, False, content, request, world)


def _confidential_deviations(
    blob: bytes, header: PdmqHeader, content: bytes, request: Request, world: World
) -> list[str]:
    """Confidentiality (format.md §5): a key block for exactly the recipients, an IV, the ciphertext."""
    key_block = blob[: header.key_block_size]
    envelope = parse_enveloped_data_strictly(key_block)
    found = _recipient_deviations(envelope, request, world, "key block")
    if envelope.content_type != ID_DATA:
        found.append(f"the key block's content type: expected id-data, found {envelope.content_type}")
    key = _open(envelope, request, world)
    if key is None or len(key) != envelope.algorithm.spec.key_size:
        return [*found, f"the key block does not hold a {envelope.algorithm} key for a recipient of the policy"]
    iv = blob[header.key_block_size : header.key_block_size + header.iv_block_size]
    ciphertext = blob[header.key_block_size + header.iv_block_size :]
    if _cbc_decrypt(envelope.algorithm, key, iv, ciphertext) != content:
        found.append("the ciphertext does not decrypt to the payload with the key block's key and the IV")
    return found
