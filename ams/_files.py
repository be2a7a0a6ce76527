"""Files and directories that whoever can write next to them cannot redirect.

Keys, keystores, policy files and queue manager databases are written into directories that
other people may also be able to write to (a shared ``/tmp``, a checkout, a mounted volume).
Plain ``open(path, "w")`` follows a symbolic link planted at ``path`` and truncates whatever it
points at, and ``chmod`` after writing leaves a window in which a private key is readable by
everyone the umask allows. The helpers here never follow a link at the final name, never
overwrite an existing file unless asked to replace it atomically, and give a file its final mode
before its first byte is written.

Every failure is an :class:`ams.AmsError` that names the path: a file or link already in the way
is a :class:`~ams.errors.UsageError`; any other operating-system error (permissions, a missing
parent, a full disk) is raised as the ``error`` class the caller chooses, ``UsageError`` unless
told otherwise.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from ams.errors import AmsError, ConfigurationError, UsageError, clip

PRIVATE_FILE_MODE = 0o600
"""Mode of private keys, PKCS#12 files and anything holding a password."""

PUBLIC_FILE_MODE = 0o644
"""Mode of certificates and other files anyone may read."""

PRIVATE_DIRECTORY_MODE = 0o700
"""Mode of the directories :func:`make_private_directory` creates."""

# O_NOFOLLOW and O_CLOEXEC are missing on some platforms; O_EXCL alone already refuses a link there
_NEW_FILE_FLAGS: int = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_DIRECTORY_FLAGS: int = (
    os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
)


