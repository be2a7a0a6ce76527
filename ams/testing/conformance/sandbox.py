"""Keeping the kit safe from its peer: a peer may be broken or hostile, and the kit must neither
hang, nor grow without bound, nor read or write outside its own folder, nor let the peer's words
rewrite its reports.

* :func:`run_bounded` runs a command in its own process group and reads its standard output and
  error with a size cap (the last :data:`STREAM_CAP` bytes are kept) and a deadline: after the
  command exits, or is killed at the timeout, the group is killed and the pipes are drained for
  at most :data:`DRAIN_SECONDS` (a ``setsid`` child holding a pipe cannot hang the kit);
* :class:`CaseDirectory` is a working directory the kit creates itself (a directory that already
  exists is refused: the peer may have planted it, with links inside) and then reaches only
  through a file descriptor, ``openat`` style, never following a link;
* :func:`read_regular` reads a file only if it is a regular file within a size cap;
* :func:`copy_tree` copies a peer's working directory without following links (for a failure);
* :func:`printable` escapes what a peer wrote before it reaches a terminal, a report or XML.
"""

from __future__ import annotations

import errno
import os
import resource
import selectors
import shutil
import signal
import stat
import subprocess
import time
import unicodedata
from pathlib import Path

import attrs

from ams.errors import AmsError

KIB = 1 << 10
STREAM_CAP = 64 * KIB  # of each of the peer's standard output and error, the end is kept
OUTPUT_CAP = 64 << 20  # the largest {out} the kit reads: a 1 MiB payload protected for 10 recipients is far less
FILE_CAP = 64 << 20  # the largest file a failure's copy keeps
DRAIN_SECONDS = 1.0  # how long the pipes are read once the peer has exited or was killed
FILE_SIZE_LIMIT = 4 * OUTPUT_CAP  # RLIMIT_FSIZE of every peer: it cannot fill the disk (SIGXFSZ: a crash)
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_WRITE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeDirectoryError(AmsError):
    """A working directory the kit must create already exists, or is reached through a link."""


# -- escaping ----------------------------------------------------------------------------------------------------------


def printable(text: str) -> str:
    """``text`` with every control character, escape sequence introducer, format character
    (bidirectional overrides) and character XML 1.0 forbids written as ``\\xNN`` / ``\\uNNNN``:
    safe on a terminal, on one report line and in XML. Idempotent on text that is already safe."""
    return "".join(_escape(c) if _unsafe(c) else c for c in text)


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") or char in "\ufffe\uffff"


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


# -- running a command -------------------------------------------------------------------------------------------------


@attrs.frozen
class Finished:
    """What :func:`run_bounded` saw: the status (None: stopped at the timeout; negative: killed by
    that signal), the ends of the two streams, whether they were cut, and the time taken."""

    status: int | None
    stdout: bytes
    stderr: bytes
    truncated: bool
    seconds: float


class _Tail:
    """The last ``cap`` bytes written to a stream, and whether anything before them was dropped."""

    def __init__(self, cap: int) -> None:
        self.cap, self.data, self.dropped = cap, bytearray(), False

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > 2 * self.cap:  # trimmed in batches: linear time, bounded memory
            del self.data[: len(self.data) - self.cap]
            self.dropped = True

    def value(self) -> bytes:
        self.dropped = self.dropped or len(self.data) > self.cap
        return bytes(self.data[-self.cap :])


@attrs.frozen
class Limits:
    """Resource limits for a peer's process (``setrlimit``): address space in MiB and CPU seconds
    (None: no limit), and the largest file it may write."""

    memory_mib: int | None = None
    cpu_seconds: int | None = None
    file_size: int = FILE_SIZE_LIMIT

    def apply(self) -> None:
        """Set the limits on the calling process (in the peer's child, before it runs the command)."""
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.file_size, self.file_size))
        if self.memory_mib is not None:
            size = self.memory_mib << 20
            resource.setrlimit(resource.RLIMIT_AS, (size, size))
        if self.cpu_seconds is not None:
            resource.setrlimit(resource.RLIMIT_CPU, (self.cpu_seconds, self.cpu_seconds + 1))


