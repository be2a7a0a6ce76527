"""A policy store: the policies of one queue manager, usually a directory of files."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from ams.errors import PolicyError
from ams.policy.model import Policy
from ams.policy.setmqspl import parse_setmqspl


class PolicyStore(Mapping[str, Policy]):
    """Policies by queue name. Queues without a policy are not protected."""

    def __init__(self, policies: Iterable[Policy] = ()) -> None:
        self._policies: dict[str, Policy] = {}
        for policy in policies:
            self._policies[policy.name] = policy

    @classmethod
    def of(cls, *policies: Policy) -> PolicyStore:
        return cls(policies)

    @classmethod
    def from_directory(cls, directory: str | Path) -> PolicyStore:
        """Load every ``*.spl`` file (setmqspl lines) in name order, each processed whole."""
        root = Path(directory)
        if not root.is_dir():
            raise PolicyError(f"policy directory {str(root)!r} does not exist or is not a directory")
        store = cls()
        for path in sorted(root.glob("*.spl")):
            store._load_spl(path)
        return store

    def _load_spl(self, path: Path) -> None:
        for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                command = parse_setmqspl(line)
            except PolicyError as error:
                raise type(error)(f"{path}:{number}: {error.message}") from None
            if command.remove:
                self._policies.pop(command.name, None)
            elif command.policy is not None:
                self._policies[command.name] = command.policy

    def __getitem__(self, name: str) -> Policy:
        return self._policies[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._policies))

    def __len__(self) -> int:
        return len(self._policies)

    def __repr__(self) -> str:
        return f"PolicyStore({', '.join(sorted(self._policies))})"
