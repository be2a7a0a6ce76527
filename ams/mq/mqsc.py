"""The MQSC and setmqaut commands that set up, on IBM MQ, what the embedded queue manager is told
directly: local queues with the attributes this library relies on, aliases, and authorities."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from ams.mq.protected import ERROR_QUEUE, POLICY_QUEUE
from ams.mq.transport import QueueAttributes

_DEFAULTS = QueueAttributes()


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def define_qlocal(name: str, attributes: QueueAttributes) -> str:
    """``DEFINE QLOCAL(name) ... REPLACE`` naming every attribute that differs from MQ's default."""
    parts = [f"DEFINE QLOCAL({_quoted(name)})"]
    if attributes.backout_threshold != _DEFAULTS.backout_threshold:
        parts.append(f"BOTHRESH({attributes.backout_threshold})")
    if attributes.backout_queue:
        parts.append(f"BOQNAME({_quoted(attributes.backout_queue)})")
    if attributes.propctl != _DEFAULTS.propctl:
        parts.append(f"PROPCTL({attributes.propctl})")
    if attributes.default_persistent != _DEFAULTS.default_persistent:
        parts.append(f"DEFPSIST({'YES' if attributes.default_persistent else 'NO'})")
    if attributes.default_priority != _DEFAULTS.default_priority:
        parts.append(f"DEFPRTY({attributes.default_priority})")
    if attributes.max_message_length != _DEFAULTS.max_message_length:
        parts.append(f"MAXMSGL({attributes.max_message_length})")
    if attributes.shared_by_default != _DEFAULTS.shared_by_default:
        parts.append(f"DEFSOPT({'SHARED' if attributes.shared_by_default else 'EXCL'})")
    if attributes.shareable != _DEFAULTS.shareable:
        parts.append("SHARE" if attributes.shareable else "NOSHARE")
    if attributes.max_depth != _DEFAULTS.max_depth:
        parts.append(f"MAXDEPTH({attributes.max_depth})")
    if attributes.put_inhibited:
        parts.append("PUT(DISABLED)")
    if attributes.get_inhibited:
        parts.append("GET(DISABLED)")
    parts.append("REPLACE")
    return " ".join(parts)


def define_qalias(alias: str, target: str) -> str:
    """``DEFINE QALIAS(alias) TARGET(target) REPLACE``."""
    return f"DEFINE QALIAS({_quoted(alias)}) TARGET({_quoted(target)}) REPLACE"


@attrs.frozen
class Authority:
    """Authorities one principal needs on one object: ``object_type`` "qmgr" or "queue"."""

    object_type: str
    name: str
    authorities: tuple[str, ...]


def authorities_needed(
    queues: Iterable[str], *, writes_policies: bool = False, ledgers: Iterable[str] = ()
) -> list[Authority]:
    """What an application using this library needs: to connect and inquire, to read the policies
    (and, with ``writes_policies``, to replace them), to put refused messages on the error queue
    (as IBM's interceptor does), and to put, get, browse and inquire (BOTHRESH, BOQNAME, depth) on
    ``queues``. A queue's BOQNAME needs +put as well: list it among ``queues``. A re-protection
    proxy between two queue managers writes and looks up its delivery ledger on the target's
    ``ledgers`` queues (+put +browse +inq)."""
    needed = [
        Authority("qmgr", "", ("connect", "inq")),
        Authority("queue", POLICY_QUEUE, ("browse", "inq", *(("get", "put") if writes_policies else ()))),
        Authority("queue", ERROR_QUEUE, ("put", "inq")),
    ]
    needed += [Authority("queue", queue, ("put", "get", "browse", "inq")) for queue in queues]
    needed += [Authority("queue", ledger, ("put", "browse", "inq")) for ledger in ledgers]
    return needed


def setmqaut(qmgr: str, principal: str, needed: Iterable[Authority]) -> list[str]:
    """The ``setmqaut`` commands that grant ``needed`` to ``principal`` on ``qmgr``."""
    lines = []
    for item in needed:
        target = "-t qmgr" if item.object_type == "qmgr" else f"-t queue -n {item.name}"
        lines.append(f"setmqaut -m {qmgr} {target} -p {principal} " + " ".join(f"+{a}" for a in item.authorities))
    return lines


def set_authrec(principal: str, needed: Iterable[Authority]) -> list[str]:
    """The same grants as MQSC ``SET AUTHREC`` commands, for runmqsc (or a container's start-up MQSC)."""
    lines = []
    for item in needed:
        target = "OBJTYPE(QMGR)" if item.object_type == "qmgr" else f"PROFILE({_quoted(item.name)}) OBJTYPE(QUEUE)"
        granted = ",".join(a.upper() for a in item.authorities)
        lines.append(f"SET AUTHREC {target} PRINCIPAL({_quoted(principal)}) AUTHADD({granted})")
    return lines
