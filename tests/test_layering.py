"""The architecture, held by tests: who may import whom, how long a function may be, and that
every public name says what it is for."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ams"
WIRE = ("ams.hazmat", "ams._wire", "ams.limits", "ams.mqconstants")
EDGES = ("ams.mq", "ams.cli")
PROTECTOR = ("ams.protector", "ams._protector_state", "ams._protecting", "ams._unprotecting")
MAX_FUNCTION_LINES = 60


def _modules() -> Iterator[tuple[str, Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path, ast.parse(path.read_text(encoding="utf-8"))


def _imports(tree: ast.Module) -> set[str]:
    """Every ams module a module imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name == "ams" or name.startswith("ams.")}


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def test_the_wire_layer_imports_no_keys_policy_mq_or_cli() -> None:
    forbidden = ("ams.keys", "ams.policy", "ams.verify", *PROTECTOR, *EDGES)
    broken = {
        name: sorted(i for i in _imports(tree) if _within(i, forbidden))
        for name, _, tree in _modules()
        if _within(name, WIRE)
    }
    assert {name: found for name, found in broken.items() if found} == {}


def test_only_the_protector_imports_its_parts() -> None:
    """The send side, the receive side and their shared state are parts of one class, not a layer."""
    parts = PROTECTOR[1:]
    broken = {
        name: sorted(i for i in _imports(tree) if _within(i, parts))
        for name, _, tree in _modules()
        if not _within(name, PROTECTOR)
    }
    assert {name: found for name, found in broken.items() if found} == {}


def test_the_core_imports_nothing_of_mq_or_cli() -> None:
    broken = {
        name: sorted(i for i in _imports(tree) if _within(i, EDGES))
        for name, _, tree in _modules()
        if not _within(name, (*EDGES, "ams.__main__"))
    }
    assert {name: found for name, found in broken.items() if found} == {}


def test_nothing_imports_the_command_line() -> None:
    broken = [
        name
        for name, _, tree in _modules()
        if not _within(name, ("ams.cli", "ams.__main__")) and any(_within(i, ("ams.cli",)) for i in _imports(tree))
    ]
    assert broken == []


def test_a_wire_module_loads_only_the_wire_layer() -> None:
    code = "import sys, ams.hazmat.pdmq; print(' '.join(sorted(m for m in sys.modules if m.startswith('ams'))))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert [m for m in loaded if not _within(m, ("ams", *WIRE)) or _within(m, ("ams.keys", "ams.policy", *EDGES))] == []
    assert len(loaded) <= 8, loaded


def _functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def test_no_function_is_longer_than_sixty_lines() -> None:
    long = [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({(node.end_lineno or 0) - node.lineno + 1})"
        for _, path, tree in _modules()
        for node in _functions(tree)
        if (node.end_lineno or 0) - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def _public_definitions(tree: ast.Module) -> Iterator[tuple[str, ast.AST]]:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and not node.name.startswith("_"):
            yield node.name, node
            if isinstance(node, ast.ClassDef):
                for member in node.body:
                    if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef) and not member.name.startswith("_"):
                        yield f"{node.name}.{member.name}", member


def _public_module(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split("."))


@pytest.mark.parametrize("module", [name for name, _, _ in _modules() if _public_module(name)])
def test_every_public_name_has_a_docstring(module: str) -> None:
    tree = next(tree for name, _, tree in _modules() if name == module)
    assert ast.get_docstring(tree), f"{module} has no module docstring"
    missing = [name for name, node in _public_definitions(tree) if not ast.get_docstring(node)]  # type: ignore[arg-type]
    assert missing == []
