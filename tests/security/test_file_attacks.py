"""Attacks on the files ams writes: planted symbolic links, escaping policy names, hostile umasks.

Whoever can write into a policy or PKI directory (or pick a queue name) must not be able to make
ams write outside it, overwrite a file of their choosing or read a private key.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ams
import ams.errors
import ams.policy
from ams._files import make_private_directory, replace_file, write_new_file
from ams.cli.main import build_parser, main
from ams.pki import init_pki, issue, make_ca, write_pem, write_user_keystore
from ams.policy.store import policy_file_name

# -- policy names --------------------------------------------------------------------------------------------------

HOSTILE_NAMES = {
    "PAY/IN": "PAY%2FIN.spl",
    "A%B": "A%25B.spl",
    "../../escaped": "%2E.%2F..%2Fescaped.spl",
    "..": "%2E..spl",
    ".hidden": "%2Ehidden.spl",
}


def _listing(root: Path, *, skip: Path) -> list[str]:
    """Every path under ``root`` except ``skip`` and what is in it."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p != skip and skip not in p.parents)


@pytest.mark.parametrize(("name", "file_name"), HOSTILE_NAMES.items())
def test_policy_names_stay_in_the_policy_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, file_name: str
) -> None:
    store = tmp_path / "a" / "b" / "policies"
    store.mkdir(parents=True)
    (tmp_path / "a" / "b" / "neighbour.spl").write_text("# not a policy directory\n")
    before = _listing(tmp_path, skip=store)
    assert main(["policy", "set", "--policies", str(store), "-p", name, "-s", "SHA256"]) == 0
    assert os.listdir(store) == [file_name]
    assert (store / file_name).read_text().startswith("setmqspl -m QM -p")
    assert _listing(tmp_path, skip=store) == before
    capsys.readouterr()
    assert main(["policy", "show", "--policies", str(store)]) == 0
    assert f"Policy name: {name}\n" in capsys.readouterr().out
    assert main(["policy", "show", "--policies", str(store), "-p", name]) == 0
    assert main(["policy", "set", "--policies", str(store), "-p", name, "-s", "SHA512"]) == 0  # replaced in place
    assert os.listdir(store) == [file_name] and "-s SHA512" in (store / file_name).read_text()
    assert main(["policy", "remove", "--policies", str(store), "-p", name]) == 0
    assert os.listdir(store) == []
    assert _listing(tmp_path, skip=store) == before


