"""A policy store: the policies of one queue manager, usually a directory of files.

``*.spl`` files hold setmqspl command lines, ``*.mqsc`` files hold MQSC SET POLICY and DELETE
POLICY commands. Files are processed whole, in name order, so a later file can change or
remove what an earlier one set; errors name the file and line.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar, overload

import attrs

from ams._files import read_bounded
from ams.errors import PolicyError
from ams.limits import DEFAULT_LIMITS
from ams.policy.dspmqspl import parse_dspmqspl
from ams.policy.model import Policy
from ams.policy.mqsc import decode_text, parse_mqsc_collecting, split_lines
from ams.policy.setmqspl import PolicyRemoval, parse_setmqspl

T = TypeVar("T")


@attrs.frozen
class Origin:
    """Where a policy was last set: file and line."""

    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


_FILE_NAME_SAFE = frozenset(string.ascii_letters + string.digits + "_.")
_MAX_FILE_NAME_BYTES = 255  # NAME_MAX of common file systems


def policy_file_name(name: str) -> str:
    """The file ``ams policy set`` writes policy ``name`` to, a plain name inside the policy directory.

    Queue names may contain ``/``, ``%`` and ``.``, so the name is encoded rather than refused:
    ``A-Z a-z 0-9 _ .`` are kept, every other character is percent-encoded byte by byte as
    ``%XX`` of its UTF-8 (``/`` -> ``%2F``, ``%`` -> ``%25``), and so is a leading ``.`` (no
    hidden files, never ``.`` or ``..``); ``.spl`` is appended. Different names give different
    files, and the result never contains ``/`` or NUL. Loading does not decode it: a file's
    policies are named by its content.
    """
    if not name:
        raise PolicyError("a policy name is needed to name its file: expected a queue name, found an empty string")
    encoded = "".join(
        char if char in _FILE_NAME_SAFE else "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
        for char in name
    )
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    file_name = encoded + ".spl"
    if len(file_name.encode("ascii")) > _MAX_FILE_NAME_BYTES:
        raise PolicyError(
            f"policy name {name!r} is too long to store as a file ({file_name[:40]}... has {len(file_name)} "
            f"characters, at most {_MAX_FILE_NAME_BYTES}); queue names have at most 48 characters"
        )
    return file_name


def _located(path: Path, message: str) -> str:
    """``file:line: message`` from an MQSC error that starts ``line N: ``."""
    match = re.match(r"line (\d+): (.*)", message, re.DOTALL)
    return f"{path}:{match.group(1)}: {match.group(2)}" if match else f"{path}: {message}"


MAX_ERRORS_PER_FILE = 100


def _capped(path: Path, errors: list[PolicyError]) -> list[PolicyError]:
    """At most MAX_ERRORS_PER_FILE errors, then one that counts the rest (a file of garbage is one problem)."""
    if len(errors) <= MAX_ERRORS_PER_FILE:
        return errors
    rest = len(errors) - MAX_ERRORS_PER_FILE
    return [*errors[:MAX_ERRORS_PER_FILE], PolicyError(f"{path}: and {rest:,} more errors in this file")]


def _dump_kind(text: str) -> str:
    """``setmqspl``, ``mqsc`` or ``dspmqspl``: what the first line that is not blank or a comment starts."""
    for raw in split_lines(text):
        line = raw.strip()
        if not line or line.startswith(("#", "*")):
            continue
        first = line.split(None, 2)
        if first[0] == "setmqspl":
            return "setmqspl"
        if len(first) >= 2 and first[0].upper() in ("SET", "DELETE") and first[1].upper().startswith("POLICY"):
            return "mqsc"
        return "dspmqspl"
    return "dspmqspl"


class PolicyStore(Mapping[str, Policy]):
    """Policies by queue name. Queues without a policy are not protected."""

    def __init__(self, policies: Iterable[Policy] = ()) -> None:
        self._policies: dict[str, Policy] = {}
        self.origins: dict[str, Origin] = {}
        self.source: str | None = None  # where the policies came from, for errors ("policy directory DIR")
        for policy in policies:
            self._policies[policy.name] = policy

    @classmethod
    def of(cls, *policies: Policy) -> PolicyStore:
        """A store of these policies."""
        return cls(policies)

    @classmethod
    def from_directory(cls, directory: str | Path) -> PolicyStore:
        """Load every ``*.spl`` and ``*.mqsc`` file in name order; the first error is raised."""
        store, errors = cls.check_directory(directory)
        if errors:
            raise errors[0]
        return store

    @classmethod
    def check_directory(cls, directory: str | Path) -> tuple[PolicyStore, list[PolicyError]]:
        """Load what loads, and every error (for ``ams policy check``)."""
        root = Path(directory)
        try:
            is_directory = root.is_dir()
        except OSError as error:  # is_dir() is False for a missing path but raises for EACCES and the like
            raise PolicyError(
                f"cannot look at policy directory {str(root)!r}: {error.strerror or error}; check the permissions "
                "of the directories above it"
            ) from None
        if not is_directory:
            raise PolicyError(f"policy directory {str(root)!r} does not exist or is not a directory")
        store = cls()
        store.source = f"policy directory {root}"
        errors: list[PolicyError] = []
        try:
            paths = sorted(p for p in root.iterdir() if p.suffix in (".spl", ".mqsc") and p.is_file())
        except OSError as error:
            raise PolicyError(
                f"cannot list policy directory {str(root)!r}: {error.strerror or error}; check its permissions"
            ) from None
        for path in paths:
            errors.extend(store.load_file(path))
        return store, errors

    def load_file(self, path: Path) -> list[PolicyError]:
        """Apply one file; returns the errors (each naming file and line) instead of stopping.

        An unreadable file or one that is not UTF-8 is one error naming the file (and the line of the
        first byte that is not UTF-8); whatever the file holds, only PolicyErrors are returned.
        """
        try:
            data = read_bounded(path, "the policy file", limit=DEFAULT_LIMITS.file_size, error=PolicyError)
        except PolicyError as error:  # policy errors start with the file they are about
            return [PolicyError(f"{path}: {error.message}")]
        try:
            text = decode_text(data, str(path))
        except PolicyError as error:
            return [error]
        if path.suffix == ".mqsc":
            return self._load_mqsc(path, text)
        return self._load_setmqspl(path, text)

    @classmethod
    def from_dump(cls, path: str | Path) -> PolicyStore:
        """The policies in one file of any form the tools print, recognised by its first command:
        setmqspl lines (``ams policy export``, ``dspmqspl -export``, ``ams policy apply``), MQSC
        ``SET POLICY``/``DELETE POLICY`` (their ``--mqsc``), or else ``dspmqspl`` blocks. The first
        error is raised, naming the file and line."""
        source = Path(path)
        data = read_bounded(source, "policy dump", limit=DEFAULT_LIMITS.file_size, error=PolicyError)
        text = decode_text(data, str(source))
        store = cls()
        kind = _dump_kind(text)
        if kind == "dspmqspl":
            store = cls(parse_dspmqspl(text, source=str(source)))
        else:
            errors = store._load_mqsc(source, text) if kind == "mqsc" else store._load_setmqspl(source, text)
            if errors:
                raise errors[0]
        store.source = str(source)
        return store

    def _load_setmqspl(self, path: Path, text: str) -> list[PolicyError]:
        errors = []
        for number, raw in enumerate(split_lines(text), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                command = parse_setmqspl(line)
            except PolicyError as error:
                errors.append(type(error)(f"{path}:{number}: {error.message}"))
                continue
            if isinstance(command, PolicyRemoval):
                self._policies.pop(command.name, None)
                self.origins.pop(command.name, None)
            else:
                self._policies[command.name] = command
                self.origins[command.name] = Origin(path, number)
        return _capped(path, errors)

    def _load_mqsc(self, path: Path, text: str) -> list[PolicyError]:
        commands, parse_errors = parse_mqsc_collecting(text)
        errors = [type(error)(_located(path, error.message)) for error in parse_errors]
        for command in commands:
            try:
                policy = command.apply(self._policies)
            except PolicyError as error:
                errors.append(type(error)(f"{path}:{command.line}: {error.message}"))
                continue
            if policy is None:
                self._policies.pop(command.name, None)
                self.origins.pop(command.name, None)
            else:
                self._policies[command.name] = policy
                self.origins[command.name] = Origin(path, command.line)
        return _capped(path, errors)

    def __getitem__(self, name: str) -> Policy:
        return self._policies[name]

    @overload
    def get(self, name: str, /) -> Policy | None:
        """``name``'s policy, else None."""

    @overload
    def get(self, name: str, /, default: Policy | T) -> Policy | T:
        """``name``'s policy, else ``default``."""

    def get(self, name: str, /, default: object = None) -> object:
        """``name``'s policy, else ``default``: one dictionary lookup (asked once per message)."""
        return self._policies.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._policies))

    def __len__(self) -> int:
        return len(self._policies)

    def __repr__(self) -> str:
        return f"PolicyStore({', '.join(sorted(self._policies))})"
