"""Policies from setmqspl command lines, with IBM's rules; policy directories."""

from __future__ import annotations

from pathlib import Path

import pytest

import ams
import ams.errors
from ams.algorithms import KEYREUSE_UNLIMITED
from ams.policy import PolicyRemoval, parse_setmqspl


def test_ibm_documentation_examples() -> None:
    # from IBM's setmqspl page: integrity with an authorised signer, privacy with recipients
    signed = ams.Policy.from_setmqspl('setmqspl -m QM1 -p MY.QUEUE -s SHA256 -a "CN=alice,O=IBM,C=US"')
    assert signed.qop is ams.QoP.INTEGRITY and str(signed.signers[0]) == "CN=alice,O=IBM,C=US"
    private = ams.Policy.from_setmqspl(
        'setmqspl -m QM1 -p MY.QUEUE -s SHA256 -e AES256 -r "CN=bob,O=IBM,C=US" -r "CN=carol,O=IBM,C=US"'
    )
    assert private.qop is ams.QoP.PRIVACY and len(private.recipients) == 2
    confidential = ams.Policy.from_setmqspl('setmqspl -m QM1 -p MY.QUEUE -e AES128 -r "CN=bob,O=IBM,C=US" -c 50')
    assert confidential.qop is ams.QoP.CONFIDENTIALITY and confidential.key_reuse == 50
    unlimited = ams.Policy.from_setmqspl("setmqspl -m QM1 -p Q -e AES256 -r CN=bob -c '*' -t 1")
    assert unlimited.key_reuse == KEYREUSE_UNLIMITED and unlimited.tolerate


def test_remove_is_a_command_not_a_policy() -> None:
    assert parse_setmqspl("setmqspl -m QM1 -p Q -remove") == PolicyRemoval("Q", "QM1")
    assert isinstance(parse_setmqspl("setmqspl -m QM1 -p Q -s SHA256"), ams.Policy)  # the twin
    with pytest.raises(ams.errors.PolicyError, match="removes policy Q"):
        ams.Policy.from_setmqspl("setmqspl -m QM1 -p Q -remove")


def test_swapped_recipients_and_signers_get_a_clear_error() -> None:
    with pytest.raises(ams.errors.PolicyError) as caught:
        ams.Policy.from_setmqspl('setmqspl -m PRODA -p SENDQUEUE -s SHA256 -e AES128 -a "CN=X, O=YOURORG"')
    text = str(caught.value)
    assert "AES128 needs at least one recipient" in text
    assert "-r (RECIP) names the recipients" in text and "-a (SIGNER) names the authorised signers" in text
    assert "setmqspl -m PRODA -p SENDQUEUE -s SHA256 -e AES128 -r CN=X,O=YOURORG" in text
    with pytest.raises(ams.errors.PolicyError, match="looks like -r and -a swapped"):
        ams.Policy.from_setmqspl('setmqspl -m PRODA -p Q -s SHA256 -r "CN=X"')


@pytest.mark.parametrize(
    "line,match",
    [
        ("setmqspl -m QM -p Q -e AES256", "needs at least one recipient"),
        ('setmqspl -m QM -p Q -e NONE -r "CN=x" -a "CN=y" -s SHA256', "encryption algorithm is NONE"),
        ('setmqspl -m QM -p Q -a "CN=x"', "signature algorithm is NONE"),
        ('setmqspl -m QM -p Q -s SHA256 -e AES256 -r "CN=x" -c 10', "only to confidentiality"),
        ("setmqspl -m QM -p Q -s SHA256 -c 5", "only to confidentiality"),
        ('setmqspl -m QM -p Q -e AES256 -r "CN=x" -c 10000000', "out of range"),
        ('setmqspl -m QM -p Q -e AES256 -r "CN=x" -c lots', "not a number"),
        ("setmqspl -m QM -p Q -s sha256", "upper case"),
        ("setmqspl -m QM -p Q -s SHA3", "accepted: NONE, MD5, SHA1, SHA256, SHA384, SHA512"),
        ('setmqspl -m QM -p Q -e aes256 -r "CN=x"', "upper case"),
        ("setmqspl -m QM -p Q -t 2", "expected 0"),
        ("setmqspl -m QM -p Q -x 1", "unknown setmqspl option"),
        ("setmqspl -p Q -s SHA256", "needs -m"),
        ("setmqspl -m QM -s SHA256", "needs -p"),
        ("setmqspl -m QM -p BAD*NAME -s SHA256", "not a valid queue name"),
        (f"setmqspl -m QM -p {'Q' * 49} -s SHA256", "1 to 48 characters"),
        ('setmqspl -m QM -p Q -s SHA256 -a "CN"', "no '='"),
        ("setmqspl -m QM -p Q -s SHA256 -s SHA512", "given twice"),
        ("setmqspl -m QM -p Q -remove -s SHA256", "-remove takes only"),
    ],
)
def test_rules_refuse_with_the_rule_and_the_value(line: str, match: str) -> None:
    with pytest.raises(ams.errors.PolicyError, match=match):
        ams.Policy.from_setmqspl(line)


