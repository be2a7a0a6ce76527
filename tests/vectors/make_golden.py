"""Write the golden vectors under tests/vectors/golden/ (run once; never regenerate).

Every later version of ams must still read these messages. The certificates are valid for
30 days only, so the test validates at the time recorded in manifest.json: the vectors never
expire, and the test proves that validation at a chosen time works.

    python tests/vectors/make_golden.py   # refuses to overwrite existing vectors
"""

from __future__ import annotations

import datetime
import json
import struct
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization

import ams
from ams.pki import issue, make_ca

OUT = Path(__file__).parent / "golden"
PAYLOAD = b"Golden vector payload for ams: keep reading me in every release.\n"


def main() -> int:
    if (OUT / "manifest.json").exists():
        print("golden vectors exist already; they must never be regenerated", file=sys.stderr)
        return 1
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    ca = make_ca("CN=Golden CA,O=AMS GOLDEN,C=GB", not_before=now - datetime.timedelta(hours=1), days=30)
    users = {
        name: issue(
            ca, f"CN={name},OU=Vectors,O=AMS GOLDEN,C=GB", not_before=now - datetime.timedelta(hours=1), days=30
        )
        for name in ("alice", "bob", "carol")
    }
    pki = OUT / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    (pki / "ca.pem").write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
    for name, issued in users.items():
        (pki / f"{name}.pem").write_bytes(issued.certificate.public_bytes(serialization.Encoding.PEM))
        (pki / f"{name}.key.pem").write_bytes(
            issued.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    (OUT / "payload.txt").write_bytes(PAYLOAD)

    def keystore(name: str) -> ams.Keystore:
        others = [ca.certificate] + [u.certificate for n, u in users.items() if n != name]
        return ams.Keystore(ams.Identity(users[name].certificate, users[name].key), others)

    bob, carol = str(users["bob"].dn), str(users["carol"].dn)
    alice_dn = str(users["alice"].dn)
    rfh2_folder = b"<usr><Colour>gold</Colour></usr>"
    rfh2 = (
        struct.pack("<4sii", b"RFH ", 2, 36 + 4 + len(rfh2_folder))
        + struct.pack("<ii", 546, 1208)
        + b"MQSTR   "
        + struct.pack("<ii", 0, 1208)
        + struct.pack("<i", len(rfh2_folder))
        + rfh2_folder
    )
    cases = [
        # name, queue, policy, reader, body, format, one_shot
        ("integrity-sha256", "GOLD.INT", f'-s SHA256 -a "{alice_dn}"', "bob", PAYLOAD, "MQSTR", False),
        ("integrity-sha512-empty", "GOLD.INT512", "-s SHA512", "carol", b"", "MQSTR", False),
        ("privacy-aes256-bob", "GOLD.PRIV", f'-s SHA256 -e AES256 -r "{bob}"', "bob", PAYLOAD, "MQSTR", False),
        (
            "privacy-aes128-bob-carol-sha384",
            "GOLD.PRIV2",
            f'-s SHA384 -e AES128 -r "{bob}" -r "{carol}"',
            "carol",
            PAYLOAD,
            "MQSTR",
            False,
        ),
        ("privacy-3des-sha1", "GOLD.OLD", f'-s SHA1 -e 3DES -r "{bob}"', "bob", PAYLOAD, "MQSTR", False),
        ("privacy-aes256-rfh2", "GOLD.PRIV", f'-s SHA256 -e AES256 -r "{bob}"', "bob", rfh2 + PAYLOAD, "MQHRF2", False),
        ("confidentiality-aes256-reuse-1", "GOLD.CONF", f'-e AES256 -r "{bob}" -c 2', "bob", PAYLOAD, "MQSTR", False),
        (
            "confidentiality-aes256-reuse-2",
            "GOLD.CONF",
            f'-e AES256 -r "{bob}" -c 2',
            "bob",
            PAYLOAD[::-1],
            "MQSTR",
            False,
        ),
        ("confidentiality-rc2", "GOLD.RC2", f'-e RC2 -r "{bob}"', "bob", PAYLOAD, "MQSTR", False),
        ("confidentiality-des-empty", "GOLD.DES", f'-e DES -r "{bob}"', "bob", b"", "MYFORMAT", True),
    ]
    messages: list[dict[str, str]] = []
    manifest = {"validate_at": now.isoformat(), "payload": "payload.txt", "messages": messages}
    handles: dict[str, ams.Protector] = {}
    for name, queue, flags, reader, body, fmt, one_shot in cases:
        line = f"setmqspl -m GOLDQM -p {queue} {flags}"
        policies = ams.PolicyStore.of(ams.Policy.from_setmqspl(line))
        handle = handles.get(line) or ams.Protector(keystore("alice"), policies, allow_deprecated=True)
        handles[line] = handle
        protected = handle.protect(queue, body, fmt, one_shot=one_shot)
        (OUT / f"{name}.bin").write_bytes(protected.body)
        (OUT / f"{name}.expected").write_bytes(body)
        messages.append(
            {
                "file": f"{name}.bin",
                "expected": f"{name}.expected",
                "queue": queue,
                "policy": line,
                "reader": reader,
                "mqmd_format": protected.format,
                "original_format": fmt,
                "qop": protected.qop.name,
            }
        )
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(cases)} golden vectors to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