NO_LIMITS = Limits()  # but the file size


def run_bounded(
    args: list[str], cwd: Path, timeout: float, cap: int = STREAM_CAP, limits: Limits | None = None
) -> Finished:
    """Run ``args`` (no shell, no standard input) in ``cwd`` in a new process group, within ``limits``;
    see the module."""
    started = time.monotonic()
    process = subprocess.Popen(
        args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, so that its children are stopped with it
        preexec_fn=(limits or NO_LIMITS).apply,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    tails = {process.stdout.fileno(): _Tail(cap), process.stderr.fileno(): _Tail(cap)}
    try:
        timed_out = _pump(process, tails, started, timeout)
    except BaseException:  # Ctrl-C: the peer has a session of its own, so the terminal's signal missed it
        _kill_group(process)
        process.stdout.close()
        process.stderr.close()
        _reap(process)
        raise
    process.stdout.close()
    process.stderr.close()
    status = _reap(process)
    out, err = (tail.value() for tail in tails.values())
    dropped = any(tail.dropped for tail in tails.values())
    return Finished(None if timed_out else status, out, err, dropped, time.monotonic() - started)


def _pump(process: subprocess.Popen[bytes], tails: dict[int, _Tail], started: float, timeout: float) -> bool:
    """Read the peer's pipes until it exits (or ``timeout``), then for DRAIN_SECONDS more at most;
    whether it timed out."""
    timed_out = False
    with selectors.DefaultSelector() as selector:
        for fd in tails:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        drain_until: float | None = None
        while True:
            now = time.monotonic()
            if drain_until is None:
                exited = _has_exited(process.pid)
                if exited or now >= started + timeout:
                    timed_out = not exited
                    _kill_group(process)  # stragglers too: the leader, exited or not, keeps the group's id
                    drain_until = now + DRAIN_SECONDS
            if drain_until is not None and (not selector.get_map() or now >= drain_until):
                break
            limit = drain_until if drain_until is not None else started + timeout
            _read_some(selector, tails, min(0.05, max(0.0, limit - now)))
    return timed_out


def _read_some(selector: selectors.BaseSelector, tails: dict[int, _Tail], wait: float) -> None:
    if not selector.get_map():
        time.sleep(min(wait, 0.005))  # both pipes closed: the peer is about to exit
        return
    for key, _ in selector.select(wait):
        fd = int(key.fd)
        try:
            chunk = os.read(fd, 64 * KIB)
        except BlockingIOError:
            continue
        if chunk:
            tails[fd].add(chunk)
        else:
            selector.unregister(fd)


def _has_exited(pid: int) -> bool:
    """Whether ``pid`` has exited, without reaping it (so its process group id stays reserved)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()


def _reap(process: subprocess.Popen[bytes]) -> int:
    try:
        return process.wait(timeout=DRAIN_SECONDS)
    except subprocess.TimeoutExpired:  # SIGKILL was sent; a process stuck in the kernel is left to init
        return -signal.SIGKILL


# -- the working directory ---------------------------------------------------------------------------------------------


def remove_tree(path: Path) -> None:
    """Remove ``path`` whatever it is, never following a link (a link is removed, not its target);
    nothing when a link on the way to it would lead outside the kit's folder."""
    if os.path.realpath(path.parent) != os.path.abspath(path.parent):
        return  # a peer swapped a directory of the kit's for a link: what is behind it is not the kit's
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)  # fd-based on POSIX: links inside are removed, not followed
    else:
        path.unlink()


def fresh_directory(path: Path) -> Path:
    """``path`` emptied (whatever an earlier run or a peer left there is removed) and created anew."""
    remove_tree(path)
    path.mkdir(parents=True)
    return path