def test_names_that_encode_alike_before_do_not_share_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = ["PAY/IN", "PAY%2FIN", "PAY_IN", ".x", "%2Ex"]
    for name in names:
        assert main(["policy", "set", "--policies", str(tmp_path), "-p", name, "-s", "SHA256"]) == 0
    assert len(os.listdir(tmp_path)) == len(names)
    capsys.readouterr()
    assert main(["policy", "show", "--policies", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert all(f"Policy name: {name}\n" in out for name in names)
    assert main(["policy", "remove", "--policies", str(tmp_path), "-p", "PAY/IN"]) == 0
    assert sorted(os.listdir(tmp_path)) == sorted(policy_file_name(n) for n in names if n != "PAY/IN")


@given(st.text(min_size=1, max_size=20))  # 20 characters of at most 12 encoded characters each fit NAME_MAX
def test_policy_file_name_is_a_plain_name(name: str) -> None:
    file_name = policy_file_name(name)
    assert "/" not in file_name and "\0" not in file_name and "\\" not in file_name
    assert not file_name.startswith(".") and file_name.endswith(".spl") and file_name.isascii()
    assert os.path.basename(os.path.normpath(os.path.join("/d", file_name))) == file_name


@given(st.text(min_size=1, max_size=12), st.text(min_size=1, max_size=12))
def test_policy_file_names_differ_for_different_names(first: str, second: str) -> None:
    assert (policy_file_name(first) == policy_file_name(second)) is (first == second)


def test_policy_file_name_refuses_empty_and_overlong_names() -> None:
    with pytest.raises(ams.errors.PolicyError, match="empty"):
        policy_file_name("")
    with pytest.raises(ams.errors.PolicyError, match="too long to store as a file"):
        policy_file_name("\N{EURO SIGN}" * 48)  # 48 characters, but 9 bytes each once encoded
    assert len(policy_file_name("%" * 48)) == 48 * 3 + len(".spl")  # every valid queue name fits


@pytest.mark.parametrize("outside_exists", [True, False])
def test_policy_set_replaces_a_planted_link_instead_of_following_it(tmp_path: Path, outside_exists: bool) -> None:
    store, outside = tmp_path / "policies", tmp_path / "victim"
    store.mkdir()
    if outside_exists:
        outside.write_text("# precious\n")
    (store / "Q.spl").symlink_to(outside)
    assert main(["policy", "set", "--policies", str(store), "-p", "Q", "-s", "SHA256"]) == 0
    assert not (store / "Q.spl").is_symlink() and "-p Q -s SHA256" in (store / "Q.spl").read_text()
    assert (outside.read_text() == "# precious\n") if outside_exists else not outside.exists()
    assert os.listdir(store) == ["Q.spl"]  # no temporary file left behind


def test_policy_set_into_something_that_is_not_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    for directory in (tmp_path / "file", tmp_path / "file" / "sub"):
        args = build_parser().parse_args(["policy", "set", "--policies", str(directory), "-p", "Q", "-s", "SHA256"])
        with pytest.raises(ams.UsageError, match=re.escape(str(directory))):
            args.run(args)


def test_policy_set_over_a_directory_is_a_usage_error_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "Q.spl").mkdir()
    args = build_parser().parse_args(["policy", "set", "--policies", str(tmp_path), "-p", "Q", "-s", "SHA256"])
    with pytest.raises(ams.UsageError, match=r"Q\.spl"):
        args.run(args)
    assert os.listdir(tmp_path) == ["Q.spl"]


@pytest.mark.parametrize("command", ["set", "show", "remove"])
def test_policy_commands_with_a_nul_in_the_path_raise_only_ams_errors(command: str) -> None:
    words = ["policy", command, "--policies", "/tmp/a\0b", "-p", "Q"] + (["-s", "SHA256"] if command == "set" else [])
    args = build_parser().parse_args(words)
    with pytest.raises(ams.AmsError):
        args.run(args)


# -- ams pki init ----------------------------------------------------------------------------------------------------


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    outside = tmp_path / "outside" / "precious.txt"
    outside.parent.mkdir()
    outside.write_text("do not touch\n")
    return outside


@pytest.mark.parametrize("planted", ["ca/ca.key.pem", "ca/ca.pem", "alice/alice.p12", "alice/keystore.conf"])
def test_pki_init_refuses_a_planted_link_and_writes_nothing(tmp_path: Path, victim: Path, planted: str) -> None:
    root = tmp_path / "pki"
    (root / planted).parent.mkdir(parents=True)
    (root / planted).symlink_to(victim)
    with pytest.raises(
        ams.UsageError, match=rf"{re.escape(str(root / planted))}.*symbolic link.*remove it or choose another directory"
    ):
        init_pki(root, ["alice", "bob"])
    assert victim.read_text() == "do not touch\n"
    assert [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()] == []


def test_pki_init_refuses_a_dangling_link_where_the_ca_key_goes(tmp_path: Path) -> None:
    root, target = tmp_path / "pki", tmp_path / "attacker-reads-this.pem"
    (root / "ca").mkdir(parents=True)
    (root / "ca" / "ca.key.pem").symlink_to(target)
    assert main(["pki", "init", str(root), "--users", "alice"]) == 2
    assert not target.exists()


def test_pki_init_refuses_a_linked_user_directory(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "pki", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (root / "alice").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(
        ams.UsageError, match=rf"{re.escape(str(root / 'alice'))}.*expected a directory, found a symbolic link"
    ):
        init_pki(root, ["alice"])
    assert os.listdir(elsewhere) == []


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.mark.usefixtures("umask")
def test_pki_init_modes_do_not_depend_on_the_umask(tmp_path: Path) -> None:
    root = tmp_path / "new" / "pki"
    init_pki(root, ["alice"])
    assert {str(p.relative_to(tmp_path)): oct(_mode(p)) for p in sorted(tmp_path.rglob("*"))} == {
        "new": "0o700",
        "new/pki": "0o700",
        "new/pki/ca": "0o700",
        "new/pki/ca/ca.pem": "0o644",
        "new/pki/ca/ca.key.pem": "0o600",
        "new/pki/alice": "0o700",
        "new/pki/alice/alice.p12": "0o600",
        "new/pki/alice/alice.pem": "0o644",
        "new/pki/alice/keystore.conf": "0o600",
    }


def test_files_get_their_mode_under_a_strict_umask(tmp_path: Path) -> None:
    old = os.umask(0o777)
    try:
        write_new_file(tmp_path / "cert.pem", b"x", mode=0o644)
        make_private_directory(tmp_path / "d")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "cert.pem") == 0o644 and _mode(tmp_path / "d") == 0o700


def test_pki_init_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pki", "init", str(tmp_path), "--users", "alice"]) == 0
    key = (tmp_path / "ca" / "ca.key.pem").read_bytes()
    capsys.readouterr()
    assert main(["pki", "init", str(tmp_path), "--users", "alice"]) == 2
    err = capsys.readouterr().err
    assert "ams: error: [usage]" in err and str(tmp_path / "ca" / "ca.pem") in err
    assert "remove it or choose another directory" in err
    assert (tmp_path / "ca" / "ca.key.pem").read_bytes() == key


@pytest.mark.parametrize("user", ["../escaped", "a/b", "x\npkcs12.keystore_pass = y", "ca", "CA", ".hidden", "-x"])
def test_pki_init_refuses_user_names_that_are_not_plain(tmp_path: Path, user: str) -> None:
    with pytest.raises(ams.UsageError, match="cannot be used"):
        init_pki(tmp_path / "pki", ["alice", user])
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "directory", ["file", "file/sub", "a\0b", "link-to-nowhere"], ids=["file", "under-file", "nul", "dangling"]
)
def test_pki_init_file_system_failures_are_ams_errors(tmp_path: Path, directory: str) -> None:
    (tmp_path / "file").write_text("")
    (tmp_path / "link-to-nowhere").symlink_to(tmp_path / "nowhere")
    args = build_parser().parse_args(["pki", "init", str(tmp_path / directory), "--users", "alice"])
    with pytest.raises(ams.AmsError) as caught:
        args.run(args)
    assert isinstance(caught.value, ams.UsageError | ams.errors.KeystoreError)
    assert str(tmp_path) in caught.value.message


