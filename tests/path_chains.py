"""Generated certificate paths, and three verdicts on each: AMS's, OpenSSL's and cryptography's.

A :class:`ChainSpec` describes a path: a self-signed root, up to three intermediate CAs (each
with a pathLenConstraint or none, name constraints permitting or excluding directoryName and
rfc822Name subtrees, perhaps an unknown critical extension, perhaps self-issued: its issuer's
name, another key), and an end entity (a DN, email addresses in its subjectAltName or subject,
perhaps an unknown critical extension). :func:`build` makes it with ``ams.pki`` (keys made once
per process and reused: signing is cheap, RSA key generation is not).

Names come from a small vocabulary whose values are ASCII, varied in case and spacing: the
comparisons AMS (``ams.dn.fold``) and OpenSSL (``x509_name_canon``: ASCII case folded, white
space collapsed) share. Outside it they knowingly differ (AMS folds non-ASCII letters too).

* :func:`ams_verdict`: ``Verifier.validate_signer`` over a keystore holding every CA.
* :func:`openssl_verdict`: ``X509_verify_cert`` with the root trusted and the rest untrusted.
* :func:`cryptography_verdict`: ``cryptography.x509.verification``'s client verifier, or None
  where it cannot judge: it refuses every directoryName constraint and does not read the
  subject's emailAddress.
"""

from __future__ import annotations

import datetime
import functools

import attrs
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID

import ams
from ams.pki import Issued, issue, make_ca, new_key
from tests import openssl_chain

