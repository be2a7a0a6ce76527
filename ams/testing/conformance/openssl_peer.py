"""An AMS peer built on the ``openssl`` command line, for ``ams conformance --peer openssl``.

::

    python -m ams.testing.conformance.openssl_peer protect --qop privacy --digest SHA256 --cipher AES256 \\
        --key alice.key.pem --cert alice.pem --recipient bob.pem --queue Q --format MQSTR --in body --out protected
    python -m ams.testing.conformance.openssl_peer unprotect --qop privacy --key bob.key.pem --cert bob.pem \\
        --trust ca.pem --format "" --in protected --out body

``openssl cms`` does all the cryptography: it signs, verifies the signature and the signer's
chain (``-purpose smimesign``: dates, key usage, extended key usage), encrypts for the
recipients and decrypts. This adapter does what openssl cannot: the clear MQ headers, the PDMQ
header, AMS's encryption of a SignedData's content octets (format.md §4), the confidentiality
layout (§5), and the structure a CMS library does not insist on (versions, one certificate, one
signer that is not a CA, the content types). It imports nothing of ``ams``, so that its mistakes
are not this project's. DES and RC2 need openssl's legacy provider. Exit status 0: done; 3:
refused; 2: usage.
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

CLEAR = {
    "MQHRF2": b"RFH ", "MQHRF": b"RFH ", "MQHMDE": b"MDE ", "MQHWIH": b"WIH ", "MQHREF": b"RMH ",
    "MQIMS": b"IIH ", "MQCICS": b"CIH ", "MQHDIST": b"DH  ", "MQDEAD": b"DLH ", "MQHEPCF": b"EPH ",
}  # fmt: skip
QOPS = {"integrity": 4, "privacy": 8, "confidentiality": 64}
CIPHERS = {  # AMS name: (openssl cms option, openssl enc name, key size, block size, DER of the OID)
    "AES256": ("-aes256", "aes-256-cbc", 32, 16, "060960864801650304012a"),
    "AES128": ("-aes128", "aes-128-cbc", 16, 16, "0609608648016503040102"),
    "3DES": ("-des3", "des-ede3-cbc", 24, 8, "06082a864886f70d0307"),
    "DES": ("-des", "des-cbc", 8, 8, "06052b0e030207"),
    "RC2": ("-rc2", "rc2-cbc", 16, 8, "06082a864886f70d0302"),
}
LEGACY = ("-provider", "legacy", "-provider", "default")
OID_DATA = bytes.fromhex("06092a864886f70d010701")
OID_SIGNED_DATA = bytes.fromhex("06092a864886f70d010702")
OID_RSA = bytes.fromhex("06092a864886f70d010101")


class Refused(Exception):
    """The message must be refused (exit 3), for the reason given."""


# -- DER: just enough to check AMS's structures ------------------------------------------------------------------------


def tlv(data: bytes, offset: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``offset``; Refused when it is not DER."""
    if offset + 2 > end:
        raise Refused(f"truncated DER at offset {offset}")
    first, start = data[offset + 1], offset + 2
    size = first
    if first & 0x80:
        count = first & 0x7F
        if not 0 < count <= 4 or start + count > end:
            raise Refused(f"bad DER length at offset {offset}")
        size = int.from_bytes(data[start : start + count], "big")
        if data[start] == 0 or size < 0x80:
            raise Refused(f"non-minimal DER length at offset {offset}")
        start += count
    if start + size > end:
        raise Refused(f"DER element at offset {offset} overruns its container")
    return data[offset], start, start + size