def test_write_pem_and_write_user_keystore_refuse_existing_files(tmp_path: Path) -> None:
    ca = make_ca()
    (tmp_path / "ca.key.pem").write_text("old key\n")
    with pytest.raises(ams.UsageError, match=r"ca\.key\.pem.*found a file"):
        write_pem(tmp_path / "ca.pem", ca)
    assert not (tmp_path / "ca.pem").exists() and (tmp_path / "ca.key.pem").read_text() == "old key\n"
    write_pem(tmp_path / "cert", ca)  # a name without .pem: the key goes to cert.key.pem, not over the certificate
    assert (tmp_path / "cert").read_bytes().startswith(b"-----BEGIN CERTIFICATE")
    assert (tmp_path / "cert.key.pem").read_bytes().startswith(b"-----BEGIN PRIVATE KEY")
    (tmp_path / "bob" / "bob.pem").parent.mkdir()
    (tmp_path / "bob" / "bob.pem").write_text("old certificate\n")
    with pytest.raises(ams.UsageError, match=r"bob\.pem"):
        write_user_keystore(tmp_path / "bob", "bob", issue(ca, "CN=bob,O=AMS,C=GB"), [ca.certificate])
    assert os.listdir(tmp_path / "bob") == ["bob.pem"]


# -- the helpers -------------------------------------------------------------------------------------------------------


