"""Files that never end: a FIFO, a device and a 3 GiB sparse file wherever the library reads one.

Whoever can name a file in a keystore.conf, a policy directory or a proxy configuration (or
plant one where they are read) must not be able to hang a reader or exhaust its memory. Each
reader refuses each of them within a second with a ConfigurationError that names the file, what
it found and the limit (ams.Limits), through the API and through the ``ams`` command.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import ams
import ams.errors
from ams._files import read_bounded
from ams.cli.main import main
from ams.keys.crl_files import load_crls
from ams.mq.proxy.config import load_config
from ams.policy.dspmqspl import read_dspmqspl
from tests.conftest import Pki

HOSTILE = ("fifo", "device", "sparse")
SPARSE_SIZE = 3 * 1024**3


@pytest.fixture(params=HOSTILE)
def hostile(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A path that is a FIFO with no writer, /dev/zero (through a link), or a 3 GiB sparse file."""
    path = tmp_path / f"hostile-{request.param}.pem"
    if request.param == "fifo":
        os.mkfifo(path)
    elif request.param == "device":
        if not os.path.exists("/dev/zero"):
            pytest.skip("no /dev/zero on this system")
        path.symlink_to("/dev/zero")
    else:
        with open(path, "wb") as file:
            file.truncate(SPARSE_SIZE)
    yield path


def _refused(call: Callable[[], object], path: Path) -> ams.errors.ConfigurationError:
    started = time.monotonic()
    with pytest.raises(ams.errors.ConfigurationError) as caught:
        call()
    assert time.monotonic() - started < 1.0
    message = caught.value.message
    assert str(path) in message, message
    assert any(word in message for word in ("FIFO", "character device", f"{SPARSE_SIZE:,} bytes")), message
    if "bytes" in message:
        assert f"at most {ams.Limits().file_size:,}" in message or f"{ams.Limits().crl_file_size:,}" in message
    return caught.value


def _pem_identity(pki: Pki, directory: Path) -> tuple[Path, Path]:
    bob = pki.users["bob"]
    key, certificate = directory / "bob.key", directory / "bob.pem"
    key.write_bytes(
        bob.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    os.chmod(key, 0o600)
    certificate.write_bytes(bob.certificate.public_bytes(serialization.Encoding.PEM))
    return key, certificate


def _conf(directory: Path, text: str) -> Path:
    conf = directory / "keystore.conf"
    conf.write_text(text)
    os.chmod(conf, 0o600)
    return conf


def test_keystore_readers_refuse_it(pki: Pki, hostile: Path, tmp_path: Path) -> None:
    key, certificate = _pem_identity(pki, tmp_path)
    _refused(lambda: ams.Keystore.from_conf(hostile), hostile)
    _refused(lambda: ams.Keystore.from_pkcs12(hostile, "secret"), hostile)
    _refused(lambda: ams.Keystore.from_pem(private=hostile, public=certificate, password="secret"), hostile)
    _refused(lambda: ams.Keystore.from_pem(private=key, public=hostile, password="secret"), hostile)
    _refused(lambda: ams.Keystore.from_pem(private=None, public=None, certificates=[hostile]), hostile)
    for setting in (
        f"pkcs12.keystore = {hostile}\npkcs12.keystore_pass = secret\n",
        f"jks.keystore = {hostile}\njks.keystore_pass = secret\n",
        f"pem.private = {hostile}\npem.public = {certificate}\npem.password = secret\n",
        f"pem.private = {key}\npem.public = {hostile}\npem.password = secret\n",
        f"pem.private = {key}\npem.public = {certificate}\npem.password = secret\npem.certificates = {hostile}\n",
    ):
        _refused(functools.partial(ams.Keystore.from_conf, _conf(tmp_path, setting)), hostile)
    # the accepted twin: the same settings with real files load
    conf = _conf(tmp_path, f"pem.private = {key}\npem.public = {certificate}\npem.password = secret\n")
    assert ams.Keystore.from_conf(conf).identity is not None


def test_crl_policy_and_proxy_readers_refuse_it(hostile: Path, tmp_path: Path) -> None:
    _refused(lambda: load_crls([hostile]), hostile)
    _refused(lambda: read_dspmqspl(hostile), hostile)
    _refused(lambda: load_config(hostile), hostile)
    errors = ams.PolicyStore().load_file(hostile)
    assert len(errors) == 1 and str(hostile) in errors[0].message
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "PAY.Q.spl").symlink_to(hostile)
    started = time.monotonic()
    try:
        store = ams.PolicyStore.from_directory(policies)
    except ams.errors.PolicyError as error:  # the sparse file: refused, naming it
        assert "PAY.Q.spl" in error.message and f"{SPARSE_SIZE:,}" in error.message
    else:  # a FIFO or a device is not a policy file: passed over, never opened
        assert "PAY.Q" not in store and not hostile.name.endswith("sparse.pem")
    assert time.monotonic() - started < 1.0


