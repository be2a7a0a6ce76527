"""How ``ams get`` and ``ams browse`` write the messages they read.

* ``--json``: one JSON object per message, one per line (keys: :data:`JSON_KEYS`).
* ``--output-dir DIR``: ``NNN.body`` (the body exactly as MQ handed it over, MQRFH2 headers
  included, so that it can be put again with its Format) and ``NNN.mqmd.json`` (the same object
  as ``--json`` without the body), created 0600 (a payload may be what decryption revealed) with
  ``O_EXCL | O_NOFOLLOW`` in a directory that is not a link: nothing is overwritten.
* a terminal: a header line per message (MsgId, Format, length, QoP, signer), its properties,
  then its payload with every control character escaped, so that a two-line message reads as
  one and no binary MQRFH2 or terminal escape reaches the screen.
* anything else (a pipe, a file): the body and a newline, as before, since scripts read it so
  (``--framed`` frames it there too).
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

from ams._files import PRIVATE_FILE_MODE, make_private_directory, write_new_file
from ams.dn import DistinguishedName
from ams.errors import clip
from ams.mq.properties import read_properties
from ams.mq.protected import ProtectedMessage

JSON_KEYS = (
    "index",
    "MsgId",
    "CorrelId",
    "Format",
    "Encoding",
    "CCSID",
    "Persistence",
    "Priority",
    "PutApplName",
    "PutDate",
    "PutTime",
    "ReplyToQ",
    "ReplyToQMgr",
    "BackoutCount",
    "properties",
    "payload_format",
    "length",
    "qop",
    "signer",
    "body",
    "body_encoding",
)
"""The keys of a message's JSON object, in order. MQMD fields keep their MQ names (MsgId and
CorrelId in hex); ``properties`` is ``{folder: {name: value}}`` from the leading MQRFH2 headers;
``payload_format`` is the Format of what follows them; ``length`` the body's length in bytes as
got; ``qop`` and ``signer`` (a DN, "" when unsigned) what unprotecting found; ``body`` the payload
after the MQRFH2 headers, as text when ``body_encoding`` is "text" (UTF-8 with no control
character but tab, newline and carriage return) and base64 when it is "base64"."""


def _text_or_none(payload: bytes) -> str | None:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if all(c.isprintable() or c in "\t\n\r" for c in text) else None


def describe(message: ProtectedMessage, index: int, *, with_body: bool = True) -> dict[str, Any]:
    """The JSON object of one message (see :data:`JSON_KEYS`)."""
    md = message.md
    properties = read_properties(md, message.body)
    payload = message.body[properties.payload_offset :]
    record: dict[str, Any] = {
        "index": index,
        "MsgId": md.msg_id.hex(),
        "CorrelId": md.correl_id.hex(),
        "Format": md.format.strip(),
        "Encoding": md.encoding,
        "CCSID": md.ccsid,
        "Persistence": md.persistence,
        "Priority": md.priority,
        "PutApplName": md.put_appl_name.strip(),
        "PutDate": md.put_date,
        "PutTime": md.put_time,
        "ReplyToQ": md.reply_to_q.strip(),
        "ReplyToQMgr": md.reply_to_qmgr.strip(),
        "BackoutCount": md.backout_count,
        "properties": properties.folders,
        "payload_format": properties.format.strip(),
        "length": len(message.body),
        "qop": message.qop.name,
        "signer": str(DistinguishedName.from_x509(message.signer.subject)) if message.signer is not None else "",
    }
    if with_body:
        text = _text_or_none(payload)
        record["body"] = text if text is not None else base64.b64encode(payload).decode("ascii")
        record["body_encoding"] = "text" if text is not None else "base64"
    return record


def escaped(payload: bytes) -> str:
    """``payload`` for a terminal: UTF-8 where it decodes, every control character and undecodable
    byte escaped (``\\n``, ``\\x1b``, ``\\xff``)."""
    text = payload.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def framed(message: ProtectedMessage, index: int) -> str:
    """The terminal's view of one message: a header line, its properties, the escaped payload."""
    record = describe(message, index, with_body=False)
    signer = f" signer={json.dumps(record['signer'])}" if record["signer"] else ""
    lines = [
        f"--- message {index}: MsgId={record['MsgId']} Format={clip(record['Format'], 8) or '-'} "
        f"length={record['length']} QoP={record['qop']}{signer}"
    ]
    for folder, values in record["properties"].items():
        for name, value in values.items():
            lines.append(f"    {clip(folder, 40)}.{clip(name, 80)} = {clip(value, 400)}")
    offset = read_properties(message.md, message.body).payload_offset
    lines.append(escaped(message.body[offset:]))
    return "\n".join(lines) + "\n"


class MessageWriter:
    """Writes each message as the command line asked: ``as_json``, to ``output_dir``, framed (a
    terminal, or ``frame``) or raw."""

    def __init__(self, *, as_json: bool = False, output_dir: Path | None = None, frame: bool | None = None) -> None:
        self.as_json, self.output_dir = as_json, output_dir
        self.frame = sys.stdout.isatty() if frame is None else frame
        if output_dir is not None:
            make_private_directory(output_dir, follow_symlink=False)

    def write(self, message: ProtectedMessage, index: int) -> None:
        """Write one message; an existing file in the output directory raises UsageError (the
        message is then not committed)."""
        if self.output_dir is not None:
            record = describe(message, index, with_body=False)
            write_new_file(self.output_dir / f"{index:03d}.body", message.body, mode=PRIVATE_FILE_MODE)
            metadata = json.dumps(record, indent=2).encode() + b"\n"
            write_new_file(self.output_dir / f"{index:03d}.mqmd.json", metadata, mode=PRIVATE_FILE_MODE)
            return
        if self.as_json:
            data = (json.dumps(describe(message, index)) + "\n").encode()
        elif self.frame:
            data = framed(message, index).encode("utf-8")
        else:
            data = message.body + b"\n"
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