# O_NONBLOCK: opening a FIFO for reading would wait for a writer; it is refused after fstat instead
_READ_FLAGS: int = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
_READ_CHUNK = 1 << 20

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe), which could block a reader for ever"),
    (stat.S_ISCHR, "a character device, which could be endless"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


def _kind_of(mode: int) -> str:
    return next((text for test, text in _KINDS if test(mode)), "not a regular file")


def read_bounded(
    path: str | Path,
    what: str,
    *,
    limit: int,
    error: type[AmsError] = ConfigurationError,
    follow_symlinks: bool = True,
    allow_pipe: bool = False,
) -> bytes:
    """The bytes of the regular file ``path`` (``what`` names it in errors: "CRL file", "keystore.conf"),
    at most ``limit`` bytes.

    Every file the library reads comes through here, so that none can hang it or exhaust its
    memory: the file is opened without blocking and checked with ``fstat`` on the descriptor
    read (no race with a rename), so a FIFO, a device, a socket or a directory is refused at
    once, and so is a file larger than ``limit`` (the limits are :class:`ams.Limits`'
    ``file_size`` and ``crl_file_size``); the read itself stops after ``limit`` bytes, in case
    the file grows. ``follow_symlinks=False`` refuses a symbolic link at the final name
    (``O_NOFOLLOW``). ``allow_pipe`` accepts a pipe or FIFO (a message the user pipes in), still
    bounded. Every failure is ``error`` naming the file, what was found and the limit.
    """
    shown = clip(str(path))
    flags = _READ_FLAGS | (0 if follow_symlinks else getattr(os, "O_NOFOLLOW", 0))
    try:
        descriptor = os.open(path, flags)
    except ValueError:  # a NUL in the path
        raise error(f"cannot read {what} {shown}: a file name cannot hold a NUL character") from None
    except OSError as failure:
        if not follow_symlinks and os.path.islink(path):
            raise error(
                f"refusing to read {what} {shown}: expected a regular file, found {_what_is_at(Path(path))} "
                "(links are not followed here); replace the link with the file"
            ) from None
        raise error(
            f"cannot read {what} {shown}: {_reason(failure)}; check that the path is right and readable"
        ) from None
    try:
        found = os.fstat(descriptor)
        pipe = stat.S_ISFIFO(found.st_mode) and allow_pipe
        if not stat.S_ISREG(found.st_mode) and not pipe:
            raise error(
                f"cannot read {what} {shown}: expected a regular file, found {_kind_of(found.st_mode)}; "
                "point the setting at a file"
            )
        if found.st_size > limit:
            raise _too_large(what, shown, limit, f"{found.st_size:,} bytes", error)
        if pipe:
            os.set_blocking(descriptor, True)  # the user piped it in: waiting for the writer is what they asked
        data = _read_at_most(descriptor, limit + 1)
    except OSError as failure:
        raise error(f"cannot read {what} {shown}: {_reason(failure)}") from None
    finally:
        os.close(descriptor)
    if len(data) > limit:
        raise _too_large(what, shown, limit, "more bytes (it grew while it was read)", error)
    return data


def _too_large(what: str, shown: str, limit: int, found: str, error: type[AmsError]) -> AmsError:
    return error(
        f"cannot read {what} {shown}: expected at most {limit:,} bytes (ams.Limits), found {found}; "
        "check that it is the right file, or raise the limit"
    )


def _read_at_most(descriptor: int, count: int) -> bytes:
    chunks: list[bytes] = []
    left = count
    while left > 0:
        chunk = os.read(descriptor, min(left, _READ_CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def check_private_file(path: Path, what: str, holds: str) -> None:
    """Refuse an existing ``path`` that is not a regular file this user owns and only it may use.

    For files ams creates private (0600) and then reopens by name: one that was already there
    was made by someone, and whoever pre-created it readable, or owns it, reads what it holds
    (``holds`` says what, for the error). A missing file passes. ConfigurationError naming the
    file, what is wrong and the command that fixes it.
    """
    try:
        found = private_file_problems(path)
    except OSError as failure:
        raise ConfigurationError(f"cannot check {what} {path}: {_reason(failure)}") from None
    if found:
        problems, fixes = "; ".join(p for p, _ in found), "; ".join(f for _, f in found)
        raise ConfigurationError(
            f"refusing to open {what} {path}: {problems}. It holds {holds}, so ams opens only a file "
            f"this user owns and only it can use (as ams creates it); fix: {fixes}"
        )


def private_file_problems(path: Path) -> list[tuple[str, str]]:
    """(problem, fix) for each way ``path`` is not a regular file this user owns and only it may use;
    none for a missing file. OSError when it cannot be examined."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return []
    out = []
    if not stat.S_ISREG(found.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(found.st_mode) else _kind_of(found.st_mode)
        out.append((f"it is {kind}", f"remove {path}"))
    if found.st_uid != os.geteuid():
        out.append(
            (
                f"it is owned by uid {found.st_uid}, not by this user (uid {os.geteuid()})",
                f"chown {os.geteuid()} {path}, after checking who made it and why (or remove it)",
            )
        )
    if stat.S_IMODE(found.st_mode) & 0o077:
        out.append((f"group or others may use it (mode {stat.S_IMODE(found.st_mode):04o})", f"chmod 600 {path}"))
    return out


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)


def _what_is_at(path: Path) -> str:
    try:
        found = os.lstat(path)
    except (OSError, ValueError):
        return "something"
    if stat.S_ISLNK(found.st_mode):
        try:
            return f"a symbolic link to {os.readlink(path)}"
        except OSError:
            return "a symbolic link"
    return "a directory" if stat.S_ISDIR(found.st_mode) else "a file"


def _exists_error(path: Path) -> UsageError:
    return UsageError(
        f"refusing to write {path}: expected no file there, found {_what_is_at(path)} "
        "(existing files are never overwritten, so that a planted file or link cannot redirect what is written); "
        "remove it or choose another directory"
    )


@contextlib.contextmanager
def file_errors(action: str, path: Path, *, error: type[AmsError] = UsageError) -> Iterator[None]:
    """Turn an ``OSError`` (or the ``ValueError`` of a path with a NUL byte) in the block into ``error``.

    The message reads ``cannot <action> <path>: <reason>`` and says what to check. An
    :class:`~ams.errors.AmsError` raised in the block passes through unchanged.
    """
    try:
        yield
    except AmsError:
        raise
    except (OSError, ValueError) as failure:
        raise error(
            f"cannot {action} {path}: {_reason(failure)}; check that the path is right and that this user may use it"
        ) from failure


def check_absent(paths: Iterable[Path]) -> None:
    """Raise the :class:`~ams.errors.UsageError` :func:`write_new_file` would for the first path that exists.

    Call it before slow work (key generation) or before writing several files, so that a file in
    the way stops everything before anything is written. It does not replace the exclusive open:
    a file created after the check is still refused when it is written.
    """
    for path in paths:
        if os.path.lexists(path):
            raise _exists_error(path)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.unlink(path)


def write_new_file(path: Path, data: bytes, *, mode: int, error: type[AmsError] = UsageError) -> None:
    """Create ``path`` holding ``data``, with permission bits ``mode`` from the first byte on.

    The file is opened with ``O_CREAT | O_EXCL | O_NOFOLLOW``: a file, directory or symbolic link
    (even a dangling one) already at ``path`` is never followed, truncated or replaced, and is
    refused with a :class:`~ams.errors.UsageError` naming it. ``mode`` is set again with
    ``fchmod`` so that the umask can neither widen nor narrow it; use :data:`PRIVATE_FILE_MODE`
    for keys and passwords, :data:`PUBLIC_FILE_MODE` for certificates. The data is flushed to
    disk before returning. Any other ``OSError`` becomes ``error`` naming the path, and a file
    this call created but could not finish is removed.

    To hand another library a private file it will open itself (an SQLite database), create it
    empty with ``write_new_file(path, b"", mode=PRIVATE_FILE_MODE)`` and then open it.
    """
    try:
        descriptor = os.open(path, _NEW_FILE_FLAGS, mode)
    except (FileExistsError, IsADirectoryError):
        raise _exists_error(path) from None
    except OSError as failure:
        if os.path.lexists(path):  # ELOOP and the like: a link is in the way
            raise _exists_error(path) from failure
        raise error(
            f"cannot create {path}: {_reason(failure)}; check that its directory exists and is writable by this user"
        ) from failure
    except ValueError as failure:
        raise error(
            f"cannot create {path}: {failure}; choose a path without NUL bytes or unencodable characters"
        ) from failure
    try:
        with os.fdopen(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as failure:
        _remove_quietly(path)
        raise error(f"cannot write {path}: {_reason(failure)}; check the free space and try again") from failure
    except BaseException:
        _remove_quietly(path)
        raise


def replace_file(path: Path, data: bytes, *, mode: int, error: type[AmsError] = UsageError) -> None:
    """Write ``data`` to ``path`` atomically, replacing what is there without following it.

    The data goes to a new hidden temporary file in the same directory (created as
    :func:`write_new_file` does, so with ``mode`` from the start), which is then renamed over
    ``path`` with ``os.replace``. Readers see the old content or the new, never half of it; a
    symbolic link at ``path`` is replaced by the file, and whatever it pointed at is not touched.
    Any ``OSError`` becomes ``error`` naming the path, and the temporary file is removed.
    """
    # hidden and not *.spl/*.mqsc, so no loader picks it up; short enough for NAME_MAX whatever path's length
    temporary = path.with_name(f".{path.name[:200]}.{secrets.token_hex(8)}.tmp")
    write_new_file(temporary, data, mode=mode, error=error)
    try:
        os.replace(temporary, path)
    except OSError as failure:
        _remove_quietly(temporary)
        raise error(
            f"cannot replace {path}: {_reason(failure)} (found {_what_is_at(path)}); "
            "check that it is a file (not a directory) and that its directory is writable by this user"
        ) from failure


def _fix_directory_mode(path: Path) -> None:
    # open with O_NOFOLLOW and fchmod, so that a link swapped in after mkdir is not chmod-ed
    descriptor = os.open(path, _DIRECTORY_FLAGS)
    try:
        os.fchmod(descriptor, PRIVATE_DIRECTORY_MODE)
    finally:
        os.close(descriptor)


def make_private_directory(path: Path, *, follow_symlink: bool = False, error: type[AmsError] = UsageError) -> None:
    """Make sure ``path`` is a directory, creating it and any missing parents with mode 0700.

    Directories this call creates get :data:`PRIVATE_DIRECTORY_MODE` whatever the umask. An
    existing directory is accepted as it is (its mode is not changed). Something other than a
    directory at ``path`` is refused with a :class:`~ams.errors.UsageError`, and so is a symbolic
    link unless ``follow_symlink`` (for a directory the user named, as opposed to one a program
    names inside it). Any other ``OSError`` becomes ``error`` naming the path.
    """
    with file_errors("create the directory", path, error=error):
        missing: list[Path] = []
        current = path
        while not os.path.lexists(current) and current.parent != current:
            missing.append(current)
            current = current.parent
        for directory in reversed(missing):
            try:
                os.mkdir(directory, PRIVATE_DIRECTORY_MODE)
            except FileExistsError:
                continue  # made meanwhile by someone else: checked below like any existing directory
            _fix_directory_mode(directory)
        found = os.lstat(path)
        if stat.S_ISLNK(found.st_mode):
            if not follow_symlink:
                raise UsageError(
                    f"refusing to write into {path}: expected a directory, found {_what_is_at(path)} "
                    "(a planted link could redirect the files written there); remove it or choose another directory"
                )
            found = os.stat(path)
        if not stat.S_ISDIR(found.st_mode):
            raise UsageError(
                f"cannot use {path} as a directory: expected a directory, found {_what_is_at(path)}; "
                "remove it or choose another directory"
            )


def queue_manager_companions(database: Path) -> tuple[Path, Path]:
    """The get journals' directory and the writer's lock file the embedded queue manager keeps beside
    its file ``database`` (named here, outside ams.mq, so that ``ams doctor`` can check them too)."""
    return database.with_name(database.name + "-gets"), database.with_name(database.name + "-writer")
