"""An embedded queue manager is created explicitly (`ams qm create`, ``create=True``): a mistyped
file name is MQRC 2058, as an unknown queue manager name is on MQ, and nothing is made up."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from ams.cli.main import main
from ams.mq import MQMD, EmbeddedQueueManager, MQError
from ams.mq.connect import connect


def test_opening_a_missing_file_is_2058_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "typo.sqlite"
    with pytest.raises(MQError) as caught:
        EmbeddedQueueManager(missing)
    assert caught.value.reason == 2058
    assert "2058 (MQRC_Q_MGR_NAME_ERROR)" in caught.value.message
    assert f"no embedded queue manager at {missing}" in caught.value.message
    assert f"ams qm create {missing}" in caught.value.message
    with pytest.raises(MQError):
        connect(str(missing))
    assert not missing.exists() and list(tmp_path.iterdir()) == []
    # twin: create=True makes it (0600), and then it opens without
    EmbeddedQueueManager(missing, create=True).define_queue("APP.Q")
    assert os.stat(missing).st_mode & 0o777 == 0o600
    assert "APP.Q" in EmbeddedQueueManager(missing).queues()


def test_the_command_line_creates_explicitly_and_refuses_a_typo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    good, typo = tmp_path / "qm.sqlite", tmp_path / "qn.sqlite"
    assert main(["qm", "create", str(good)]) == 0
    assert f"created queue manager QM in {good}" in capsys.readouterr().out
    assert main(["qm", "create", str(good)]) == 2  # as crtmqm refuses an existing queue manager
    assert "exists already" in capsys.readouterr().err
    assert main(["qm", "define", "APP.Q", "--qm", str(good)]) == 0
    for argv in (
        ["qm", "define", "APP.Q", "--qm", str(typo)],
        ["qm", "show", "--qm", str(typo)],
        ["get", "APP.Q", "--qm", str(typo), "--policies", str(tmp_path)],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "2058 (MQRC_Q_MGR_NAME_ERROR)" in err and f"ams qm create {typo}" in err
        assert "2085" not in err
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"lost?\n")))
    assert main(["put", "APP.Q", "--qm", str(typo), "--policies", str(tmp_path)]) == 2
    assert not typo.exists()
    # the default file, too, must be created first; `ams qm create` with no file makes it
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AMS_QM", raising=False)
    assert main(["qm", "show"]) == 2
    assert "ams qm create ams-qm.sqlite" in capsys.readouterr().err
    assert main(["qm", "create"]) == 0
    assert (tmp_path / "ams-qm.sqlite").is_file()
    assert main(["qm", "show"]) == 0
    EmbeddedQueueManager(good).connect("app").put1("APP.Q", MQMD(), b"kept")
    assert EmbeddedQueueManager(good).connect("check").depth("APP.Q") == 1


def test_a_file_that_is_no_queue_manager_is_2058_and_left_alone(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# not a queue manager\n")
    (tmp_path / "dir.sqlite").mkdir()
    os.mkfifo(tmp_path / "fifo.sqlite")
    for path, what in ((readme, "not SQLite"), (tmp_path / "dir.sqlite", "a directory"),
                       (tmp_path / "fifo.sqlite", "not a regular file")):  # fmt: skip
        with pytest.raises(MQError) as caught:
            EmbeddedQueueManager(path, create=True)
        assert caught.value.reason == 2058
        assert f"{path} is not an embedded queue manager's file ({what})" in caught.value.message
    assert readme.read_text() == "# not a queue manager\n"
    # twin: an empty file (as create leaves it before SQLite writes) and an SQLite one open
    (tmp_path / "empty.sqlite").touch(mode=0o600)
    EmbeddedQueueManager(tmp_path / "empty.sqlite").define_queue("APP.Q")
    assert "APP.Q" in EmbeddedQueueManager(tmp_path / "empty.sqlite").queues()
