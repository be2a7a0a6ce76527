"""The embedded queue manager's file on disk: created private (0600), never through a symbolic
link, and refused when it is someone else's, readable by others, or not an embedded queue
manager's file at all (MQRC 2058).

Separate because these checks are about the file system and its permissions, not about SQLite
or MQ.
"""

from __future__ import annotations

from pathlib import Path

from ams._files import PRIVATE_FILE_MODE, check_private_file, write_new_file
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
    if path.exists():
        _refuse_foreign(path)
    elif not create:
        raise MQError(
            f"no embedded queue manager at {path} (the file does not exist; nothing was created): check the "
            f"name, or create it with `ams qm create {path}`",
            MQRC_Q_MGR_NAME_ERROR,
        )
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_new_file(path, b"", mode=PRIVATE_FILE_MODE)
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        # whoever pre-created the file (or its journal) world-readable, or owns it, reads every queue
        check_private_file(file, "queue manager file", "every queue, the policy queue included")


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _refuse_foreign(path: Path) -> None:
    """MQRC 2058 for a path that is not an embedded queue manager's file: not a regular file (a directory,
    a FIFO), or one that is neither empty (just created) nor SQLite (the README given to --qm by mistake)."""
    what = "a directory" if path.is_dir() else None if path.is_file() else "not a regular file"
    if what is None:
        try:
            with path.open("rb") as file:
                start = file.read(len(_SQLITE_MAGIC))
        except OSError as error:
            raise MQError(
                f"cannot read the embedded queue manager's file {path}: {error.strerror or error}; check its "
                "permissions",
                MQRC_Q_MGR_NAME_ERROR,
            ) from None
        what = "not SQLite" if start and start != _SQLITE_MAGIC else None
    if what is not None:
        raise MQError(
            f"{path} is not an embedded queue manager's file ({what}): check the name given to --qm",
            MQRC_Q_MGR_NAME_ERROR,
        )
