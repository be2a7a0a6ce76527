"""ams conformance against the openssl command line: openssl verifies and decrypts the CMS we write,
and we read the CMS openssl writes, through the adapter that ships with the kit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ams.testing.conformance.peers import OPENSSL_PROTECT, OPENSSL_UNPROTECT
from tests.conftest import needs_openssl

pytestmark = needs_openssl


def test_openssl_conformance(tmp_path: Path) -> None:
    """The acceptance run against openssl, with a small example count (a full default run: docs/conformance.md §7)."""
    command = [
        sys.executable, "-m", "ams", "conformance", "--peer-name", "openssl",
        "--peer-protect", OPENSSL_PROTECT, "--peer-unprotect", OPENSSL_UNPROTECT,
        "--peer-cipher", "AES256,AES128,3DES", "--max-examples", "8", "--seed", "3",
        "--output", str(tmp_path), "--key-bits", "1024", "--no-progress",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    statuses = {p["name"]: p["status"] for p in report["properties"]}
    for name in ("weaker-algorithm", "other-qop", "unprotected"):  # openssl has no policies
        assert statuses.pop(f"peer-refuses-{name}") == "skipped"
    assert statuses.pop("peer-accepts-higher-qop") == statuses.pop("peer-tolerates-unprotected") == "skipped"
    assert statuses.pop("peer-follows-qop-matrix") == "skipped"
    for name in ("peer-refuses-unauthorised-signer", "peer-accepts-authorised-signer", "peer-honours-key-reuse"):
        assert statuses.pop(name) == "skipped"
    assert set(statuses.values()) == {"passed"}
    assert report["not_covered"] == ["ciphers DES,RC2 (--peer-cipher)"]