def test_write_new_file_never_follows_or_truncates(tmp_path: Path, victim: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(victim)
    with pytest.raises(ams.UsageError, match="symbolic link"):
        write_new_file(link, b"evil", mode=0o600)
    with pytest.raises(ams.UsageError, match="found a file"):
        write_new_file(victim, b"evil", mode=0o600)
    assert victim.read_text() == "do not touch\n"


def test_replace_file_replaces_the_link_not_its_target(tmp_path: Path, victim: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(victim)
    replace_file(link, b"new", mode=0o644)
    assert not link.is_symlink() and link.read_bytes() == b"new" and _mode(link) == 0o644
    assert victim.read_text() == "do not touch\n"
    assert sorted(os.listdir(tmp_path)) == ["link", "outside"]


def test_helpers_report_other_failures_as_the_chosen_error(tmp_path: Path) -> None:
    with pytest.raises(ams.errors.KeystoreError, match=re.escape(str(tmp_path / "missing" / "f"))):
        write_new_file(tmp_path / "missing" / "f", b"", mode=0o600, error=ams.errors.KeystoreError)
    (tmp_path / "file").write_text("")
    with pytest.raises(ams.errors.KeystoreError, match="file/d"):
        make_private_directory(tmp_path / "file" / "d", error=ams.errors.KeystoreError)
    with pytest.raises(ams.UsageError, match="expected a directory, found a file"):
        make_private_directory(tmp_path / "file")


# -- the embedded queue manager's file ---------------------------------------------------------------


def test_the_queue_manager_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """Messages wait there, protected or not (an error queue, a ledger): 0600 from the first byte,
    and SQLite gives its -wal and -shm files the same mode; so are the writer's lock file (-writer)
    and the get journals' directory (-gets, 0700)."""
    from ams.mq import MQMD, EmbeddedQueueManager

    old = os.umask(0o022)
    try:
        path = tmp_path / "qm" / "file.sqlite"
        EmbeddedQueueManager(path, create=True).connect("app").put1("SYSTEM.DEAD.LETTER.QUEUE", MQMD(), b"x")
    finally:
        os.umask(old)
    assert {p.name: oct(_mode(p)) for p in path.parent.iterdir()} == {
        **{name: "0o600" for name in ("file.sqlite", "file.sqlite-wal", "file.sqlite-shm", "file.sqlite-writer")},
        "file.sqlite-gets": "0o700",
    }


@pytest.mark.parametrize("dangling", [False, True])
def test_the_queue_manager_file_is_never_a_link(tmp_path: Path, victim: Path, dangling: bool) -> None:
    from ams.mq import EmbeddedQueueManager

    link = tmp_path / "qm.sqlite"
    target = tmp_path / "nowhere" / "qm.sqlite" if dangling else victim
    link.symlink_to(target)
    before = None if dangling else victim.read_bytes()
    with pytest.raises(ams.UsageError, match="symbolic link"):
        EmbeddedQueueManager(link, create=True)
    assert (not target.exists()) if dangling else victim.read_bytes() == before


def test_a_queue_manager_path_that_looks_like_a_uri_is_a_file_name(tmp_path: Path) -> None:
    """'?mode=memory' or '#' in a path are part of the file's name, not SQLite URI options."""
    from ams.mq import EmbeddedQueueManager

    path = tmp_path / "qm?mode=memory&cache=shared#x.sqlite"
    EmbeddedQueueManager(path, create=True).define_queue("Q.ONE")
    assert path.exists() and "Q.ONE" in EmbeddedQueueManager(path, create=True).queues()