def children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, element start, content start, content end) of each element in ``data[start:end]``."""
    out = []
    while start < end:
        tag, content, stop = tlv(data, start, end)
        out.append((tag, start, content, stop))
        start = stop
    return out


def expect(condition: bool, what: str) -> None:
    """Refuse unless ``condition``: ``what`` says what AMS requires."""
    if not condition:
        raise Refused(what)


def content_info(blob: bytes, oid: bytes) -> tuple[int, int]:
    """The content span of a ContentInfo of type ``oid`` that fills ``blob`` exactly."""
    tag, start, stop = tlv(blob, 0, len(blob))
    expect(tag == 0x30 and stop == len(blob), "the blob must be exactly one ContentInfo")
    fields = children(blob, start, stop)
    expect(len(fields) == 2 and blob[fields[0][1] : fields[0][3]] == oid, "unexpected ContentInfo type")
    inner = children(blob, fields[1][2], fields[1][3])
    expect(fields[1][0] == 0xA0 and len(inner) == 1 and inner[0][0] == 0x30, "bad ContentInfo content")
    return inner[0][2], inner[0][3]


def check_algorithm(data: bytes, start: int, end: int, oid: bytes | None = None) -> bytes:
    """An AlgorithmIdentifier with NULL or absent parameters (``oid`` when given); its OID's bytes."""
    parts = children(data, start, end)
    expect(1 <= len(parts) <= 2 and parts[0][0] == 0x06, "bad AlgorithmIdentifier")
    expect(len(parts) == 1 or data[parts[1][1] : parts[1][3]] == b"\x05\x00", "algorithm parameters must be NULL")
    found = data[parts[0][1] : parts[0][3]]
    expect(oid is None or found == oid, "unexpected algorithm")
    return found


def check_signed_data(data: bytes, start: int, end: int) -> None:
    """One version 1 SignedData, one certificate, one version 1 SignerInfo by issuer and serial."""
    fields = children(data, start, end)
    expect([f[0] for f in fields] == [0x02, 0x31, 0x30, 0xA0, 0x31], "SignedData: unexpected fields")
    expect(data[fields[0][2] : fields[0][3]] == b"\x01", "SignedData version must be 1")
    digests = children(data, fields[1][2], fields[1][3])
    expect(len(children(data, fields[3][2], fields[3][3])) == 1, "exactly one certificate, the signer's")
    infos = children(data, fields[4][2], fields[4][3])
    expect(len(digests) == 1 and len(infos) == 1, "exactly one digest algorithm and one SignerInfo")
    info = children(data, infos[0][2], infos[0][3])
    expect([f[0] for f in info] == [0x02, 0x30, 0x30, 0xA0, 0x30, 0x04], "SignerInfo: unexpected fields")
    expect(data[info[0][2] : info[0][3]] == b"\x01", "SignerInfo version must be 1")
    digest = check_algorithm(data, info[2][2], info[2][3])
    expect(check_algorithm(data, digests[0][2], digests[0][3]) == digest, "digestAlgorithms must be the signer's")
    check_algorithm(data, info[4][2], info[4][3], OID_RSA)
    encapsulated = children(data, fields[2][2], fields[2][3])
    expect(data[encapsulated[0][1] : encapsulated[0][3]] == OID_DATA, "eContentType must be id-data")


def check_enveloped_data(blob: bytes, content_type: bytes) -> str:
    """A version 0 EnvelopedData of key-transport RecipientInfos (version 0, issuer and serial, RSA)
    with an AMS cipher; the cipher's AMS name."""
    start, end = content_info(blob, bytes.fromhex("06092a864886f70d010703"))
    fields = children(blob, start, end)
    expect([f[0] for f in fields] == [0x02, 0x31, 0x30], "EnvelopedData: unexpected fields")
    expect(blob[fields[0][2] : fields[0][3]] == b"\x00", "EnvelopedData version must be 0")
    for info in children(blob, fields[1][2], fields[1][3]):
        parts = children(blob, info[2], info[3])
        expect([p[0] for p in parts] == [0x02, 0x30, 0x30, 0x04], "KeyTransRecipientInfo: unexpected fields")
        expect(blob[parts[0][2] : parts[0][3]] == b"\x00", "KeyTransRecipientInfo version must be 0")
        check_algorithm(blob, parts[2][2], parts[2][3], OID_RSA)
    encrypted = children(blob, fields[2][2], fields[2][3])
    expect([e[0] for e in encrypted] == [0x06, 0x30, 0x80], "encryptedContentInfo: unexpected fields")
    expect(blob[encrypted[0][1] : encrypted[0][3]] == content_type, "unexpected encrypted content type")
    algorithm = children(blob, encrypted[1][2], encrypted[1][3])
    oid = blob[algorithm[0][1] : algorithm[0][3]].hex()
    cipher = next((name for name, spec in CIPHERS.items() if spec[4] == oid), None)
    expect(cipher is not None, "the content-encryption algorithm is not one AMS defines")
    return str(cipher)


