"""ams: IBM MQ Advanced Message Security (AMS) message protection in Python.

Protect and unprotect MQ message bodies with AMS's three qualities of protection
(integrity, privacy, confidentiality), byte-compatible with IBM's AMS interceptors.
"""

from ams.algorithms import (
    KEYREUSE_DISABLED,
    KEYREUSE_UNLIMITED,
    EncryptionAlgorithm,
    QoP,
    QualityOfProtection,
    SignatureAlgorithm,
)
from ams.dn import DistinguishedName
from ams.errors import (
    AlgorithmTooWeakError,
    AmsDeprecationWarning,
    AmsError,
    AmsSecurityWarning,
    BadSignatureError,
    CertificateRevokedError,
    CertificateUsageError,
    CertificateValidityError,
    ConfigurationError,
    DecryptionError,
    DeprecatedAlgorithmError,
    DistinguishedNameError,
    EmptyFlagError,
    HeaderContentMismatchError,
    KeystoreError,
    KeyTooWeakError,
    MalformedMessageError,
    NotARecipientError,
    NotProtectedError,
    PolicyError,
    QopMismatchError,
    RecipientNotFoundError,
    RevocationUnknownError,
    SecurityError,
    SignerCertificateError,
    SizeMismatchError,
    UnauthorisedSignerError,
    UnsupportedAlgorithmError,
    UntrustedSignerError,
    UsageError,
)
from ams.format.limits import Limits
from ams.format.pdmq import PdmqHeader
from ams.keys import Identity, Keystore, RevocationSettings, TrustValidator
from ams.message import Protected, Unprotected
from ams.policy import Policy, PolicyStore, parse_setmqspl
from ams.protect import MQFMT_NONE, MQFMT_STRING, Protector, ProtectorStats

__version__ = "0.1.0"

__all__ = [
    "KEYREUSE_DISABLED",
    "KEYREUSE_UNLIMITED",
    "MQFMT_NONE",
    "MQFMT_STRING",
    "AlgorithmTooWeakError",
    "AmsDeprecationWarning",
    "AmsError",
    "AmsSecurityWarning",
    "BadSignatureError",
    "CertificateRevokedError",
    "CertificateUsageError",
    "CertificateValidityError",
    "ConfigurationError",
    "DecryptionError",
    "DeprecatedAlgorithmError",
    "DistinguishedName",
    "DistinguishedNameError",
    "EmptyFlagError",
    "EncryptionAlgorithm",
    "HeaderContentMismatchError",
    "Identity",
    "KeyTooWeakError",
    "Keystore",
    "KeystoreError",
    "Limits",
    "MalformedMessageError",
    "NotARecipientError",
    "NotProtectedError",
    "PdmqHeader",
    "Policy",
    "PolicyError",
    "PolicyStore",
    "Protected",
    "Protector",
    "ProtectorStats",
    "QoP",
    "QopMismatchError",
    "QualityOfProtection",
    "RecipientNotFoundError",
    "RevocationSettings",
    "RevocationUnknownError",
    "SecurityError",
    "SignatureAlgorithm",
    "SignerCertificateError",
    "SizeMismatchError",
    "TrustValidator",
    "UnauthorisedSignerError",
    "Unprotected",
    "UnsupportedAlgorithmError",
    "UntrustedSignerError",
    "UsageError",
    "__version__",
    "parse_setmqspl",
]
