"""An attacker's input to every policy, keystore.conf and DN parser.

Whatever the bytes or text, each parser gives its result or the library's typed error
(``PolicyError``, ``KeystoreError``, ``DistinguishedNameError``), never another exception, and
its time and memory grow with the size of the input only. The hand-made shapes below each broke
an earlier version: a 60-byte PCF record that took seconds and hundreds of megabytes, a DER Name
that recursed until ``RecursionError``, ``int()`` on text ``str.isdigit()`` accepts, an MQSC
pattern that backtracked for seconds.
"""

from __future__ import annotations

import functools
import os
import struct
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ams import DistinguishedName, Keystore, PolicyStore
from ams.errors import DistinguishedNameError, KeystoreError, PolicyError
from ams.keys import load_certificates, read_keystore_conf
from ams.policy import PcfMessage, Policy, decode_policy_queue, encode_policy_queue, parse_dspmqspl, parse_mqsc
from ams.policy.pcf import decode_index, decode_policy, encode_policy, parse_pcf
from ams.policy.setmqspl import parse_setmqspl
from tests.conftest import Pki

# Budgets: generous for a slow, shared CI machine, yet far below what the unchecked parsers took
# (the 60-byte record: 0.4 s and 80 MB; a claimed count of 2**31 - 1: a MemoryError after 24 s).
BASE_SECONDS = 0.05
SECONDS_PER_BYTE = 5e-6
BASE_BYTES = 1_000_000
BYTES_PER_BYTE = 40

fuzz = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_bounded(call: Callable[[], object], error: type[Exception], size: int) -> None:
    """``call`` raises ``error`` (nothing else) within a time and memory budget for ``size`` input bytes.

    The time is the best of three runs after a first one (which may compile patterns or import),
    so that a busy machine does not fail the test while a parser whose work is out of proportion
    still does: every one of its runs is slow.
    """
    with pytest.raises(error):
        call()
    elapsed = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        with pytest.raises(error):
            call()
        elapsed = min(elapsed, time.perf_counter() - start)
    tracemalloc.start()
    try:
        with pytest.raises(error):
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    seconds = BASE_SECONDS + SECONDS_PER_BYTE * size
    allowed = BASE_BYTES + BYTES_PER_BYTE * size
    assert elapsed < seconds, f"{elapsed * 1000:.1f} ms for {size} bytes; the budget is {seconds * 1000:.1f} ms"
    assert peak < allowed, f"{peak:,} bytes allocated for {size} input bytes; the budget is {allowed:,}"


