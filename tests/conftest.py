"""Shared fixtures: one real test PKI per session (RSA keys are slow to make)."""

from __future__ import annotations

import datetime
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

import ams
from ams.testing.pki import Issued, ThrowawayPki, issue, new_key
from ams.testing.plugin import ams_keystore_conf as ams_keystore_conf
from ams.testing.plugin import ams_pki as ams_pki
from ams.testing.plugin import ams_policy_dir as ams_policy_dir

VECTORS = Path(__file__).parent / "vectors"
SHARED_VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "bouncycastle"


# The session's PKI is the one ams.testing's pytest plugin gives every suite (ams_pki): a CA valid
# since 2000 (so that tests can issue certificates that expired long ago), users alice..erin, and a
# foreign CA with its own mallory. Importing the fixtures here makes them work whether or not the
# installed package registered the plugin (pip install -e . does, through its pytest11 entry point).
Pki = ThrowawayPki


@pytest.fixture(scope="session")
def pki(ams_pki: ThrowawayPki) -> ThrowawayPki:
    return ams_pki


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


def five_queue_policies(pki: Pki) -> tuple[str, ...]:
    """The five queues the fast-path tests protect on: integrity, privacy to bob, privacy to three
    recipients, confidentiality, and confidentiality reusing its key ten times."""
    three = " ".join(f'-r "{pki.dn(name)}"' for name in ("carol", "bob", "dave"))
    return (
        "setmqspl -m QM -p INT.Q -s SHA256",
        f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{pki.dn("bob")}"',
        f"setmqspl -m QM -p PRIV3.Q -s SHA512 -e AES128 {three}",
        f'setmqspl -m QM -p CONF.Q -e AES256 -r "{pki.dn("bob")}"',
        f'setmqspl -m QM -p CONF.REUSE.Q -e AES128 -r "{pki.dn("bob")}" -c 10',
    )


def rfh2(folder: bytes, *, big_endian: bool = False, next_format: str = "MQSTR", length: int | None = None) -> bytes:
    """An MQRFH2 version 2 with one folder, in either integer encoding (546 little-endian, 273
    big-endian), CCSID 1208; ``length`` overrides StrucLength to make a malformed one."""
    order, encoding = (">", 273) if big_endian else ("<", 546)
    data = struct.pack(order + "i", len(folder)) + folder
    total = 36 + len(data) if length is None else length
    fixed = struct.pack(order + "4siiii8sii", b"RFH ", 2, total, encoding, 1208, next_format.ljust(8).encode(), 0, 1208)
    return fixed + data


NOW = datetime.datetime.now(datetime.UTC)

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command line is not installed")


from tests.mq_transports import connections as connections  # noqa: E402 - the transport fixture, shared
from tests.softhsm import token as token  # noqa: E402 - a real PKCS#11 token, one per session


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded queue manager's writer held between calls for longer than any test (HOLD_SECONDS
    an hour, patched where embedded_unit_of_work imported it by name), and not written early after a
    wait for it on a loaded machine (CONTENDED_SECONDS 0): a test then sees the transaction held."""
    from ams.mq import embedded_unit_of_work, embedded_writer

    monkeypatch.setattr(embedded_writer, "HOLD_SECONDS", 3600.0)
    monkeypatch.setattr(embedded_unit_of_work, "HOLD_SECONDS", 3600.0)
    monkeypatch.setattr(embedded_unit_of_work, "CONTENDED_SECONDS", 0.0)
