"""Hypothesis strategies shared by the tests."""

from __future__ import annotations

from hypothesis import strategies as st

from ams.algorithms import EncryptionAlgorithm, SignatureAlgorithm

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
