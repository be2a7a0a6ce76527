"""Hypothesis strategies for AMS (``pip install ams[testing]``).

Every strategy is a function returning a ``SearchStrategy``, shrinking towards the simplest case
(SHA256 and AES256 first, empty payloads, no clear headers)::

    from hypothesis import given
    from ams.testing import strategies as ams_st

    @given(ams_st.written_dns())
    def test_dns_parse(written):                       # text as people write it, and the DN it means
        assert ams.DistinguishedName.parse(written.text) == written.dn

    @given(ams_st.invalid_policies())
    def test_rules(invalid):                           # a policy that breaks one IBM rule, and the rule
        with pytest.raises(ams.errors.PolicyError, match=invalid.match):
            ams.Policy.from_setmqspl(invalid.setmqspl)

* algorithms and payloads: :func:`signature_algorithms`, :func:`encryption_algorithms`,
  :func:`formats`, :func:`payloads`, :func:`payload_specs` (shapes up to 1 MiB);
* names and policies: :func:`dn_values`, :func:`dn_attribute_names`, :func:`simple_dns`,
  :func:`distinguished_names`, :func:`written_dns`, :func:`policy_names`, :func:`policies`,
  :func:`invalid_policies`;
* wire: :func:`pdmq_headers` (v2 and v3, both encodings), :func:`header_specs`,
  :func:`rfh2_folders`, :func:`clear_chains`;
* messages: :func:`protected_messages` (for a keystore and a policy) and :func:`mutations` of one.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence

import attrs
from cryptography import x509
from cryptography.x509.oid import NameOID
from hypothesis import strategies as st

from ams.algorithms import KEYREUSE_DISABLED, KEYREUSE_UNLIMITED, EncryptionAlgorithm, QoP, SignatureAlgorithm
from ams.dn import Attribute, DistinguishedName
from ams.hazmat.pdmq import PdmqHeader
from ams.keys.keystore import Keystore
from ams.mqconstants import MQENC_NATIVE
from ams.policy.model import Policy, setmqspl_words
from ams.protector import Protector
from ams.testing.algorithms import CIPHERS, DIGESTS
from ams.testing.headers import CLEAR_FORMATS, JMS_FOLDER, MCD_TEXT, MQENC_BIG, PSC_FOLDER, ClearChain, HeaderSpec
from ams.testing.mutations import MUTATION_KINDS, Expect, Mutation, ProtectedMessage, field_changes, flip_bit, refusing
from ams.testing.mutations import append as append_bytes
from ams.testing.mutations import truncate as truncate_to
from ams.testing.payloads import PayloadSpec

MIB = 1 << 20

# -- algorithms, formats, payloads -------------------------------------------------------------------------------------


def signature_algorithms(*, deprecated: bool = True) -> st.SearchStrategy[SignatureAlgorithm]:
    """Digests AMS defines (not NONE), SHA256 first; ``deprecated=False`` leaves out MD5 and SHA1."""
    return st.sampled_from([a for a in DIGESTS if deprecated or not a.deprecated])


def encryption_algorithms(*, deprecated: bool = True) -> st.SearchStrategy[EncryptionAlgorithm]:
    """Ciphers AMS defines (not NONE), AES256 first; ``deprecated=False`` leaves out RC2, DES and 3DES."""
    return st.sampled_from([a for a in CIPHERS if deprecated or not a.deprecated])


def formats() -> st.SearchStrategy[str]:
    """MQMD Formats of payloads (none of them a clear header): MQSTR, blank, MQADMIN, custom ones..."""
    return st.sampled_from(["MQSTR", "MQXMIT", "MQADMIN", "        ", "MYAPP", "MQEVENT"])


def payloads(max_size: int = 4096) -> st.SearchStrategy[bytes]:
    """Payloads as bytes: empty (AMS protects a single NUL in its place), one byte, up to ``max_size``."""
    return st.one_of(st.just(b""), st.binary(min_size=1, max_size=1), st.binary(min_size=0, max_size=max_size))


def payload_specs(*, max_size: int = MIB) -> st.SearchStrategy[PayloadSpec]:
    """Payload shapes that make their bytes on demand: empty, one byte, text, binary, large (from 64 KiB)."""
    seeds = st.integers(0, 2**32 - 1)
    shapes = [st.just(PayloadSpec("empty"))]
    if max_size >= 1:
        shapes.append(st.builds(PayloadSpec, st.just("byte"), st.just(1), st.integers(0, 255)))
    if max_size >= 2:
        shapes.append(st.builds(PayloadSpec, st.just("text"), st.integers(2, min(max_size, 4096)), seeds))
        shapes.append(st.builds(PayloadSpec, st.just("binary"), st.integers(2, min(max_size, 65535)), seeds))
    if max_size >= 65536:
        shapes.append(st.builds(PayloadSpec, st.just("large"), st.integers(65536, max_size), seeds))
    return st.one_of(shapes)


# -- distinguished names -----------------------------------------------------------------------------------------------

_VALUE_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp"), exclude_characters="\x00")
_PEOPLE = ["Smith, John", "O'Brien", "Zoë Ørsted", "R&D", "#1 Team", " padded ", 'say "hi"', "a+b", "x=y;z", "\\back"]

# attribute type -> the spellings people use for it (short, lower case, long name, OID)
SPELLINGS: dict[str, tuple[str, ...]] = {
    NameOID.COMMON_NAME.dotted_string: ("CN", "cn", "commonName", "OID.2.5.4.3", "2.5.4.3"),
    NameOID.ORGANIZATION_NAME.dotted_string: ("O", "o", "organizationName", "OID.2.5.4.10"),
    NameOID.ORGANIZATIONAL_UNIT_NAME.dotted_string: ("OU", "ou", "organizationalUnitName", "2.5.4.11"),
    NameOID.COUNTRY_NAME.dotted_string: ("C", "c", "countryName"),
    NameOID.LOCALITY_NAME.dotted_string: ("L", "localityName"),
    NameOID.STATE_OR_PROVINCE_NAME.dotted_string: ("ST", "S", "stateOrProvinceName"),
    NameOID.STREET_ADDRESS.dotted_string: ("STREET", "street"),
    NameOID.EMAIL_ADDRESS.dotted_string: ("E", "email", "emailAddress"),
    NameOID.DOMAIN_COMPONENT.dotted_string: ("DC", "domainComponent"),
    NameOID.USER_ID.dotted_string: ("UID", "userId"),
    NameOID.SERIAL_NUMBER.dotted_string: ("SERIALNUMBER",),
}
_SPECIAL = ',+"\\<>;='


@attrs.frozen
class WrittenDN:
    """A DN as someone wrote it (``text``) and the name it means (``dn``): ``parse(text) == dn``."""

    text: str
    dn: DistinguishedName


def dn_attribute_names() -> st.SearchStrategy[str]:
    """Attribute type names as policies write them: CN, O, OU, C, L, ST, STREET, E, DC, UID, SERIALNUMBER."""
    return st.sampled_from(["CN", "O", "OU", "C", "L", "ST", "STREET", "E", "DC", "UID", "SERIALNUMBER"])


def dn_values() -> st.SearchStrategy[str]:
    """Attribute values: any printable Unicode (no NUL, controls or lone surrogates), 1 to 12 characters."""
    return st.text(_VALUE_CHARS, min_size=1, max_size=12)


def simple_dns() -> st.SearchStrategy[str]:
    """Plain DN strings with no character that needs escaping: ``CN=ab,O=x 1``."""
    part = st.tuples(
        st.sampled_from(["CN", "OU", "O", "L", "C"]),
        st.text(st.sampled_from("abcXYZ019 -_."), min_size=1, max_size=8).map(str.strip).filter(bool),
    )
    return st.lists(part, min_size=1, max_size=4).map(lambda parts: ",".join(f"{k}={v}" for k, v in parts))


def distinguished_names(*, max_rdns: int = 4) -> st.SearchStrategy[DistinguishedName]:
    """DNs with any attribute types and values, multi-valued RDNs (``CN=a+UID=b``) included."""
    values = st.one_of(dn_values(), st.sampled_from(_PEOPLE))
    attribute = st.builds(Attribute, st.sampled_from(sorted(SPELLINGS)), values)
    rdn = st.lists(attribute, min_size=1, max_size=3, unique_by=lambda a: a.oid).map(tuple)
    return st.lists(rdn, min_size=1, max_size=max_rdns).map(lambda rdns: DistinguishedName(tuple(rdns)))


def _escaped(value: str, draw: st.DrawFn) -> str:
    """``value`` unquoted: specials, a leading ``#`` and leading or trailing spaces escaped; some
    characters written as ``\\XX`` escapes of their UTF-8 bytes."""
    out = []
    for index, char in enumerate(value):
        if draw(st.booleans()) and (char in _SPECIAL or not char.isascii()):
            out.append("".join(f"\\{byte:02X}" for byte in char.encode("utf-8")))
        elif char in _SPECIAL or (char == "#" and index == 0) or (char == " " and index in (0, len(value) - 1)):
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def _written_value(value: str, draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return _escaped(value, draw)


@st.composite
def written_dns(draw: st.DrawFn, dns: st.SearchStrategy[DistinguishedName] | None = None) -> WrittenDN:
    """A DN and a way people write it: type spellings (``cn``, ``commonName``, ``OID.2.5.4.3``), quoted
    or escaped values, ``\\XX`` escapes, ``,`` or ``;`` separators and spaces around them."""
    dn = draw(dns if dns is not None else distinguished_names())
    rdns = []
    for rdn in dn.rdns:
        attributes = []
        for attribute in rdn:
            equals = draw(st.sampled_from(["=", " = ", " =", "= "]))
            spelling = draw(st.sampled_from(SPELLINGS[attribute.oid]))
            attributes.append(spelling + equals + _written_value(attribute.value, draw))
        rdns.append(draw(st.sampled_from(["+", " + "])).join(attributes))
    text = rdns[0]
    for rdn_text in rdns[1:]:
        text += draw(st.sampled_from([",", ", ", ";", " ; ", " , "])) + rdn_text
    return WrittenDN(draw(st.sampled_from(["", " "])) + text, dn)


# -- policies ----------------------------------------------------------------------------------------------------------


def policy_names() -> st.SearchStrategy[str]:
    """Valid policy (queue) names: 1 to 48 of A-Z, 0-9 and ``. _ / %``."""
    return st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/%"), min_size=1, max_size=48)


def _dn_lists(min_size: int = 0) -> st.SearchStrategy[list[DistinguishedName]]:
    return st.lists(
        simple_dns().map(DistinguishedName.parse), min_size=min_size, max_size=3, unique_by=lambda d: d.match_key
    )


@st.composite
def policies(draw: st.DrawFn, qops: Sequence[QoP] = tuple(QoP), *, deprecated: bool = True) -> Policy:
    """Policies valid by IBM's rules, of the qualities of protection in ``qops`` (default: every one, NONE too);
    ``deprecated=False`` leaves out the algorithms IBM MQ deprecates (MD5, SHA1, RC2, DES, 3DES)."""
    qop = draw(st.sampled_from(list(qops)))
    signature, encryption = SignatureAlgorithm.NONE, EncryptionAlgorithm.NONE
    if qop in (QoP.INTEGRITY, QoP.PRIVACY):
        signature = draw(signature_algorithms(deprecated=deprecated))
    if qop in (QoP.PRIVACY, QoP.CONFIDENTIALITY):
        encryption = draw(encryption_algorithms(deprecated=deprecated))
    recipients = tuple(draw(_dn_lists(1))) if encryption is not EncryptionAlgorithm.NONE else ()
    signers = tuple(draw(_dn_lists())) if signature is not SignatureAlgorithm.NONE else ()
    reuse = KEYREUSE_DISABLED
    if qop is QoP.CONFIDENTIALITY:
        reuse = draw(st.one_of(st.just(KEYREUSE_DISABLED), st.just(KEYREUSE_UNLIMITED), st.integers(1, 9_999_999)))
    return Policy(
        name=draw(policy_names()),
        signature_algorithm=signature,
        encryption_algorithm=encryption,
        recipients=recipients,
        signers=signers,
        tolerate=draw(st.booleans()),
        key_reuse=reuse,
    )


@attrs.frozen
class InvalidPolicy:
    """A policy that breaks one of IBM's rules (``rule``), as a setmqspl command line and, where the
    rule is about values rather than spelling, as ``Policy`` keyword arguments (``fields``).
    ``match`` is a regular expression the PolicyError's text matches."""

    rule: str
    setmqspl: str
    fields: Mapping[str, object] | None
    match: str


