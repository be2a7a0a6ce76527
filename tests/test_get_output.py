"""What `ams get` and `ams browse` write: --json, --output-dir, framed for a terminal, raw in a pipe;
and the MQRFH2 properties they decode (ams/mq/properties.py)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from ams.cli.main import main
from ams.cli.message_output import JSON_KEYS, escaped
from ams.keys import Keystore
from ams.mq import MQMD, EmbeddedQueueManager, ProtectedQueueManager
from ams.mq.properties import read_properties
from ams.mq.rfh2 import with_usr_property
from ams.policy import PolicyStore
from tests.conftest import rfh2
from tests.test_mq_cli import as_user, define

POLICIES = Path(__file__).parents[1] / "policies"
ALICE = "CN=alice,O=AMS,C=GB"


@pytest.fixture
def world(tmp_path: Path) -> Path:
    assert main(["pki", "init", str(tmp_path / "pki"), "--users", "alice,bob"]) == 0
    define(tmp_path / "qm.sqlite")
    return tmp_path


def put(world: Path, *bodies: bytes, property_value: str | None = None) -> None:
    """Put ``bodies`` to DEMO.PRIVACY as alice (with a usr.Note property when given)."""
    qm = EmbeddedQueueManager(world / "qm.sqlite").connect("test")
    keystore = Keystore.from_conf(world / "pki" / "alice" / "keystore.conf")
    queue = ProtectedQueueManager(qm, keystore, PolicyStore.from_directory(POLICIES)).open("DEMO.PRIVACY", output=True)
    for body in bodies:
        md, data = MQMD(format="MQSTR"), body
        if property_value is not None:
            md, data = with_usr_property(md, body, "Note", property_value)
        queue.put(md, data)
    queue.close()
    qm.close()


def depth(world: Path) -> int:
    qm = EmbeddedQueueManager(world / "qm.sqlite").connect("spy")
    try:
        return qm.depth("DEMO.PRIVACY")
    finally:
        qm.close()


def test_json_is_one_object_per_line_with_text_or_base64_bodies(
    world: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    put(world, b"line one\nline two", b"\x00\x1b[31mbinary\xff")
    put(world, b"with a property", property_value="ship <today> & pay")
    assert main(as_user(world, "bob", "browse", "DEMO.PRIVACY", "--json")) == 0
    lines = capsysbinary.readouterr().out.decode("ascii").splitlines()
    assert len(lines) == 3  # a two-line message is still one line
    records = [json.loads(line) for line in lines]
    assert all(tuple(record) == JSON_KEYS for record in records)
    first, second, third = records
    assert (first["index"], first["Format"], first["qop"], first["signer"]) == (1, "MQSTR", "PRIVACY", ALICE)
    assert len(first["MsgId"]) == 48 and bytes.fromhex(first["MsgId"]) != bytes(24)
    assert (first["body"], first["body_encoding"], first["length"]) == ("line one\nline two", "text", 17)
    assert second["body_encoding"] == "base64"  # control characters and bytes that are not UTF-8
    assert base64.b64decode(second["body"]) == b"\x00\x1b[31mbinary\xff"
    assert third["Format"] == "MQHRF2" and third["payload_format"] == "MQSTR"
    assert third["properties"] == {"usr": {"Note": "ship <today> & pay"}}
    assert third["body"] == "with a property"  # the payload after the MQRFH2, not the header's bytes
    assert main(as_user(world, "bob", "get", "DEMO.PRIVACY", "--json")) == 0
    assert [json.loads(line)["MsgId"] for line in capsysbinary.readouterr().out.splitlines()] == [
        record["MsgId"] for record in records
    ]
    assert depth(world) == 0


def test_framed_output_marks_each_message_and_escapes_control_characters(
    world: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    put(world, b"line one\nline two", b"\x1b]0;owned\x07 bell")
    put(world, b"props", property_value="v")
    assert main(as_user(world, "bob", "browse", "DEMO.PRIVACY", "--framed")) == 0
    out = capsysbinary.readouterr().out.decode("utf-8")
    headers = [line for line in out.splitlines() if line.startswith("--- message ")]
    assert len(headers) == 3 and f'QoP=PRIVACY signer="{ALICE}"' in headers[0] and "length=17" in headers[0]
    assert "line one\\nline two" in out and "\\x1b]0;owned\\x07 bell" in out
    assert "\x1b" not in out and "\x07" not in out and "RFH " not in out  # no raw escape, no raw MQRFH2
    assert "    usr.Note = v" in out
    # the rejected twin: not a terminal and no --framed, so each body and a newline, as scripts expect
    assert main(as_user(world, "bob", "browse", "DEMO.PRIVACY")) == 0
    raw = capsysbinary.readouterr().out
    assert raw.startswith(b"line one\nline two\n\x1b]0;owned\x07 bell\nRFH ")


def test_framed_is_the_default_on_a_terminal(
    world: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    put(world, b"a\nb")
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert main(as_user(world, "bob", "get", "DEMO.PRIVACY")) == 0
    assert capsysbinary.readouterr().out.decode().splitlines()[1:] == ["a\\nb"]


def test_output_dir_writes_body_and_mqmd_and_never_overwrites(
    world: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    put(world, b"first", property_value="x")
    out = world / "out"
    assert main(as_user(world, "bob", "get", "DEMO.PRIVACY", "--output-dir", str(out))) == 0
    assert sorted(os.listdir(out)) == ["001.body", "001.mqmd.json"]
    body = (out / "001.body").read_bytes()
    assert body.startswith(b"RFH ") and body.endswith(b"first")  # as MQ handed it over, with its MQRFH2
    metadata = json.loads((out / "001.mqmd.json").read_text())
    assert metadata["Format"] == "MQHRF2" and metadata["properties"] == {"usr": {"Note": "x"}}
    assert "body" not in metadata and metadata["length"] == len(body)
    assert (out / "001.body").stat().st_mode & 0o777 == 0o600 and out.stat().st_mode & 0o777 == 0o700
    # a second run into the same directory meets 001.body: refused, and the message stays on its queue
    put(world, b"second")
    capsysbinary.readouterr()
    assert main(as_user(world, "bob", "get", "DEMO.PRIVACY", "--output-dir", str(out))) == 2
    assert b"refusing to write" in capsysbinary.readouterr().err
    assert depth(world) == 1 and (out / "001.body").read_bytes() == body
    # a link as the directory is refused too
    (world / "link").symlink_to(world / "elsewhere", target_is_directory=True)
    (world / "elsewhere").mkdir()
    assert main(as_user(world, "bob", "get", "DEMO.PRIVACY", "--output-dir", str(world / "link"))) == 2
    assert depth(world) == 1 and not os.listdir(world / "elsewhere")


def _rfh2(folders: bytes, length: int | None = None) -> bytes:
    return rfh2(folders, length=length)


def test_properties_of_groups_and_escapes_and_of_broken_headers() -> None:
    md = MQMD(format="MQHRF2", encoding=546)
    body = _rfh2(b"<jms><Dst>queue:///Q</Dst></jms><usr><g><a dt='i4'>5</a><b xsi:nil='true'/></g></usr>") + b"x"
    found = read_properties(md, body)
    assert found.folders == {"jms": {"Dst": "queue:///Q"}, "usr": {"g.a": "5", "g.b": ""}}
    assert body[found.payload_offset :] == b"x" and found.format == "MQSTR   "
    # the rejected twins: a header whose length runs past the body, or a body without MQHRF2 Format
    assert read_properties(md, _rfh2(b"<usr><a>1</a></usr>", length=9999)).folders == {}
    assert read_properties(MQMD(format="MQSTR"), body).payload_offset == 0


def test_escaped_leaves_no_control_character() -> None:
    assert escaped(b"ok \xe2\x82\xac\n\x1b\xff\xe2\x80\xae") == "ok \u20ac\\n\\x1b\\xff\\u202e"


def test_hostile_property_headers_cost_work_in_proportion_and_give_at_most_1000_properties() -> None:
    md = MQMD(format="MQHRF2", encoding=546)
    many = _rfh2(b"<usr>" + b"<a>1</a>" * 50_000 + b"</usr>")
    assert len(read_properties(md, many).folders["usr"]) == 1  # one name, set again and again
    distinct = _rfh2(b"<usr>" + b"".join(b"<p%d>1</p%d>" % (i, i) for i in range(5000)) + b"</usr>")
    assert len(read_properties(md, distinct).folders["usr"]) == 1000
    deep = _rfh2(b"<usr>" + b"<g>" * 50_000 + b"<b>x</b>" * 50_000)  # nesting no header has: reading stops
    assert read_properties(md, deep).folders == {}
    shallow = _rfh2(b"<usr>" + b"<g>" * 5 + b"<b>x</b>")
    assert read_properties(md, shallow).folders == {"usr": {"g.g.g.g.g.b": "x"}}
