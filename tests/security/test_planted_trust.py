"""Trust that a local user can plant: writable or foreign trust files, and a foreign queue-manager file.

A trust anchor, CA bundle or CRL that another local user can write (group- or world-writable,
in a directory they can write, or owned by them) lets that user add a CA of their own or
swap a CRL: every check that follows is then theirs. ams warns about each (a refusal under
strict key hygiene) and ``ams doctor`` reports it either way. The embedded queue manager
refuses a database file someone else could read or owns: whoever pre-creates it reads every
queue, the policy queue included.

Run as root (CI), every file belongs to root, so "owned by another user" is made with
os.chown; elsewhere those cases are skipped with the reason.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import ams
import ams.errors
from ams.cli.main import main
from ams.doctor import diagnose
from ams.mq import EmbeddedQueueManager
from tests.conftest import Pki

STRANGER = 54321  # a uid that owns nothing here
as_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root can give a file to another user (os.chown) to plant a foreign file"
)


def _pem_world(pki: Pki, root: Path) -> tuple[Path, Path]:
    """keystore.conf with a PEM identity and a CA bundle in ``root/trust``: (conf, the CA bundle)."""
    root.mkdir(mode=0o700, exist_ok=True)
    trust = root / "trust"
    trust.mkdir(mode=0o700)
    bob = pki.users["bob"]
    key, certificate, bundle = root / "bob.key", root / "bob.pem", trust / "ca.pem"
    key.write_bytes(
        bob.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    certificate.write_bytes(bob.certificate.public_bytes(serialization.Encoding.PEM))
    bundle.write_bytes(pki.ca.certificate.public_bytes(serialization.Encoding.PEM))
    conf = root / "keystore.conf"
    conf.write_text(
        f"pem.private = {key}\npem.public = {certificate}\npem.password = secret\npem.certificates = {bundle}\n"
    )
    for path in (key, conf):
        os.chmod(path, 0o600)
    os.chmod(certificate, 0o644)
    os.chmod(bundle, 0o644)
    return conf, bundle


def _findings(conf: Path) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ams.Keystore.from_conf(conf)
    return [str(w.message) for w in caught if issubclass(w.category, ams.errors.AmsSecurityWarning)]


def _planted(conf: Path, path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``path`` is reported: a warning, a strict refusal, a doctor finding, a refusal of ``ams --strict-keystore``."""
    found = _findings(conf)
    assert any(str(path) in f for f in found), found
    with pytest.raises(ams.errors.KeystoreError, match="strict"):
        ams.Keystore.from_conf(conf, strict=True)
    findings = diagnose(conf, {})
    assert any(str(path) in f.problem and f.level == "error" for f in findings), findings
    assert main(["doctor", "--keystore-conf", str(conf)]) == 1
    assert str(path) in capsys.readouterr().out
    message = conf.parent / "message.bin"
    message.write_bytes(b"hello")
    policies = conf.parent / "policies"
    policies.mkdir(exist_ok=True)
    strict = ["unprotect", "-p", "Q", "--policies", str(policies), "--keystore-conf", str(conf), "-i", str(message)]
    assert main([*strict, "--strict-keystore"]) == 2
    assert str(path) in capsys.readouterr().err
    assert main(strict) == 0  # without strict mode: a warning, and the command runs
    capsys.readouterr()


def test_a_clean_set_up_has_no_findings(pki: Pki, tmp_path: Path) -> None:
    """The twin of every case below: the same files, private, load silently."""
    conf, _ = _pem_world(pki, tmp_path / "keys")
    assert _findings(conf) == []
    assert ams.Keystore.from_conf(conf, strict=True).identity is not None


@pytest.mark.parametrize("mode", [0o664, 0o646])
def test_a_group_or_world_writable_ca_bundle_is_reported(
    pki: Pki, tmp_path: Path, mode: int, capsys: pytest.CaptureFixture[str]
) -> None:
    conf, bundle = _pem_world(pki, tmp_path / "keys")
    os.chmod(bundle, mode)
    _planted(conf, bundle, capsys)


