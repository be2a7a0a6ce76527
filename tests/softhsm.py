"""A real SoftHSM2 token with an RSA identity made on it: the fixture the PKCS#11 tests share.

One per session: SoftHSM2 reads its configuration once per process, so a second token made
later in the same process would land beside the first.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ams.pki import issue

if TYPE_CHECKING:
    from tests.conftest import Pki

LIBRARIES = ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"]
LIBRARY = next((path for path in LIBRARIES if os.path.exists(path)), None)
requires_softhsm = pytest.mark.skipif(
    importlib.util.find_spec("pkcs11") is None or LIBRARY is None or shutil.which("softhsm2-util") is None,
    reason="SoftHSM2 (Debian softhsm2) or python-pkcs11 (the pkcs11 extra) is not installed",
)
PIN = "4321"


@pytest.fixture(scope="session")
def token(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh SoftHSM2 token with an RSA key made on the token and its certificate beside it."""
    pkcs11 = pytest.importorskip("pkcs11", reason="python-pkcs11 is not installed (the pkcs11 extra)")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    (root / "softhsm2.conf").write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(root / "softhsm2.conf")
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "ams-token", "--pin", PIN, "--so-pin", "8765"],
        check=True,
        capture_output=True,
    )
    library = pkcs11.lib(LIBRARY)
    with library.get_token(token_label="ams-token").open(user_pin=PIN, rw=True) as session:
        public, _private = session.generate_keypair(
            pkcs11.KeyType.RSA,
            2048,
            label="hsm-user",
            id=b"\x01",
            store=True,
            private_template={pkcs11.Attribute.SENSITIVE: True, pkcs11.Attribute.EXTRACTABLE: False},
        )
        numbers = rsa.RSAPublicNumbers(
            int.from_bytes(bytes(public[pkcs11.Attribute.PUBLIC_EXPONENT]), "big"),
            int.from_bytes(bytes(public[pkcs11.Attribute.MODULUS]), "big"),
        )
        # a certificate for the token's key, signed by the test CA: only the public key leaves the token
        holder = _PublicOnly(numbers.public_key())
        certificate = issue(pki.ca, "CN=hsm-user,O=AMS,C=GB", key=holder).certificate  # type: ignore[arg-type]
        session.create_object(
            {
                pkcs11.Attribute.CLASS: pkcs11.ObjectClass.CERTIFICATE,
                pkcs11.Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
                pkcs11.Attribute.LABEL: "hsm-user",
                pkcs11.Attribute.ID: b"\x01",
                pkcs11.Attribute.TOKEN: True,
                pkcs11.Attribute.VALUE: certificate.public_bytes(serialization.Encoding.DER),
                pkcs11.Attribute.SUBJECT: certificate.subject.public_bytes(),
                pkcs11.Attribute.ISSUER: certificate.issuer.public_bytes(),
            }
        )
    others = root / "others.pem"
    others.write_bytes(
        b"".join(
            c.public_bytes(serialization.Encoding.PEM)
            for c in [pki.ca.certificate, *(u.certificate for u in pki.users.values())]
        )
    )
    conf = root / "keystore.conf"
    conf.write_text(
        f"pkcs11.library = {LIBRARY}\npkcs11.token = ams-token\npkcs11.token_pin = {PIN}\n"
        f"pkcs11.certificate = hsm-user\npkcs11.secondary_keystore = {others}\n"
    )
    os.chmod(conf, 0o600)
    yield conf
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


class _PublicOnly:
    """Just enough of a key for CertificateBuilder.public_key(): the token's public half."""

    def __init__(self, public: rsa.RSAPublicKey) -> None:
        self._public = public

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public
