"""Shared fixtures: one real test PKI per session (RSA keys are slow to make)."""

from __future__ import annotations

import datetime
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import ams
from ams.pki import Issued, issue, make_ca, new_key, user_dn

VECTORS = Path(__file__).parent / "vectors"
SHARED_VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "bouncycastle"


LONG_AGO = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)


class Pki:
    """A CA, users alice..erin, and a foreign CA with its own mallory."""

    def __init__(self) -> None:
        # the CA is valid from 2000 so tests can issue certificates that expired long ago
        self.ca = make_ca("CN=Test CA,O=AMS,C=GB", not_before=LONG_AGO, days=365 * 100)
        self.users: dict[str, Issued] = {
            name: issue(self.ca, user_dn(name)) for name in ("alice", "bob", "carol", "dave", "erin")
        }
        self.foreign_ca = make_ca("CN=Foreign CA,O=ELSEWHERE,C=US")
        self.mallory = issue(self.foreign_ca, "CN=mallory,O=ELSEWHERE,C=US")

    def dn(self, name: str) -> str:
        return str(self.users[name].dn)

    def keystore(self, name: str, *, extra: tuple[Issued, ...] = ()) -> ams.Keystore:
        me = self.users.get(name, self.mallory)
        others = [self.ca.certificate] + [u.certificate for n, u in self.users.items() if n != name]
        others += [e.certificate for e in extra]
        return ams.Keystore(ams.Identity(me.certificate, me.key), others, source=f"{name}'s test keystore")


@pytest.fixture(scope="session")
def pki() -> Pki:
    return Pki()


@pytest.fixture(scope="session")
def make_issued(pki: Pki) -> Callable[..., Issued]:
    def make(dn: str, **options: object) -> Issued:
        return issue(pki.ca, dn, **options)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="session")
def small_key() -> object:
    return new_key(768)


def policy(line: str) -> ams.Policy:
    return ams.Policy.from_setmqspl(line)


def store(*lines: str) -> ams.PolicyStore:
    return ams.PolicyStore.of(*(policy(line) for line in lines))


NOW = datetime.datetime.now(datetime.UTC)

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command line is not installed")


from tests.mq_transports import connections as connections  # noqa: E402 - the transport fixture, shared
from tests.softhsm import token as token  # noqa: E402 - a real PKCS#11 token, one per session
