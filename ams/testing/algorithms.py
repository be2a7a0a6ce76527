"""The algorithms AMS defines, in the order the kit tries them: the usual ones first, so that a
counterexample shrinks to SHA256 and AES256, and the deprecated ones last."""

from __future__ import annotations

from ams.algorithms import EncryptionAlgorithm, QoP, SignatureAlgorithm

QOPS = (QoP.INTEGRITY, QoP.PRIVACY, QoP.CONFIDENTIALITY)
DIGESTS = (
    SignatureAlgorithm.SHA256,
    SignatureAlgorithm.SHA384,
    SignatureAlgorithm.SHA512,
    SignatureAlgorithm.SHA1,
    SignatureAlgorithm.MD5,
)
CIPHERS = (
    EncryptionAlgorithm.AES256,
    EncryptionAlgorithm.AES128,
    EncryptionAlgorithm.TDES,
    EncryptionAlgorithm.DES,
    EncryptionAlgorithm.RC2,
)
