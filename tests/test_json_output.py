"""--json on `ams policy show/check/diff` and `ams qm show` (stable keys, read back as JSON), `qm show`
in MQSC's attribute names, and counts that agree with their nouns. (`doctor --json` is in
tests/test_doctor.py, `proxy check --json` in tests/test_proxy_config.py, `get --json` in
tests/test_get_output.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ams.cli.main import main
from ams.errors import plural
from ams.mq import MQMD, EmbeddedQueueManager
from tests.test_policy_cli import DUMP


def write(store: Path, *lines: str) -> Path:
    store.mkdir(exist_ok=True)
    (store / "all.spl").write_text("\n".join(lines) + "\n")
    return store


def test_policy_show_json_has_dspmqspl_fields_under_stable_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = write(
        tmp_path / "store",
        'setmqspl -m QM -p PAY.Q -s SHA256 -e AES256 -a "CN=alice,O=AMS,C=GB" -r "CN=bob, O=AMS, C=GB"',
        "setmqspl -m QM -p LOG.Q -s SHA512",
        'setmqspl -m QM -p FAST.Q -s NONE -e AES256 -r "CN=bob,O=AMS,C=GB" -c "*"',
    )
    assert main(["policy", "show", "--policies", str(store), "--json"]) == 0
    shown = {p["policy"]: p for p in json.loads(capsys.readouterr().out)}
    assert shown["PAY.Q"] == {
        "policy": "PAY.Q",
        "qop": "PRIVACY",
        "signature_algorithm": "SHA256",
        "encryption_algorithm": "AES256",
        "signers": ["CN=alice,O=AMS,C=GB"],
        "recipients": ["CN=bob,O=AMS,C=GB"],
        "toleration": 0,
        "key_reuse": 0,
    }
    assert (shown["FAST.Q"]["qop"], shown["FAST.Q"]["key_reuse"]) == ("CONFIDENTIALITY", "UNLIMITED")
    assert (shown["LOG.Q"]["qop"], shown["LOG.Q"]["recipients"], shown["LOG.Q"]["key_reuse"]) == ("INTEGRITY", [], 0)
    assert main(["policy", "show", "--policies", str(store), "-p", "LOG.Q", "--json"]) == 0
    assert [p["policy"] for p in json.loads(capsys.readouterr().out)] == ["LOG.Q"]


def test_policy_check_json_and_plurals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = write(tmp_path / "one", "setmqspl -m QM -p A -s SHA256")
    assert main(["policy", "check", "--policies", str(one)]) == 0
    assert capsys.readouterr().out.startswith("1 policy in ")
    two = write(tmp_path / "two", "setmqspl -m QM -p A -s SHA256", "setmqspl -m QM -p B -s SHA256")
    assert main(["policy", "check", "--policies", str(two), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "directory": str(two),
        "valid": True,
        "policies": ["A", "B"],
        "errors": [],
    }
    # the rejected twin: a file with a bad line is not valid, and says why
    (two / "bad.spl").write_text("setmqspl -m QM -p C -s SHA257\n")
    assert main(["policy", "check", "--policies", str(two), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False and len(report["errors"]) == 1 and "SHA257" in report["errors"][0]
    assert main(["policy", "check", "--policies", str(two)]) == 1
    assert "1 error in " in capsys.readouterr().err
    assert [plural(n, "policy", "policies") for n in (0, 1, 2)] == ["0 policies", "1 policy", "2 policies"]
    assert plural(1_000, "error") == "1,000 errors"


def test_policy_diff_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = write(tmp_path / "store", 'setmqspl -m QM -p A -s SHA512 -a "CN=s,O=X"', "setmqspl -m QM -p NEW -s SHA256")
    dump = tmp_path / "dump.txt"
    dump.write_text(DUMP)
    assert main(["policy", "diff", "--policies", str(store), "--from", str(dump), "--json"]) == 1
    changes = {c["policy"]: c for c in json.loads(capsys.readouterr().out)}
    assert {name: c["change"] for name, c in changes.items()} == {"A": "change", "NEW": "add", "OLD": "remove"}
    assert changes["A"]["before"]["signature_algorithm"] == "SHA256"
    assert changes["A"]["after"]["signers"] == ["CN=s,O=X"]
    assert "signature algorithm: SHA256 -> SHA512" in changes["A"]["details"]
    assert changes["NEW"]["before"] is None and changes["OLD"]["after"] is None
    write(tmp_path / "store", "setmqspl -m QM -p A -s SHA256", "setmqspl -m QM -p OLD -s SHA1")
    assert main(["policy", "diff", "--policies", str(store), "--from", str(dump), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_qm_show_speaks_mqsc_in_text_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    qm = ["--qm", str(tmp_path / "admin.sqlite")]
    assert main(["qm", "create", *qm]) == 0
    assert main(["qm", "define", "APP.Q", "--bothresh", "3", "--boqname", "APP.BOQ", "--maxdepth", "10", *qm]) == 0
    assert main(["qm", "define", "APP.BOQ", "--defpsist", "yes", "--noshare", *qm]) == 0
    assert main(["qm", "alias", "APP.ALIAS", "APP.Q", *qm]) == 0
    EmbeddedQueueManager(tmp_path / "admin.sqlite").connect("app").put1("APP.Q", MQMD(), b"x")
    capsys.readouterr()
    assert main(["qm", "show", "APP.Q", *qm]) == 0
    line = capsys.readouterr().out.strip()
    assert line.split()[1:] == ["QLOCAL", "CURDEPTH(1)", "BOTHRESH(3)", "BOQNAME('APP.BOQ')", "MAXDEPTH(10)"]
    assert main(["qm", "show", "APP.BOQ", *qm]) == 0
    assert capsys.readouterr().out.split()[3:] == ["DEFPSIST(YES)", "NOSHARE"]
    assert main(["qm", "show", "--json", *qm]) == 0
    queues = {q["QUEUE"]: q for q in json.loads(capsys.readouterr().out)}
    assert queues["APP.ALIAS"] == {"QUEUE": "APP.ALIAS", "TYPE": "QALIAS", "TARGET": "APP.Q"}
    app = queues["APP.Q"]
    assert list(app) == [
        "QUEUE",
        "TYPE",
        "CURDEPTH",
        "BOTHRESH",
        "BOQNAME",
        "PROPCTL",
        "DEFPSIST",
        "DEFPRTY",
        "MAXMSGL",
        "DEFSOPT",
        "SHARE",
        "MAXDEPTH",
        "PUT",
        "GET",
    ]
    assert (app["CURDEPTH"], app["BOTHRESH"], app["BOQNAME"], app["MAXDEPTH"], app["DEFPSIST"]) == (
        1,
        3,
        "APP.BOQ",
        10,
        "NO",
    )
    assert (queues["APP.BOQ"]["DEFPSIST"], queues["APP.BOQ"]["SHARE"]) == ("YES", "NO")
    assert not any("_" in key for q in queues.values() for key in q)  # no Python attribute names