RULES = (
    "name",
    "encryption-needs-recipient",
    "recipients-need-encryption",
    "signers-need-signature",
    "swapped-recipients-and-signers",
    "key-reuse-only-confidentiality",
    "key-reuse-range",
    "algorithm-case",
    "unknown-algorithm",
    "toleration",
)


@attrs.define
class _Draft:
    """A policy being broken: its values, and the setmqspl words that spell one of them wrong."""

    name: str
    draw: st.DrawFn
    digest: SignatureAlgorithm
    cipher: EncryptionAlgorithm
    dns: tuple[DistinguishedName, ...]
    signature: SignatureAlgorithm = SignatureAlgorithm.NONE
    encryption: EncryptionAlgorithm = EncryptionAlgorithm.NONE
    recipients: tuple[DistinguishedName, ...] = ()
    signers: tuple[DistinguishedName, ...] = ()
    key_reuse: int = KEYREUSE_DISABLED
    misspelt: tuple[str, str] | None = None  # (flag, the value written for it)

    def fields(self) -> dict[str, object]:
        return {
            "name": self.name,
            "signature_algorithm": self.signature,
            "encryption_algorithm": self.encryption,
            "recipients": self.recipients,
            "signers": self.signers,
            "key_reuse": self.key_reuse,
        }

    def setmqspl(self) -> str:
        words = setmqspl_words("QM", self.name, self.signature, self.encryption, self.signers, self.recipients)
        words += ["-c", "*" if self.key_reuse == KEYREUSE_UNLIMITED else str(self.key_reuse)]
        if self.misspelt is not None:
            flag, value = self.misspelt
            if flag in words:
                words[words.index(flag) + 1] = value
            else:
                words += [flag, value]
        return shlex.join(words)


