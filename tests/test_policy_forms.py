"""MQSC SET POLICY, dspmqspl output and the PCF records, all round-tripping through the model."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ams
import ams.algorithms
import ams.errors
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
from ams.testing.strategies import InvalidPolicy, invalid_policies, policies


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
    assert confidential.qop is ams.QoP.CONFIDENTIALITY and confidential.key_reuse == ams.algorithms.KEYREUSE_UNLIMITED
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
    with pytest.raises(ams.errors.PolicyError, match=match):
        apply_all(text)


def test_remove_of_an_absent_dn_says_what_is_there() -> None:
    with pytest.raises(ams.errors.PolicyError, match=r"no such RECIP; it has: CN=a,C=GB"):
        apply_all(
            "SET POLICY('Q') SIGNALG(SHA256) ENCALG(AES256) RECIP('CN=a,C=GB')\n"
            "SET POLICY('Q') SIGNALG(SHA256) RECIP('CN=z,C=GB') ACTION(REMOVE)\n"
        )


def test_replace_applies_ibm_rules_with_the_line() -> None:
    with pytest.raises(ams.errors.PolicyError, match="looks like -r and -a swapped"):
        apply_all("SET POLICY('Q') SIGNALG(SHA256) ENCALG(AES128) SIGNER('CN=X, O=YOURORG')")


@given(invalid_policies())
def test_every_broken_rule_is_refused_with_its_reason(invalid: InvalidPolicy) -> None:
    with pytest.raises(ams.errors.PolicyError, match=invalid.match):
        Policy.from_setmqspl(invalid.setmqspl)
    if invalid.fields is not None:
        with pytest.raises(ams.errors.PolicyError, match=invalid.match):
            Policy(**invalid.fields)  # type: ignore[arg-type]


@given(policies())
def test_setmqspl_round_trip(policy: Policy) -> None:
    assert Policy.from_setmqspl(policy.to_setmqspl("QM")) == policy


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
    with pytest.raises(ams.errors.PolicyError, match="says quality of protection INTEGRITY"):
        parse_dspmqspl(IBM_DSPMQSPL.replace("Quality of protection: PRIVACY", "Quality of protection: INTEGRITY"))
    with pytest.raises(ams.errors.PolicyError, match="unexpected line"):
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
    with pytest.raises(ams.errors.PolicyError, match="shorter than an MQCFH"):
        decode_policy(bytes(body[:20]))
    with pytest.raises(ams.errors.PolicyError, match=r"truncated|beyond the message"):
        decode_policy(bytes(body[:-30]))
    messages = encode_policy_queue([policy])
    with pytest.raises(ams.errors.PolicyError, match="lists policy Q"):
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


# -- hostile and damaged input: typed errors that name what is wrong ---------------------------------


@pytest.mark.parametrize(
    "text,match",
    [
        ("SET POLICY('Q') ENCALG(AES256) RECIP('CN=x') KEYREUSE(\u00b2)", "KEYREUSE"),
        ("SET POLICY('Q') ENCALG(AES256) RECIP('CN=x') KEYREUSE(" + "9" * 5000 + ")", "5,000 digits"),
        ("SET POLICY('Q') SIGNALG(SHA256) SIGNER('CN=a'b')", "not closed by"),
        ("SET POLICY('Q') SIGNALG(SHA256) SIGNER('CN=a", "unterminated quoted value"),
        ("SET POLICY('Q') SIGNALG(SHA256", "no closing"),
        ("SET POLICY('Q') SIGNALG(SHA256) $", "expected a keyword"),
        ("SET POLICY('Q') SIGNALG(SHA256)\x00", "NUL"),
        ("SET POLICY('Q') SIGNALG(SHA256) SIGNER('CN=a\\00')", "NUL"),
    ],
)
def test_mqsc_hostile_text(text: str, match: str) -> None:
    with pytest.raises(ams.errors.PolicyError, match=match):
        apply_all(text)


def test_mqsc_quotes_and_line_numbers() -> None:
    assert apply_all("SET POLICY('Q') SIGNALG(SHA256) SIGNER( 'CN=O''Brien' )")["Q"].signers[0].rdns[0][0].value == (
        "O'Brien"
    )
    # only CR, LF and CR LF end lines, as editors count them
    with pytest.raises(ams.errors.PolicyError, match="line 3"):
        apply_all("SET POLICY('A') SIGNALG(SHA256)\x0c\r\n\u2028\nSET POLICY('B') SIGNALG(SHA3)\n")


@pytest.mark.parametrize(
    "change,match",
    [
        (("Key Reuse Count: 100", "Key Reuse Count: abc"), r"dspmqspl output:21: Key Reuse Count 'abc'"),
        (("Key Reuse Count: 100", "Key Reuse Count: " + "9" * 5000), "Key Reuse Count"),
        (("Key Reuse Count: 100", "Key Reuse Count: 10000000"), "out of range"),
        (("Key Reuse Count: 100", "Key Reuse Count: \u00b2"), "Key Reuse Count"),
        (("Toleration: 0\nKey Reuse Count: 100", "Toleration: 2\nKey Reuse Count: 100"), "Toleration '2'"),
        (("Policy name: PROT2", "Policy name: PROT2\nPolicy name: X"), "lacks Signature algorithm"),
        (("Signature algorithm: NONE", "Signature algorithm: NONE\nSignature algorithm: SHA1"), "given twice"),
        (("CN=Name, O=Organization, C=Country\nToleration: 0\nKey Reuse Count: 100", "CN\x00\nToleration: 0"), "NUL"),
        (
            (
                "Recipient DNs:\nCN=Name, O=Organization, C=Country\nToleration: 0\nKey",
                "Recipient DNs: CN\nToleration: 0\nKey",
            ),
            r":18: no '='",
        ),
    ],
)
def test_dspmqspl_hostile_text(change: tuple[str, str], match: str) -> None:
    old, new = change
    text = IBM_DSPMQSPL[::-1].replace(old[::-1], new[::-1], 1)[::-1]  # change the second block
    assert text != IBM_DSPMQSPL
    with pytest.raises(ams.errors.PolicyError, match=match):
        parse_dspmqspl(text)


def test_dspmqspl_files(tmp_path: Path) -> None:
    from ams.policy.dspmqspl import read_dspmqspl

    (tmp_path / "dump.txt").write_bytes(IBM_DSPMQSPL.encode().replace(b"PROT2", b"PR\xd6T2"))
    with pytest.raises(ams.errors.PolicyError, match=r"dump\.txt:13: not UTF-8"):
        read_dspmqspl(tmp_path / "dump.txt")
    with pytest.raises(ams.errors.PolicyError, match="cannot read dspmqspl output"):
        read_dspmqspl(tmp_path / "missing.txt")
    (tmp_path / "dump.txt").write_text(IBM_DSPMQSPL, encoding="utf-8")
    assert [p.name for p in read_dspmqspl(tmp_path / "dump.txt")] == ["PROT", "PROT2"]


def _record(*parameters: bytes, count: int | None = None, order: str = "<") -> bytes:
    number = len(parameters) if count is None else count
    return struct.pack(order + "9i", 8, 36, 1, 0, 1, 1, 0, 0, number) + b"".join(parameters)


def _integer(parameter: int, value: int) -> bytes:
    return struct.pack("<4i", 3, 16, parameter, value)


def _string(parameter: int, raw: bytes) -> bytes:
    padded = raw + b" " * (-len(raw) % 4)
    return struct.pack("<5i", 4, 20 + len(padded), parameter, 1208, len(raw)) + padded


def _strings(parameter: int, raws: list[bytes], size: int) -> bytes:
    joined = b"".join(raws)
    padded = joined + b" " * (-len(joined) % 4)
    return struct.pack("<6i", 6, 24 + len(padded), parameter, 1208, len(raws), size) + padded


def _policy_record(*extra: bytes, signature: int = 4, name: bytes = b"Q") -> bytes:
    return _record(_integer(5, 1), _string(6, name), _integer(7, signature), _integer(8, 0), *extra)


@pytest.mark.parametrize(
    "body,match",
    [
        (_policy_record(signature=99), r"PCF parameter 7 \(signature algorithm\) holds 99; expected one of 0 \(NONE\)"),
        (_record(_integer(5, 1), _string(6, b"Q"), _integer(7, 0), _integer(8, 77)), r"parameter 8 .* holds 77"),
        (_policy_record(name=b"Q\xff"), r"PCF parameter 6 \(policy name\) is not valid UTF-8"),
        (_policy_record(_string(11, b"CN")), r"PCF parameter 11 \(signer DN\) number 1: no '='"),
        (_policy_record(_string(11, b"CN=\xc3")), r"parameter 11 \(signer DN\) is not valid UTF-8"),
        (_policy_record(_integer(14, 7)), r"parameter 14 \(toleration\) holds 7; expected 0 or 1"),
        (_policy_record(_integer(7, 4)), r"parameter 7 \(signature algorithm\) appears more than once"),
        (_policy_record(_integer(11, 4)), r"parameter 11 \(signer DN\) should be a string, found an integer"),
        (
            _record(_integer(5, 1), _integer(6, 1), _integer(7, 0), _integer(8, 0)),
            r"\(policy name\) should be a string",
        ),
        (_policy_record(struct.pack("<4i", 3, 20, 9, 0) + b"\x00" * 4), "integer with StrucLength 20"),
        (_policy_record(struct.pack("<5i", 4, 20, 9, 1208, 5)), "claims a string of 5 bytes"),
        (_policy_record(struct.pack("<3i", 5, 12, 9)), "has type 5"),
        (_record(count=10**6), r"claims 1000000 PCF parameters but 0 bytes follow"),
        (_record(count=-1), "claims -1 PCF parameters"),
    ],
)
def test_pcf_policy_damage_names_the_parameter(body: bytes, match: str) -> None:
    with pytest.raises(ams.errors.PolicyError, match=match):
        decode_policy(body)


@pytest.mark.parametrize(
    "body,match",
    [
        (_record(_strings(2, [b"Q" * 95], 95)), "entry 1 has 95 characters; expected 96"),
        (_record(_strings(2, [b"Q".ljust(48) + b"Z" * 48], 96)), "not 48 hex digits"),
        (
            _record(_strings(2, [b"Q".ljust(48) + b"\xff" * 48], 96)),
            r"parameter 2 \(index entries\) entry 1 is not valid",
        ),
        (_record(_string(2, b"x")), "should be a string list, found a string"),
        (_record(struct.pack("<6i", 6, 24, 2, 1208, 10**6, 0)), "claims 1000000 strings of 0 bytes"),
        (_record(struct.pack("<6i", 6, 24, 2, 1208, 1, 2**31 - 1)), "claims 1 strings of 2147483647 bytes"),
        (_record(struct.pack("<6i", 6, 24, 2, 1208, -1, 96)), "claims -1 strings"),
    ],
)
def test_pcf_index_damage_names_the_parameter(body: bytes, match: str) -> None:
    from ams.policy.pcf import decode_index

    with pytest.raises(ams.errors.PolicyError, match=match):
        decode_index(body)


def test_pcf_queue_duplicates_are_refused() -> None:
    policy = Policy.from_setmqspl("setmqspl -m QM -p Q -s SHA256")
    index, message = encode_policy_queue([policy])
    with pytest.raises(ams.errors.PolicyError, match="two index messages"):
        decode_policy_queue([index, index, message])
    with pytest.raises(ams.errors.PolicyError, match="share CorrelId"):
        decode_policy_queue([message, message])
    with pytest.raises(ams.errors.PolicyError, match="two policy messages define policy Q"):
        decode_policy_queue([message, PcfMessage(b"\x01" * 24, message.body)])
