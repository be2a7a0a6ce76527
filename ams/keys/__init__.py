"""Keystores and identities: the container, how it is loaded, and revocation settings and checks."""

from ams.keys.keystore import Identity, Keystore
from ams.keys.loading import default_conf_path, load_certificates, read_keystore_conf
from ams.keys.revocation import RevocationChecker
from ams.keys.revocation_settings import RevocationSettings

__all__ = [
    "Identity",
    "Keystore",
    "RevocationChecker",
    "RevocationSettings",
    "default_conf_path",
    "load_certificates",
    "read_keystore_conf",
]