def _bad_names() -> st.SearchStrategy[str]:
    valid = st.sampled_from("ABCXYZ019._/%")
    too_long = st.text(valid, min_size=49, max_size=60)
    bad_character = st.tuples(st.text(valid, max_size=5), st.sampled_from(" *-!é#:"), st.text(valid, max_size=5))
    return st.one_of(too_long, bad_character.map("".join))


@st.composite
def invalid_policies(draw: st.DrawFn, rules: Sequence[str] = RULES) -> InvalidPolicy:
    """A policy that breaks exactly one of IBM's rules, with the rule's name (one of :data:`RULES`)."""
    rule = draw(st.sampled_from(list(rules)))
    draft = _Draft(
        name=draw(policy_names()),
        draw=draw,
        digest=draw(signature_algorithms(deprecated=False)),
        cipher=draw(encryption_algorithms(deprecated=False)),
        dns=tuple(draw(_dn_lists(1))),
    )
    make, match = _RULE_MAKERS[rule]
    make(draft)
    fields = draft.fields() if draft.misspelt is None else None
    return InvalidPolicy(rule, draft.setmqspl(), fields, match)


def _rule_name(d: _Draft) -> None:
    d.name, d.signature = d.draw(_bad_names()), d.digest


def _rule_no_recipient(d: _Draft) -> None:
    d.signature, d.encryption = d.draw(st.sampled_from([SignatureAlgorithm.NONE, d.digest])), d.cipher