def relabel_envelope(blob: bytes) -> bytes:
    """openssl labels an envelope's content id-data; AMS's privacy envelope says signedData (same length)."""
    start, end = content_info(blob, bytes.fromhex("06092a864886f70d010703"))
    encrypted = children(blob, start, end)[2]
    oid = children(blob, encrypted[2], encrypted[3])[0]
    return blob[: oid[1]] + OID_SIGNED_DATA + blob[oid[3] :]


# -- clear headers and the PDMQ header ---------------------------------------------------------------------------------


def decode_format(raw: bytes) -> tuple[str, str]:
    """A Format field and its charset (ASCII, else EBCDIC)."""
    if raw != b"\x40" * 8 and all(0x20 <= b < 0x7F for b in raw):
        return raw.decode("ascii"), "ascii"
    return raw.decode("cp500"), "cp500"


def walk(body: bytes, mqmd_format: str) -> tuple[int, int | None, str, str]:
    """Payload offset, the last Format's offset, the last Format and its charset (integers: 546 first)."""
    fmt, charset, offset, encoding, format_offset = mqmd_format.ljust(8)[:8], "ascii", 0, 546, None
    while fmt.rstrip() in CLEAR:
        order = "<" if encoding & 0x0F == 2 else ">"
        if fmt.rstrip() == "MQDEAD":
            length, encoding_at, format_at = 172, 108, 116
        else:
            expect(offset + 12 <= len(body), f"{fmt.strip()} header truncated")
            (length,) = struct.unpack_from(order + "i", body, offset + 8)
            encoding_at, format_at = 12, 20
        expect(format_at + 8 <= length and offset + length <= len(body), f"{fmt.strip()} header has a bad length")
        (encoding,) = struct.unpack_from(order + "i", body, offset + encoding_at)
        format_offset = offset + format_at
        fmt, charset = decode_format(body[format_offset : format_offset + 8])
        offset += length
    return offset, format_offset, fmt, charset


def pdmq(qop: str, size: int, orig_format: str, empty: bool, queue: str, sizes: tuple[int, int, int]) -> bytes:
    """A PDMQ header, big-endian, as IBM's Java client writes it (format.md §2)."""
    version = 3 if qop == "confidentiality" else 2
    length = 112 if version == 3 else 104
    head = struct.pack(
        ">4sBBBBiiiiii8s8s8s48s", b"PDMQ", version, 0, 1, 0, length, length, QOPS[qop], 1208, size,
        sizes[0], orig_format.ljust(8)[:8].encode("ascii"), b"\x01" * empty + bytes(8 - empty), bytes(8),
        queue.encode("utf-8")[:48].ljust(48, b"\x00"),
    )  # fmt: skip
    return head + (struct.pack(">hhi", sizes[1], 0, sizes[2]) if version == 3 else b"")


def read_pdmq(data: bytes) -> tuple[str, int, str, bool, int, tuple[int, int, int]]:
    """QoP, origSize, origFormat, empty flag, header size and (keyBlock, IV, ciphertext) sizes of a header."""
    expect(len(data) >= 104 and data[:4] == b"PDMQ", "no PDMQ header: the message is not protected")
    expect(data[6] in (1, 2) and data[5] == 0, "PDMQ encoding or minor version")
    order = ">" if data[6] == 1 else "<"
    version, size = data[4], 112 if data[4] == 3 else 104
    fields = struct.unpack_from(order + "iiiiii8s8s", data, 8)
    expect(version in (2, 3) and fields[0] == fields[1] == size and len(data) >= size, "PDMQ version or size")
    prot = fields[2] & ~0x20 if version == 3 else fields[2]
    qop = next((name for name, value in QOPS.items() if value == prot), "")
    expect(bool(qop) and (version == 3) == (qop == "confidentiality"), f"PDMQ protType {fields[2]:#x}")
    expect(fields[3] == 1208 and fields[4] >= 1 and fields[7][0] in (0, 1), "PDMQ CCSID, origSize or flag")
    sizes = (fields[5], *struct.unpack_from(order + "hhi", data, 104)[0::2]) if version == 3 else (0, 0, 0)
    return qop, fields[4], fields[6].decode("ascii"), fields[7][0] == 1, size, sizes


# -- openssl -----------------------------------------------------------------------------------------------------------


def openssl(*args: str, data: bytes = b"") -> bytes:
    """Run ``openssl args`` with ``data`` on standard input; Refused with its message when it fails."""
    result = subprocess.run(["openssl", *args], input=data, capture_output=True, check=False)
    if result.returncode != 0:
        raise Refused(f"openssl {args[0]} {args[1]}: {result.stderr.decode(errors='replace').strip()[-300:]}")
    return result.stdout


