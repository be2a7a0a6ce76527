"""Private-key hygiene: unencrypted or group/world-readable key files and plain-text passwords;
and trust that a local user can plant: trust anchors, CA bundles and CRLs (and the directories
holding them) that someone other than this user or root owns or may write.

By default each finding is an ``AmsSecurityWarning`` (:class:`PlantableTrustWarning` for the
second kind); with ``strict`` it is a KeystoreError. Findings never include a password or key
material.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Iterable
from pathlib import Path

from ams.errors import AmsSecurityWarning, KeystoreError, clip


class PlantableTrustWarning(AmsSecurityWarning):
    """A file or directory whose contents ams trusts (anchors, CAs, CRLs, keystore.conf) can be
    changed by another local user: ``ams doctor`` reports it as an error."""


def _readable_by_others(path: Path) -> int | None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    return stat.S_IMODE(mode) if mode & 0o077 else None


def report(finding: str, *, strict: bool, category: type[AmsSecurityWarning] = AmsSecurityWarning) -> str:
    """Raise ``finding`` as a KeystoreError when ``strict``, else warn it (``category``) and return it."""
    if strict:
        raise KeystoreError(f"{finding} (refused: strict key hygiene is on)")
    warnings.warn(finding, category, stacklevel=4)
    return finding


def _owner_problem(found: os.stat_result) -> str | None:
    if found.st_uid in (os.geteuid(), 0):
        return None
    return f"owned by uid {found.st_uid}, not by this user (uid {os.geteuid()}) or root"


def _problems(path: Path, *, directory: bool) -> list[tuple[str, str]]:
    """(problem, fix) for ``path``: writable by group or others, or owned by another user."""
    try:
        found = path.stat()
    except (OSError, ValueError):
        return []  # a missing file is the loader's error, not a hygiene finding
    shown = clip(str(path))
    out = []
    writable = stat.S_IMODE(found.st_mode) & 0o022
    # a sticky directory (such as /tmp) lets others add files but not replace this user's: only the
    # trust directory itself, whose every file is read, must not take others' files
    sticky_parent = not directory and stat.S_ISDIR(found.st_mode) and found.st_mode & stat.S_ISVTX
    if writable and not sticky_parent:
        out.append((f"is writable by group or others (mode {stat.S_IMODE(found.st_mode):04o})", f"chmod go-w {shown}"))
    owner = _owner_problem(found)
    if owner is not None:
        out.append((f"is {owner}", f"chown {os.geteuid()} {shown} (or replace it with a copy this user owns)"))
    return out


def check_trusted(paths: Iterable[Path], what: str, *, strict: bool) -> list[str]:
    """Findings for files or directories whose contents are trusted (``what`` says which setting),
    and for the directory holding each: whoever may write either can plant a CA or swap a CRL."""
    findings = []
    for path in paths:
        if "\x00" in str(path):
            continue  # no file can have this name: the loader refuses it, naming it
        absolute = Path(os.path.abspath(path))
        holders = [absolute.parent] if absolute.parent != absolute else []
        resolved = Path(os.path.realpath(absolute))
        if resolved.parent not in holders and resolved.parent != resolved:
            holders.append(resolved.parent)  # a link's target can be swapped in its own directory
        checks = [(absolute, what, True)] + [(holder, f"the directory holding {what}", False) for holder in holders]
        for target, role, itself in checks:
            for problem, fix in _problems(target, directory=itself):
                finding = (
                    f"{role} {clip(str(target))} {problem}, so another local user could change what ams trusts "
                    f"(plant a CA certificate, swap a CRL); fix: {fix}"
                )
                findings.append(report(finding, strict=strict, category=PlantableTrustWarning))
    return findings


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
