"""MQSC SET POLICY, dspmqspl output and the PCF records, all round-tripping through the model."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ams
from ams.policy import (
    PcfMessage,
    Policy,
    decode_policy_queue,
    encode_policy_queue,
    parse_dspmqspl,
    parse_mqsc,
    render_dspmqspl,
    to_mqsc,
)
from ams.policy.pcf import INDEX_CORREL_ID, decode_policy, encode_policy, parse_pcf
from tests.strategies import policies


def apply_all(text: str) -> dict[str, Policy]:
    out: dict[str, Policy] = {}
    for command in parse_mqsc(text):
        result = command.apply(out)
        if result is None:
            out.pop(command.name, None)
        else:
            out[command.name] = result
    return out


# -- MQSC ----------------------------------------------------------------------------------------


def test_ibm_set_policy_examples() -> None:
    # the shapes IBM's SET POLICY page shows
    result = apply_all(
        "SET POLICY(MYQUEUE) SIGNALG(SHA256) ENCALG(AES256) RECIP('CN=bob,O=IBM,C=US') "
        "RECIP('CN=carol,O=IBM,C=US') SIGNER('CN=alice,O=IBM,C=US') KEYREUSE(DISABLED) ENFORCE\n"
        "SET POLICY(CONFQ) SIGNALG(NONE) ENCALG(AES128) RECIP('CN=bob,O=IBM,C=US') KEYREUSE(UNLIMITED) TOLERATE\n"
    )
    private, confidential = result["MYQUEUE"], result["CONFQ"]
    assert private.qop is ams.QoP.PRIVACY and [str(d) for d in private.recipients] == [
        "CN=bob,O=IBM,C=US",
        "CN=carol,O=IBM,C=US",
    ]
    assert str(private.signers[0]) == "CN=alice,O=IBM,C=US" and not private.tolerate
    assert confidential.qop is ams.QoP.CONFIDENTIALITY and confidential.key_reuse == ams.KEYREUSE_UNLIMITED
    assert confidential.tolerate


def test_add_and_remove_merge_lists_and_leave_the_rest() -> None:
    result = apply_all(
        "SET POLICY('Q') SIGNALG(SHA256) ENCALG(AES256) RECIP('CN=a,C=GB') SIGNER('CN=s,C=GB') TOLERATE\n"
        "SET POLICY('Q') SIGNALG(SHA512) ENCALG(AES128) RECIP('CN=b,C=GB') RECIP('cn=A, c=gb') ACTION(ADD)\n"
        "SET POLICY('Q') SIGNALG(SHA1) SIGNER('CN=s,C=GB') ACTION(REMOVE)\n"
    )
    policy = result["Q"]
    assert [str(d) for d in policy.recipients] == ["CN=a,C=GB", "CN=b,C=GB"]
    assert policy.signers == () and policy.tolerate
    assert policy.signature_algorithm is ams.SignatureAlgorithm.SHA256  # only REPLACE applies algorithms
    assert policy.encryption_algorithm is ams.EncryptionAlgorithm.AES256


def test_delete_and_replace() -> None:
    result = apply_all(
        "SET POLICY('A') SIGNALG(SHA256)\nSET POLICY('B') SIGNALG(SHA256)\nDELETE POLICY('A')\n"
        "SET POLICY('B') ENCALG(AES256) RECIP('CN=x')\n"
    )
    assert list(result) == ["B"] and result["B"].qop is ams.QoP.CONFIDENTIALITY


def test_unquoted_names_fold_to_upper_case_and_continuations_join() -> None:
    text = "set policy(pay.q) -\n signalg(sha256)\nSET POLICY('mixed.Case') +\n      SIGNALG(SHA256)\n"
    assert sorted(apply_all(text)) == ["PAY.Q", "mixed.Case"]


@pytest.mark.parametrize(
    "text,match",
    [
        ("SET POLICY('Q') SIGNALG(SHA256) SIGNER(CN=x)", "must be quoted"),
        ("SET POLICY('Q') RECIP('CN=x') ACTION(ADD)", "still needs SIGNALG or ENCALG"),
        ("SET POLICY('Q') SIGNALG(NONE) RECIP('CN=x') ACTION(ADD)", "still needs SIGNALG or ENCALG"),
        ("SET POLICY('Q') SIGNALG(SHA256) SIGNER('CN=x') ACTION(ADD)", "no policy Q"),
        ("SET POLICY('Q') SIGNALG(SHA3)", "expected one of NONE, MD5"),
        ("SET POLICY('Q') SIGNALG(SHA256) COLOUR(RED)", "unknown SET POLICY keyword COLOUR"),
        ("SET POLICY('Q') SIGNALG(SHA256) ACTION(MERGE)", "expected REPLACE, ADD or REMOVE"),
        ("SET POLICY('Q') SIGNALG(SHA256) ENFORCE TOLERATE", "one of ENFORCE or TOLERATE"),
        ("SET POLICY('Q') ENCALG(AES256) KEYREUSE(OFTEN) RECIP('CN=x')", "KEYREUSE"),
        ("DEFINE QLOCAL('Q')", "expected SET POLICY"),
        ("DELETE POLICY('Q') SIGNALG(SHA256)", "takes only the policy name"),
        ("SET POLICY('Q') SIGNALG(SHA256) +", "continuation"),
    ],
)
def test_mqsc_errors(text: str, match: str) -> None:
    with pytest.raises(ams.PolicyError, match=match):
        apply_all(text)


def test_remove_of_an_absent_dn_says_what_is_there() -> None:
    with pytest.raises(ams.PolicyError, match=r"no such RECIP; it has: CN=a,C=GB"):
        apply_all(
            "SET POLICY('Q') SIGNALG(SHA256) ENCALG(AES256) RECIP('CN=a,C=GB')\n"
            "SET POLICY('Q') SIGNALG(SHA256) RECIP('CN=z,C=GB') ACTION(REMOVE)\n"
        )


def test_replace_applies_ibm_rules_with_the_line() -> None:
    with pytest.raises(ams.PolicyError, match="looks like -r and -a swapped"):
        apply_all("SET POLICY('Q') SIGNALG(SHA256) ENCALG(AES128) SIGNER('CN=X, O=YOURORG')")


@given(policies())
def test_mqsc_round_trip(policy: Policy) -> None:
    assert apply_all(to_mqsc(policy)) == {policy.name: policy}


# -- dspmqspl ------------------------------------------------------------------------------------

IBM_DSPMQSPL = """Policy Details:
Policy name: PROT
Quality of protection: PRIVACY
Signature algorithm: SHA256
Encryption algorithm: AES256
Signer DNs: -
Recipient DNs:
CN=Name, O=Organization, C=Country
Toleration: 0
Key Reuse Count: 0
- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
Policy Details:
Policy name: PROT2
Quality of protection: CONFIDENTIALITY
Signature algorithm: NONE
Encryption algorithm: AES256
Signer DNs: -
Recipient DNs:
CN=Name, O=Organization, C=Country
Toleration: 0
Key Reuse Count: 100
"""


def test_ibm_dspmqspl_example_parses_and_prints_back_identically() -> None:
    parsed = parse_dspmqspl(IBM_DSPMQSPL)
    assert [p.name for p in parsed] == ["PROT", "PROT2"]
    assert parsed[0].qop is ams.QoP.PRIVACY and str(parsed[0].recipients[0]) == "CN=Name,O=Organization,C=Country"
    assert parsed[1].key_reuse == 100 and parsed[1].qop is ams.QoP.CONFIDENTIALITY
    assert render_dspmqspl(parsed) == IBM_DSPMQSPL


def test_dspmqspl_with_a_contradicting_qop_is_refused() -> None:
    with pytest.raises(ams.PolicyError, match="says quality of protection INTEGRITY"):
        parse_dspmqspl(IBM_DSPMQSPL.replace("Quality of protection: PRIVACY", "Quality of protection: INTEGRITY"))
    with pytest.raises(ams.PolicyError, match="unexpected line"):
        parse_dspmqspl("Policy Details:\nsomething odd\n")


@given(st.lists(policies(), max_size=4, unique_by=lambda p: p.name))
def test_dspmqspl_round_trip(chosen: list[Policy]) -> None:
    assert parse_dspmqspl(render_dspmqspl(chosen)) == chosen


# -- PCF -----------------------------------------------------------------------------------------


@given(st.lists(policies(), max_size=4, unique_by=lambda p: p.name), st.sampled_from([273, 546]))
def test_pcf_round_trip_both_encodings(chosen: list[Policy], encoding: int) -> None:
    messages = encode_policy_queue(chosen, error_queue="MY.ERRORS", encoding=encoding)
    assert messages[0].correl_id == INDEX_CORREL_ID
    index, decoded = decode_policy_queue(messages)
    assert decoded == sorted(chosen, key=lambda p: p.name)
    assert index is not None and index.error_queue == "MY.ERRORS" and index.version == 1
    assert [name for name, _ in index.entries] == [p.name for p in sorted(chosen, key=lambda p: p.name)]


def test_pcf_layout_of_the_encryption_and_key_reuse_parameter() -> None:
    policy = Policy.from_setmqspl("setmqspl -m QM -p Q -e AES128 -r CN=x -c '*'")
    parameters = dict(parse_pcf(encode_policy(policy, encoding=273)))
    assert parameters[8] == (-1 << 8) | 4 and parameters[7] == 0 and parameters[14] == 0 and parameters[12] == 1
    body = encode_policy(policy, encoding=273)
    assert body[4:8] == (36).to_bytes(4, "big") and encode_policy(policy, encoding=546)[4:8] == (36).to_bytes(
        4, "little"
    )


def test_pcf_damage_is_refused() -> None:
    policy = Policy.from_setmqspl("setmqspl -m QM -p Q -s SHA256 -e AES256 -r CN=x -r CN=y")
    body = bytearray(encode_policy(policy))
    with pytest.raises(ams.PolicyError, match="shorter than an MQCFH"):
        decode_policy(bytes(body[:20]))
    with pytest.raises(ams.PolicyError, match=r"truncated|beyond the message"):
        decode_policy(bytes(body[:-30]))
    messages = encode_policy_queue([policy])
    with pytest.raises(ams.PolicyError, match="lists policy Q"):
        decode_policy_queue([messages[0], PcfMessage(b"\x00" * 24, messages[1].body)])


# -- stores ---------------------------------------------------------------------------------------


def test_store_mixes_spl_and_mqsc_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "10-base.spl").write_text('setmqspl -m QM -p Q -s SHA256 -e AES256 -r "CN=a"\n', encoding="utf-8")
    (tmp_path / "20-more.mqsc").write_text(
        "SET POLICY('Q') SIGNALG(SHA256) RECIP('CN=b') ACTION(ADD)\n", encoding="utf-8"
    )
    store = ams.PolicyStore.from_directory(tmp_path)
    assert [str(d) for d in store["Q"].recipients] == ["CN=a", "CN=b"]
    assert str(store.origins["Q"]).endswith("20-more.mqsc:1")


def test_check_reports_every_error_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "a.spl").write_text(
        "setmqspl -m QM -p OK -s SHA256\nsetmqspl -m QM -p BAD -e AES256\n", encoding="utf-8"
    )
    (tmp_path / "b.mqsc").write_text(
        "SET POLICY('X') SIGNALG(SHA256)\n\nSET POLICY('Y') SIGNALG(SHA9)\n", encoding="utf-8"
    )
    store, errors = ams.PolicyStore.check_directory(tmp_path)
    assert sorted(store) == ["OK", "X"]
    assert [e.message.split(": ")[0].rsplit("/", 1)[-1] for e in errors] == ["a.spl:2", "b.mqsc:3"]