def legacy(cipher: str) -> tuple[str, ...]:
    """The provider options DES and RC2 need in OpenSSL 3."""
    return LEGACY if cipher in ("DES", "RC2") else ()


def sign(content: bytes, digest: str, key: str, cert: str) -> bytes:
    """A DER ContentInfo(signedData) with the content attached and the three signed attributes."""
    options = ("-sign", "-binary", "-nodetach", "-nosmimecap", "-md", digest.lower(), "-outform", "DER")
    return openssl("cms", *options, "-signer", cert, "-inkey", key, data=content)


def verify(signed: bytes, trust: str, scratch: Path, crl: str | None = None) -> bytes:
    """The content of a SignedData whose signature, signer chain and usage openssl verifies (and, with
    ``crl``, that the CRL does not revoke the signer); not a CA."""
    start, end = content_info(signed, OID_SIGNED_DATA)
    check_signed_data(signed, start, end)
    signer = scratch / "signer.pem"
    if crl:  # openssl cms reads CRLs from the -CAfile bundle
        bundle = scratch / "trust-and-crl.pem"
        bundle.write_bytes(Path(trust).read_bytes() + b"\n" + Path(crl).read_bytes())
        trust = str(bundle)
    options: tuple[str, ...] = ("-verify", "-binary", "-inform", "DER", "-CAfile", trust, "-purpose", "smimesign")
    options += ("-crl_check",) if crl else ()
    content = openssl("cms", *options, "-signer", str(signer), data=signed)
    text = openssl("x509", "-in", str(signer), "-noout", "-text").decode(errors="replace")
    expect("CA:TRUE" not in text, "the signer's certificate is a CA's: AMS signers are end entities")
    return content


def encrypt(plaintext: bytes, cipher: str, recipients: list[str]) -> bytes:
    """A DER EnvelopedData of ``plaintext`` (labelled id-data) for the recipients' certificates, each
    of which must allow keyEncipherment when it has a keyUsage (openssl cms -encrypt does not ask)."""
    for recipient in recipients:
        usage = openssl("x509", "-in", recipient, "-noout", "-ext", "keyUsage").decode(errors="replace")
        expect(
            not usage.strip() or "Key Encipherment" in usage,
            f"the recipient certificate {recipient} has keyUsage without keyEncipherment: it cannot receive a key",
        )
    return openssl(
        "cms",
        "-encrypt",
        *legacy(cipher),
        "-binary",
        CIPHERS[cipher][0],
        "-outform",
        "DER",
        *recipients,
        data=plaintext,
    )


def decrypt(envelope: bytes, cipher: str, key: str, cert: str) -> bytes:
    """The plaintext of an EnvelopedData encrypted with ``cipher`` for this recipient."""
    options = ("-decrypt", *legacy(cipher), "-binary", "-inform", "DER", "-recip", cert, "-inkey", key)
    return openssl("cms", *options, data=envelope)


# -- the two operations ------------------------------------------------------------------------------------------------


def protect(args: argparse.Namespace, body: bytes) -> bytes:
    """The protected body: clear headers (last Format blanked), the PDMQ header, the blob."""
    offset, format_offset, last_format, charset = walk(body, args.format)
    payload = body[offset:]
    content = payload or b"\x00"  # AMS protects one NUL in place of an empty payload (format.md §1)
    sizes = (0, 0, 0)
    if args.qop == "integrity":
        blob = sign(content, args.digest, args.key, args.cert)
    elif args.qop == "privacy":
        signed = sign(content, args.digest, args.key, args.cert)
        start, end = content_info(signed, OID_SIGNED_DATA)
        blob = relabel_envelope(encrypt(signed[start:end], args.cipher, args.recipient))
    else:
        _, enc_name, key_size, block, _ = CIPHERS[args.cipher]
        key, iv = os.urandom(key_size), os.urandom(block)
        key_block = encrypt(key, args.cipher, args.recipient)
        ciphertext = openssl(
            "enc", "-e", *legacy(args.cipher), f"-{enc_name}", "-K", key.hex(), "-iv", iv.hex(), data=content
        )
        blob, sizes = key_block + iv + ciphertext, (len(key_block), len(iv), len(ciphertext))
    prefix = bytearray(body[:offset])
    if format_offset is not None:
        prefix[format_offset : format_offset + 8] = (" " * 8).encode(charset)
    return bytes(prefix) + pdmq(args.qop, len(content), last_format, not payload, args.queue, sizes) + blob


