"""RFC 5280 path rules over a built path: critical extensions, path length, name constraints, policy.

A path is a tuple of certificates, the end entity first and the certificate at the top (the
trust anchor: a keystore CA, self-signed or not) last; ``ams._trust`` builds it, every issuer's
signature and CA flag already checked. :func:`check_path` then applies what ``openssl verify``
applies (OpenSSL 3, crypto/x509/x509_vfy.c and v3_ncons.c), to signers and recipients alike:

* **Critical extensions.** Every certificate of the path, the anchor included, may carry as
  critical only the extensions AMS acts on: basicConstraints, keyUsage, extendedKeyUsage,
  subjectAltName, nameConstraints and the four policy extensions (OpenSSL's own list, less the
  Netscape, RFC 3779 and proxy ones AMS does not check). Anything else is refused, by OID.
* **Path length.** A CA's pathLenConstraint counts the CA certificates below it that are not
  self-issued (the end entity not counted), as RFC 5280 6.1.4 (l, m) and OpenSSL count.
* **Name constraints** (RFC 5280 4.2.1.10, 6.1.3 b-c, 6.1.4 g). The constraints of every CA of
  the path, the anchor's own included (as OpenSSL applies them), bind every certificate below it
  except self-issued CA certificates. Checked: directoryName subtrees against the subject (a
  subtree's RDNs must begin the subject's, compared as :meth:`DistinguishedName.matches`
  compares values) and directoryName alternative names; rfc822Name subtrees against
  rfc822Name alternative names and the subject's emailAddress attributes (a mailbox, a host, or
  ``.domain`` for any host under it). A subtree of another type (dNSName, URI, IP address...)
  refuses the path only when a certificate below carries a name of that type, which is when
  OpenSSL would compare it; such names are not AMS's, so nothing is accepted unchecked. A
  subtree with a minimum or maximum (RFC 5280 forbids CAs to set them; cryptography's parser
  drops them) refuses the path, as OpenSSL refuses it.
* **Policies.** AMS accepts any certificate policy (the initial policy set is anyPolicy, no
  explicit policy asked for), so certificatePolicies, policyMappings, inhibitAnyPolicy and
  inhibitPolicyMapping cannot change a verdict, and are understood. What can is a
  requireExplicitPolicy that runs out inside the path (RFC 5280 6.1.4 i, 6.1.5 a-b): then a
  valid policy tree would be needed, which AMS does not compute, so the path is refused, never
  accepted unchecked. The anchor's own policyConstraints count too (stricter than RFC 5280).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from ams.dn import DistinguishedName
from ams.errors import CertificatePathError
from ams.hazmat import der
from ams.hazmat.certificates import subject_dn

UNDERSTOOD = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.NAME_CONSTRAINTS,
        ExtensionOID.CERTIFICATE_POLICIES,
        ExtensionOID.POLICY_MAPPINGS,
        ExtensionOID.POLICY_CONSTRAINTS,
        ExtensionOID.INHIBIT_ANY_POLICY,
    }
)
_TYPE_NAMES: dict[type, str] = {
    x509.DirectoryName: "directoryName",
    x509.RFC822Name: "rfc822Name",
    x509.DNSName: "dNSName",
    x509.UniformResourceIdentifier: "uniformResourceIdentifier",
    x509.IPAddress: "iPAddress",
    x509.OtherName: "otherName",
    x509.RegisteredID: "registeredID",
}
_CHECKED = frozenset({"directoryName", "rfc822Name"})
_EXTENSIONS = 0xA3  # [3] EXPLICIT Extensions in a TBSCertificate
_BOOLEAN = 0x01
_ADVICE = (
    "Ask the partner for a certificate within what its CA may certify, or, if this name should be "
    "trusted, change the trust: the CA certificate that carries the constraint decides"
)

Name = tuple[str, object, str]  # (GeneralName type, value: a DistinguishedName or a string, how to say it)


def check_path(path: Sequence[x509.Certificate], role: str) -> None:
    """``path`` (end entity first, anchor last) obeys the rules above; CertificatePathError naming the
    certificate, the rule and the CA whose constraint it breaks otherwise."""
    for index, certificate in enumerate(path):
        _check_critical(certificate, _what(path, index, role))
    _check_path_length(path, role)
    _check_name_constraints(path, role)
    _check_explicit_policy(path, role)


def subject(certificate: x509.Certificate) -> DistinguishedName:
    """A certificate's subject as a DN (cached by certificate)."""
    return subject_dn(certificate)


def _who(path: Sequence[x509.Certificate], index: int, role: str) -> str:
    """The certificate at ``index``: "signer CN=...", "issuing CA CN=..." or "trust anchor CN=..."."""
    kind = role if index == 0 else "trust anchor" if index == len(path) - 1 else "issuing CA"
    return f"{kind} {subject(path[index])}"


def _what(path: Sequence[x509.Certificate], index: int, role: str) -> str:
    """:func:`_who`, and for a CA the certificate it is above."""
    return _who(path, index, role) + (f" (above {role} {subject(path[0])})" if index else "")


