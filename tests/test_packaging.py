"""The package ships whole: an sdist that holds everything ``./scripts/test`` needs, a wheel with
the LICENSE and the example policies, metadata that passes ``twine check``, and ``scripts/demo``
that installs no Debian package.

One build per session (``python -m build``, isolated: it fetches setuptools>=77 from the package
index), of a copy of the source tree, so the checkout is left alone. The full "pip install the
sdist and run the suite from it" is too slow for every run; the file list is checked instead.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parents[1]
# what the source tree holds that is not the project (.gitignore's patterns, and git's own files)
NOT_SHIPPED = (".git", *(p.strip().strip("/") for p in (ROOT / ".gitignore").read_text().splitlines()))
# what setuptools adds to every sdist
GENERATED = ("PKG-INFO", "setup.cfg", "ams.egg-info/*")

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("build") is None or importlib.util.find_spec("twine") is None,
    reason="build and twine are not installed (the test extra)",
)


@attrs.frozen
class Built:
    """The source tree that was built, and the sdist and wheel made from it."""

    source: Path
    sdist: Path
    wheel: Path


def _ignored(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if any(fnmatch.fnmatch(n, pattern) for pattern in NOT_SHIPPED)}


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The sdist and the wheel of a copy of this source tree (links copied as links, as git keeps them)."""
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=_ignored, symlinks=True)
    out = work / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        check=False,
        timeout=540,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return Built(source, sdist, wheel)


def _twine_check(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )


def _generated(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in GENERATED)


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def test_the_sdist_holds_every_file_of_the_source_tree(built: Built) -> None:
    with tarfile.open(built.sdist) as archive:
        members = {m.name.split("/", 1)[1]: m for m in archive.getmembers() if m.isfile() or m.islnk()}
    shipped = {n for n in members if not _generated(n)}
    # ams/_examples is a link to policies/ in the tree; in the sdist its files are copies
    expected = {n for n in _files(built.source) if not n.startswith("ams/_examples") and not _generated(n)}
    expected |= {f"ams/_examples/{p.name}" for p in (built.source / "policies").iterdir()}
    assert shipped == expected
    for needed in ("tests/conftest.py", "tests/fake_pymqi.py", "tests/security/attacks.py", "tests/data/rsa768.key.pem",
                   "tests/vectors/golden/manifest.json", "docs/format.md", "policies/EXTERNAL_IN.spl", "LICENSE",
                   "SECURITY.md", "CHANGELOG.md", "scripts/test", ".ci/run"):  # fmt: skip
        assert needed in shipped
    for script in ("scripts/test", "scripts/demo", "scripts/bootstrap", ".ci/run"):
        assert members[script].mode & 0o111 == 0o111, f"{script} is not executable in the sdist"


def test_the_wheel_holds_the_license_and_the_worked_example(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as wheel:
        names = set(wheel.namelist())
        (info,) = {n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA")}
        assert wheel.read(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        metadata = wheel.read(f"{info}/METADATA").decode()
        for policy in (ROOT / "policies").iterdir():
            assert wheel.read(f"ams/_examples/{policy.name}") == policy.read_bytes()
    assert "ams/py.typed" in names
    assert "License-Expression: Apache-2.0" in metadata and "License-File: LICENSE" in metadata
    assert "Classifier: License ::" not in metadata  # PEP 639: the expression replaces license classifiers
    assert "Author: ams developers" in metadata
    assert "Requires-Dist: cryptography<52,>=43" in metadata
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


def test_the_metadata_passes_twine_check(built: Built, tmp_path: Path) -> None:
    result = _twine_check(built.sdist, built.wheel)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2
    # the rejected twin: the same wheel claiming its Markdown README is reStructuredText
    broken = tmp_path / built.wheel.name
    with zipfile.ZipFile(built.wheel) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.endswith(".dist-info/METADATA"):
                data = data.replace(b"Description-Content-Type: text/markdown", b"Description-Content-Type: text/x-rst")
            target.writestr(item, data)
    refused = _twine_check(broken)
    assert refused.returncode != 0 and "FAILED" in refused.stdout


def test_the_installed_wheel_runs_the_worked_example(built: Built, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(built.wheel)],
        check=True,
        capture_output=True,
    )
    # -S: no .pth files, so the editable install of this checkout stays out of the way
    dependencies = [p for p in sys.path if p.endswith("site-packages")]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), *dependencies])}
    python = [sys.executable, "-S"]
    where = subprocess.run(
        [*python, "-c", "import ams; print(ams.__file__)"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert where.stdout.strip() == str(target / "ams" / "__init__.py"), where.stderr
    result = subprocess.run(
        [*python, "-m", "ams", "demo"], capture_output=True, text=True, cwd=tmp_path, env=environment, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "the examples installed with ams" in result.stdout
    assert "alice (finance) read" in result.stdout


def _fake_machine(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of scripts/bootstrap in a tree whose venv is installed, on a root machine without openssl or
    softhsm2, whose apt-get records what it was asked to install."""
    tree = tmp_path / "tree"
    (tree / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "bootstrap", tree / "scripts" / "bootstrap")
    (tree / "pyproject.toml").write_text("")
    (tree / ".venv" / "bin").mkdir(parents=True)
    (tree / ".venv" / "bin" / "python").write_text('#!/bin/sh\necho "pip must not run: $*" >&2; exit 1\n')
    (tree / ".venv" / "bin" / "python").chmod(0o755)
    for stamp in ("test", "demo"):
        (tree / ".venv" / f".ams-installed-{stamp}").touch()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname",):
        os.symlink(shutil.which(tool) or f"/usr/bin/{tool}", bin_dir / tool)
    (bin_dir / "id").write_text("#!/bin/sh\necho 0\n")
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$*" >> {tmp_path / "apt.log"}\n')
    for tool in ("id", "apt-get"):
        (bin_dir / tool).chmod(0o755)
    return tree, {"PATH": str(bin_dir)}


def test_the_demo_installs_no_debian_package_and_the_tests_install_their_peers(tmp_path: Path) -> None:
    tree, environment = _fake_machine(tmp_path)

    def bootstrap(purpose: str) -> subprocess.CompletedProcess[str]:
        command = [shutil.which("bash") or "/bin/bash", "scripts/bootstrap", purpose]
        return subprocess.run(command, cwd=tree, env=environment, capture_output=True, text=True, check=False)

    demo = bootstrap("demo")
    assert demo.returncode == 0, demo.stderr
    assert not (tmp_path / "apt.log").exists()
    tests = bootstrap("test")
    assert tests.returncode == 0, tests.stderr
    assert (tmp_path / "apt.log").read_text().splitlines()[-1].endswith("install -y -qq openssl softhsm2")
    wrong = bootstrap("demos")
    assert wrong.returncode == 2 and "expected 'test' or 'demo', found 'demos'" in wrong.stderr