def test_the_command_refuses_it(pki: Pki, hostile: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, certificate = _pem_identity(pki, tmp_path)
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "PAY.Q.spl").write_text(f'setmqspl -m QM -p PAY.Q -s SHA256 -a "{pki.dn("alice")}"\n')
    message = tmp_path / "message.bin"
    message.write_bytes(b"hello")
    commands = [
        ["unprotect", "-p", "PAY.Q", "--policies", str(policies), "--keystore-conf", str(hostile), "-i", str(message)],
        ["unprotect", "-p", "PAY.Q", "--policies", str(policies), "--crl", str(hostile), "-i", str(message)],
        ["policy", "diff", "--policies", str(policies), "--from", str(hostile)],
    ]
    conf = _conf(tmp_path, f"pem.private = {hostile}\npem.public = {certificate}\npem.password = secret\n")
    commands.append(
        ["unprotect", "-p", "PAY.Q", "--policies", str(policies), "--keystore-conf", str(conf), "-i", str(message)]
    )
    if not hostile.name.endswith("fifo.pem"):  # a message may come through a pipe; a device or a huge file not
        commands.append(["unprotect", "-p", "PAY.Q", "--policies", str(policies), "-i", str(hostile)])
    for command in commands:
        started = time.monotonic()
        assert main(command) == 2, command
        assert time.monotonic() - started < 1.0, command
        err = capsys.readouterr().err
        assert "internal error" not in err and str(hostile) in err, (command, err)
    (policies / "HUGE.spl").symlink_to(hostile)
    started = time.monotonic()
    status = main(["policy", "check", "--policies", str(policies)])
    assert time.monotonic() - started < 1.0
    said = capsys.readouterr()
    assert "internal error" not in said.err
    if hostile.name.endswith("sparse.pem"):  # refused, naming the file and the limit
        assert status == 1 and "HUGE.spl" in said.err and f"{ams.Limits().file_size:,}" in said.err
    else:  # a FIFO or a device is not a policy file: passed over, never opened
        assert status == 0 and "1 policy in" in said.out


def test_the_reader_bounds_a_file_that_grows_and_never_follows_a_link_when_told(tmp_path: Path) -> None:
    small = tmp_path / "small.conf"
    small.write_bytes(b"x" * 100)
    assert read_bounded(small, "test file", limit=100) == b"x" * 100  # the twin: at the limit is accepted
    with pytest.raises(ams.errors.ConfigurationError, match="at most 99 bytes"):
        read_bounded(small, "test file", limit=99)
    link = tmp_path / "link.conf"
    link.symlink_to(small)
    assert read_bounded(link, "test file", limit=100) == b"x" * 100
    with pytest.raises(ams.errors.ConfigurationError, match="symbolic link"):
        read_bounded(link, "test file", limit=100, follow_symlinks=False)


@pytest.mark.parametrize("planted", ["ln -s /dev/zero out.bin", "mkfifo out.bin", "truncate -s 3G out.bin"])
def test_the_kit_reads_a_peer_output_bounded_and_never_through_a_link(tmp_path: Path, planted: str) -> None:
    """A peer under test writes out.bin: a link to a device (or to a secret), a FIFO or a huge file."""
    from ams.testing.conformance.protocol import run_command

    started = time.monotonic()
    outcome = run_command(["sh", "-c", planted], tmp_path, timeout=10)
    assert time.monotonic() - started < 2.0
    assert outcome.output is None
    if outcome.status == 0:  # the kit did not take it, and says why
        assert "out.bin" in outcome.problem and "kit did not take its output" in outcome.problem
    else:  # the 3 GiB file was never even written: a peer call's files are capped (RLIMIT_FSIZE)
        assert "truncate" in planted and outcome.status is not None and outcome.status > 125
    (tmp_path / "twin").mkdir()  # each case runs in a new directory of its own
    twin = run_command(["sh", "-c", "printf hello > out.bin"], tmp_path / "twin", timeout=10)
    assert twin.output == b"hello"


@pytest.mark.parametrize("name", ["in.bin", "step.json", "world/world.json"])
def test_a_saved_failure_is_read_bounded_too(tmp_path: Path, hostile: Path, name: str) -> None:
    """`ams conformance --replay DIR` reads a failure's directory, which may come from elsewhere (a bug
    report): a FIFO, a device or a huge file in it is a usage error at once, never a hang."""
    from ams.testing.conformance.replay import load_step

    directory = tmp_path / "failure"
    (directory / "world").mkdir(parents=True)
    for part in ("peer.json", "step.json", "in.bin", "payload.bin", "world/world.json"):
        (directory / part).write_text("{}")
    target = directory / name
    target.unlink()
    os.rename(hostile, target) if not hostile.is_symlink() else target.symlink_to(os.readlink(hostile))
    started = time.monotonic()
    with pytest.raises(ams.errors.UsageError):
        load_step(directory)
    assert time.monotonic() - started < 1.0