def test_export_round_trips() -> None:
    for line in (
        'setmqspl -m QM -p A -s SHA512 -e AES256 -r "CN=BBB,C=GB" -a "CN=A,O=X"',
        'setmqspl -m QM -p B -e AES128 -r "CN=Smith\\, J,C=GB" -c "*" -t 1',
        "setmqspl -m QM -p C -s MD5",
    ):
        policy = ams.Policy.from_setmqspl(line)
        assert ams.Policy.from_setmqspl(policy.to_setmqspl("QM")) == policy
    exported = ams.Policy.from_setmqspl('setmqspl -m QMA -p ABC -s SHA512 -e AES256 -r "CN=BBB,C=GB"').to_setmqspl(
        "QMA"
    )
    assert exported == "setmqspl -m QMA -p ABC -s SHA512 -e AES256 -r CN=BBB,C=GB -c 0 -t 0"


def test_policy_directory(tmp_path: Path) -> None:
    (tmp_path / "a.spl").write_text(
        "# payroll\nsetmqspl -m QM -p PAY.Q -s SHA256\n\nsetmqspl -m QM -p OLD.Q -s SHA256\n", encoding="utf-8"
    )
    (tmp_path / "b.spl").write_text(
        "setmqspl -m QM -p OLD.Q -remove\nsetmqspl -m QM -p PAY.Q -s SHA512  # replaced wholesale\n", encoding="utf-8"
    )
    (tmp_path / "notes.txt").write_text("setmqspl -m QM -p IGNORED -s SHA256\n", encoding="utf-8")
    store = ams.PolicyStore.from_directory(tmp_path)
    assert list(store) == ["PAY.Q"] and store["PAY.Q"].signature_algorithm is ams.SignatureAlgorithm.SHA512


def test_policy_directory_errors_name_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.spl").write_text(
        "setmqspl -m QM -p OK -s SHA256\nsetmqspl -m QM -p Q -e AES256\n", encoding="utf-8"
    )
    with pytest.raises(ams.errors.PolicyError, match=r"bad\.spl:2: .*needs at least one recipient"):
        ams.PolicyStore.from_directory(tmp_path)
    with pytest.raises(ams.errors.PolicyError, match="does not exist"):
        ams.PolicyStore.from_directory(tmp_path / "missing")


def test_repository_example_policies_load() -> None:
    store = ams.PolicyStore.from_directory(Path(__file__).parents[1] / "policies")
    assert {"DEMO.INTEGRITY", "DEMO.PRIVACY", "DEMO.CONFIDENTIAL"} <= set(store)


def test_deprecated_algorithms_are_accepted_with_a_warning() -> None:
    import warnings

    with pytest.warns(ams.errors.AmsDeprecationWarning, match="MD5"):
        ams.Policy.from_setmqspl("setmqspl -m QM -p Q -s MD5")
    with pytest.warns(ams.errors.AmsDeprecationWarning, match="RC2"):
        ams.Policy.from_setmqspl("setmqspl -m QM -p Q -e RC2 -r CN=x")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ams.Policy.from_setmqspl("setmqspl -m QM -p Q -s SHA256 -e AES128 -r CN=x")


@pytest.mark.parametrize(
    "line,match",
    [
        ('setmqspl -m QM -p Q -e AES256 -r "CN=x" -c \u00b2', "not a number"),  # a digit to isdigit(), not to int()
        ('setmqspl -m QM -p Q -e AES256 -r "CN=x" -c ' + "9" * 5000, "5,000 digits: out of range"),
        ('setmqspl -m QM -p Q -e AES256 -r "CN=x" -c 00000000005', None),
        ("setmqspl -m QM\x00 -p Q -s SHA256", "NUL"),
    ],
)
def test_key_reuse_and_odd_characters(line: str, match: str | None) -> None:
    if match is None:
        assert ams.Policy.from_setmqspl(line).key_reuse == 5
        return
    with pytest.raises(ams.errors.PolicyError, match=match):
        ams.Policy.from_setmqspl(line)


def test_policy_files_that_are_not_utf8_or_unreadable_are_errors_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.spl").write_bytes(b"setmqspl -m QM -p OK -s SHA256\n# caf\xe9\n")
    (tmp_path / "b.mqsc").write_bytes(b"SET POLICY('X') SIGNALG(SHA256)\r\n\r\nSET POLICY('\xff') SIGNALG(SHA256)\n")
    (tmp_path / "c.spl").mkdir()  # not a file: skipped
    store, errors = ams.PolicyStore.check_directory(tmp_path)
    assert [e.message.split(": ")[0].rsplit("/", 1)[-1] for e in errors] == ["a.spl:2", "b.mqsc:3"]
    assert all("not UTF-8" in e.message for e in errors) and len(store) == 0
    with pytest.raises(ams.errors.PolicyError, match=r"a\.spl:2: not UTF-8"):
        ams.PolicyStore.from_directory(tmp_path)
    errors = ams.PolicyStore().load_file(tmp_path / "missing.spl")
    assert len(errors) == 1 and "missing.spl: cannot read the policy file" in errors[0].message


def test_a_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "a.mqsc").write_bytes(b"\xef\xbb\xbfSET POLICY('X') SIGNALG(SHA256)\n")
    assert list(ams.PolicyStore.from_directory(tmp_path)) == ["X"]
