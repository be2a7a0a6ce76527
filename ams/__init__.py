"""ams: IBM MQ Advanced Message Security (AMS) message protection in Python.

Protect and unprotect MQ message bodies with AMS's three qualities of protection (integrity,
privacy, confidentiality), byte-compatible with IBM's AMS interceptors::

    import ams

    keys = ams.Keystore.from_conf("alice/keystore.conf")
    policies = ams.PolicyStore.from_directory("policies")
    protected = ams.Protector(keys, policies).protect("PAYROLL.Q", b"pay bob")   # .body, .format
    message = bob.unprotect("PAYROLL.Q", protected)                             # .body, .signer, .qop

The whole error tree is in :mod:`ams.errors`; MQ queues in :mod:`ams.mq`; policies in
:mod:`ams.policy`; keystores in :mod:`ams.keys`; the syntax-only layer (DER, CMS, PDMQ, MQ
headers), with no checks, in :mod:`ams.hazmat`. Names are imported on first use, so importing
one submodule does not load the rest.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# the library logs through the "ams" logger (never a key, a password or a payload byte); an
# application that configures no logging hears nothing from it
logging.getLogger("ams").addHandler(logging.NullHandler())

# public name -> the module that defines it
_EXPORTS = {
    "Protector": "ams.protector",
    "Verifier": "ams.verify",
    "Policy": "ams.policy.model",
    "PolicyStore": "ams.policy.store",
    "Keystore": "ams.keys.keystore",
    "Identity": "ams.keys.keystore",
    "DistinguishedName": "ams.dn",
    "QoP": "ams.algorithms",
    "SignatureAlgorithm": "ams.algorithms",
    "EncryptionAlgorithm": "ams.algorithms",
    "Protected": "ams.message",
    "ProtectedView": "ams.message",
    "Unprotected": "ams.message",
    "UnprotectedView": "ams.message",
    "Limits": "ams.limits",
    "AmsError": "ams.errors",
    "SecurityError": "ams.errors",
    "ConfigurationError": "ams.errors",
    "UsageError": "ams.errors",
}

__all__ = sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:
    from ams.algorithms import EncryptionAlgorithm as EncryptionAlgorithm
    from ams.algorithms import QoP as QoP
    from ams.algorithms import SignatureAlgorithm as SignatureAlgorithm
    from ams.dn import DistinguishedName as DistinguishedName
    from ams.errors import AmsError as AmsError
    from ams.errors import ConfigurationError as ConfigurationError
    from ams.errors import SecurityError as SecurityError
    from ams.errors import UsageError as UsageError
    from ams.keys.keystore import Identity as Identity
    from ams.keys.keystore import Keystore as Keystore
    from ams.limits import Limits as Limits
    from ams.message import Protected as Protected
    from ams.message import ProtectedView as ProtectedView
    from ams.message import Unprotected as Unprotected
    from ams.message import UnprotectedView as UnprotectedView
    from ams.policy.model import Policy as Policy
    from ams.policy.store import PolicyStore as PolicyStore
    from ams.protector import Protector as Protector
    from ams.verify import Verifier as Verifier


if not TYPE_CHECKING:  # at run time the names load on first use; type checkers see the imports above

    def __getattr__(name: str) -> Any:
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module 'ams' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # the next lookup is a plain attribute
        return value


def __dir__() -> list[str]:
    return __all__
