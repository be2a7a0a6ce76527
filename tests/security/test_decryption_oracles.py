"""Oracles on the decryption path, tried as an attacker who changes ciphertext without the key.

Each test runs the attack end to end through the public API and asserts that it fails: every
corruption ends in the same error (class, code, reason and text), no error holds a byte that
decryption revealed, a padding oracle recovers nothing, and a Bleichenbacher probe cannot tell
a bad RSA block from a well-formed one of the wrong length, with software keys and on a real
PKCS#11 token.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ams
import ams.errors
from tests.conftest import Pki, store
from tests.security.attacks import (
    V2,
    V3,
    flip,
    leaked,
    outcome,
    privacy_layout,
    put_byte,
    raw_plaintext,
    wrapped_key_for,
)
from tests.softhsm import requires_softhsm

SECRET = b"PIN=4921; account 12345678; pay 1,000.00 GBP to sort code 40-11-62; memo: Q3 settlement"


@pytest.fixture(scope="module")
def policies(pki: Pki) -> ams.PolicyStore:
    return store(
        f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{pki.dn("bob")}"',
        f'setmqspl -m QM -p CONF.Q -e AES256 -r "{pki.dn("bob")}" -c 100',
        f'setmqspl -m QM -p CONF1.Q -e AES128 -r "{pki.dn("bob")}"',
    )


@pytest.fixture(scope="module")
def sent(pki: Pki, policies: ams.PolicyStore) -> dict[str, bytes]:
    alice = ams.Protector(pki.keystore("alice"), policies)
    return {queue: alice.protect(queue, SECRET).body for queue in ("PRIV.Q", "CONF.Q", "CONF1.Q")}


def _bob(pki: Pki, policies: ams.PolicyStore, **options: object) -> ams.Protector:
    return ams.Protector(pki.keystore("bob"), policies, **options)  # type: ignore[arg-type]


def _privacy_probes(message: bytes, wrapped: bytes) -> list[bytes]:
    """What a padding-oracle or block-choosing attacker sends: bit flips in every block of the
    ciphertext and the IV, and the last byte of the next-to-last block swept through 256 values."""
    layout = privacy_layout(message, wrapped)
    end = layout.ciphertext_start + layout.ciphertext_size
    probes = [flip(message, offset, 0x80) for offset in range(layout.ciphertext_start, end, 7)]
    probes += [flip(message, layout.iv_start + i) for i in range(layout.block)]
    sweep = end - 2 * layout.block + layout.block - 1
    probes += [put_byte(message, sweep, value) for value in range(256) if value != message[sweep]]
    probes.append(flip(message, 40))  # the PDMQ empty flag of a genuine message
    probes.append(message[:24] + struct.pack(">i", len(SECRET) - 1) + message[28:])  # origSize probing
    return probes


def test_every_corruption_of_a_privacy_message_gives_the_same_error(
    pki: Pki, policies: ams.PolicyStore, sent: dict[str, bytes]
) -> None:
    bob = _bob(pki, policies)
    message = sent["PRIV.Q"]
    assert bob.unprotect("PRIV.Q", message).body == SECRET
    wrapped = wrapped_key_for(message, pki.keystore("bob").identity)  # type: ignore[arg-type]
    seen = {outcome(lambda probe=probe: bob.unprotect("PRIV.Q", probe)) for probe in _privacy_probes(message, wrapped)}
    assert len(seen) == 1, seen
    (only,) = seen
    assert only != "accepted" and only[0] == "DecryptionError" and only[2] == 2063
    text = only[3]
    assert len(text) < 1000 and "PRIVACY" in text and "AES256" in text and pki.dn("bob") in text


def test_a_padding_oracle_recovers_nothing(pki: Pki, policies: ams.PolicyStore, sent: dict[str, bytes]) -> None:
    """The classic attack on the last plaintext byte: find the one value of the previous
    ciphertext byte that yields valid padding, by how the receiver answers."""
    bob = _bob(pki, policies)
    message = sent["PRIV.Q"]
    layout = privacy_layout(message, wrapped_key_for(message, pki.keystore("bob").identity))  # type: ignore[arg-type]
    end = layout.ciphertext_start + layout.ciphertext_size
    target = end - layout.block - 1  # the byte XORed into the last plaintext byte
    answers: dict[object, list[int]] = {}
    for guess in (value for value in range(256) if value != message[target]):  # the unchanged message reads
        answer = outcome(lambda guess=guess: bob.unprotect("PRIV.Q", put_byte(message, target, guess)))
        answers.setdefault(answer, []).append(guess)
    # an oracle would show up as an answer given for very few guesses: there is just one answer
    assert len(answers) == 1, {str(k)[:120]: v[:5] for k, v in answers.items()}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_error_holds_a_decrypted_byte(
    pki: Pki, policies: ams.PolicyStore, sent: dict[str, bytes], data: st.DataObject
) -> None:
    """Random changes to the IV and ciphertext (CBC lets an attacker choose plaintext blocks):
    whatever the receiver decrypted, none of it appears in the error text or notes."""
    identity = pki.keystore("bob").identity
    assert identity is not None
    queue = data.draw(st.sampled_from(["PRIV.Q", "CONF1.Q", "CONF.Q"]))
    message = bytearray(sent[queue])
    start = V2 + 150 if queue == "PRIV.Q" else V3 + 300  # past the RecipientInfo: the encrypted parts
    for _ in range(data.draw(st.integers(1, 6))):
        offset = data.draw(st.integers(start, len(message) - 1))
        message[offset] = data.draw(st.integers(0, 255))
    corrupted = bytes(message)
    try:
        _bob(pki, policies).unprotect(queue, corrupted)
    except ams.AmsError as error:
        text = str(error) + " ".join(getattr(error, "__notes__", []))
        assert error.diagnostic is None if isinstance(error, ams.errors.DecryptionError) else True
        assert leaked(text, raw_plaintext(corrupted, identity)) == [], text
        assert b"PIN=4921".hex() not in text and "PIN=4921" not in text


@pytest.mark.parametrize("queue", ["CONF.Q", "CONF1.Q"])
def test_every_confidentiality_failure_after_the_unwrap_is_one_error(
    pki: Pki, policies: ams.PolicyStore, sent: dict[str, bytes], queue: str
) -> None:
    """No MAC, by AMS's design: a changed ciphertext may decrypt to a body of the right length,
    which nobody can detect. Every failure still says the same thing."""
    message = sent[queue]
    bob = _bob(pki, policies)
    assert bob.unprotect(queue, message).body == SECRET
    key_block_size = struct.unpack(">i", message[28:32])[0]
    payload_start = V3 + key_block_size + 16
    probes = [put_byte(message, len(message) - 17, value) for value in range(256)]  # padding-oracle sweep
    probes += [flip(message, offset) for offset in range(payload_start, len(message), 5)]
    probes += [flip(message, V3 + key_block_size - 1 - i) for i in range(0, 30, 3)]  # the key block's ciphertext
    probes += [flip(message, 40)]  # the empty flag
    refusals = {outcome(lambda probe=probe: bob.unprotect(queue, probe)) for probe in probes} - {"accepted"}
    assert len(refusals) == 1, refusals
    (only,) = refusals
    assert isinstance(only, tuple) and only[0] == "DecryptionError" and len(only[3]) < 1000


def test_key_reuse_does_not_make_probing_cheaper(pki: Pki, policies: ams.PolicyStore) -> None:
    """The key-reuse flag is not authenticated: a failing message drops the cached key, so every
    probe costs the receiver an RSA operation, as it would without key reuse."""
    alice = ams.Protector(pki.keystore("alice"), policies)
    first, second = alice.protect("CONF.Q", b"first message").body, alice.protect("CONF.Q", b"second message").body
    bob = _bob(pki, policies)
    bob.unprotect("CONF.Q", first)
    bob.unprotect("CONF.Q", second)
    assert (bob.stats.rsa_private_operations, bob.stats.key_reuse_hits) == (1, 1)  # the twin: reuse works
    for value in range(20):
        with pytest.raises(ams.errors.DecryptionError):
            bob.unprotect("CONF.Q", put_byte(second, len(second) - 17, value ^ second[-17] ^ 0x80))
    # the first probe used the key the genuine message left; it was dropped, so the other 19 paid
    assert (bob.stats.rsa_private_operations, bob.stats.key_reuse_hits) == (20, 2)
    assert bob.unprotect("CONF.Q", second).body == b"second message"  # genuine messages still read


def _replace_wrapped_key(message: bytes, wrapped: bytes, replacement: bytes) -> bytes:
    start = message.index(wrapped)
    assert len(replacement) == len(wrapped)
    return message[:start] + replacement + message[start + len(wrapped) :]


def _bleichenbacher_probes(message: bytes, wrapped: bytes, public: rsa.RSAPublicKey, key_size: int) -> list[bytes]:
    """A bad RSA block, well-formed blocks holding keys of the wrong lengths, a wrong key of the
    right length, and the genuine key with a changed ciphertext."""
    size = len(wrapped)
    probes = [_replace_wrapped_key(message, wrapped, os.urandom(size)) for _ in range(3)]
    for length in (0, 1, 5, key_size - 1, key_size + 1, 48):
        probes.append(_replace_wrapped_key(message, wrapped, public.encrypt(os.urandom(length), padding.PKCS1v15())))
    probes.append(_replace_wrapped_key(message, wrapped, public.encrypt(os.urandom(key_size), padding.PKCS1v15())))
    probes.append(flip(message, len(message) - 20))
    return probes


def test_bleichenbacher_probes_look_alike_with_a_software_key(
    pki: Pki, policies: ams.PolicyStore, sent: dict[str, bytes]
) -> None:
    bob = _bob(pki, policies)
    identity = pki.keystore("bob").identity
    assert identity is not None
    public = identity.certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    for queue, key_size in (("PRIV.Q", 32), ("CONF1.Q", 16)):
        message = sent[queue]
        offset = V2 if queue == "PRIV.Q" else V3
        end = V3 + struct.unpack(">i", message[28:32])[0] if queue != "PRIV.Q" else len(message)
        wrapped = wrapped_key_for(message[:end], identity, offset=offset)
        probes = _bleichenbacher_probes(message, wrapped, public, key_size)
        seen = {outcome(lambda probe=probe, queue=queue: bob.unprotect(queue, probe)) for probe in probes}
        assert len(seen) == 1 and "accepted" not in seen, seen


def test_a_block_that_does_not_unwrap_costs_what_a_wrong_key_costs(
    pki: Pki, policies: ams.PolicyStore, sent: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Implicit rejection all the way: a bad RSA block, or one holding a key of the wrong length,
    goes on with a derived key through the same decryptions as a wrong key of the right length
    (the privacy content; the key block, and the payload when that unpads), so that the time
    it takes says nothing the error text does not. Only the key owner's diagnostic names the unwrap."""
    from ams.hazmat import enveloped

    decrypted: list[int] = []
    real = enveloped.cbc_decrypt

    def counted(*args: object, **kwargs: object) -> memoryview:
        decrypted.append(len(args[3]))  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(enveloped, "cbc_decrypt", counted)
    for name in ("decrypt", "decrypt_exact"):  # a confidentiality payload's, with the message key's context
        method = getattr(enveloped.CbcDecryptor, name)

        def chained(self: Any, iv: bytes, ciphertext: bytes, *args: object, _real: Any = method, **kw: Any) -> Any:
            decrypted.append(len(ciphertext))
            return _real(self, iv, ciphertext, *args, **kw)

        monkeypatch.setattr(enveloped.CbcDecryptor, name, chained)
    identity = pki.keystore("bob").identity
    assert identity is not None
    public = identity.certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    diagnosing = ams.Protector(pki.keystore("bob"), policies, diagnose_decryption=True)
    for queue, key_size, unwrap_step in (("PRIV.Q", 32, "unwrapping the content key"), ("CONF1.Q", 16, "unwrapping")):
        message = sent[queue]
        end = V3 + struct.unpack(">i", message[28:32])[0] if queue != "PRIV.Q" else len(message)
        wrapped = wrapped_key_for(message[:end], identity, offset=V2 if queue == "PRIV.Q" else V3)
        work = {}
        for name, block in (
            ("bad block", os.urandom(len(wrapped))),
            ("wrong length", public.encrypt(os.urandom(5), padding.PKCS1v15())),
            ("wrong key", public.encrypt(os.urandom(key_size), padding.PKCS1v15())),
        ):
            decrypted.clear()
            with pytest.raises(ams.errors.DecryptionError) as caught:
                diagnosing.unprotect(queue, _replace_wrapped_key(message, wrapped, block))
            # the key block's decryption (the payload's follows only when garbage unpads: 1 in 4,096)
            work[name] = list(decrypted) if queue == "PRIV.Q" else decrypted[:1]
            expected = unwrap_step if name != "wrong key" else "decrypting"
            assert caught.value.diagnostic is not None and caught.value.diagnostic.startswith(expected), name
        assert work["bad block"] == work["wrong length"] == work["wrong key"] != [], (queue, work)