class CaseDirectory:
    """A directory the kit has just created, reached through a descriptor (no link is ever followed)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    @classmethod
    def create(cls, path: Path) -> CaseDirectory:
        """Create ``path`` (its parent must exist); UnsafeDirectoryError if it exists or a link leads to it."""
        with cls.open(path.parent) as parent:  # no link on the way: nothing is made outside the kit's folder
            try:
                os.mkdir(path.name, 0o700, dir_fd=parent.fd)
            except FileExistsError:
                raise UnsafeDirectoryError(
                    f"the working directory {printable(str(path))} already exists and the kit did not create it "
                    "in this run (left by the peer, or an interrupted run): refused, since it may hold links"
                ) from None
            return cls(path, os.open(path.name, _DIRECTORY, dir_fd=parent.fd))

    @classmethod
    def open(cls, path: Path) -> CaseDirectory:
        """Open the existing directory ``path``, refusing it if any part of the path is a link."""
        try:
            fd = os.open(path, _DIRECTORY)
        except OSError as error:
            raise UnsafeDirectoryError(f"cannot open {printable(str(path))} as a directory: {error.strerror}") from None
        if os.path.realpath(path) != os.path.abspath(path):
            os.close(fd)
            raise UnsafeDirectoryError(f"{printable(str(path))} is reached through a symbolic link: refused")
        return cls(path, fd)

    def __enter__(self) -> CaseDirectory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the descriptor."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def write(self, name: str, data: bytes) -> None:
        """Create the new file ``name`` (never through a link, never over an existing file)."""
        fd = os.open(name, _WRITE, 0o600, dir_fd=self.fd)
        with os.fdopen(fd, "wb") as file:
            file.write(data)

    def subdirectory(self, name: str) -> CaseDirectory:
        """Create the directory ``name`` inside this one."""
        os.mkdir(name, 0o700, dir_fd=self.fd)
        return CaseDirectory(self.path / name, os.open(name, _DIRECTORY, dir_fd=self.fd))

    def read(self, name: str, cap: int = OUTPUT_CAP) -> tuple[bytes | None, str]:
        """:func:`read_regular` of ``name`` in this directory."""
        return read_regular(self.fd, name, cap)


def read_regular(directory_fd: int, name: str, cap: int) -> tuple[bytes | None, str]:
    """The bytes of ``name`` if it is a regular file of at most ``cap`` bytes: ``(data, "")``;
    ``(None, "")`` if it does not exist; ``(None, why)`` if it is a link, not a regular file or too big."""
    try:
        fd = os.open(name, _READ, dir_fd=directory_fd)
    except FileNotFoundError:
        return None, ""
    except OSError as error:
        if error.errno == errno.ELOOP:
            return None, f"{name} is a symbolic link: the kit reads no file through a link"
        return None, f"{name} cannot be read: {error.strerror}"
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return None, f"{name} is not a regular file (mode {stat.filemode(info.st_mode)}): the kit reads only files"
    if info.st_size > cap:
        os.close(fd)
        return None, f"{name} holds {info.st_size:,} bytes, over the kit's limit of {cap:,}: not read"
    with os.fdopen(fd, "rb") as file:
        data = file.read(cap + 1)
    if len(data) > cap:
        return None, f"{name} grew past the kit's limit of {cap:,} bytes while it was read: not read"
    return data, ""


def copy_tree(source: CaseDirectory, target: Path) -> list[str]:
    """Copy the regular files and directories of ``source`` into the new directory ``target``,
    never following a link; the names left out (links, devices, files over :data:`FILE_CAP`)."""
    skipped: list[str] = []
    with CaseDirectory.create(target) as copy:
        _copy_into(source, copy, "", skipped)
    return skipped


def _copy_into(source: CaseDirectory, target: CaseDirectory, prefix: str, skipped: list[str]) -> None:
    for entry in sorted(os.scandir(source.fd), key=lambda e: e.name):
        name = entry.name
        if entry.is_dir(follow_symlinks=False):
            try:
                inner = CaseDirectory(source.path / name, os.open(name, _DIRECTORY, dir_fd=source.fd))
            except OSError:
                skipped.append(printable(prefix + name + "/"))
                continue
            with inner, target.subdirectory(name) as copy:
                _copy_into(inner, copy, f"{prefix}{name}/", skipped)
            continue
        data, why = source.read(name, FILE_CAP)
        if data is None:
            skipped.append(printable(f"{prefix}{name} ({why or 'gone'})"))
        else:
            target.write(name, data)