def self_issued(certificate: x509.Certificate) -> bool:
    """Subject and issuer are the same name (a root, or a CA's key rollover certificate), compared
    as DNs are (OpenSSL compares their canonical forms, case folded, too)."""
    issuer = DistinguishedName.from_x509(certificate.issuer)
    return subject(certificate).match_key == issuer.match_key


def _check_critical(certificate: x509.Certificate, what: str) -> None:
    for extension in certificate.extensions:
        if extension.critical and extension.oid not in UNDERSTOOD:
            name = getattr(extension.oid, "_name", "Unknown OID")
            shown = extension.oid.dotted_string + (f" ({name})" if name != "Unknown OID" else "")
            raise CertificatePathError(
                f"{what} carries the critical extension {shown}, which AMS does not process; RFC 5280 "
                "requires a certificate with a critical extension the verifier does not know to be refused. "
                "Ask its issuer for a certificate without it, or with it marked non-critical"
            )


def _path_length(certificate: x509.Certificate) -> int | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
    except x509.ExtensionNotFound:
        return None


def _check_path_length(path: Sequence[x509.Certificate], role: str) -> None:
    below = 0  # CA certificates between this one and the end entity, self-issued ones not counted
    for index, certificate in enumerate(path):
        limit = _path_length(certificate)
        if index > 1 and limit is not None and below > limit:
            chain = " <- ".join(str(subject(c)) for c in path[: index + 1])
            raise CertificatePathError(
                f"{role} {subject(path[0])} is certified through {below} CA certificate(s) below "
                f"{_who(path, index, role)}, whose basicConstraints pathLenConstraint {limit} "
                f"allows at most {limit} (path: {chain}). Trust the path only as its CAs allow: use a "
                "certificate issued higher up, or a CA certificate with a larger pathLenConstraint"
            )
        if index > 0 and not self_issued(certificate):
            below += 1


def _name_constraints(certificate: x509.Certificate) -> x509.NameConstraints | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return None


def _check_name_constraints(path: Sequence[x509.Certificate], role: str) -> None:
    constraining = [(j, nc) for j, c in enumerate(path) if (nc := _name_constraints(c)) is not None]
    if not constraining:
        return
    for j, _ in constraining:
        if _subtree_bounds(path[j]):
            raise CertificatePathError(
                f"{_what(path, j, role)} has nameConstraints whose subtrees set a minimum or maximum, which "
                "RFC 5280 forbids CAs to use and which AMS, like OpenSSL, does not apply, so the path is refused "
                "rather than constrained less than its CA meant. The CA needs a certificate without them"
            )
    for index, certificate in enumerate(path):
        if index and self_issued(certificate):
            continue  # RFC 5280 6.1.3 b: a self-issued intermediate is not bound by the names above it
        above = [(j, nc) for j, nc in constraining if j > index]
        if not above:
            continue
        names = list(names_of(certificate))
        for j, constraints in above:
            _check_names(names, constraints, _what(path, index, role), subject(path[j]))


def _subtree_bounds(certificate: x509.Certificate) -> bool:
    """Whether a GeneralSubtree of the nameConstraints sets minimum or maximum (cryptography drops
    both when it parses the extension, so the DER is read here: TBSCertificate, [3] extensions)."""
    try:
        tbs = der.Reader(certificate.tbs_certificate_bytes, "TBSCertificate")
        fields = tbs.read("TBSCertificate", der.SEQUENCE).children("TBSCertificate")
        while fields.peek() not in (None, _EXTENSIONS):
            fields.read("a TBSCertificate field")
        if fields.peek() is None:
            return False
        extensions = fields.read("extensions", _EXTENSIONS).children("extensions").read("Extensions", der.SEQUENCE)
        for extension in extensions.children("Extensions").all("Extension", der.SEQUENCE, limit=1024):
            parts = extension.children("Extension")
            if parts.read("extnID", der.OID).oid("extnID") != ExtensionOID.NAME_CONSTRAINTS.dotted_string:
                continue
            parts.optional(_BOOLEAN, "critical")
            value = der.Reader(parts.read("extnValue", der.OCTET_STRING).content, "nameConstraints")
            for trees in value.read("NameConstraints", der.SEQUENCE).children("NameConstraints").all("subtrees"):
                for tree in trees.children("GeneralSubtrees").all("GeneralSubtree", der.SEQUENCE, limit=1024):
                    if len(tree.children("GeneralSubtree").all("a GeneralSubtree field")) > 1:
                        return True
    except der.DerError as error:
        raise CertificatePathError(
            f"the nameConstraints of CA {subject(certificate)} could not be read ({error}); the path is refused"
        ) from None
    return False


def names_of(certificate: x509.Certificate) -> Iterator[Name]:
    """The names that name constraints bind, each as (GeneralName type, value, how to say it): the
    subject DN (when not empty), its emailAddress attributes, and every subjectAltName entry."""
    name = subject(certificate)
    if name.rdns:
        yield "directoryName", name, "its subject"
    for attribute in certificate.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS):
        address = attribute.value if isinstance(attribute.value, str) else ""  # not a string: within nothing
        yield "rfc822Name", address, f"the emailAddress {_shown(address)}"
    try:
        alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return
    for general in alternative:
        kind = _TYPE_NAMES.get(type(general), type(general).__name__)
        value = _base(general)
        yield kind, value, f"the alternative name {kind} {_shown(value)}"