@requires_softhsm
def test_bleichenbacher_probes_look_alike_on_a_pkcs11_token(pki: Pki, token: Path) -> None:
    """A token reports a bad block as an error of its own; the library must hide that too."""
    with ams.Keystore.from_conf(token) as keystore:
        identity = keystore.identity
        assert identity is not None
        policies = store(
            'setmqspl -m QM -p HSM.PRIV -s SHA256 -e AES256 -r "CN=hsm-user,O=AMS,C=GB"',
            'setmqspl -m QM -p HSM.CONF -e AES128 -r "CN=hsm-user,O=AMS,C=GB"',
        )
        alice = pki.keystore("alice")
        sender = ams.Protector(ams.Keystore(alice.identity, [*alice.certificates, identity.certificate]), policies)
        hsm = ams.Protector(keystore, policies)
        public = identity.certificate.public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        for queue, key_size, offset in (("HSM.PRIV", 32, V2), ("HSM.CONF", 16, V3)):
            message = sender.protect(queue, SECRET).body
            assert hsm.unprotect(queue, message).body == SECRET  # the accepted twin
            end = offset + struct.unpack(">i", message[28:32])[0] if offset == V3 else len(message)
            wrapped = wrapped_key_for(message[:end], identity, offset=offset)
            probes = _bleichenbacher_probes(message, wrapped, public, key_size)
            seen = {outcome(lambda probe=probe, queue=queue: hsm.unprotect(queue, probe)) for probe in probes}
            assert len(seen) == 1 and "accepted" not in seen, seen


