"""The digest and cipher algorithms AMS defines: names, OIDs, PCF values and strength ranks."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Self

from cryptography.hazmat.decrepit.ciphers.algorithms import RC2, TripleDES
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import BlockCipherAlgorithm, algorithms


class QoP(enum.Enum):
    """AMS quality of protection (QoP); the value is the PDMQ protType bit."""

    NONE = 0
    INTEGRITY = 4
    PRIVACY = 8
    CONFIDENTIALITY = 64

    def __str__(self) -> str:
        return self.name


class _Labelled(enum.Enum):
    """An enum whose members have the names setmqspl and MQSC use (``label``)."""

    @property
    def label(self) -> str:
        """The name setmqspl and MQSC use for this member."""
        return self.name

    @classmethod
    def from_label(cls, label: str) -> Self:
        """The member whose :attr:`label` is ``label`` (case-sensitive); KeyError when none is."""
        for member in cls:
            if member.label == label:
                return member
        raise KeyError(label)

    @classmethod
    def labels(cls) -> str:
        """Every member's label, for an error that lists what is accepted."""
        return ", ".join(member.label for member in cls)

    def __str__(self) -> str:
        return self.label


class SignatureAlgorithm(_Labelled):
    """``-s`` / SIGNALG. The value is the PCF value and the strength rank."""

    NONE = 0
    MD5 = 1
    SHA1 = 2
    SHA256 = 4
    SHA384 = 5
    SHA512 = 6

    @property
    def deprecated(self) -> bool:
        """True for MD5 and SHA-1, which no longer resist collisions."""
        return self in (SignatureAlgorithm.MD5, SignatureAlgorithm.SHA1)

    @property
    def oid(self) -> str:
        """The digest's OID in CMS (format.md §3); KeyError for NONE."""
        return _DIGEST_OIDS_BY_VALUE[self._value_]  # an int key: an enum member's hash is a Python call

    def hash(self) -> hashes.HashAlgorithm:
        """A new instance of cryptography's hash for this digest; KeyError for NONE."""
        return _HASHES_BY_VALUE[self._value_]()

    @classmethod
    def from_oid(cls, oid: str) -> SignatureAlgorithm | None:
        """The digest a CMS digest OID names, or None when AMS defines no such digest."""
        return _DIGEST_BY_OID.get(oid)


class EncryptionAlgorithm(_Labelled):
    """``-e`` / ENCALG. The value is the PCF value and the strength rank."""

    NONE = 0
    RC2 = 1
    DES = 2
    TDES = 3
    AES128 = 4
    AES256 = 5

    @property
    def label(self) -> str:
        """The name setmqspl ``-e`` and MQSC ENCALG use: NONE, RC2, DES, 3DES, AES128 or AES256."""
        return "3DES" if self is EncryptionAlgorithm.TDES else self.name

    @property
    def deprecated(self) -> bool:
        """True for RC2, DES and 3DES, the 64-bit block ciphers."""
        return self in (EncryptionAlgorithm.RC2, EncryptionAlgorithm.DES, EncryptionAlgorithm.TDES)

    @property
    def spec(self) -> CipherSpec:
        """The cipher's OID, key and block sizes and constructor (format.md §4); KeyError for NONE."""
        return _CIPHERS_BY_VALUE[self._value_]  # an int key: an enum member's hash is a Python call

    @classmethod
    def from_oid(cls, oid: str) -> EncryptionAlgorithm | None:
        """The cipher a CMS content-encryption OID names, or None when AMS defines no such cipher."""
        for member, spec in _CIPHERS.items():
            if spec.oid == oid:
                return member
        return None


class CipherSpec:
    """How one AMS cipher is named in CMS and built from cryptography's primitives."""

    def __init__(
        self,
        oid: str,
        key_size: int,
        block_size: int,
        factory: Callable[[bytes], BlockCipherAlgorithm],
    ) -> None:
        self.oid = oid
        self.key_size = key_size
        self.block_size = block_size
        self.factory = factory


def _des(key: bytes) -> BlockCipherAlgorithm:
    # Single DES is 3DES with three equal keys; cryptography deprecates 8-byte keys.
    return TripleDES(key * 3)


_CIPHERS: dict[EncryptionAlgorithm, CipherSpec] = {
    EncryptionAlgorithm.RC2: CipherSpec("1.2.840.113549.3.2", 16, 8, RC2),
    EncryptionAlgorithm.DES: CipherSpec("1.3.14.3.2.7", 8, 8, _des),
    EncryptionAlgorithm.TDES: CipherSpec("1.2.840.113549.3.7", 24, 8, TripleDES),
    EncryptionAlgorithm.AES128: CipherSpec("2.16.840.1.101.3.4.1.2", 16, 16, algorithms.AES),
    EncryptionAlgorithm.AES256: CipherSpec("2.16.840.1.101.3.4.1.42", 32, 16, algorithms.AES),
}

_DIGEST_OIDS: dict[SignatureAlgorithm, str] = {
    SignatureAlgorithm.MD5: "1.2.840.113549.2.5",
    SignatureAlgorithm.SHA1: "1.3.14.3.2.26",
    SignatureAlgorithm.SHA256: "2.16.840.1.101.3.4.2.1",
    SignatureAlgorithm.SHA384: "2.16.840.1.101.3.4.2.2",
    SignatureAlgorithm.SHA512: "2.16.840.1.101.3.4.2.3",
}
_DIGEST_BY_OID = {oid: alg for alg, oid in _DIGEST_OIDS.items()}
_DIGEST_OIDS_BY_VALUE = {alg.value: oid for alg, oid in _DIGEST_OIDS.items()}
_CIPHERS_BY_VALUE = {alg.value: spec for alg, spec in _CIPHERS.items()}

_HASHES: dict[SignatureAlgorithm, Callable[[], hashes.HashAlgorithm]] = {
    SignatureAlgorithm.MD5: hashes.MD5,
    SignatureAlgorithm.SHA1: hashes.SHA1,
    SignatureAlgorithm.SHA256: hashes.SHA256,
    SignatureAlgorithm.SHA384: hashes.SHA384,
    SignatureAlgorithm.SHA512: hashes.SHA512,
}
_HASHES_BY_VALUE = {alg.value: factory for alg, factory in _HASHES.items()}

# Signature algorithm OIDs a reader accepts: rsaEncryption (what AMS writes) or the
# hash-specific PKCS#1 v1.5 OIDs some CMS libraries write instead.
RSA_WITH_DIGEST: dict[str, SignatureAlgorithm] = {
    "1.2.840.113549.1.1.4": SignatureAlgorithm.MD5,
    "1.2.840.113549.1.1.5": SignatureAlgorithm.SHA1,
    "1.2.840.113549.1.1.11": SignatureAlgorithm.SHA256,
    "1.2.840.113549.1.1.12": SignatureAlgorithm.SHA384,
    "1.2.840.113549.1.1.13": SignatureAlgorithm.SHA512,
}

# Key reuse (-c / KEYREUSE) special values, as PCF stores them.
KEYREUSE_DISABLED = 0
KEYREUSE_UNLIMITED = -1
KEYREUSE_MAX = 9_999_999
