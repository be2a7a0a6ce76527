"""The identities a conformance run uses, in memory and as files a peer can read.

``alice`` signs; ``bob`` to ``ken`` are the ten possible recipients (some with DNs that need
escaping, a multi-valued RDN, non-ASCII letters); ``oscar`` holds a valid certificate but is no
recipient; ``trudy`` (a foreign CA) and ``sybil`` (self-signed) are outside the trust anchors;
and one signer per broken rule (expired, not yet valid, a CA, no signing usage, the wrong
extended key usage). Every file sits in the world directory::

    trust.pem                  the trust anchor (the conformance CA)
    people.pem                 every valid end-entity certificate of that CA
    crl.pem                    the CA's CRL, revoking ``revoked``
    <name>/key.pem cert.pem    the identity's key (unencrypted PKCS#8) and certificate
    <name>/keystore.p12        key, certificate, the CA and the people (password in world.json)
    <name>/keystore.conf       pkcs12.* lines pointing at keystore.p12
    world.json                 names, DNs and the PKCS#12 password
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from ams._files import read_bounded
from ams.dn import DistinguishedName
from ams.errors import AmsError, UsageError
from ams.keys.keystore import Identity, Keystore
from ams.limits import DEFAULT_LIMITS
from ams.testing.pki import CertificateFault, Issued, ThrowawayPki, pem

SENDER = "alice"
RECIPIENTS = ("bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "ken")
OUTSIDER = "oscar"
UNTRUSTED_SIGNERS = {"trudy": CertificateFault.UNTRUSTED_ISSUER, "sybil": CertificateFault.SELF_SIGNED}
INVALID_SIGNERS = {
    "expired": CertificateFault.EXPIRED,
    "not-yet-valid": CertificateFault.NOT_YET_VALID,
    "ca-certificate": CertificateFault.CA_CERTIFICATE,
    "no-signing-usage": CertificateFault.NO_DIGITAL_SIGNATURE,
    "server-eku": CertificateFault.WRONG_EXTENDED_KEY_USAGE,
}
REVOKED_SIGNERS = {"revoked": CertificateFault.REVOKED}  # listed by the CA's CRL (crl.pem, the {crl} placeholder)
UNUSABLE_RECIPIENT = "no-encipherment"  # keyUsage without keyEncipherment: in every keystore, never to be encrypted to

_ORG = "O=AMS Conformance"
_DNS = {
    "alice": f"CN=alice,OU=Payments,{_ORG},C=GB",
    "carol": rf"CN=Carol Smith\, Jr.+UID=carol,OU=R&D,{_ORG},C=GB",
    "dave": f"CN=Dave Ørsted,{_ORG},C=DK",
    "erin": f"CN=erin,OU=Ops,{_ORG},L=London,C=GB",
    "frank": f"E=frank@example.org,CN=frank,{_ORG},C=GB",
}


def _dn(name: str) -> str:
    return _DNS.get(name, f"CN={name},{_ORG},C=GB")


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """A new file with ``mode`` from its first byte (keys are 0600; throwaway, so not synced to disk)."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.chmod(path, mode)  # whatever the umask