def test_the_key_owner_can_ask_for_the_failing_step(
    pki: Pki, policies: ams.PolicyStore, sent: dict[str, bytes]
) -> None:
    """An explicit local diagnostic, off by default: it names the step, still without plaintext."""
    message = flip(sent["PRIV.Q"], len(sent["PRIV.Q"]) - 20)
    with pytest.raises(ams.errors.DecryptionError) as quiet:
        _bob(pki, policies).unprotect("PRIV.Q", message)
    assert quiet.value.diagnostic is None
    with pytest.raises(ams.errors.DecryptionError) as loud:
        _bob(pki, policies, diagnose_decryption=True).unprotect("PRIV.Q", message)
    assert loud.value.diagnostic and str(loud.value) == str(quiet.value)  # the text stays the same
    identity = pki.keystore("bob").identity
    assert identity is not None
    assert loud.value.diagnostic == "verifying the inner signature failed (BadSignatureError)"
    assert leaked(loud.value.diagnostic, raw_plaintext(message, identity)) == []


def test_the_command_line_says_the_same_about_every_corruption(
    pki: Pki, sent: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What leaked before came out of `ams unprotect`, `ams inspect --keystore-conf` and `ams errors
    explain`: each prints the same text for every corrupted copy of one message, and none of what
    decryption revealed."""
    from ams.cli.main import main
    from ams.mq import MQMD, EmbeddedQueueManager
    from ams.mq.protected import ERROR_QUEUE
    from ams.pki import write_user_keystore

    identity = pki.keystore("bob").identity
    assert identity is not None
    conf = write_user_keystore(tmp_path / "bob", "bob", pki.users["bob"], [pki.ca.certificate])
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "PRIV.Q.spl").write_text(f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{pki.dn("bob")}"\n')
    message = sent["PRIV.Q"]
    layout = privacy_layout(message, wrapped_key_for(message, identity))
    end = layout.ciphertext_start + layout.ciphertext_size
    corrupted = [flip(message, offset, 0x40) for offset in range(layout.ciphertext_start, end, 97)]
    corrupted += [flip(message, 40), put_byte(message, end - layout.block - 1, 0)]
    qm_path = tmp_path / "qm.sqlite"
    qm = EmbeddedQueueManager(qm_path, name="QM", create=True).connect("attacker")
    seen: dict[str, set[str]] = {"unprotect": set(), "inspect": set(), "explain": set()}
    for number, data in enumerate(corrupted, start=1):
        path = tmp_path / f"m{number}.bin"
        path.write_bytes(data)
        keys = ["--keystore-conf", str(conf)]
        assert main(["unprotect", "-p", "PRIV.Q", "--policies", str(policies), *keys, "-i", str(path)]) == 3
        seen["unprotect"].add(capsys.readouterr().err)
        assert main(["inspect", *keys, "-i", str(path), "--json"]) == 0
        described = capsys.readouterr().out
        assert leaked(described, raw_plaintext(data, identity)) == []
        seen["inspect"].add(json.dumps(json.loads(described).get("inner")))  # the header shows the attacker's edits
        qm.put1(ERROR_QUEUE, MQMD(format="MQDEAD  "), _dead_letter("PRIV.Q") + data)
        assert main(["errors", "explain", str(number), "--qm", str(qm_path), *keys, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        seen["explain"].add(report["verdict"] + json.dumps(report["message"].get("inner")))
        for text in (report["verdict"], json.dumps(report)):
            assert leaked(text, raw_plaintext(data, identity)) == []
    for command, texts in seen.items():
        assert len(texts) == 1, (command, texts)
        (text,) = texts
        assert "Traceback" not in text and b"PIN=4921".hex() not in text and "PIN=4921" not in text


def _dead_letter(queue: str) -> bytes:
    from ams.mq.dlh import MQDLH
    from ams.mq.mqmd import MQMD

    return MQDLH.for_message(2063, queue, "QM", MQMD(format=" " * 8)).pack(546)
