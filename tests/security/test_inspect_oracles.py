"""``ams inspect --keystore-conf`` and ``ams errors explain`` as a Bleichenbacher oracle.

Both decrypt a privacy message to describe its inner SignedData. An attacker who can put
messages on the error queue, and watch how long the operator's explain takes, must learn no
more from a bad RSA block than ``unprotect`` gives: the same decryptions run for a block that
does not unwrap as for a wrong key of the right length (implicit rejection), measured as
``test_a_block_that_does_not_unwrap_costs_what_a_wrong_key_costs`` measures unprotect.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import ams
import ams.errors
from ams.inspect import inspect_message
from ams.mq.dlh import MQDLH
from ams.mq.errors_queue import FailedMessage, explain
from ams.mq.mqmd import MQMD
from tests.conftest import Pki, store
from tests.security.attacks import wrapped_key_for

SECRET = b"the quarterly figures, which only bob may read"


@pytest.fixture(scope="module")
def policies(pki: Pki) -> ams.PolicyStore:
    return store(f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{pki.dn("bob")}"')


@pytest.fixture(scope="module")
def message(pki: Pki, policies: ams.PolicyStore) -> bytes:
    return ams.Protector(pki.keystore("alice"), policies).protect("PRIV.Q", SECRET * 2000).body


@pytest.fixture
def decrypted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every CBC decryption the library runs from now on."""
    from ams.hazmat import enveloped

    sizes: list[int] = []
    real = enveloped.cbc_decrypt

    def counted(*args: object, **kwargs: object) -> memoryview:
        sizes.append(len(args[3]))  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(enveloped, "cbc_decrypt", counted)
    for name in ("decrypt", "decrypt_exact"):  # a confidentiality payload's, with the message key's context
        method = getattr(enveloped.CbcDecryptor, name)

        def chained(self: Any, iv: bytes, ciphertext: bytes, *args: object, _real: Any = method, **kw: Any) -> Any:
            sizes.append(len(ciphertext))
            return _real(self, iv, ciphertext, *args, **kw)

        monkeypatch.setattr(enveloped.CbcDecryptor, name, chained)
    return sizes


def _probes(pki: Pki, message: bytes) -> dict[str, bytes]:
    """A bad RSA block, a well-padded block with a key of the wrong length, a wrong key of the right length."""
    identity = pki.keystore("bob").identity
    assert identity is not None
    public = identity.certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    wrapped = wrapped_key_for(message, identity)
    start = message.index(wrapped)

    def replaced(block: bytes) -> bytes:
        return message[:start] + block + message[start + len(wrapped) :]

    return {
        "bad block": replaced(os.urandom(len(wrapped))),
        "wrong length": replaced(public.encrypt(os.urandom(5), padding.PKCS1v15())),
        "wrong key": replaced(public.encrypt(os.urandom(32), padding.PKCS1v15())),
    }


def _work(
    probes: dict[str, bytes], decrypted: list[int], run: Callable[[bytes], str]
) -> dict[str, tuple[list[int], str]]:
    work = {}
    for name, probe in probes.items():
        decrypted.clear()
        said = run(probe)
        work[name] = (list(decrypted), said)
    return work


def _assert_flat(work: dict[str, tuple[list[int], str]]) -> None:
    sizes = {name: sizes for name, (sizes, _) in work.items()}
    assert sizes["bad block"] == sizes["wrong length"] == sizes["wrong key"] != [], sizes
    assert len({said for _, said in work.values()}) == 1, work


def test_inspect_pays_for_a_bad_block_what_a_wrong_key_costs(pki: Pki, message: bytes, decrypted: list[int]) -> None:
    keystore = pki.keystore("bob")
    assert "inner_signature" in inspect_message(message, keystore=keystore)  # the genuine twin opens

    def run(probe: bytes) -> str:
        return str(inspect_message(probe, keystore=keystore)["inner"])

    _assert_flat(_work(_probes(pki, message), decrypted, run))


def _failed(body: bytes) -> FailedMessage:
    dead_letter = MQDLH.for_message(2063, "PRIV.Q", "QM", MQMD(format=" " * 8))
    return FailedMessage(1, MQMD(format="MQDEAD  "), dead_letter, body)


def test_explain_pays_for_a_bad_block_what_a_wrong_key_costs(
    pki: Pki, policies: ams.PolicyStore, message: bytes, decrypted: list[int]
) -> None:
    keystore = pki.keystore("bob")
    assert "can read it now" in explain(_failed(message), keystore, dict(policies))["verdict"]

    def run(probe: bytes) -> str:
        report = explain(_failed(probe), keystore, dict(policies))
        return str(report["verdict"]) + json.dumps(report["message"].get("inner"))

    _assert_flat(_work(_probes(pki, message), decrypted, run))


def test_the_commands_pay_for_a_bad_block_what_a_wrong_key_costs(
    pki: Pki, message: bytes, decrypted: list[int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ams.cli.main import main
    from ams.mq import EmbeddedQueueManager
    from ams.mq.protected import ERROR_QUEUE
    from ams.pki import write_user_keystore

    conf = write_user_keystore(tmp_path / "bob", "bob", pki.users["bob"], [pki.ca.certificate])
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "PRIV.Q.spl").write_text(f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{pki.dn("bob")}"\n')
    qm_path = tmp_path / "qm.sqlite"
    qm = EmbeddedQueueManager(qm_path, name="QM", create=True).connect("attacker")
    keys = ["--keystore-conf", str(conf)]
    probes = _probes(pki, message)
    dead_letter = MQDLH.for_message(2063, "PRIV.Q", "QM", MQMD(format=" " * 8)).pack(546)
    for probe in probes.values():
        qm.put1(ERROR_QUEUE, MQMD(format="MQDEAD  "), dead_letter + probe)

    def inspected(probe: bytes) -> str:
        path = tmp_path / "probe.bin"
        path.write_bytes(probe)
        assert main(["inspect", *keys, "-i", str(path), "--json"]) == 0
        return json.dumps(json.loads(capsys.readouterr().out).get("inner"))

    _assert_flat(_work(probes, decrypted, inspected))
    numbers = {probe: str(number) for number, probe in enumerate(probes.values(), start=1)}

    def explained(probe: bytes) -> str:
        arguments = ["errors", "explain", numbers[probe], "--qm", str(qm_path), "--policies", str(policies), *keys]
        assert main([*arguments, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        return str(report["verdict"]) + json.dumps(report["message"].get("inner"))

    _assert_flat(_work(probes, decrypted, explained))
