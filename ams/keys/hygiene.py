"""Private-key hygiene: unencrypted or group/world-readable key files and plain-text passwords.

By default each finding is an ``AmsSecurityWarning``; with ``strict`` it is a KeystoreError.
Findings never include a password or key material.
"""

from __future__ import annotations

import stat
import warnings
from pathlib import Path

from ams.errors import AmsSecurityWarning, KeystoreError


def _readable_by_others(path: Path) -> int | None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    return stat.S_IMODE(mode) if mode & 0o077 else None


def report(finding: str, *, strict: bool) -> str:
    """Raise ``finding`` as a KeystoreError when ``strict``, else warn it (AmsSecurityWarning) and return it."""
    if strict:
        raise KeystoreError(f"{finding} (refused: strict key hygiene is on)")
    warnings.warn(finding, AmsSecurityWarning, stacklevel=4)
    return finding


def check_key_file(path: Path, *, encrypted: bool, strict: bool) -> list[str]:
    """Findings for a file that holds a private key."""
    findings = []
    mode = _readable_by_others(path)
    if mode is not None:
        findings.append(
            report(
                f"private key file {path} is readable by group or others (mode {mode:04o}): chmod 600 {path}",
                strict=strict,
            )
        )
    if not encrypted:
        findings.append(
            report(
                f"private key file {path} is not encrypted: protect it with a password "
                "(e.g. openssl pkcs8 -topk8 -v2 aes-256-cbc) and set the password in keystore.conf",
                strict=strict,
            )
        )
    return findings


def check_conf_file(path: Path, has_password: bool, *, strict: bool) -> list[str]:
    """A keystore.conf with a plain-text password must be readable by its owner only."""
    mode = _readable_by_others(path)
    if has_password and mode is not None:
        return [
            report(
                f"{path} holds a plain-text password and is readable by group or others "
                f"(mode {mode:04o}): chmod 600 {path}",
                strict=strict,
            )
        ]
    return []


def pem_key_is_encrypted(data: bytes) -> bool:
    """Whether a PEM key is encrypted: ``ENCRYPTED`` before the first ``-----END`` (PKCS#8 or a legacy header)."""
    return b"ENCRYPTED" in data.split(b"-----END", 1)[0]
