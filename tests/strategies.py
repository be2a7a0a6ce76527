"""Hypothesis strategies shared by the tests."""

from __future__ import annotations

from hypothesis import strategies as st

from ams.algorithms import KEYREUSE_DISABLED, KEYREUSE_UNLIMITED, EncryptionAlgorithm, SignatureAlgorithm
from ams.dn import DistinguishedName
from ams.policy import Policy

payloads = st.one_of(
    st.just(b""),
    st.binary(min_size=1, max_size=1),
    st.binary(min_size=0, max_size=4096),
)
signature_algorithms = st.sampled_from([a for a in SignatureAlgorithm if a is not SignatureAlgorithm.NONE])
encryption_algorithms = st.sampled_from([a for a in EncryptionAlgorithm if a is not EncryptionAlgorithm.NONE])
formats = st.sampled_from(["MQSTR", "MQXMIT", "MQADMIN", "        ", "MYAPP", "MQEVENT"])

_value_chars = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp"), exclude_characters="\x00")
dn_values = st.text(_value_chars, min_size=1, max_size=12)
dn_attribute_names = st.sampled_from(["CN", "O", "OU", "C", "L", "ST", "STREET", "E", "DC", "UID", "SERIALNUMBER"])


def _dn(parts: list[tuple[str, str]]) -> str:
    return ",".join(f"{k}={v}" for k, v in parts)


simple_dns = st.lists(
    st.tuples(
        st.sampled_from(["CN", "OU", "O", "L", "C"]),
        st.text(st.sampled_from("abcXYZ019 -_."), min_size=1, max_size=8).map(str.strip).filter(bool),
    ),
    min_size=1,
    max_size=4,
).map(_dn)
policy_names = st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/%"), min_size=1, max_size=48)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    """Valid policies of every quality of protection."""
    qop = draw(st.sampled_from(["none", "integrity", "privacy", "confidentiality"]))
    signature = SignatureAlgorithm.NONE
    encryption = EncryptionAlgorithm.NONE
    if qop in ("integrity", "privacy"):
        signature = draw(st.sampled_from([a for a in SignatureAlgorithm if a is not SignatureAlgorithm.NONE]))
    if qop in ("privacy", "confidentiality"):
        encryption = draw(st.sampled_from([a for a in EncryptionAlgorithm if a is not EncryptionAlgorithm.NONE]))
    dns = st.lists(simple_dns.map(DistinguishedName.parse), max_size=3, unique_by=lambda d: d.match_key)
    recipients = tuple(draw(dns.filter(bool))) if encryption is not EncryptionAlgorithm.NONE else ()
    signers = tuple(draw(dns)) if signature is not SignatureAlgorithm.NONE else ()
    reuse = KEYREUSE_DISABLED
    if qop == "confidentiality":
        reuse = draw(st.one_of(st.just(KEYREUSE_DISABLED), st.just(KEYREUSE_UNLIMITED), st.integers(1, 9_999_999)))
    return Policy(
        name=draw(policy_names),
        signature_algorithm=signature,
        encryption_algorithm=encryption,
        recipients=recipients,
        signers=signers,
        tolerate=draw(st.booleans()),
        key_reuse=reuse,
    )
