"""The keys, policies and handles every benchmark case uses (made once per run)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization

import ams
from ams.pki import Issued, issue, make_ca

RECIPIENT_COUNTS = (1, 3, 10)
REUSE = {"DISABLED": "0", "32": "32", "UNLIMITED": "*"}


class World:
    """A signer, ten recipients, and a policy per benchmark configuration."""

    def __init__(self) -> None:
        self.ca = make_ca("CN=Bench CA,O=AMS,C=GB")
        self.signer = issue(self.ca, "CN=sender,O=AMS,C=GB")
        self.recipients = [issue(self.ca, f"CN=reader{i},O=AMS,C=GB") for i in range(10)]
        lines = ["setmqspl -m QM -p INTEGRITY -s SHA256"]
        for count in RECIPIENT_COUNTS:
            r = " ".join(f'-r "{x.dn}"' for x in self.recipients[:count])
            lines.append(f"setmqspl -m QM -p PRIVACY.{count} -s SHA256 -e AES256 {r}")
        for label, value in REUSE.items():
            lines.append(f'setmqspl -m QM -p CONF.{label} -e AES256 -r "{self.recipients[0].dn}" -c {value}')
        self.policy_lines = lines
        self.policies = ams.PolicyStore.of(*(ams.Policy.from_setmqspl(line) for line in lines))

    def keystore(self, who: Issued) -> ams.Keystore:
        others = [self.ca.certificate, self.signer.certificate, *(r.certificate for r in self.recipients)]
        return ams.Keystore(ams.Identity(who.certificate, who.key), others)

    def sender(self) -> ams.Protector:
        return ams.Protector(self.keystore(self.signer), self.policies)

    def receiver(self) -> ams.Protector:
        return ams.Protector(self.keystore(self.recipients[0]), self.policies)

    def save(self) -> Path:
        """PEM files and policies in a temporary folder, for child processes."""
        root = Path(tempfile.mkdtemp(prefix="ams-bench-"))
        for name, who in [("sender", self.signer), ("reader0", self.recipients[0])]:
            (root / f"{name}.pem").write_bytes(who.certificate.public_bytes(serialization.Encoding.PEM))
            (root / f"{name}.key.pem").write_bytes(
                who.key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        bundle = b"".join(
            c.public_bytes(serialization.Encoding.PEM)
            for c in [self.ca.certificate, self.signer.certificate, *(r.certificate for r in self.recipients)]
        )
        (root / "all.pem").write_bytes(bundle)
        (root / "policies").mkdir()
        (root / "policies" / "bench.spl").write_text("\n".join(self.policy_lines) + "\n", encoding="utf-8")
        return root


def load_handle(root: Path, who: str) -> ams.Protector:
    keystore = ams.Keystore.from_pem(
        private=root / f"{who}.key.pem", public=root / f"{who}.pem", certificates=[root / "all.pem"]
    )
    return ams.Protector(keystore, ams.PolicyStore.from_directory(root / "policies"))
