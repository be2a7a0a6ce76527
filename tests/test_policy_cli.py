"""`ams policy`: set, show, remove, export, check, apply and diff over a policy directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from ams.cli.main import main


def run(*args: str) -> int:
    return main(["policy", *args])


def test_set_show_export_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "store")
    assert (
        run(
            "set",
            "--policies",
            store,
            "-m",
            "QM1",
            "-p",
            "PAY.Q",
            "-s",
            "SHA256",
            "-e",
            "AES256",
            "-r",
            "CN=bob, O=AMS, C=GB",
            "-a",
            "CN=alice,O=AMS,C=GB",
        )
        == 0
    )
    assert (tmp_path / "store" / "PAY.Q.spl").read_text().startswith("setmqspl -m QM1 -p PAY.Q -s SHA256")
    capsys.readouterr()
    assert run("show", "--policies", store) == 0
    shown = capsys.readouterr().out
    assert "Policy name: PAY.Q\nQuality of protection: PRIVACY" in shown and "CN=bob, O=AMS, C=GB" in shown
    assert run("export", "--policies", store, "-m", "QM2") == 0
    assert capsys.readouterr().out.strip() == (
        "setmqspl -m QM2 -p PAY.Q -s SHA256 -e AES256 -a CN=alice,O=AMS,C=GB -r CN=bob,O=AMS,C=GB -c 0 -t 0"
    )
    assert run("export", "--policies", store, "-m", "QM2", "--mqsc") == 0
    assert capsys.readouterr().out.startswith("SET POLICY('PAY.Q') SIGNALG(SHA256) ENCALG(AES256)")
    assert run("remove", "--policies", store, "-p", "PAY.Q") == 0
    assert not (tmp_path / "store" / "PAY.Q.spl").exists()
    assert run("remove", "--policies", store, "-p", "PAY.Q") == 2


def test_set_refuses_a_swapped_policy_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    assert (
        run(
            "set",
            "--policies",
            str(store),
            "-m",
            "PRODA",
            "-p",
            "SENDQUEUE",
            "-s",
            "SHA256",
            "-e",
            "AES128",
            "-a",
            "CN=X, O=YOURORG",
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "swapped" in err and "-r CN=X,O=YOURORG" in err
    assert not store.exists()


def test_set_refuses_a_policy_owned_by_another_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "all.spl").write_text("setmqspl -m QM -p Q -s SHA256\n", encoding="utf-8")
    assert run("set", "--policies", str(tmp_path), "-p", "Q", "-s", "SHA512") == 2
    assert "all.spl:1" in capsys.readouterr().err


def test_set_and_remove_encode_the_file_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("set", "--policies", str(tmp_path), "-p", "PAY/IN", "-s", "SHA256") == 0
    assert [p.name for p in tmp_path.iterdir()] == ["PAY%2FIN.spl"]
    assert "written to" in capsys.readouterr().out
    assert run("remove", "--policies", str(tmp_path), "-p", "PAY/IN") == 0
    assert list(tmp_path.iterdir()) == []


def test_set_refuses_to_drop_the_other_policies_of_its_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Q.spl").write_text("setmqspl -m QM -p Q -s SHA256\nsetmqspl -m QM -p R -s SHA256\n")
    assert run("set", "--policies", str(tmp_path), "-p", "Q", "-s", "SHA512") == 2
    assert "also sets R" in capsys.readouterr().err
    assert run("remove", "--policies", str(tmp_path), "-p", "Q") == 2
    assert "also sets R" in capsys.readouterr().err
    assert "-p R" in (tmp_path / "Q.spl").read_text()


def test_a_file_named_before_encoding_is_pointed_at(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "A%B.spl").write_text("setmqspl -m QM -p A%B -s SHA256\n")
    assert run("set", "--policies", str(tmp_path), "-p", "A%B", "-s", "SHA512") == 2
    err = capsys.readouterr().err
    assert "A%B.spl:1" in err and "A%25B.spl" in err


def test_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "good.spl").write_text("setmqspl -m QM -p A -s SHA256\n", encoding="utf-8")
    assert run("check", "--policies", str(tmp_path)) == 0
    (tmp_path / "bad.mqsc").write_text(
        "SET POLICY('B') ENCALG(AES256)\nSET POLICY('C') SIGNALG(sha)\n", encoding="utf-8"
    )
    capsys.readouterr()
    assert run("check", "--policies", str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "bad.mqsc:1:" in err and "bad.mqsc:2:" in err and "2 errors in" in err


def test_repository_policies_pass_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("check", "--policies", str(Path(__file__).parents[1] / "policies")) == 0


DUMP = """Policy Details:
Policy name: A
Quality of protection: INTEGRITY
Signature algorithm: SHA256
Encryption algorithm: NONE
Signer DNs: -
Recipient DNs: -
Toleration: 0
Key Reuse Count: 0
- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
Policy Details:
Policy name: OLD
Quality of protection: INTEGRITY
Signature algorithm: SHA1
Encryption algorithm: NONE
Signer DNs: -
Recipient DNs: -
Toleration: 0
Key Reuse Count: 0
"""


def test_diff_and_apply_against_a_dump(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "a.spl").write_text('setmqspl -m QM -p A -s SHA512 -a "CN=s,O=X"\nsetmqspl -m QM -p NEW -s SHA256\n')
    dump = tmp_path / "dump.txt"
    dump.write_text(DUMP)
    assert run("diff", "--policies", str(store), "--from", str(dump)) == 1
    out = capsys.readouterr().out
    assert "~ A\n    signature algorithm: SHA256 -> SHA512\n    + signer CN=s,O=X" in out
    assert "+ NEW" in out and "- OLD" in out
    assert run("apply", "--policies", str(store), "-m", "QM1", "-m", "QM2", "--from", str(dump)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "setmqspl -m QM1 -p OLD -remove" in lines and "setmqspl -m QM2 -p OLD -remove" in lines
    assert "setmqspl -m QM2 -p NEW -s SHA256 -e NONE -c 0 -t 0" in lines
    assert run("apply", "--policies", str(store), "-m", "QM1", "--mqsc") == 0
    out = capsys.readouterr().out
    assert "SET POLICY('NEW')" in out and "DELETE" not in out
    (store / "a.spl").write_text("setmqspl -m QM -p A -s SHA256\nsetmqspl -m QM -p OLD -s SHA1\n")
    capsys.readouterr()
    assert run("diff", "--policies", str(store), "--from", str(dump)) == 0
    assert "matches" in capsys.readouterr().out


def test_set_remove_deletes_the_policy_as_setmqspl_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`-remove` is setmqspl's word, not `-r emove` (a recipient DN that does not parse)."""
    store = str(tmp_path / "store")
    assert run("set", "--policies", store, "-m", "QM1", "-p", "PAY.Q", "-s", "SHA256", "-a", "CN=alice,O=AMS") == 0
    assert run("set", "--policies", store, "-m", "QM1", "-p", "PAY.Q", "-remove") == 0
    assert "policy PAY.Q removed" in capsys.readouterr().out
    assert not (tmp_path / "store" / "PAY.Q.spl").exists()
    # the same line in a .spl file removes it too: one parser for both
    (tmp_path / "store" / "a.spl").write_text("setmqspl -m QM1 -p X.Q -s SHA256 -a CN=a\n", encoding="utf-8")
    (tmp_path / "store" / "b.spl").write_text("setmqspl -m QM1 -p X.Q -remove\n", encoding="utf-8")
    assert run("show", "--policies", store) == 0
    assert "X.Q" not in capsys.readouterr().out


