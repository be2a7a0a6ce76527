"""CMS SignedData as AMS writes it (format.md §3). Syntax only.

The payload is framed with hand-built DER so that it is hashed once and copied once; the small
structures (signed attributes, SignerInfo) are built once per signer where possible, and the
signingTime attribute once per second.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ams.algorithms import SignatureAlgorithm
from ams.hazmat import der
from ams.hazmat.certificates import issuer_and_serial
from ams.hazmat.der import Chunk
from ams.hazmat.oids import ID_CONTENT_TYPE, ID_DATA, ID_MESSAGE_DIGEST, ID_SIGNED_DATA, ID_SIGNING_TIME, RSA_ENCRYPTION

_DER = serialization.Encoding.DER
_PKCS1 = padding.PKCS1v15()  # stateless: one for every signature


def _signing_time(now: datetime.datetime) -> bytes:
    utc = now.astimezone(datetime.UTC)
    if 1950 <= utc.year < 2050:
        return der.tlv(0x17, utc.strftime("%y%m%d%H%M%SZ").encode())
    return der.tlv(0x18, utc.strftime("%Y%m%d%H%M%SZ").encode())


def _attribute(oid: str, value: bytes) -> bytes:
    return der.tlv(der.SEQUENCE, der.oid(oid) + der.tlv(der.SET, value))


class SignedDataWriter:
    """Everything about one signer's signature that does not change per message."""

    def __init__(
        self, certificate: x509.Certificate, private_key: rsa.RSAPrivateKey, algorithm: SignatureAlgorithm
    ) -> None:
        self.private_key = private_key
        self.algorithm = algorithm
        self._hash = algorithm.hash()
        digest_algorithm = der.algorithm_identifier(algorithm.oid)
        self._version_and_digests = der.integer(1) + der.tlv(der.SET, digest_algorithm)
        self._certificates = der.tlv(der.CONTEXT_0_CONSTRUCTED, certificate.public_bytes(_DER))
        self._signer_prefix = der.integer(1) + issuer_and_serial(certificate) + digest_algorithm
        self._signature_algorithm = der.algorithm_identifier(RSA_ENCRYPTION)
        self._content_type_attr = _attribute(ID_CONTENT_TYPE, der.oid(ID_DATA))
        self._data_oid = der.oid(ID_DATA)
        self._last_time: tuple[int, bytes] | None = None

    def content_parts(self, payload: Chunk, now: datetime.datetime | None = None) -> list[Chunk]:
        """The content octets of the SignedData SEQUENCE, as chunks (the payload not copied)."""
        digest = hashes.Hash(self._hash)
        digest.update(payload)
        digest_value = digest.finalize()
        attributes = sorted(
            [
                self._content_type_attr,
                self._signing_time_attr(now or datetime.datetime.now(datetime.UTC)),
                _attribute(ID_MESSAGE_DIGEST, der.tlv(der.OCTET_STRING, digest_value)),
            ]
        )
        attributes_content = b"".join(attributes)
        attributes_tail = der.length(len(attributes_content)) + attributes_content
        # signed as a SET OF, sent as [0] IMPLICIT: the same length and content under two tags
        signature = self.private_key.sign(b"\x31" + attributes_tail, _PKCS1, self._hash)
        signer_info = der.tlv(
            der.SEQUENCE,
            self._signer_prefix
            + b"\xa0"
            + attributes_tail
            + self._signature_algorithm
            + der.tlv(der.OCTET_STRING, signature),
        )
        octet_header = der.header(der.OCTET_STRING, len(payload))
        explicit_header = der.header(der.CONTEXT_0_CONSTRUCTED, len(octet_header) + len(payload))
        encap_length = len(self._data_oid) + len(explicit_header) + len(octet_header) + len(payload)
        tail = self._certificates + der.tlv(der.SET, signer_info)
        return [
            self._version_and_digests
            + der.header(der.SEQUENCE, encap_length)
            + self._data_oid
            + explicit_header
            + octet_header,
            payload,
            tail,
        ]

    def _signing_time_attr(self, now: datetime.datetime) -> bytes:
        """The signingTime attribute for ``now``, to the second (made once per second)."""
        second = int(now.timestamp() // 1)  # floor: int() would put -0.5 and 0.5 in one second
        last = self._last_time  # read once: another thread may replace it meanwhile
        if last is None or last[0] != second:
            last = self._last_time = (second, _attribute(ID_SIGNING_TIME, _signing_time(now)))
        return last[1]

    def content_info(self, payload: Chunk, now: datetime.datetime | None = None) -> list[Chunk]:
        """A complete DER ContentInfo of type signedData (the Integrity blob), as chunks."""
        parts = self.content_parts(payload, now)
        inner = sum(len(p) for p in parts)
        signed_header = der.header(der.SEQUENCE, inner)
        oid = der.oid(ID_SIGNED_DATA)
        explicit = der.header(der.CONTEXT_0_CONSTRUCTED, len(signed_header) + inner)
        outer = der.header(der.SEQUENCE, len(oid) + len(explicit) + len(signed_header) + inner)
        return [outer + oid + explicit + signed_header + parts[0], *parts[1:]]
