"""require_policy: a queue without a policy that protects it is refused instead of sent or read in the
clear (IBM AMS's behaviour, kept as the default, with a warning on the command line)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import ams
from ams.cli.main import main
from ams.errors import PolicyRequiredError
from ams.mq import MQMD, EmbeddedQueueManager, ProtectedQueueManager
from ams.mq.protected import ERROR_QUEUE
from ams.mq.proxy.assemble import check_config
from ams.mq.proxy.config import ConfigError, load_config
from ams.testing.pki import ThrowawayPki
from ams.testing.plugin import KeystoreConfWriter, PolicyDirWriter
from tests.proxy_world import World, make_world

PAY = 'setmqspl -m QM -p PAY.Q -s SHA256 -e AES256 -r "CN=bob,O=AMS,C=GB" -a "CN=alice,O=AMS,C=GB"'
CLEAR = "setmqspl -m QM -p CLEAR.Q -s NONE -e NONE"


def test_the_protector_refuses_a_queue_without_a_policy(ams_pki: ThrowawayPki, ams_policy_dir: PolicyDirWriter) -> None:
    directory = ams_policy_dir(PAY, CLEAR)
    policies = ams.PolicyStore.from_directory(directory)
    alice = ams.Protector(ams_pki.keystore("alice"), policies, require_policy=True)
    bob = ams.Protector(ams_pki.keystore("bob"), policies, require_policy=True)
    for call in (
        lambda: alice.protect("OTHER.Q", b"payroll"),
        lambda: bob.unprotect("OTHER.Q", b"payroll"),
        lambda: bob.unprotect_into("OTHER.Q", b"payroll"),
        lambda: alice.prepare("OTHER.Q", sending=True, receiving=False),
    ):
        with pytest.raises(PolicyRequiredError) as caught:
            call()
        assert isinstance(caught.value, ams.ConfigurationError)
        assert f"queue OTHER.Q has no policy in policy directory {directory}" in caught.value.message
        assert "ams policy set --policies DIR -p OTHER.Q" in caught.value.message
    with pytest.raises(PolicyRequiredError, match=r"CLEAR\.Q has a policy that sets no algorithm"):
        alice.protect("CLEAR.Q", b"payroll")
    # twins: the protected queue works; without require_policy the others pass in the clear, as in IBM AMS
    sent = alice.protect("PAY.Q", b"payroll")
    assert sent.qop is ams.QoP.PRIVACY and bob.unprotect("PAY.Q", sent).body == b"payroll"
    lax = ams.Protector(ams_pki.keystore("alice"), policies)
    assert lax.protect("OTHER.Q", b"payroll").body == b"payroll"
    assert lax.protect("CLEAR.Q", b"payroll").qop is ams.QoP.NONE
    with pytest.raises(PolicyRequiredError, match=r"the 0 policies given \(none\)"):
        ams.Protector(ams_pki.keystore("alice"), {}, require_policy=True).protect("Q", b"x")


def test_a_protected_connection_refuses_at_open_and_still_uses_system_queues(ams_pki: ThrowawayPki) -> None:
    qm = EmbeddedQueueManager()
    for queue in ("PAY.Q", "OTHER.Q"):
        qm.define_queue(queue)
    policies = ams.PolicyStore.of(ams.Policy.from_setmqspl(PAY))
    alice = ProtectedQueueManager(qm.connect("alice"), ams_pki.keystore("alice"), policies, require_policy=True)
    with pytest.raises(PolicyRequiredError, match=r"queue OTHER\.Q has no policy"):
        alice.open("OTHER.Q", output=True)
    with pytest.raises(PolicyRequiredError):
        alice.put1("OTHER.Q", MQMD(), b"x")
    alice.open("PAY.Q", output=True).put(MQMD(format="MQSTR"), b"for bob")
    # an unprotected message on the protected queue goes to the error queue as before: SYSTEM.* needs no policy
    qm.connect("other").put1("PAY.Q", MQMD(), b"in the clear")
    bob = ProtectedQueueManager(qm.connect("bob"), ams_pki.keystore("bob"), policies, require_policy=True)
    reader = bob.open("PAY.Q", input=True)
    assert reader.get(syncpoint=True).body == b"for bob"
    with pytest.raises(ams.SecurityError):
        reader.get(syncpoint=True)
    bob.commit()
    assert qm.connect("check").depth(ERROR_QUEUE) == 1
    # the queue manager's own policy queue is named when it is the source
    from ams.mq import write_policies_to_queue_manager

    admin = qm.connect("admin")
    write_policies_to_queue_manager(admin, policies)
    admin.commit()
    from_queue = ProtectedQueueManager(qm.connect("carol"), ams_pki.keystore("carol"), require_policy=True)
    with pytest.raises(PolicyRequiredError, match=r"in AMSQM's SYSTEM.PROTECTION.POLICY.QUEUE"):
        from_queue.open("OTHER.Q", input=True)


def test_the_command_line_warns_and_refuses(
    tmp_path: Path,
    ams_keystore_conf: KeystoreConfWriter,
    ams_policy_dir: PolicyDirWriter,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policies = str(ams_policy_dir(PAY))
    alice, bob = str(ams_keystore_conf("alice")), str(ams_keystore_conf("bob"))
    (tmp_path / "in").write_bytes(b"payroll")
    protect = ["protect", "--policies", policies, "--keystore-conf", alice, "-i", str(tmp_path / "in")]
    assert main([*protect, "-p", "OTHER.Q", "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "OTHER.Q has no policy: sent in the clear (IBM AMS does the same); use --require-policy to refuse" in err
    assert "protected for" not in err and (tmp_path / "out").read_bytes() == b"payroll"
    assert main([*protect, "-p", "OTHER.Q", "-o", str(tmp_path / "refused"), "--require-policy"]) == 2
    assert "queue OTHER.Q has no policy in policy directory" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    assert main([*protect, "-p", "PAY.Q", "-o", str(tmp_path / "pay"), "--require-policy"]) == 0  # twin
    assert "protected for PAY.Q: PRIVACY" in capsys.readouterr().err
    unprotect = ["unprotect", "--policies", policies, "--keystore-conf", bob, "-o", str(tmp_path / "plain")]
    assert main([*unprotect, "-p", "OTHER.Q", "-i", str(tmp_path / "in")]) == 0
    assert "OTHER.Q has no policy: read in the clear" in capsys.readouterr().err
    assert main([*unprotect, "-p", "OTHER.Q", "-i", str(tmp_path / "in"), "--require-policy"]) == 2
    assert main([*unprotect, "-p", "PAY.Q", "-i", str(tmp_path / "pay"), "--require-policy"]) == 0
    assert (tmp_path / "plain").read_bytes() == b"payroll"

    manager = EmbeddedQueueManager(tmp_path / "qm.sqlite", create=True)
    manager.define_queue("OTHER.Q")
    queues = ["--qm", str(tmp_path / "qm.sqlite"), "--policies", policies]
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"one\n")))
    assert main(["put", "OTHER.Q", *queues, "--keystore-conf", alice, "--require-policy"]) == 2
    assert "queue OTHER.Q has no policy" in capsys.readouterr().err
    assert manager.connect("look").depth("OTHER.Q") == 0
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"one\n")))
    assert main(["put", "OTHER.Q", *queues, "--keystore-conf", alice]) == 0
    assert "OTHER.Q has no policy: sent in the clear" in capsys.readouterr().err
    assert main(["get", "OTHER.Q", *queues, "--keystore-conf", bob, "--require-policy"]) == 2
    assert manager.connect("look").depth("OTHER.Q") == 1  # refused at open: the message stays
    assert main(["get", "OTHER.Q", *queues, "--keystore-conf", bob]) == 0
    out, err = capsys.readouterr()
    assert out == "one\n" and "OTHER.Q has no policy: read in the clear" in err


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("require-policy"))


def test_a_proxy_route_can_require_policies(world: World) -> None:
    path = world.config("required.toml", require_policy=True)
    path.write_text(path.read_text().replace('queue = "OUT.Q"', 'queue = "IN.BACKOUT"'))
    (route,) = load_config(path).routes
    assert route.require_policy
    (problem,) = check_config(load_config(path))
    assert "queue IN.BACKOUT has no policy in policy directory" in problem and "policies" in problem
    # twins: the same route without the setting starts (and sends in the clear), and with both queues protected
    path.write_text(path.read_text().replace("require_policy = true", "require_policy = false"))
    assert not any("IN.BACKOUT has no policy" in p for p in check_config(load_config(path)))
    assert check_config(load_config(world.config("protected.toml", require_policy=True))) == []
    path.write_text(path.read_text().replace("require_policy = false", 'require_policy = "yes"'))
    with pytest.raises(ConfigError, match="require_policy: expected bool, found str"):
        load_config(path)