class World:
    """The conformance PKI: identities by name, their keystores in memory, and their files under ``root``."""

    def __init__(
        self, root: Path, ca: x509.Certificate, identities: dict[str, Issued], people: tuple[str, ...], password: str
    ) -> None:
        self.root = root
        self.ca = ca
        self.identities = identities
        self.people = people  # the valid end-entity identities of the CA (recipients' certificates)
        self.password = password

    def __repr__(self) -> str:
        return f"World({self.root}, {len(self.identities)} identities)"

    @classmethod
    def create(cls, root: Path, *, key_bits: int = 2048) -> World:
        """Make the CA and every identity (RSA ``key_bits``), and write their files under ``root``."""
        people = (SENDER, *RECIPIENTS, OUTSIDER)
        pki = ThrowawayPki(
            {name: _dn(name) for name in people},
            organisation="AMS Conformance",
            ca_dn=f"CN=AMS Conformance CA,{_ORG},C=GB",
            key_bits=key_bits,
        )
        identities = dict(pki.users)
        identities["trudy"] = pki.faulty(CertificateFault.UNTRUSTED_ISSUER, "CN=trudy,O=Elsewhere,C=US")
        identities["sybil"] = pki.faulty(CertificateFault.SELF_SIGNED, _dn("sybil"))
        for name, fault in {**INVALID_SIGNERS, **REVOKED_SIGNERS}.items():
            identities[name] = pki.faulty(fault, _dn(name))
        identities[UNUSABLE_RECIPIENT] = pki.faulty(CertificateFault.NO_KEY_ENCIPHERMENT, _dn(UNUSABLE_RECIPIENT))
        world = cls(root, pki.ca.certificate, identities, people, secrets.token_urlsafe(12))
        world._write()
        _write(world.crl_file, pki.crl().public_bytes(serialization.Encoding.PEM))
        return world

    def _write(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _write(self.trust_file, pem(self.ca))
        _write(self.people_file, pem(*(self.identities[n].certificate for n in self.people)))
        others = self._others()
        for name, issued in self.identities.items():
            directory = self.root / name
            directory.mkdir(mode=0o700, exist_ok=True)
            key = issued.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            _write(directory / "key.pem", key, 0o600)
            _write(directory / "cert.pem", pem(issued.certificate))
            store = pkcs12.serialize_key_and_certificates(
                name.encode(), issued.key, issued.certificate, others,
                serialization.BestAvailableEncryption(self.password.encode()),
            )  # fmt: skip
            _write(directory / "keystore.p12", store, 0o600)
            conf = f"pkcs12.keystore = keystore.p12\npkcs12.keystore_pass = {self.password}\n"
            _write(directory / "keystore.conf", conf.encode(), 0o600)
        names = {name: str(self.dn(name)) for name in self.identities}
        record = {"version": 1, "password": self.password, "people": list(self.people), "identities": names}
        _write(self.root / "world.json", json.dumps(record, indent=2, ensure_ascii=False).encode(), 0o600)

    @classmethod
    def load(cls, root: Path) -> World:
        """A world written by :meth:`create` (for replaying a saved failure)."""
        try:
            record = json.loads(saved_file(root / "world.json").decode("utf-8"))
        except (AmsError, ValueError) as error:
            raise UsageError(
                f"cannot read the conformance identities in {root}: {error}; expected the world/ directory a "
                "conformance run writes next to each failure"
            ) from None
        ca = x509.load_pem_x509_certificate(saved_file(root / "trust.pem"))
        identities = {}
        for name in record["identities"]:
            key = serialization.load_pem_private_key(saved_file(root / name / "key.pem"), None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise UsageError(f"{root / name / 'key.pem'}: expected an RSA private key")
            identities[name] = Issued(key, x509.load_pem_x509_certificate(saved_file(root / name / "cert.pem")))
        return cls(root, ca, identities, tuple(record["people"]), record["password"])

    def copy_to(self, target: Path) -> World:
        """The same world, its files copied under ``target`` (a failure's directory)."""
        shutil.copytree(self.root, target, symlinks=True, dirs_exist_ok=True)  # a link is copied as one, not followed
        return World(target, self.ca, self.identities, self.people, self.password)

    # -- lookups ------------------------------------------------------------------------------------------------------

    def issued(self, name: str) -> Issued:
        """An identity's key and certificate."""
        try:
            return self.identities[name]
        except KeyError:
            raise UsageError(
                f"no identity {name!r} in the conformance world: expected one of {', '.join(self.identities)}"
            ) from None

    def dn(self, name: str) -> DistinguishedName:
        """An identity's DN."""
        return self.issued(name).dn

    def keystore(self, name: str) -> Keystore:
        """``name``'s keystore in memory: its identity, the CA and the people's certificates."""
        issued = self.issued(name)
        source = f"{name}'s conformance keystore"
        return Keystore(Identity(issued.certificate, issued.key), self._others(), source=source)

    def _others(self) -> list[x509.Certificate]:
        """Every keystore's other certificates: the CA, the people, and the recipient no one may encrypt to."""
        unusable = [self.identities[UNUSABLE_RECIPIENT].certificate] if UNUSABLE_RECIPIENT in self.identities else []
        return [self.ca, *(self.identities[n].certificate for n in self.people), *unusable]

    @property
    def trust_file(self) -> Path:
        """The PEM bundle of trust anchors (the conformance CA)."""
        return self.root / "trust.pem"

    @property
    def crl_file(self) -> Path:
        """The CA's CRL (PEM), listing the revoked signer."""
        return self.root / "crl.pem"

    @property
    def people_file(self) -> Path:
        """The PEM bundle of every valid end-entity certificate of the CA."""
        return self.root / "people.pem"

    def file(self, name: str, kind: str) -> Path:
        """One of an identity's files: ``key.pem``, ``cert.pem``, ``keystore.p12`` or ``keystore.conf``."""
        self.issued(name)
        return self.root / name / kind


def saved_file(path: Path, limit: int = DEFAULT_LIMITS.message_file_size) -> bytes:
    """A file of a saved failure, read as every file ams reads is: a regular file, no link followed,
    within ``limit`` (a failure's directory may come from elsewhere, a bug report, a peer's run)."""
    return read_bounded(path, "a saved conformance file", limit=limit, error=UsageError, follow_symlinks=False)
