"""Keystores, identities and certificate trust."""

from ams.keys.keystore import Identity, Keystore, read_keystore_conf
from ams.keys.revocation import RevocationChecker, RevocationSettings
from ams.keys.trust import TrustValidator

__all__ = ["Identity", "Keystore", "RevocationChecker", "RevocationSettings", "TrustValidator", "read_keystore_conf"]