def test_a_writable_trust_directory_is_reported(pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The directory that holds the bundle: whoever can write it can swap the file."""
    conf, bundle = _pem_world(pki, tmp_path / "keys")
    os.chmod(bundle.parent, 0o777)
    _planted(conf, bundle.parent, capsys)


def test_a_world_writable_crl_is_reported(pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf, bundle = _pem_world(pki, tmp_path / "keys")
    crl = bundle.parent / "ca.crl"
    crl.write_bytes(pki.crl().public_bytes(serialization.Encoding.PEM))
    with conf.open("a") as file:
        file.write(f"crl.file = {crl}\n")
    os.chmod(crl, 0o666)
    _planted(conf, crl, capsys)
    message = conf.parent / "message.bin"
    given = ["unprotect", "-p", "Q", "--policies", str(conf.parent / "policies"), "-i", str(message), "--crl", str(crl)]
    assert main([*given, "--strict-keystore"]) == 2  # a CRL named on the command line is checked too
    assert str(crl) in capsys.readouterr().err


@as_root
def test_a_ca_bundle_owned_by_another_user_is_reported(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf, bundle = _pem_world(pki, tmp_path / "keys")
    os.chown(bundle, STRANGER, -1)
    _planted(conf, bundle, capsys)


# -- the embedded queue manager's file -----------------------------------------------------------------------------


def test_a_queue_manager_file_others_can_read_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ams-qm.sqlite"
    EmbeddedQueueManager(path, create=True).close()  # the twin: created by ams, 0600, opened again
    EmbeddedQueueManager(path, create=True).close()
    for mode in (0o640, 0o604, 0o666):
        os.chmod(path, mode)
        with pytest.raises(ams.errors.ConfigurationError, match=f"chmod 600 {path}"):
            EmbeddedQueueManager(path)
        assert main(["qm", "show", "--qm", str(path)]) == 2
        assert f"chmod 600 {path}" in capsys.readouterr().err
    os.chmod(path, 0o600)
    EmbeddedQueueManager(path, create=True).close()


def test_a_planted_wal_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ams-qm.sqlite"
    EmbeddedQueueManager(path, create=True).close()
    wal = Path(f"{path}-wal")
    wal.write_bytes(b"")
    os.chmod(wal, 0o666)
    with pytest.raises(ams.errors.ConfigurationError, match="-wal"):
        EmbeddedQueueManager(path)


@as_root
def test_a_queue_manager_file_another_user_owns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ams-qm.sqlite"
    EmbeddedQueueManager(path, create=True).close()
    os.chown(path, STRANGER, -1)
    with pytest.raises(ams.errors.ConfigurationError, match="chown"):
        EmbeddedQueueManager(path)


@as_root
def test_a_planted_empty_queue_manager_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The attack as filed: another user pre-creates ./ams-qm.sqlite, world-readable, to read every queue."""
    path = tmp_path / "ams-qm.sqlite"
    path.write_bytes(b"")
    os.chown(path, STRANGER, -1)
    os.chmod(path, 0o666)
    assert main(["qm", "define", "PAY.Q", "--qm", str(path)]) == 2
    said = capsys.readouterr().err
    assert str(path) in said and "internal error" not in said
    assert path.stat().st_size == 0


def test_the_pem_and_pkcs12_loaders_check_what_they_trust(pki: Pki, tmp_path: Path) -> None:
    conf, bundle = _pem_world(pki, tmp_path / "keys")
    key, certificate = conf.parent / "bob.key", conf.parent / "bob.pem"

    def pem(strict: bool) -> ams.Keystore:
        return ams.Keystore.from_pem(
            private=key, public=certificate, password="secret", certificates=[bundle], strict=strict
        )

    assert pem(strict=True).identity is not None  # the twin: private files load, strict or not
    os.chmod(bundle, 0o666)
    with pytest.warns(ams.errors.AmsSecurityWarning, match="writable by group or others"):
        assert pem(strict=False).findings
    with pytest.raises(ams.errors.KeystoreError, match="strict"):
        pem(strict=True)
    from ams.pki import write_user_keystore

    written = write_user_keystore(tmp_path / "p12", "bob", pki.users["bob"], [pki.ca.certificate], password="pw")
    store = written.parent / "bob.p12"
    assert ams.Keystore.from_pkcs12(store, "pw", strict=True).identity is not None
    os.chmod(store.parent, 0o777)
    with pytest.raises(ams.errors.KeystoreError, match="directory holding"):
        ams.Keystore.from_pkcs12(store, "pw", strict=True)


def test_doctor_reports_a_queue_manager_file_others_can_read(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf, _ = _pem_world(pki, tmp_path / "keys")
    path = tmp_path / "ams-qm.sqlite"
    EmbeddedQueueManager(path, create=True).close()
    assert main(["doctor", "--keystore-conf", str(conf), "--qm", str(path)]) == 0  # the twin: as ams made it
    assert "queue manager file" not in capsys.readouterr().out
    os.chmod(path, 0o644)
    found = [f for f in diagnose(conf, {}, queue_manager_file=path) if f.subject.startswith("queue manager file")]
    assert [(f.level, f.fix) for f in found] == [("error", f"chmod 600 {path}")]
    assert main(["doctor", "--keystore-conf", str(conf), "--qm", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"queue manager file {path}" in out and f"chmod 600 {path}" in out


def test_doctor_checks_the_queue_managers_writer_lock_and_get_journals(pki: Pki, tmp_path: Path) -> None:
    conf, _ = _pem_world(pki, tmp_path / "keys")
    path = tmp_path / "ams-qm.sqlite"
    manager = EmbeddedQueueManager(path, create=True)
    connection = manager.connect("doctor")  # its get journal exists while it is connected
    journals, writer = path.with_name(path.name + "-gets"), path.with_name(path.name + "-writer")
    journal = next(journals.iterdir())
    assert writer.exists() and journal.is_file()

    def found() -> list[tuple[str, str]]:
        return [
            (f.subject, f.fix)
            for f in diagnose(conf, {}, queue_manager_file=path)
            if f.subject.startswith("queue manager file")
        ]

    assert found() == []  # the twin: as ams made them
    os.chmod(writer, 0o666)
    os.chmod(journal, 0o644)
    assert found() == [
        (f"queue manager file {writer}", f"chmod 600 {writer}"),
        (f"queue manager file {journal}", f"chmod 600 {journal}"),
    ]
    os.chmod(writer, 0o600)
    os.chmod(journals, 0o755)  # others may list and, with a write bit, plant journals: the files inside are not judged
    assert found() == [(f"queue manager file {journals}", f"chmod 700 {journals}")]
    os.chmod(journals, 0o700)
    os.chmod(journal, 0o600)
    connection.close()
    manager.close()
    assert found() == []