def unprotect(args: argparse.Namespace, body: bytes, scratch: Path) -> bytes:
    """The original body: every check passed, the payload recovered, the last Format restored."""
    offset, format_offset, last_format, charset = walk(body, args.format)
    expect(last_format.strip() == "", f"the message is not protected: its Format is {last_format.strip()!r}")
    qop, orig_size, orig_format, empty, size, sizes = read_pdmq(body[offset:])
    expect(qop == args.qop, f"the policy asks for {args.qop}, the message is {qop}")
    blob = body[offset + size :]
    if qop == "integrity":
        content = verify(blob, args.trust, scratch, args.crl)
    elif qop == "privacy":
        octets = decrypt(blob, check_enveloped_data(blob, OID_SIGNED_DATA), args.key, args.cert)
        expect(octets[:1] == b"\x02", "the envelope must hold the SignedData's content octets")
        inner = b"\x30" + _length(len(octets)) + octets
        wrapped = OID_SIGNED_DATA + b"\xa0" + _length(len(inner)) + inner
        content = verify(b"\x30" + _length(len(wrapped)) + wrapped, args.trust, scratch, args.crl)
    else:
        content = _open_confidential(blob, sizes, args)
    expect(len(content) == orig_size, f"origSize {orig_size} but {len(content)} bytes were protected")
    expect(not empty or content == b"\x00", "the empty flag is set but the content is not one NUL")
    if format_offset is None:
        if args.format_out:  # no clear header: the MQMD gets origFormat back
            Path(args.format_out).write_bytes(orig_format.ljust(8).encode("ascii", "replace"))
        return b"" if empty else content
    restored = bytearray(body[:offset])
    restored[format_offset : format_offset + 8] = orig_format.encode(charset)
    return bytes(restored) + (b"" if empty else content)


def _open_confidential(blob: bytes, sizes: tuple[int, int, int], args: argparse.Namespace) -> bytes:
    key_size, iv_size, enc_size = sizes
    expect(key_size > 0 and iv_size in (8, 16) and key_size + iv_size + enc_size == len(blob), "PDMQ v3 sizes")
    key_block = blob[:key_size]
    cipher = check_enveloped_data(key_block, OID_DATA)
    key = decrypt(key_block, cipher, args.key, args.cert)
    expect(len(key) == CIPHERS[cipher][2] and iv_size == CIPHERS[cipher][3], f"the key block's {cipher} key or IV size")
    iv, ciphertext = blob[key_size : key_size + iv_size], blob[key_size + iv_size :]
    enc = ("enc", "-d", *legacy(cipher), f"-{CIPHERS[cipher][1]}", "-K", key.hex(), "-iv", iv.hex())
    return openssl(*enc, data=ciphertext)


def _length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def main(argv: list[str] | None = None) -> int:
    """Run one operation; the exit status says done (0), refused (3) or a usage error (2)."""
    parser = argparse.ArgumentParser(prog="openssl_peer", description="an AMS peer on the openssl command line")
    parser.add_argument("operation", choices=["protect", "unprotect"])
    parser.add_argument("--qop", choices=sorted(QOPS), required=True)
    parser.add_argument("--digest", default="SHA256")
    parser.add_argument("--cipher", default="AES256", choices=[*sorted(CIPHERS), "NONE"])
    parser.add_argument("--key", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--recipient", action="append", default=[])
    parser.add_argument("--trust", default=None)
    parser.add_argument("--crl", default=None)
    parser.add_argument("--format-out", default=None)
    parser.add_argument("--queue", default="")
    parser.add_argument("--format", default="")
    parser.add_argument("--in", dest="input", required=True)
    parser.add_argument("--out", dest="output", required=True)
    args = parser.parse_args(argv)
    body = Path(args.input).read_bytes()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            result = protect(args, body) if args.operation == "protect" else unprotect(args, body, Path(scratch))
    except (Refused, UnicodeDecodeError, struct.error, IndexError) as error:
        print(f"openssl_peer: refused: {error}", file=sys.stderr)
        return 3
    Path(args.output).write_bytes(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