def _shown(value: object) -> str:
    """A name from a certificate, for an error text: control characters escaped, at most 100 characters."""
    text = str(value) if isinstance(value, DistinguishedName | str) else repr(value)
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= 100 else text[:100] + "..."


def _check_names(names: Sequence[Name], constraints: x509.NameConstraints, what: str, ca: DistinguishedName) -> None:
    for kind, value, shown in names:
        permitted = [_base(g) for g in constraints.permitted_subtrees or () if _TYPE_NAMES.get(type(g)) == kind]
        excluded = [_base(g) for g in constraints.excluded_subtrees or () if _TYPE_NAMES.get(type(g)) == kind]
        if not permitted and not excluded:
            continue
        if kind == "rfc822Name" and "@" not in str(value):
            raise CertificatePathError(
                f"{what} has {shown}, which is not a mailbox (no @), so CA '{ca}''s rfc822Name constraints "
                "cannot be applied to it (OpenSSL refuses it too). Use a certificate with a valid email address"
            )
        if kind not in _CHECKED:
            raise CertificatePathError(
                f"{what} has {shown}, and CA '{ca}' constrains such names: {kind} constraints are not "
                "checked by AMS (it checks directoryName and rfc822Name subtrees), so the path is refused "
                "rather than trusted unchecked. Use a certificate without such names"
            )
        if permitted and not any(_within(value, base) for base in permitted):
            raise CertificatePathError(
                f"{what}: {shown} is outside the permitted subtree {', '.join(map(str, permitted))} of CA "
                f"'{ca}' (its nameConstraints), so that CA may not certify it. {_ADVICE}"
            )
        for base in excluded:
            if _within(value, base):
                raise CertificatePathError(
                    f"{what}: {shown} is inside the excluded subtree {base} of CA '{ca}' (its "
                    f"nameConstraints), so that CA may not certify it. {_ADVICE}"
                )


def _base(general: x509.GeneralName) -> object:
    if isinstance(general, x509.DirectoryName):
        return DistinguishedName.from_x509(general.value)
    return general.value


def _within(value: object, base: object) -> bool:
    if isinstance(value, DistinguishedName) and isinstance(base, DistinguishedName):
        return within_directory(value, base)
    if isinstance(value, str) and isinstance(base, str):
        return within_mailbox(value, base)
    return False  # not reached: only directoryName and rfc822Name values are compared


def within_directory(name: DistinguishedName, subtree: DistinguishedName) -> bool:
    """The subtree's RDNs begin ``name``'s, in certificate (DER) order: ``CN=a,O=P,C=GB`` is within
    ``O=P,C=GB``; values compare as :meth:`DistinguishedName.matches` compares them."""
    mine, theirs = name.match_key, subtree.match_key
    return len(theirs) <= len(mine) and mine[len(mine) - len(theirs) :] == theirs


def within_mailbox(address: str, subtree: str) -> bool:
    """RFC 5280 4.2.1.10 rfc822Name matching, as OpenSSL's nc_email: a mailbox (local part exact,
    host without case), a host, or ``.domain`` for any host under it. An address without ``@``
    is within nothing."""
    local, at, host = address.rpartition("@")
    if not at:
        return False
    if "@" not in subtree:
        if subtree.startswith("."):
            return len(address) > len(subtree) and address[-len(subtree) :].lower() == subtree.lower()
        return host.lower() == subtree.lower()
    base_local, _, base_host = subtree.rpartition("@")
    if base_local and base_local != local:
        return False
    return host.lower() == base_host.lower()


def _policy_constraints(certificate: x509.Certificate) -> x509.PolicyConstraints | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.PolicyConstraints).value
    except x509.ExtensionNotFound:
        return None


def _check_explicit_policy(path: Sequence[x509.Certificate], role: str) -> None:
    explicit = len(path) + 1  # RFC 5280 6.1.2 (i), initial-explicit-policy false; the anchor counted too
    by, demanded = 0, 0  # the certificate whose requireExplicitPolicy last lowered the count, and its value
    for index in range(len(path) - 1, -1, -1):
        certificate = path[index]
        constraints = _policy_constraints(certificate)
        required = constraints.require_explicit_policy if constraints is not None else None
        if index:
            if not self_issued(certificate) and explicit:
                explicit -= 1
            if required is not None and required < explicit:
                explicit, by, demanded = required, index, required
        elif required == 0:
            explicit, by, demanded = 0, 0, 0
        elif explicit:
            explicit -= 1
        if explicit == 0:
            raise CertificatePathError(
                f"the path of {role} {subject(path[0])} must carry an acceptable certificate policy: "
                f"policyConstraints requireExplicitPolicy {demanded} of {_what(path, by, role)} asks for one, "
                "and AMS does not evaluate certificate policies, so it refuses the path rather than accept it "
                "unchecked. Use a CA certificate without requireExplicitPolicy for AMS"
            )