def _rule_no_encryption(d: _Draft) -> None:
    d.recipients = d.dns


def _rule_no_signature(d: _Draft) -> None:
    if d.draw(st.booleans()):
        d.encryption, d.recipients = d.cipher, d.dns
    d.signers = d.dns


def _rule_swapped(d: _Draft) -> None:
    d.signature = d.digest
    if d.draw(st.booleans()):
        d.encryption, d.signers = d.cipher, d.dns
    else:
        d.recipients = d.dns


def _rule_reuse_qop(d: _Draft) -> None:
    d.signature = d.digest
    d.key_reuse = d.draw(st.one_of(st.just(KEYREUSE_UNLIMITED), st.integers(1, 9_999_999)))
    if d.draw(st.booleans()):
        d.encryption, d.recipients = d.cipher, d.dns


def _rule_reuse_range(d: _Draft) -> None:
    d.encryption, d.recipients = d.cipher, d.dns
    d.key_reuse = d.draw(st.integers(10_000_000, 99_999_999))


def _rule_case(d: _Draft) -> None:
    d.signature = d.digest
    d.misspelt = ("-s", d.digest.label.lower())


def _rule_unknown(d: _Draft) -> None:
    d.signature = d.digest
    d.misspelt = d.draw(st.sampled_from([("-s", "SHA3"), ("-s", "SHA-256"), ("-e", "AES512"), ("-e", "BLOWFISH")]))


