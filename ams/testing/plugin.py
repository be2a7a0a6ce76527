"""The pytest plugin of ``ams.testing``: a throwaway PKI, keystore.conf files and policy directories.

``pip install ams[testing]`` registers it (the ``pytest11`` entry point ``ams``), so a test
suite only asks for the fixtures::

    def test_bob_reads_what_alice_protects(ams_pki, ams_keystore_conf, ams_policy_dir):
        policies = ams_policy_dir(f'setmqspl -m QM -p Q -s SHA256 -e AES256 -r "{ams_pki.dn("bob")}"')
        alice = ams.Protector(ams_pki.keystore("alice"), ams.PolicyStore.from_directory(policies))
        bob = ams.Protector(ams.Keystore.from_conf(ams_keystore_conf("bob")), ...)

* ``ams_pki`` (session): a :class:`~ams.testing.pki.ThrowawayPki`: a CA valid since 2000, users
  alice, bob, carol, dave and erin (``CN=name,O=AMS,C=GB``), a foreign CA with mallory, and
  certificates that break each rule on request (``ams_pki.faulty(CertificateFault.EXPIRED)``).
* ``ams_keystore_conf`` (module): writes a user's keystore and keystore.conf into a new temporary
  directory and returns the keystore.conf (``kind="pkcs12"`` or ``"pem"``, ``crl=True`` for the
  CA's CRL).
* ``ams_policy_dir`` (module): writes setmqspl lines into a new policy directory and returns it.

None is function-scoped, so a Hypothesis ``@given`` test can take them (Hypothesis refuses
function-scoped fixtures, which would be shared by every example).

Without the plugin installed, a conftest.py can load it with ``pytest_plugins = ["ams.testing.plugin"]``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest

if TYPE_CHECKING:  # the PKI is imported when a fixture is first used: the plugin loads in every pytest run
    from ams.testing.pki import Issued, ThrowawayPki


class KeystoreConfWriter(Protocol):
    """What ``ams_keystore_conf`` is: a function that writes a user's keystore.conf and returns its path."""

    def __call__(self, name: str, *, kind: str = "pkcs12", crl: bool = False, extra: Sequence[Issued] = ()) -> Path:
        """Write ``name``'s keystore (``kind`` pkcs12 or pem; ``crl`` adds the CA's CRL) and its keystore.conf."""
        ...


class PolicyDirWriter(Protocol):
    """What ``ams_policy_dir`` is: a function that writes setmqspl lines into a new policy directory."""

    def __call__(self, *lines: str) -> Path:
        """A new directory holding ``lines`` (setmqspl commands) in ``policies.spl``."""
        ...


@pytest.fixture(scope="session")
def ams_pki() -> ThrowawayPki:
    """A throwaway PKI shared by the session: the CA, alice..erin, and the foreign CA with mallory."""
    from ams.testing.pki import ThrowawayPki

    return ThrowawayPki()


@pytest.fixture(scope="module")
def ams_keystore_conf(ams_pki: ThrowawayPki, tmp_path_factory: pytest.TempPathFactory) -> KeystoreConfWriter:
    """Write a user's keystore and keystore.conf into a new temporary directory (module scope, so that
    a Hypothesis ``@given`` test can use it: each call writes a directory of its own)."""
    counter = itertools.count(1)

    def write(name: str, *, kind: str = "pkcs12", crl: bool = False, extra: Sequence[Issued] = ()) -> Path:
        directory = tmp_path_factory.mktemp(f"keystore-{name}-{next(counter)}")
        return ams_pki.write_keystore(directory, name, kind=kind, crl=crl, extra=extra)

    return write


@pytest.fixture(scope="module")
def ams_policy_dir(tmp_path_factory: pytest.TempPathFactory) -> PolicyDirWriter:
    """Write setmqspl lines into a new policy directory (module scope: usable with ``@given``)."""
    counter = itertools.count(1)

    def write(*lines: str) -> Path:
        directory = tmp_path_factory.mktemp(f"policies-{next(counter)}")
        (directory / "policies.spl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return directory

    return write
