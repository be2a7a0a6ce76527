"""Every fenced block of README.md and docs/*.md is run, checked against the code, or said not to be a command.

A block is handled by its kind, and a block no rule here knows fails the test, so a new one is
classified when it is written:

* ``python``: a complete program, run as pasted (tests/test_readme_snippets.py runs each one).
* ``properties``: a keystore.conf: every key is one the loader knows, and the PKCS#12 and PEM
  examples load for real from files made to match them.
* ``toml``: the proxy service's configuration, validated by its own loader.
* ``sh``: each command. ``ams`` synopses (with placeholders such as ``QUEUE`` or ``[...]``) are
  checked against the command's ``--help``: every subcommand and option they name exists.
  Commands that run as written are run here, or by the named test that runs that block.
* a transcript (``$ ams ...`` then its output): the command is run and says what is shown.
* the layout tree: every path it names exists. The conformance report sample: every property
  and option it names exists.
* What cannot run here (IBM's Java client, diagrams) is listed with the reason.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import re
import shlex
import shutil
import tomllib
from pathlib import Path

import attrs
import pytest
from cryptography.hazmat.primitives import serialization

import ams
from ams.cli.main import build_parser, main
from ams.keys.loading import IBM_ONLY_KEYS, KNOWN_KEYS
from ams.mq.proxy.config import load_config
from ams.testing.conformance.properties import PROPERTIES
from tests.conftest import Pki

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


@attrs.frozen
class Block:
    """One fenced block: where it is, its info string and its text."""

    document: str
    line: int
    language: str
    text: str

    @property
    def first(self) -> str:
        return next((line.strip() for line in self.text.splitlines() if line.strip()), "")

    def __str__(self) -> str:
        return f"{self.document}:{self.line} ({self.language or 'plain'}: {self.first[:60]!r})"


def blocks() -> list[Block]:
    found = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(Block(document.name, line, match.group(1), match.group(2)))
    return found


def commands(text: str) -> list[str]:
    """The commands of a shell block: continuation lines joined (a backslash, or a synopsis line
    indented under its command), comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*|\n\s+(?=[\[-])", " ", text)
    out = []
    for raw in joined.splitlines():
        words = shlex.split(raw, comments=True)
        if words:
            out.append(" ".join(words))
    return out


# -- what other tests run, block by block: the test must exist, and it reads the block from the document ---------------

RUN_BY = {
    # python snippets: each is run as pasted, twice, in a fresh directory
    "from pathlib import Path": "tests/test_readme_snippets.py::test_each_python_snippet_runs_as_pasted",
    "import threading": "tests/test_mq_request_reply.py::test_the_readme_request_reply_example_runs_as_pasted",
    # the "Managing keys" blocks, line by line, against openssl-made CAs and a SoftHSM2 token
    "openssl req -x509 -newkey rsa:3072": "tests/test_keys.py::test_the_readme_steps_run_as_pasted",
}
# single commands that run as written, and the test that runs each (the long runs there with fewer examples)
COMMAND_RUN_BY = {
    "./scripts/test": ".ci/run",  # the test command itself: CI runs it, on a clean clone
    "./scripts/demo": "tests/test_cli.py::test_demo_runs_end_to_end",  # `scripts/bootstrap demo`, then `ams demo`
    "ams demo": "tests/test_cli.py::test_demo_runs_end_to_end",
    "ams conformance --peer self-cli": "tests/test_cli_signals.py::test_ctrl_c_in_conformance_prints_the_seed_and_writes_a_partial_report",  # noqa: E501
    "ams conformance --peer openssl": "tests/test_conformance_openssl.py",
    "ams conformance --peer-policies": "tests/test_conformance_cli.py::test_the_documented_adapter_command_runs_as_pasted_from_the_repository_root",  # noqa: E501
}
NOT_COMMANDS = {
    # docs/format.md: pictures of the layout, not commands
    "MQMD | clear headers (chained by Format) | PDMQ header (104 or 112 bytes) | protected blob": "a diagram",
    "key block | IV | ciphertext": "a diagram",
    # docs/conformance.md: a peer adapter for IBM's Java client, which cannot be installed here
    "// java -DMQS_KEYSTORE_CONF=KEYSTORE_CONF AmsBridge put|get QM QUEUE FORMAT FILE": (
        "Java source for IBM's AMS Java client (com.ibm.mq.allclient), which is not on any registry this project "
        "installs from; docs/examples/peer_adapter.sh is the runnable adapter and is run by the tests"
    ),
}


def _test_exists(target: str) -> bool:
    path, _, name = target.partition("::")
    file = ROOT / path
    if not file.is_file():
        return False
    if not name:
        return True
    tree = ast.parse(file.read_text(encoding="utf-8"))
    return any(isinstance(node, ast.FunctionDef) and node.name == name for node in ast.walk(tree))


def _reads_the_document(target: str, document: str) -> bool:
    path = ROOT / target.partition("::")[0]
    return path.name == "run" or document in path.read_text(encoding="utf-8")


# -- the handlers ------------------------------------------------------------------------------------------


def _pyproject_extras() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return set(project["optional-dependencies"])


def _check_pip(command: str) -> None:
    words = shlex.split(command)
    assert words[:2] == ["pip", "install"], command
    for word in (w for w in words[2:] if w != "-e"):
        extras = re.fullmatch(r"(?:\.|ams)\[([a-z0-9_,-]+)\]", word)
        assert extras is not None, f"{command}: expected `pip install .[extra]` or `ams[extra]`"
        missing = set(extras.group(1).split(",")) - _pyproject_extras()
        assert not missing, f"{command}: no such extra in pyproject.toml: {sorted(missing)}"


def _help(words: list[str]) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as done:
        main([*words, "--help"])
    assert done.value.code == 0, f"ams {' '.join(words)} --help: {err.getvalue()}"
    return out.getvalue()


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


_PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*(\.\.\.)?$|^[\[(|]")


def _check_synopsis(line: str) -> None:
    """``ams GROUP [SUB|SUB ...] ...``: the group and every subcommand the line names exist, and
    every option it names is one of theirs (alternatives, ``list|show N|explain N``, each count)."""
    words = line.split()
    assert words[0] == "ams", line
    groups = _subcommands(build_parser())
    assert words[1] in groups, f"`{line}`: ams has no command {words[1]!r}"
    group = groups[words[1]]
    named = {part.strip("[]()") for word in words[2:] for part in word.split("|")}
    chosen = [parser for name, parser in _subcommands(group).items() if name in named] or [group]
    for parser in list(chosen):  # one level further (ams qm alias ...) when the line names it
        chosen += [p for name, p in _subcommands(parser).items() if name in named]
    known = set().union(*(_options(p) for p in [group, *chosen]))
    for option in set(re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", line)):
        assert option in known, f"`{line}`: no command it names takes {option}"


def _is_synopsis(command: str) -> bool:
    return any(_PLACEHOLDER.match(word) for word in command.split()[1:]) or "..." in command


def _check_shell_block(block: Block) -> None:
    for command in commands(block.text):
        if command.startswith("pip install"):
            _check_pip(command)
            continue
        covered = next((t for prefix, t in COMMAND_RUN_BY.items() if command.startswith(prefix)), None)
        if covered is not None:
            assert _test_exists(covered), f"{block}: `{command}` is said to be run by {covered}, which is missing"
            continue
        assert command.startswith("ams ") and _is_synopsis(command), (
            f"{block}: `{command}` is neither a synopsis nor run by a test: add it to COMMAND_RUN_BY or RUN_BY"
        )
        _check_synopsis(command)


def _check_transcript(block: Block, tmp_path: Path) -> None:
    lines = block.text.splitlines()
    command = lines[0].removeprefix("$ ")
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(tmp_path), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        main(shlex.split(command)[1:])
    said = " ".join((out.getvalue() + err.getvalue()).split())
    for expected in " ".join(lines[1:]).split("..."):
        assert " ".join(expected.split()) in said, f"{block}: `{command}` no longer says {expected.strip()!r}: {said}"


def _check_layout(block: Block) -> None:
    for line in block.text.splitlines():
        for path in re.findall(r"(?:^|\s)([\w.-]+(?:/[\w.-]*)+|[\w-]+\.(?:py|md|toml|sh|spl))(?=\s|$|,)", line):
            if "<" in path or path.startswith(("http", "~")):
                continue
            candidates = [ROOT / path, ROOT / "ams" / path, *(ROOT.glob(f"**/{path}"))]
            assert any(c.exists() for c in candidates), f"{block}: the layout names {path}, which does not exist"


def _check_report_sample(block: Block) -> None:
    names = {p.name for p in PROPERTIES}
    for name in re.findall(r"(?:PASSED|FAILED|SKIPPED)\s+([a-z][a-z-]+)", block.text):
        assert name in names, f"{block}: the sample report names property {name!r}, which the kit does not have"
    options = set(re.findall(r"(--[a-z][a-z-]+)", block.text))
    shown = _help(["conformance"])
    for option in options:
        assert option in shown, f"{block}: the sample report names {option}, which `ams conformance` does not take"


def _check_properties(block: Block, tmp_path: Path, pki: Pki) -> None:
    conf = tmp_path / "keystore.conf"
    conf.write_text(block.text, encoding="utf-8")
    conf.chmod(0o600)
    from ams.keys.loading import read_keystore_conf

    settings = read_keystore_conf(conf)
    unknown = [k for k in settings if k not in KNOWN_KEYS and k not in IBM_ONLY_KEYS]
    assert not unknown, f"{block}: keys the loader does not know: {unknown}"
    if "pkcs12.keystore" in settings or "pem.private" in settings:
        _make_files_for(settings, tmp_path, pki)
        keystore = ams.Keystore.from_conf(conf)
        assert keystore.identity is not None and str(keystore.identity.dn) == pki.dn("alice")


def _make_files_for(settings: dict[str, str], where: Path, pki: Pki) -> None:
    """The files a keystore.conf example names, made from the test PKI's alice (and bob)."""
    alice = pki.users["alice"]
    password = (settings.get("pkcs12.keystore_pass") or settings.get("pem.password") or "").encode()
    encryption = serialization.BestAvailableEncryption(password)
    if "pkcs12.keystore" in settings:
        from cryptography.hazmat.primitives.serialization import pkcs12

        name = settings.get("pkcs12.certificate", "alice").encode()
        chain = [pki.ca.certificate]
        data = pkcs12.serialize_key_and_certificates(name, alice.key, alice.certificate, chain, encryption)
        (where / settings["pkcs12.keystore"]).write_bytes(data)
    else:
        key = alice.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        (where / settings["pem.private"]).write_bytes(key)
        (where / settings["pem.public"]).write_bytes(alice.certificate.public_bytes(serialization.Encoding.PEM))
        for entry in (e.strip() for e in settings["pem.certificates"].split(",")):
            if entry.endswith("/"):
                (where / entry).mkdir(mode=0o700, exist_ok=True)
                (where / entry / "ca.pem").write_bytes(pki.ca.certificate.public_bytes(serialization.Encoding.PEM))
            else:
                bob = pki.users["bob"].certificate
                (where / entry).write_bytes(bob.public_bytes(serialization.Encoding.PEM))
    for path in where.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)


def _check_toml(block: Block, tmp_path: Path) -> None:
    config = tmp_path / "proxy.toml"
    config.write_text(block.text, encoding="utf-8")
    loaded = load_config(config)
    assert loaded.routes, f"{block}: the example defines no route"


# -- the tests ------------------------------------------------------------------------------------------


def test_the_documents_have_blocks_to_check() -> None:
    kinds = {b.language for b in blocks()}
    assert {"python", "sh", "properties", "toml", ""} <= kinds


def test_what_other_tests_run_exists_and_reads_the_document() -> None:
    for target in [*RUN_BY.values(), *COMMAND_RUN_BY.values()]:
        assert _test_exists(target), f"{target} is named as running a documented block, but it does not exist"
    for block in blocks():
        runner = next((t for prefix, t in RUN_BY.items() if block.first.startswith(prefix)), None)
        if runner is not None:
            assert _reads_the_document(runner, block.document), f"{runner} does not read {block.document}"


@pytest.mark.parametrize("block", blocks(), ids=str)
def test_each_block(block: Block, tmp_path: Path, pki: Pki) -> None:
    if block.first in NOT_COMMANDS:
        assert NOT_COMMANDS[block.first]  # the reason is the documentation: it must be there
    elif any(block.first.startswith(prefix) for prefix in RUN_BY):
        pass  # test_what_other_tests_run_exists_and_reads_the_document
    elif block.language == "sh":
        _check_shell_block(block)
    elif block.language == "properties":
        _check_properties(block, tmp_path, pki)
    elif block.language == "toml":
        _check_toml(block, tmp_path)
    elif block.language == "" and block.first.startswith("$ ams "):
        _check_transcript(block, tmp_path)
    elif block.language == "" and block.first.startswith("ams/ "):
        _check_layout(block)
    elif block.language == "" and block.first.startswith("ams conformance against peer"):
        _check_report_sample(block)
    else:
        pytest.fail(f"{block}: no rule checks this block: run it, check it, or list it in NOT_COMMANDS with why")


def test_a_synopsis_that_names_a_missing_option_is_caught() -> None:
    """The rejected twin of the synopsis check: an option no command has fails it."""
    with pytest.raises(AssertionError, match="--no-such-option"):
        _check_synopsis("ams policy show --policies DIR [--no-such-option]")
    with pytest.raises(AssertionError):
        _check_synopsis("ams policy nonsense --policies DIR")


def test_a_keystore_conf_with_a_misspelt_key_is_caught(tmp_path: Path, pki: Pki) -> None:
    block = Block("README.md", 1, "properties", "pkcs12.keystor = alice.p12\n")
    with pytest.raises((AssertionError, ams.AmsError)):
        _check_properties(block, tmp_path, pki)
