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


def mqsc_attributes(attributes: QueueAttributes) -> dict[str, int | str]:
    """Every attribute under its MQSC name, valued as ``DISPLAY QLOCAL`` shows it (``SHARE`` is
    YES or NO here: MQSC writes it as the keyword SHARE or NOSHARE)."""
    return {
        "BOTHRESH": attributes.backout_threshold,
        "BOQNAME": attributes.backout_queue,
        "PROPCTL": attributes.propctl,
        "DEFPSIST": "YES" if attributes.default_persistent else "NO",
        "DEFPRTY": attributes.default_priority,
        "MAXMSGL": attributes.max_message_length,
        "DEFSOPT": "SHARED" if attributes.shared_by_default else "EXCL",
        "SHARE": "YES" if attributes.shareable else "NO",
        "MAXDEPTH": attributes.max_depth,
        "PUT": "DISABLED" if attributes.put_inhibited else "ENABLED",
        "GET": "DISABLED" if attributes.get_inhibited else "ENABLED",
    }


_DEFAULT_MQSC = mqsc_attributes(_DEFAULTS)


def changed_attributes(attributes: QueueAttributes) -> list[str]:
    """The MQSC of each attribute that differs from MQ's default: ``BOTHRESH(3)``, ``NOSHARE``..."""
    parts = []
    for name, value in mqsc_attributes(attributes).items():
        if value == _DEFAULT_MQSC[name]:
            continue
        if name == "SHARE":
            parts.append("SHARE" if value == "YES" else "NOSHARE")
        else:
            parts.append(f"{name}({_quoted(str(value)) if name == 'BOQNAME' else value})")
    return parts


def define_qlocal(name: str, attributes: QueueAttributes) -> str:
    """``DEFINE QLOCAL(name) ... REPLACE`` naming every attribute that differs from MQ's default."""
    return " ".join([f"DEFINE QLOCAL({_quoted(name)})", *changed_attributes(attributes), "REPLACE"])


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
