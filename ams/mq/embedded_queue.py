"""An open queue of the embedded queue manager (what MQOPEN returns): its put, get, browse and
peek, each checked against the modes it was opened for.

Separate from ams/mq/embedded_connection.py, which does the work: this is the handle.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from ams.mq.embedded_sqlite import _mq_errors, file_failed, translates_itself
from ams.mq.mqmd import MQMD
from ams.mq.transport import ANY, Match, Message, MQError
from ams.mqconstants import (
    MQRC_NOT_OPEN_FOR_BROWSE,
    MQRC_NOT_OPEN_FOR_INPUT,
    MQRC_NOT_OPEN_FOR_OUTPUT,
)

if TYPE_CHECKING:
    from ams.mq.embedded_connection import EmbeddedConnection


@_mq_errors
class EmbeddedQueue:
    """An open queue of the embedded queue manager."""

    def __init__(
        self,
        connection: EmbeddedConnection,
        name: str,
        local: str,
        handle: str,
        *,
        output: bool,
        input: bool,
        browse: bool,
    ) -> None:
        self.connection = connection
        self.name = name
        self.local = local
        self._handle = handle
        self._modes = {"output": output, "input": input, "browse": browse}
        self._output, self._input = output, input
        self._cursor: tuple[int, int] | None = None

    def _gets_allowed(self) -> None:
        self.connection._gets_allowed(self.local)

    def _need(self, mode: str) -> None:
        if not self._modes[mode]:
            reason = {"output": MQRC_NOT_OPEN_FOR_OUTPUT, "input": MQRC_NOT_OPEN_FOR_INPUT}.get(
                mode, MQRC_NOT_OPEN_FOR_BROWSE
            )
            raise MQError(f"{self.name} was not opened for {mode}", reason)

    @translates_itself
    def put(self, md: MQMD, body: bytes, *, syncpoint: bool = False) -> MQMD:
        """MQPUT; the MQMD comes back as the queue manager completed it."""
        try:
            if not self._output:  # asked here, not through _need: a put's per-message cost
                self._need("output")
            return self.connection._put(self.connection._lookup(self.name), md, body, syncpoint=syncpoint)
        except (sqlite3.Error, OSError) as error:
            raise file_failed(error) from None

    @translates_itself
    def get(
        self,
        *,
        wait: float = 0.0,
        syncpoint: bool = False,
        msg_id: bytes | None = None,
        correl_id: bytes | None = None,
        force_rfh2: bool = True,
    ) -> Message:
        """MQGET (the first message matching ``msg_id`` and ``correl_id``, each if given and not all
        zeros); ``force_rfh2`` False applies the queue's PROPCTL, as MQ does without the GMO option."""
        try:
            if not self._input:  # asked here, not through _need: a get's per-message cost
                self._need("input")
            # GET(DISABLED): asked by the connection's get, with the writer held
            match = ANY if msg_id is None and correl_id is None else Match.of(msg_id, correl_id)
            return self.connection._get(self.local, wait=wait, syncpoint=syncpoint, match=match, force_rfh2=force_rfh2)
        except (sqlite3.Error, OSError) as error:
            raise file_failed(error) from None

    def browse_first(
        self, *, msg_id: bytes | None = None, correl_id: bytes | None = None, force_rfh2: bool = True
    ) -> Message:
        """MQGET with MQGMO_BROWSE_FIRST (matching ``msg_id`` and ``correl_id``, if given)."""
        self._need("browse")
        self._gets_allowed()
        self._cursor, message = self.connection._browse(self.local, None, force_rfh2, Match.of(msg_id, correl_id))
        return message

    def browse_next(
        self, *, msg_id: bytes | None = None, correl_id: bytes | None = None, force_rfh2: bool = True
    ) -> Message:
        """MQGET with MQGMO_BROWSE_NEXT (the next message after the cursor with ``msg_id`` and
        ``correl_id``, if given: the pymqi stand-in's version-1 GMO matches on them)."""
        self._need("browse")
        self._gets_allowed()
        match = Match.of(msg_id, correl_id)
        self._cursor, message = self.connection._browse(self.local, self._cursor, force_rfh2, match)
        return message

    def peek(self, *, msg_id: bytes | None = None, correl_id: bytes | None = None, force_rfh2: bool = True) -> Message:
        """The message a get would return now, left on the queue (how the pymqi stand-in models MQRC 2080)."""
        self._need("input")
        self._gets_allowed()
        return self.connection._browse(self.local, None, force_rfh2, Match.of(msg_id, correl_id))[1]

    def peek_browse(
        self,
        after_cursor: bool | None,
        *,
        msg_id: bytes | None = None,
        correl_id: bytes | None = None,
        force_rfh2: bool = True,
    ) -> Message:
        """The message ``browse_first`` (None) or ``browse_next`` (True) would return, the cursor unmoved."""
        self._need("browse")
        self._gets_allowed()
        cursor = self._cursor if after_cursor else None
        return self.connection._browse(self.local, cursor, force_rfh2, Match.of(msg_id, correl_id))[1]

    def close(self) -> None:
        """MQCLOSE."""
        self._cursor = None
        if self._modes["input"]:
            self.connection._unregister(self._handle)