def _rule_toleration(d: _Draft) -> None:
    d.signature = d.digest
    d.misspelt = ("-t", str(d.draw(st.sampled_from([2, 9, -1]))))


_RULE_MAKERS: dict[str, tuple[Callable[[_Draft], None], str]] = {
    "name": (_rule_name, "not a valid queue name"),
    "encryption-needs-recipient": (_rule_no_recipient, "needs at least one recipient"),
    "recipients-need-encryption": (_rule_no_encryption, "encryption algorithm is NONE"),
    "signers-need-signature": (_rule_no_signature, "signature algorithm is NONE"),
    "swapped-recipients-and-signers": (_rule_swapped, "looks like -r and -a swapped"),
    "key-reuse-only-confidentiality": (_rule_reuse_qop, "applies only to confidentiality"),
    "key-reuse-range": (_rule_reuse_range, "out of range"),
    "algorithm-case": (_rule_case, "names are upper case"),
    "unknown-algorithm": (_rule_unknown, "unknown (signature|encryption) algorithm"),
    "toleration": (_rule_toleration, "toleration"),
}


# -- the wire: PDMQ headers and clear header chains --------------------------------------------------------------------


def pdmq_headers(*, versions: Sequence[int] = (2, 3)) -> st.SearchStrategy[PdmqHeader]:
    """PDMQ headers of the given versions (2: integrity and privacy; 3: confidentiality), both encodings."""
    v2 = st.builds(
        PdmqHeader,
        qop=st.sampled_from([QoP.INTEGRITY, QoP.PRIVACY]),
        orig_size=st.integers(1, 2**31 - 1),
        orig_format=st.sampled_from(["MQSTR   ", "        ", "MQADMIN ", "CUSTOMER"]),
        name=st.text(st.sampled_from("ABCXYZ.0123_/%"), min_size=1, max_size=48),
        empty=st.booleans(),
        encoding=st.sampled_from([1, 2]),
    )
    v3 = st.builds(
        PdmqHeader,
        qop=st.just(QoP.CONFIDENTIALITY),
        orig_size=st.integers(1, 2**31 - 1),
        orig_format=st.sampled_from(["MQSTR   ", "        ", "MQADMIN "]),
        name=st.text(st.sampled_from("ABCXYZ.0123_/%"), min_size=1, max_size=48),
        key_reuse=st.booleans(),
        empty=st.booleans(),
        encoding=st.sampled_from([1, 2]),
        key_block_size=st.integers(1, 10_000),
        iv_block_size=st.sampled_from([8, 16]),
        enc_block_size=st.integers(1, 2**31 - 1),
    )
    chosen = [s for version, s in ((2, v2), (3, v3)) if version in versions]
    return st.one_of(chosen)