UNKNOWN = x509.ObjectIdentifier("1.3.6.1.4.1.55555.7.1")
NOW = datetime.datetime.now(datetime.UTC)
_TYPES = {"C": NameOID.COUNTRY_NAME, "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME}
_TYPES |= {"CN": NameOID.COMMON_NAME, "E": NameOID.EMAIL_ADDRESS}

Dn = tuple[tuple[str, str], ...]  # (type, value) pairs in certificate (DER) order: ("C", "GB") first


def name(dn: Dn) -> x509.Name:
    """The x509 Name of ``dn``, values exactly as given (spaces and case kept)."""
    return x509.Name([x509.RelativeDistinguishedName([x509.NameAttribute(_TYPES[t], v)]) for t, v in dn])


def shown(dn: Dn) -> str:
    """``dn`` for a failure report, most specific first, each value quoted (so spaces show)."""
    return ",".join(f"{t}={v!r}" for t, v in reversed(dn)) or "(empty)"


@attrs.frozen
class Subtree:
    """A name-constraint subtree: a directoryName (``dn``) or an rfc822Name (``email``)."""

    dn: Dn | None = None
    email: str | None = None

    def general_name(self) -> x509.GeneralName:
        """The subtree as the GeneralName a nameConstraints extension holds."""
        return x509.RFC822Name(self.email) if self.email is not None else x509.DirectoryName(name(self.dn or ()))

    def __str__(self) -> str:
        return f"rfc822:{self.email}" if self.email is not None else f"dn:{shown(self.dn or ())}"


@attrs.frozen
class CaSpec:
    """One CA of the path (the root first)."""

    dn: Dn
    path_length: int | None = None
    permitted: tuple[Subtree, ...] = ()
    excluded: tuple[Subtree, ...] = ()
    unknown_critical: bool = False
    self_issued: bool = False  # its issuer's name as its subject (the root: always)
    require_explicit_policy: int | None = None  # a critical policyConstraints when set


@attrs.frozen
class ChainSpec:
    """A root, intermediates and an end entity."""

    cas: tuple[CaSpec, ...]
    leaf: Dn
    emails: tuple[str, ...] = ()  # subjectAltName rfc822Names
    unknown_critical: bool = False

    @property
    def has_directory_constraints(self) -> bool:
        """Whether any CA constrains directoryNames (which cryptography's verifier refuses)."""
        return any(s.dn is not None for ca in self.cas for s in (*ca.permitted, *ca.excluded))


@attrs.frozen
class Chain:
    """A built path: the end entity, the intermediates (issuer first) and the root."""

    leaf: Issued
    intermediates: tuple[x509.Certificate, ...]
    root: x509.Certificate


@functools.cache
def key(index: int) -> rsa.RSAPrivateKey:
    """Key ``index`` of this process (0 the root's, 1-3 intermediates', 9 the end entity's): 2048 bits,
    which cryptography's verifier requires."""
    return new_key(2048)


def _identifies(issuer: Issued) -> tuple[x509.ExtensionType, bool]:
    """An authorityKeyIdentifier naming ``issuer``'s key, as RFC 5280 4.2.1.1 asks of every issued
    certificate (OpenSSL needs it to tell a self-issued CA from the root whose name it shares)."""
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False


def _extensions(ca: CaSpec) -> list[tuple[x509.ExtensionType, bool]]:
    extensions: list[tuple[x509.ExtensionType, bool]] = []
    if ca.permitted or ca.excluded:
        constraints = x509.NameConstraints(
            permitted_subtrees=[s.general_name() for s in ca.permitted] or None,
            excluded_subtrees=[s.general_name() for s in ca.excluded] or None,
        )
        extensions.append((constraints, True))
    if ca.unknown_critical:
        extensions.append((x509.UnrecognizedExtension(UNKNOWN, b"\x05\x00"), True))
    if ca.require_explicit_policy is not None:
        policy = x509.PolicyConstraints(require_explicit_policy=ca.require_explicit_policy, inhibit_policy_mapping=None)
        extensions.append((policy, True))
    return extensions


@functools.lru_cache(maxsize=4096)
def _cas(cas: tuple[CaSpec, ...]) -> tuple[Issued, ...]:
    root_spec = cas[0]
    root = make_ca(name(root_spec.dn), key=key(0), path_length=root_spec.path_length, extensions=_extensions(root_spec))
    built = [root]
    for index, spec in enumerate(cas[1:], start=1):
        parent = built[-1]
        subject = parent.certificate.subject if spec.self_issued else name(spec.dn)
        made = issue(
            parent,
            subject,
            key=key(index),
            ca_flag=True,
            extended_key_usage=None,
            path_length=spec.path_length,
            extensions=[*_extensions(spec), _identifies(parent)],
        )
        built.append(made)
    return tuple(built)


def build(spec: ChainSpec) -> Chain:
    """The certificates of ``spec``, the CAs cached by their specs."""
    cas = _cas(spec.cas)
    extensions = [_identifies(cas[-1])]
    if spec.emails:
        extensions.append((x509.SubjectAlternativeName([x509.RFC822Name(e) for e in spec.emails]), False))
    if spec.unknown_critical:
        extensions.append((x509.UnrecognizedExtension(UNKNOWN, b"\x05\x00"), True))
    leaf = issue(cas[-1], name(spec.leaf), key=key(9), extensions=extensions)
    return Chain(leaf, tuple(c.certificate for c in reversed(cas[1:])), cas[0].certificate)


def ams_verdict(chain: Chain) -> str | None:
    """None when AMS accepts the end entity as a signer, else its error text."""
    keystore = ams.Keystore(None, [chain.root, *chain.intermediates], source="the generated CAs")
    try:
        ams.Verifier(keystore).validate_signer(chain.leaf.certificate, NOW)
    except ams.errors.SecurityError as error:
        return error.message
    return None


def openssl_verdict(chain: Chain, flags: int = 0) -> str | None:
    """None when OpenSSL verifies the path to the root, else its error text."""
    return openssl_chain.openssl_verdict(chain.leaf.certificate, [chain.root], chain.intermediates, at=NOW, flags=flags)


def cryptography_verdict(chain: Chain) -> str | None:
    """None when cryptography's verifier accepts the path, else its error text.

    Its CA policy is the web PKI default, its end-entity policy permits any extension (it has
    no S/MIME profile): the rules compared are those of RFC 5280 path validation."""
    builder = (
        verification.PolicyBuilder()
        .time(NOW)
        .store(verification.Store([chain.root]))
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=verification.ExtensionPolicy.permit_all(),
        )
    )
    try:
        builder.build_client_verifier().verify(chain.leaf.certificate, list(chain.intermediates))
    except verification.VerificationError as error:
        return str(error)
    return None


def cryptography_judges(spec: ChainSpec) -> bool:
    """Whether cryptography's verifier (51) can judge ``spec`` by RFC 5280: no directoryName
    constraint (it refuses them all), no emailAddress in the subject (it checks subjectAltName
    only) and no self-issued CA (it counts one against a pathLenConstraint, which RFC 5280 6.1.4
    (l) and OpenSSL do not: measured, a root with pathLen 0 over a self-issued CA)."""
    return (
        not spec.has_directory_constraints
        and all(t != "E" for t, _ in spec.leaf)
        and not any(ca.self_issued for ca in spec.cas)
    )


def describe(spec: ChainSpec) -> str:
    """``spec`` in one readable paragraph, for a failing example."""
    parts = []
    for index, ca in enumerate(spec.cas):
        what = "root " + shown(ca.dn) if index == 0 else f"CA {index} " + shown(ca.dn)
        what = f"CA {index} (self-issued)" if ca.self_issued else what
        parts.append(
            f"{what} pathLen={ca.path_length} permitted={[str(s) for s in ca.permitted]} "
            f"excluded={[str(s) for s in ca.excluded]} unknown-critical={ca.unknown_critical}"
        )
    parts.append(f"leaf {shown(spec.leaf)} emails={list(spec.emails)} unknown-critical={spec.unknown_critical}")
    return "; ".join(parts)
