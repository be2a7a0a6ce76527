"""The embedded queue manager's file on disk: created private (0600), never through a symbolic
link, and refused when it is someone else's, readable by others, or not an embedded queue
manager's file at all (MQRC 2058).

Separate because these checks are about the file system and its permissions, not about SQLite
or MQ.
"""

from __future__ import annotations

import contextlib
import sqlite3
import urllib.parse
from pathlib import Path

from ams._files import PRIVATE_FILE_MODE, check_private_file, private_file_problems, write_new_file
from ams.errors import UsageError
from ams.mq.transport import MQError
from ams.mqconstants import MQRC_Q_MGR_NAME_ERROR


def _create_private(path: Path, *, create: bool) -> None:
    """The database file, created 0600 when ``create`` (SQLite gives its -wal and -shm files the same
    mode); MQRC 2058 for a missing one otherwise."""
    if path.is_symlink():
        raise UsageError(
            f"refusing to open queue manager file {path}: it is a symbolic link; give the real path of the file"
        )
    existed = path.exists()
    if existed:
        _refuse_not_regular(path)
    elif not create:
        raise MQError(
            f"no embedded queue manager at {path} (the file does not exist; nothing was created): check the "
            f"name, or create it with `ams qm create {path}`",
            MQRC_Q_MGR_NAME_ERROR,
        )
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_new_file(path, b"", mode=PRIVATE_FILE_MODE)
    for file in (Path(f"{path}-wal"), Path(f"{path}-shm"), path):
        if file is path and existed:  # once its write-ahead log is known to be ours: SQLite reads it
            _refuse_not_sqlite(path)
        # whoever pre-created the file (or its journal) world-readable, or owns it, reads every queue
        check_private_file(file, "queue manager file", "every queue, the policy queue included")


def _refuse_not_regular(path: Path) -> None:
    """MQRC 2058 for a path that is not a regular file (a directory, a FIFO)."""
    if not path.is_file():
        _refuse(path, "a directory" if path.is_dir() else "not a regular file")


def _refuse(path: Path, what: str) -> None:
    raise MQError(
        f"{path} is not an embedded queue manager's file ({what}): check the name given to --qm",
        MQRC_Q_MGR_NAME_ERROR,
    )


def _refuse_not_sqlite(path: Path) -> None:
    """MQRC 2058 for a file that is neither empty (just created) nor SQLite (the README given to --qm
    by mistake).

    Asked of SQLite, not read with a descriptor of our own: closing any descriptor of a file drops
    every POSIX lock the process holds on it, SQLite's too, which SQLite's own descriptors avoid. A
    second queue manager object on a file this process had connections to dropped their shared lock,
    and another process's last connection then took itself for the file's last user, checkpointed
    and deleted the write-ahead log under them ("database disk image is malformed")."""
    if private_file_problems(path):  # refused next (not ours, so no connection of ours has it open): read
        try:
            with path.open("rb") as file:
                start = file.read(len(_SQLITE_MAGIC))
        except OSError as error:
            raise MQError(
                f"cannot read the embedded queue manager's file {path}: {error.strerror or error}; check its "
                "permissions",
                MQRC_Q_MGR_NAME_ERROR,
            ) from None
        if start and start != _SQLITE_MAGIC:
            _refuse(path, "not SQLite")
        return
    try:
        uri = "file:" + urllib.parse.quote(str(path.absolute())) + "?mode=rw"  # never created here
        with contextlib.closing(sqlite3.connect(uri, uri=True, isolation_level=None)) as db:
            db.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as error:
        if getattr(error, "sqlite_errorcode", 0) & 0xFF != _SQLITE_NOTADB:
            raise MQError(
                f"cannot read the embedded queue manager's file {path}: {error}; check its permissions",
                MQRC_Q_MGR_NAME_ERROR,
            ) from None
        _refuse(path, "not SQLite")


_SQLITE_NOTADB = 26
_SQLITE_MAGIC = b"SQLite format 3\x00"
