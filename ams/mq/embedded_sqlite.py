"""How the embedded queue manager's classes meet SQLite: transactions that serialise processes
(BEGIN IMMEDIATE, after this process's connections wrote what they held), and SQLite's errors
raised as MQ's (MQRC 2195).

Separate because every class of the embedded queue manager uses them.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from ams.mq.embedded_wanted import begin_immediate
from ams.mq.embedded_writer import release_others
from ams.mq.transport import MQError
from ams.mqconstants import MQRC_UNEXPECTED_ERROR

_Class = TypeVar("_Class", bound=type)
_Function = TypeVar("_Function", bound=Callable[..., Any])
_INLINE: set[Callable[..., Any]] = set()  # the methods marked by translates_itself


def file_failed(error: sqlite3.Error | OSError) -> MQError:
    """SQLite's ``error`` (a locked, full, missing or damaged file), or the system's about the files
    beside it (the get journals, the writer's lock file: no descriptor left, EMFILE), as MQ's
    failure, MQRC 2195: only MQError leaves the queue manager."""
    return MQError(f"the embedded queue manager's file failed ({type(error).__name__}: {error})", MQRC_UNEXPECTED_ERROR)


def _translated(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (sqlite3.Error, OSError) as error:  # an MQ failure like any other
            raise file_failed(error) from None

    return call


def translates_itself(method: _Function) -> _Function:
    """Marks a public method whose whole body is ``try: ... except (sqlite3.Error, OSError) as error:
    raise file_failed(error) from None``, which :func:`_mq_errors` then leaves unwrapped: a get's and a
    put's per-message call spared the wrapper's frame (a quarter of a microsecond)."""
    _INLINE.add(method)
    return method


def _mq_errors(cls: _Class) -> _Class:
    """SQLite's and the system's errors from the public methods of ``cls`` become MQError (MQRC 2195)."""
    for name, member in list(vars(cls).items()):
        if callable(member) and (name == "__init__" or not name.startswith("_")) and member not in _INLINE:
            setattr(cls, name, _translated(member))
    return cls


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, so concurrent processes serialise their changes; the connections
    of this process holding the writer of ``database`` write first (they would keep it from us),
    and other processes' holders hear that we wait (ams/mq/embedded_wanted.py)."""

    def __init__(self, db: sqlite3.Connection, database: str, me: object = None) -> None:
        self.db, self.database, self.me = db, database, me

    def __enter__(self) -> sqlite3.Connection:
        release_others(self.database, self.me)
        begin_immediate(self.db, self.database)
        return self.db

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