def test_set_remove_refuses_settings_and_unknown_policies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "store")
    assert run("set", "--policies", store, "-m", "QM1", "-p", "PAY.Q", "-s", "SHA256", "-a", "CN=alice,O=AMS") == 0
    assert run("set", "--policies", store, "-m", "QM1", "-p", "PAY.Q", "-remove", "-s", "SHA256") == 2
    assert "setmqspl -remove takes only -m and -p, not -s" in capsys.readouterr().err
    assert (tmp_path / "store" / "PAY.Q.spl").exists()  # nothing removed
    assert run("set", "--policies", store, "-p", "OTHER.Q", "-remove") == 2
    assert "no policy OTHER.Q" in capsys.readouterr().err
    assert run("set", "--policies", store, "-p", "PAY.Q", "-r", "emove") == 2  # a real -r is still a DN
    assert "emove" in capsys.readouterr().err


@pytest.mark.parametrize("mqsc", [False, True], ids=["setmqspl", "mqsc"])
def test_diff_and_apply_read_what_export_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str], mqsc: bool) -> None:
    """The tool reads its own export (setmqspl lines, or SET POLICY with --mqsc) as the queue manager's state."""
    store = str(tmp_path / "store")
    assert run("set", "--policies", store, "-m", "QM1", "-p", "PAY.Q", "-s", "SHA256", "-e", "AES256",
               "-r", "CN=bob,O=AMS", "-a", "CN=alice,O=AMS") == 0  # fmt: skip
    assert run("set", "--policies", store, "-m", "QM1", "-p", "LOG.Q", "-s", "SHA512", "-a", "CN=alice,O=AMS") == 0
    capsys.readouterr()
    assert run("export", "--policies", store, "-m", "QM1", *(["--mqsc"] if mqsc else [])) == 0
    dump = tmp_path / "export.txt"
    dump.write_text(capsys.readouterr().out, encoding="utf-8")
    assert run("diff", "--policies", store, "--from", str(dump)) == 0
    assert "matches" in capsys.readouterr().out
    assert run("apply", "--policies", store, "-m", "QM1", "--from", str(dump)) == 0
    assert "0 commands" in capsys.readouterr().out
    # rejected twin: a change after the export is seen
    assert run("set", "--policies", store, "-m", "QM1", "-p", "LOG.Q", "-remove") == 0
    capsys.readouterr()
    assert run("diff", "--policies", store, "--from", str(dump)) == 1
    assert "- LOG.Q" in capsys.readouterr().out
    assert run("apply", "--policies", store, "-m", "QM1", "--from", str(dump), *(["--mqsc"] if mqsc else [])) == 0
    assert ("DELETE POLICY('LOG.Q')" if mqsc else "setmqspl -m QM1 -p LOG.Q -remove") in capsys.readouterr().out


def test_a_dump_that_is_nothing_known_is_refused_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "store")
    assert run("set", "--policies", store, "-p", "LOG.Q", "-s", "SHA512", "-a", "CN=alice,O=AMS") == 0
    dump = tmp_path / "dump.txt"
    dump.write_text("# queue manager QM1\nsetmqspl -m QM1 -p LOG.Q -s SHA512 -x 1\n", encoding="utf-8")
    assert run("diff", "--policies", store, "--from", str(dump)) == 2
    assert f"{dump}:2: unknown setmqspl option '-x'" in capsys.readouterr().err