def only(error: type[Exception], call: Callable[[], object]) -> None:
    """Run ``call``; a result or ``error`` is fine, any other exception fails the test."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecated algorithms and key hygiene warn by design
            call()
    except error:
        pass


# -- PCF policy records -----------------------------------------------------------------------------

INT32 = st.integers(-(2**31), 2**31 - 1)
PARAMETERS = st.sampled_from(list(range(1, 16))) | INT32
SMALL = st.integers(-4, 200)


def mqcfh(count: int, order: str = "<") -> bytes:
    return struct.pack(order + "9i", 8, 36, 1, 0, 1, 1, 0, 0, count)


@st.composite
def pcf_parameters(draw: st.DrawFn, order: str) -> bytes:
    kind = draw(st.sampled_from([3, 4, 6, 0, 99]) | INT32)
    parameter = draw(PARAMETERS)
    if kind == 3:
        payload = struct.pack(order + "i", draw(INT32))
    elif kind == 4:
        raw = draw(st.binary(max_size=120) | st.sampled_from([b"CN=a", b"SHA256", b"Q", b"CN=a,O=b", b"\xff"]))
        size = draw(st.just(len(raw)) | SMALL | INT32)
        payload = struct.pack(order + "ii", 1208, size) + raw
    elif kind == 6:
        number = draw(st.integers(0, 4) | INT32)
        size = draw(st.sampled_from([0, 1, 96]) | SMALL | INT32)
        payload = struct.pack(order + "iii", 1208, number, size) + draw(st.binary(max_size=400))
    else:
        payload = draw(st.binary(max_size=16))
    length = draw(st.just(12 + len(payload)) | SMALL | INT32)
    return struct.pack(order + "iii", kind, length, parameter) + payload


@st.composite
def pcf_records(draw: st.DrawFn) -> bytes:
    order = draw(st.sampled_from("<>"))
    parameters = draw(st.lists(pcf_parameters(order), max_size=6))
    count = draw(st.just(len(parameters)) | INT32)
    body = mqcfh(count, order) + b"".join(parameters)
    cut = draw(st.integers(0, len(body)))
    return body[:cut] if draw(st.booleans()) else body


@st.composite
def damaged_records(draw: st.DrawFn) -> bytes:
    """A real policy or index record with some of its bytes changed."""
    policy = Policy.from_setmqspl(
        "setmqspl -m QM -p PAY.Q -s SHA256 -e AES256 -r 'CN=bob,O=AMS,C=GB' -a 'CN=alice,O=AMS,C=GB' -t 1"
    )
    body = bytearray(draw(st.sampled_from([m.body for m in encode_policy_queue([policy], encoding=273)])))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(body) - 1))
        body[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0x01, 0x2C, 0x3D, 0xC3]) | st.integers(0, 255))
    return bytes(body)


@fuzz
@given(st.binary(max_size=512) | pcf_records() | damaged_records())
def test_pcf_decoders_raise_only_policy_error(body: bytes) -> None:
    only(PolicyError, lambda: parse_pcf(body))
    only(PolicyError, lambda: decode_policy(body))
    only(PolicyError, lambda: decode_index(body))


@fuzz
@given(st.lists(st.tuples(st.binary(min_size=24, max_size=24) | st.just(b"\xff" * 24), pcf_records()), max_size=4))
def test_policy_queue_raises_only_policy_error(messages: list[tuple[bytes, bytes]]) -> None:
    only(PolicyError, lambda: decode_policy_queue(PcfMessage(c, b) for c, b in messages))


@pytest.mark.parametrize(
    "number,size",
    [(10**6, 0), (2**31 - 1, 0), (2**31 - 1, 1), (10**6, 10**6), (1, 2**31 - 1), (2**16, 2**15)],
)
def test_a_60_byte_record_with_a_huge_string_list(number: int, size: int) -> None:
    body = mqcfh(1) + struct.pack("<6i", 6, 24, 2, 1208, number, size)
    assert len(body) == 60
    assert_bounded(lambda: decode_index(body), PolicyError, len(body))
    assert_bounded(lambda: decode_policy(body), PolicyError, len(body))


def test_a_record_claiming_a_million_parameters() -> None:
    for body in (mqcfh(10**6), mqcfh(10**6) + struct.pack("<4i", 3, 16, 7, 4) * 100, mqcfh(2**31 - 1)):
        assert_bounded(functools.partial(decode_policy, body), PolicyError, len(body))


def test_a_string_whose_length_is_taken_on_trust() -> None:
    body = mqcfh(1) + struct.pack("<5i", 4, 2**31 - 1, 6, 1208, 2**31 - 1)
    assert_bounded(lambda: decode_policy(body), PolicyError, len(body))


def test_many_real_parameters_take_time_in_proportion() -> None:
    # 10,000 signer DNs: legal framing, so the work is done, in proportion to the bytes
    signer = struct.pack("<5i", 4, 28, 11, 1208, 4) + b"CN=a    "
    body = (
        mqcfh(10_003)
        + struct.pack("<5i", 4, 24, 6, 1208, 1)
        + b"Q   "
        + struct.pack("<4i", 3, 16, 7, 4)
        + struct.pack("<4i", 3, 16, 8, 0)
        + signer * 10_000
    )
    start = time.perf_counter()
    assert len(decode_policy(body).signers) == 10_000
    assert time.perf_counter() - start < 1 + 100 * SECONDS_PER_BYTE * len(body)


# -- policy files -----------------------------------------------------------------------------------

MQSC_PIECES = st.sampled_from(
    [
        "SET",
        "DELETE",
        "POLICY",
        " ",
        "(",
        ")",
        "'",
        "''",
        "Q",
        "SIGNALG",
        "ENCALG",
        "RECIP",
        "SIGNER",
        "KEYREUSE",
        "ACTION",
        "ADD",
        "REMOVE",
        "TOLERATE",
        "ENFORCE",
        "SHA256",
        "AES256",
        "NONE",
        "'CN=a,O=b'",
        "UNLIMITED",
        "\u00b2",
        "9" * 12,
        "+\n",
        "-\n",
        "\n",
        "\r\n",
        "*",
        "\x00",
        "\u2028",
        "ß",
        "\\",
    ]
)
SPL_PIECES = st.sampled_from(
    [
        "setmqspl",
        " ",
        "-m",
        "QM",
        "-p",
        "Q",
        "-s",
        "-e",
        "-r",
        "-a",
        "-t",
        "-c",
        "-remove",
        "SHA256",
        "AES128",
        "'",
        '"',
        "\\",
        "#",
        "*",
        "0",
        "1",
        "\u00b2",
        "9" * 12,
        "CN=a",
        "\n",
        "\x00",
        "=",
        ",",
    ]
)
DSP_PIECES = st.sampled_from(
    [
        "Policy Details:\n",
        "Policy name: ",
        "Quality of protection: ",
        "Signature algorithm: ",
        "Encryption algorithm: ",
        "Signer DNs:",
        "Recipient DNs:",
        "Toleration: ",
        "Key Reuse Count: ",
        "- - - -\n",
        "PRIVACY",
        "CONFIDENTIALITY",
        "SHA256",
        "AES256",
        "NONE",
        "Q",
        "-",
        "0",
        "1",
        "UNLIMITED",
        "abc",
        "\u00b2",
        "9" * 12,
        "CN=a, O=b",
        "\n",
        "\x00",
    ]
)


def pieces(parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(parts | st.text(max_size=4), max_size=40).map("".join)


@fuzz
@given(st.text(max_size=300) | pieces(MQSC_PIECES))
def test_mqsc_text_raises_only_policy_error(text: str) -> None:
    only(PolicyError, lambda: parse_mqsc(text))


@fuzz
@given(st.text(max_size=300) | pieces(SPL_PIECES))
def test_setmqspl_lines_raise_only_policy_error(line: str) -> None:
    only(PolicyError, lambda: parse_setmqspl(line))


@fuzz
@given(st.text(max_size=300) | pieces(DSP_PIECES))
def test_dspmqspl_text_raises_only_policy_error(text: str) -> None:
    only(PolicyError, lambda: parse_dspmqspl(text))


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    # one directory for every example (a function-scoped tmp_path would be shared by them anyway)
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory)


def _encoded(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


@fuzz
@given(
    st.binary(max_size=300) | st.text(max_size=300) | pieces(SPL_PIECES),
    st.binary(max_size=300) | st.text(max_size=300) | pieces(MQSC_PIECES),
)
def test_policy_files_raise_only_policy_error(scratch: Path, spl: str | bytes, mqsc: str | bytes) -> None:
    (scratch / "a.spl").write_bytes(_encoded(spl))
    (scratch / "b.mqsc").write_bytes(_encoded(mqsc))
    _, errors = PolicyStore.check_directory(scratch)
    assert all(isinstance(error, PolicyError) for error in errors)
    assert all(str(scratch) in error.message for error in errors)  # every error names its file
    only(PolicyError, lambda: PolicyStore.from_directory(scratch))


@pytest.mark.parametrize(
    "text",
    [
        "SET POLICY(Q) " + "a(" * 20_000,  # the old pattern backtracked for 16 s
        "SET POLICY(" + " " * 40_000,
        "SET POLICY(Q) RECIP('" + "a" * 40_000,
        "SET POLICY(Q) " + "RECIP('x''" * 5_000,
        "SET POLICY(Q) ENCALG(AES256) RECIP('CN=a') KEYREUSE(" + "9" * 4_000 + ")",
        "SET POLICY(Q) ENCALG(AES256) RECIP('CN=a') KEYREUSE(" + "9" * 50_000 + ")",
        "SET POLICY(Q) SIGNALG(SHA256) SIGNER('" + "CN=a," * 20_000 + "')",
        "+\n" * 20_000,
    ],
)
def test_hostile_mqsc_is_refused_in_bounded_time(text: str) -> None:
    assert_bounded(lambda: parse_mqsc(text), PolicyError, len(text))


@pytest.mark.parametrize(
    "line",
    [
        "setmqspl -m QM -p Q -e AES256 -r CN=a -c " + "9" * 4_000,
        "setmqspl -m QM -p Q -e AES256 -r CN=a -c " + "9" * 10_000,
        "setmqspl -m QM -p Q -e AES256 -r CN=a -c \u00b2",
        "setmqspl -m QM -p Q -s SHA256 -a '" + "CN=a+" * 2_000 + "CN=a'",
    ],
)
def test_hostile_setmqspl_is_refused_in_bounded_time(line: str) -> None:
    assert_bounded(lambda: parse_setmqspl(line), PolicyError, len(line))


@pytest.mark.parametrize("reuse", ["abc", "9" * 4_000, "9" * 50_000, "\u00b2", "-5", "10000000"])
def test_hostile_dspmqspl_is_refused_in_bounded_time(reuse: str) -> None:
    text = (
        "Policy name: Q\nQuality of protection: CONFIDENTIALITY\nSignature algorithm: NONE\n"
        f"Encryption algorithm: AES256\nSigner DNs: -\nRecipient DNs:\nCN=a\nToleration: 0\nKey Reuse Count: {reuse}\n"
    )
    assert_bounded(lambda: parse_dspmqspl(text), PolicyError, len(text))


def test_a_non_utf8_policy_file_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "p.mqsc").write_bytes(b"* policies\nSET POLICY('Q') SIGNER('CN=\xe9')\n")
    with pytest.raises(PolicyError, match=r"p\.mqsc:2: not UTF-8"):
        PolicyStore.from_directory(tmp_path)


def test_a_policy_path_that_cannot_be_read_is_a_policy_error(tmp_path: Path) -> None:
    (tmp_path / "d.spl").mkdir()
    for path in (tmp_path / "d.spl", tmp_path / "missing.mqsc", tmp_path / "a\x00b.spl"):
        errors = PolicyStore().load_file(path)
        assert len(errors) == 1 and "cannot read the policy file" in errors[0].message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_policy_file_is_a_policy_error(tmp_path: Path) -> None:
    (tmp_path / "p.spl").write_text("setmqspl -m QM -p Q -s SHA256\n", encoding="utf-8")
    (tmp_path / "p.spl").chmod(0)
    try:
        with pytest.raises(PolicyError, match=r"p\.spl: cannot read the policy file"):
            PolicyStore.from_directory(tmp_path)
    finally:
        (tmp_path / "p.spl").chmod(0o600)


# -- keystore.conf and keystore files ---------------------------------------------------------------

CONF_KEYS = st.sampled_from(
    [
        "pkcs12.keystore",
        "PKCS12.keystore_pass",
        "pkcs12.certificate",
        "jks.keystore",
        "jks.keystore_pass",
        "jks.key_pass",
        "jceks.keystore",
        "pem.private",
        "pem.public",
        "pem.password",
        "pem.certificates",
        "cms.keystore",
        "revocation.fail",
        "ocsp.enable",
        "ocsp.timeout",
        "crl.file",
        "pkcs11.token",  # pkcs11.library is left out: it loads a shared library by design
    ]
)
CONF_VALUES = st.sampled_from(
    ["garbage.p12", "garbage.pem", "garbage.der", "certs", "missing", "", "~nobody/x", "<AMS>x", "\x00", "x" * 5000]
) | st.text(max_size=20)


@st.composite
def conf_texts(draw: st.DrawFn) -> str:
    lines = draw(st.lists(st.tuples(CONF_KEYS, st.sampled_from([" = ", "=", ": ", " "]), CONF_VALUES), max_size=6))
    return "\n".join(f"{key}{separator}{value}" for key, separator, value in lines)


@pytest.fixture(scope="module")
def keystore_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "certs").mkdir()
        (root / "certs" / "junk.pem").write_bytes(
            b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
        )
        yield root


@fuzz
@given(
    st.binary(max_size=300) | st.text(max_size=300) | conf_texts(),
    st.binary(max_size=200) | st.sampled_from([b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]),
)
def test_keystore_conf_raises_only_keystore_error(keystore_dir: Path, content: str | bytes, garbage: bytes) -> None:
    for name in ("garbage.p12", "garbage.pem", "garbage.der"):
        (keystore_dir / name).write_bytes(garbage)
    conf = keystore_dir / "keystore.conf"
    conf.write_bytes(_encoded(content))
    conf.chmod(0o600)
    only(KeystoreError, lambda: read_keystore_conf(conf))
    only(KeystoreError, lambda: Keystore.from_conf(conf))


def test_keystore_conf_that_is_not_utf8_names_file_and_line_but_not_the_line(tmp_path: Path) -> None:
    conf = tmp_path / "keystore.conf"
    conf.write_bytes(b"pkcs12.keystore = me.p12\r\npkcs12.keystore_pass = hunt\xe9r2\n")
    with pytest.raises(KeystoreError, match=r"keystore\.conf:2: not UTF-8") as caught:
        read_keystore_conf(conf)
    assert "hunt" not in str(caught.value)
    conf.write_bytes(b"pkcs12.keystore_pass = hunter2\x00\n")
    with pytest.raises(KeystoreError, match=r"keystore\.conf:1: .*NUL") as caught:
        Keystore.from_conf(conf)
    assert "hunter2" not in str(caught.value)


def test_a_bad_ocsp_timeout_is_a_keystore_error(pki: Pki, tmp_path: Path) -> None:
    from ams.pki import write_user_keystore

    conf = write_user_keystore(tmp_path, "alice", pki.users["alice"], [pki.ca.certificate])
    conf.write_text(conf.read_text(encoding="utf-8") + "ocsp.timeout = soon\n", encoding="utf-8")
    with pytest.raises(KeystoreError, match=r"keystore\.conf:\d+: .*ocsp\.timeout"):
        Keystore.from_conf(conf)


@fuzz
@given(st.binary(max_size=400))
def test_keystore_loaders_given_garbage_raise_only_keystore_error(scratch: Path, data: bytes) -> None:
    garbage = scratch / "garbage.pem"
    garbage.write_bytes(data)
    only(KeystoreError, lambda: Keystore.from_pkcs12(garbage, "password"))
    only(KeystoreError, lambda: Keystore.from_pkcs12(garbage, None))
    only(KeystoreError, lambda: Keystore.from_pem(private=garbage, public=garbage, password="x"))
    only(KeystoreError, lambda: Keystore.from_pem(private=None, public=None, certificates=[garbage]))
    only(KeystoreError, lambda: load_certificates(garbage))


def _pem_key(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, password: bytes | None) -> bytes:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def test_keystore_loaders_given_odd_but_well_formed_files(pki: Pki, tmp_path: Path) -> None:
    alice = pki.users["alice"]
    certificate = tmp_path / "alice.pem"
    certificate.write_bytes(alice.certificate.public_bytes(serialization.Encoding.PEM))
    rsa_key = tmp_path / "alice.key.pem"
    rsa_key.write_bytes(
        alice.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    # a certificate whose public key algorithm nobody knows (rsaEncryption's OID changed)
    der = alice.certificate.public_bytes(serialization.Encoding.DER)
    rsa_oid = bytes.fromhex("06092a864886f70d010101")
    assert der.count(rsa_oid) == 1
    unknown = tmp_path / "unknown.der"
    unknown.write_bytes(der.replace(rsa_oid, rsa_oid[:-1] + b"\x63"))
    cases: list[tuple[Callable[[], object], str]] = []
    for name, key, password in (
        ("ed25519.pem", ed25519.Ed25519PrivateKey.generate(), b"pw"),
        ("ec.pem", ec.generate_private_key(ec.SECP256R1()), b"pw"),
    ):
        (tmp_path / name).write_bytes(_pem_key(key, password))
        cases.append(
            (functools.partial(Keystore.from_pem, private=tmp_path / name, public=certificate, password="pw"), "RSA")
        )
    cases += [
        (lambda: Keystore.from_pem(private=rsa_key, public=unknown), "public key of the certificate .* cannot be read"),
        (lambda: Keystore.from_pem(private=rsa_key, public=certificate, password="not needed"), "pem.password"),
        (lambda: Keystore.from_pem(private=tmp_path / "a\x00b", public=certificate), "NUL"),
        (lambda: Keystore.from_pkcs12(tmp_path / "a\x00b", "pw"), "NUL"),
        (lambda: load_certificates(tmp_path / "a\x00b"), "NUL"),
        (lambda: load_certificates(tmp_path / ("x" * 5000)), "cannot read"),
    ]
    for call, match in cases:
        with pytest.raises(KeystoreError, match=match):
            call()


# -- distinguished names ----------------------------------------------------------------------------

DN_PIECES = st.sampled_from(
    [
        "CN",
        "O",
        "OU",
        "=",
        ",",
        ";",
        "+",
        " ",
        "\\",
        '"',
        "#",
        "OID.",
        "2.5.4.3",
        "1.50",
        "0",
        "\\C3\\A9",
        "\\ff",
        "\\00",
        "\x00",
        "ß",
        "\u00a0",
        "\ud800",
        "a",
        "commonName",
    ]
)


@fuzz
@given(st.text(max_size=200) | pieces(DN_PIECES))
def test_dn_parse_raises_only_dn_error(text: str) -> None:
    only(DistinguishedNameError, lambda: DistinguishedName.parse(text))


def tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(octets))) + octets + content


STRING_TAGS = [0x0C, 0x13, 0x16, 0x14, 0x1E, 0x1C, 0x04, 0x05, 0x02, 0x03, 0x1F, 0x80]
OIDS = st.sampled_from([bytes.fromhex("0603550403"), bytes.fromhex("06022a03"), b"\x06\x00", b"\x06\x01\x80"]) | (
    st.binary(min_size=1, max_size=12).map(lambda content: tlv(0x06, content))
)
der_values = st.recursive(
    st.builds(tlv, st.sampled_from(STRING_TAGS) | st.integers(0, 255), st.binary(max_size=24)),
    lambda inner: st.builds(
        lambda tag, items: tlv(tag, b"".join(items)),
        st.sampled_from([0x30, 0x31, 0xA0, 0x2C]),
        st.lists(inner, max_size=3),
    ),
    max_leaves=12,
)
der_names = st.lists(
    st.lists(st.tuples(OIDS, der_values), max_size=3).map(
        lambda pairs: tlv(0x31, b"".join(tlv(0x30, oid + value) for oid, value in pairs))
    ),
    max_size=4,
).map(lambda rdns: tlv(0x30, b"".join(rdns)))


@st.composite
def damaged_names(draw: st.DrawFn) -> bytes:
    name = bytearray(draw(der_names))
    for _ in range(draw(st.integers(0, 3))):
        if name:
            name[draw(st.integers(0, len(name) - 1))] = draw(st.integers(0, 255))
    return bytes(name[: draw(st.integers(0, len(name)))]) if draw(st.booleans()) else bytes(name)


@fuzz
@given(st.binary(max_size=300) | der_names | damaged_names())
def test_dn_from_der_raises_only_dn_error(encoded: bytes) -> None:
    only(DistinguishedNameError, lambda: DistinguishedName.from_der(encoded))


def nested(depth: int, tag: int = 0x30) -> bytes:
    value = b"\x05\x00"
    for _ in range(depth):
        value = tlv(tag, value)
    return value


@pytest.mark.parametrize(
    "encoded",
    [
        nested(1000),  # the Name itself nested
        tlv(0x30, tlv(0x31, tlv(0x30, bytes.fromhex("06022a03") + nested(1000)))),  # recursed in asn1crypto
        nested(100_000),
        tlv(0x30, tlv(0x31, tlv(0x30, bytes.fromhex("0603550403") + tlv(0x0C, b"9" * 4000)))),
        tlv(0x30, tlv(0x31, tlv(0x30, tlv(0x06, b"\x81" * 4000 + b"\x01") + tlv(0x0C, b"a")))),  # a 4,000-byte arc
        tlv(0x30, tlv(0x31, tlv(0x30, bytes.fromhex("0603550403") + tlv(0x0C, b"a"))) * 100_000),
        tlv(0x30, tlv(0x31, tlv(0x30, bytes.fromhex("0603550403") + tlv(0x0C, b"a")) * 100_000)),
    ],
)
def test_hostile_der_names_are_refused_in_bounded_time(encoded: bytes) -> None:
    assert_bounded(lambda: DistinguishedName.from_der(encoded), DistinguishedNameError, len(encoded))


def test_a_deeply_nested_value_within_the_size_limit_is_kept_as_hex() -> None:
    value = nested(290)
    assert 900 < len(value) - 4 <= 1024  # the content of the outermost SEQUENCE
    dn = DistinguishedName.from_der(tlv(0x30, tlv(0x31, tlv(0x30, bytes.fromhex("06022a03") + value))))
    assert str(dn) == "OID.1.2.3=#" + value.hex()


@pytest.mark.parametrize(
    "text",
    [
        "CN=" + "9" * 4_000,
        "OID.2.5.4." + "9" * 4_000 + "=a",
        "CN=a," * 100_000 + "CN=a",
        "CN=a+" * 100_000 + "CN=a",
        "CN=" + "\\41" * 20_000,
        "CN=" + '"' + "a" * 100_000,
        "," * 100_000,
        "CN=a,x" + "=" * 100_000,
    ],
)
def test_hostile_dn_text_is_refused_in_bounded_time(text: str) -> None:
    assert_bounded(lambda: DistinguishedName.parse(text), DistinguishedNameError, len(text))


def test_a_policy_record_with_a_hostile_dn() -> None:
    signer = ("CN=a+" * 30_000 + "CN=a").encode()
    padded = signer + b" " * (-len(signer) % 4)
    body = encode_policy(Policy.from_setmqspl("setmqspl -m QM -p Q -s SHA256"), encoding=546)
    count = struct.unpack_from("<i", body, 32)[0]
    body = body[:32] + struct.pack("<i", count + 1) + body[36:]
    body += struct.pack("<5i", 4, 20 + len(padded), 11, 1208, len(signer)) + padded
    assert_bounded(lambda: decode_policy(body), PolicyError, len(body))


def test_a_file_of_garbage_is_a_bounded_list_of_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.spl").write_text("setmqspl -m QM -p Q -s NOPE\n" * 500, encoding="utf-8")
    (tmp_path / "good.spl").write_text("setmqspl -m QM -p GOOD.Q -s SHA256\n", encoding="utf-8")
    store, errors = PolicyStore.check_directory(tmp_path)
    assert len(errors) == 101 and "and 400 more errors" in errors[-1].message
    assert list(store) == ["GOOD.Q"]  # the twin: the good file still loads