def rfh2_folders() -> st.SearchStrategy[tuple[str, ...]]:
    """MQRFH2 NameValueData folders: ``<mcd>``, ``<jms>``, ``<psc>`` and ``<usr>`` with message properties."""
    text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)
    escaped = text.map(lambda v: v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
    usr = st.lists(st.tuples(st.sampled_from(["Region", "Amount", "Batch", "Priority"]), escaped), max_size=3)
    usr_folder = usr.map(lambda props: "<usr>" + "".join(f"<{k}>{v}</{k}>" for k, v in props) + "</usr>")
    return st.lists(st.one_of(st.just(MCD_TEXT), st.just(JMS_FOLDER), st.just(PSC_FOLDER), usr_folder), max_size=4).map(
        tuple
    )


def header_specs(kinds: Sequence[str] = CLEAR_FORMATS, *, ebcdic: bool = True) -> st.SearchStrategy[HeaderSpec]:
    """One clear header of one of ``kinds``, with ASCII (or, when ``ebcdic``, EBCDIC) names; MQRFH2 with folders."""
    return st.builds(
        HeaderSpec,
        kind=st.sampled_from(list(kinds)),
        ebcdic=st.booleans() if ebcdic else st.just(False),
        folders=rfh2_folders(),
    ).map(lambda spec: spec if spec.kind in ("MQHRF2", "MQHRF") else attrs.evolve(spec, folders=()))


@st.composite
def clear_chains(
    draw: st.DrawFn,
    *,
    min_headers: int = 0,
    max_headers: int = 4,
    mqmd_encoding: int | None = None,
    final_formats: Sequence[str] = ("MQSTR", "        ", "MQADMIN", "MQXMIT", "APPDATA"),
    ebcdic: bool = True,
) -> ClearChain:
    """Chains of clear headers in both integer encodings (fixed for the MQMD with ``mqmd_encoding``)."""
    headers = tuple(draw(st.lists(header_specs(ebcdic=ebcdic), min_size=min_headers, max_size=max_headers)))
    encodings = draw(st.lists(st.sampled_from([MQENC_NATIVE, MQENC_BIG]), min_size=len(headers), max_size=len(headers)))
    first = mqmd_encoding if mqmd_encoding is not None else draw(st.sampled_from([MQENC_NATIVE, MQENC_BIG]))
    return ClearChain(headers, draw(st.sampled_from(list(final_formats))), (first, *encodings))


# -- protected messages and their mutations ----------------------------------------------------------------------------


def protected_messages(
    keystore: Keystore,
    policy: Policy,
    *,
    bodies: st.SearchStrategy[bytes] | None = None,
    chains: st.SearchStrategy[ClearChain] | None = None,
    allow_deprecated: bool = True,
) -> st.SearchStrategy[ProtectedMessage]:
    """Messages protected under ``policy`` with ``keystore`` (one Protector for the strategy's life):
    payloads from ``bodies`` (default :func:`payloads`) behind clear headers from ``chains``
    (default: none, or up to three headers)."""
    handle: list[Protector] = []

    def protect(body: bytes, chain: ClearChain | None) -> ProtectedMessage:
        if not handle:
            handle.append(Protector(keystore, {policy.name: policy}, allow_deprecated=allow_deprecated))
        chain = chain or ClearChain()
        original = chain.message(body)
        protected = handle[0].protect(policy.name, original, chain.mqmd_format, encoding=chain.mqmd_encoding)
        return ProtectedMessage.of(protected, original, chain.mqmd_format, policy.name, encoding=chain.mqmd_encoding)

    default_chains = st.one_of(st.none(), clear_chains(max_headers=3))
    return st.builds(
        protect, bodies if bodies is not None else payloads(), chains if chains is not None else default_chains
    )


@st.composite
def mutations(
    draw: st.DrawFn, message: ProtectedMessage, *, reader: x509.Certificate | None = None, expect: Expect | None = None
) -> Mutation:
    """A mutation of ``message`` (a flipped bit anywhere, a cut, appended bytes, a PDMQ field changed);
    with ``expect``, only those a correct receiver treats that way (``reader``: the receiver's certificate)."""
    kind = draw(st.sampled_from(MUTATION_KINDS))
    if expect is Expect.REFUSE:
        return refusing(message, kind, draw(st.integers(0, 2**24)), draw(st.integers(0, 7)), reader=reader)
    if kind == "flip":
        offset = draw(st.integers(0, len(message.body) - 1))
        mutation = flip_bit(message, offset, draw(st.integers(0, 7)), reader=reader)
    elif kind == "truncate":
        mutation = truncate_to(message, draw(st.integers(0, len(message.body) - 1)))
    elif kind == "append":
        mutation = append_bytes(message, draw(st.binary(min_size=1, max_size=16)))
    else:
        mutation = draw(st.sampled_from(field_changes(message)))
    if expect is not None and mutation.expect is not expect:
        candidates = [m for m in field_changes(message) if m.expect is expect]
        if not candidates:
            return draw(st.nothing())
        mutation = draw(st.sampled_from(candidates))
    return mutation
