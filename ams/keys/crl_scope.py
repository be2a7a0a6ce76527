"""What a CRL covers (RFC 5280 5.2, 5.3 and 6.3.3), read once per CRL.

A CRL answers "not revoked" only for a certificate in its scope: not for an end entity when it
lists CA certificates only (an ARL, ``onlyContainsCACerts``), nor for a CA when it lists end
entities only, nor for any public-key certificate when it lists attribute certificates only; not
when it is the partition for a distribution point the certificate does not name. This library
does not combine CRLs that cover only some reasons (``onlySomeReasons``) or read indirect CRLs,
as OpenSSL does not without its extended CRL support: such a CRL is not used. A delta CRL
(``deltaCRLIndicator``) is used only with a complete CRL of the same issuer and scope whose CRL
number is at least the delta's base CRL number (RFC 5280 5.2.4). A CRL with a critical extension,
or an entry with a critical extension, that this library does not process is not used at all
(RFC 5280 5.2 and 5.3).

Each refusal is a sentence that follows "the CRL from <issuer>" and says what to do.
"""

from __future__ import annotations

import attrs
from cryptography import x509
from cryptography.x509.oid import CRLEntryExtensionOID, ExtensionOID

from ams.errors import clip, parse_failure
from ams.hazmat.certificates import basic_constraints

# the critical CRL extensions this library processes; any other critical one makes the CRL unusable
_HANDLED = frozenset(
    {
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.CRL_NUMBER,
        ExtensionOID.ISSUING_DISTRIBUTION_POINT,
        ExtensionOID.DELTA_CRL_INDICATOR,
    }
)
# the critical entry extensions it processes (certificateIssuer belongs to indirect CRLs, not read)
_HANDLED_ENTRY = frozenset({CRLEntryExtensionOID.CRL_REASON, CRLEntryExtensionOID.INVALIDITY_DATE})
_COMPLETE = "add the CA's complete CRL (one without such limits) to crl.file"


@attrs.frozen
class CrlScope:
    """What one CRL covers. ``unusable``: why no status may be read from it at all (a sentence);
    ``entries_unreadable``: an entry's extensions cannot be read, so it revokes what it lists but
    cannot say that anything else is not revoked."""

    number: int | None = None
    delta_base: int | None = None
    point: x509.IssuingDistributionPoint | None = None
    unusable: str | None = None
    entries_unreadable: bool = False

    @property
    def is_delta(self) -> bool:
        """Whether this is a delta CRL (it has a deltaCRLIndicator)."""
        return self.delta_base is not None

    def pairs_with(self, base: CrlScope) -> bool:
        """Whether this delta CRL may be used with the complete CRL ``base`` (RFC 5280 5.2.4)."""
        return (
            self.delta_base is not None
            and not base.is_delta
            and base.number is not None
            and base.number >= self.delta_base
            and base.point == self.point
        )


def _oid(oid: x509.ObjectIdentifier) -> str:
    return f"OID {clip(oid.dotted_string, 60)}"


def read_scope(crl: x509.CertificateRevocationList) -> CrlScope:
    """The scope of ``crl``: its number, delta base, issuingDistributionPoint and what makes it unusable."""
    try:
        extensions = list(crl.extensions)
    except Exception as error:  # cryptography reading a CRL file that may be hostile
        return CrlScope(unusable=f"has extensions that cannot be read ({parse_failure(error)}); replace it")
    fields: dict[str, object] = {}
    for extension in extensions:
        value = extension.value
        if extension.critical and extension.oid not in _HANDLED:
            return CrlScope(
                unusable=f"has an unknown critical extension ({_oid(extension.oid)}), so RFC 5280 forbids "
                "using it; get a CRL without it from the CA"
            )
        if isinstance(value, x509.CRLNumber):
            fields["number"] = value.crl_number
        elif isinstance(value, x509.DeltaCRLIndicator):
            fields["delta_base"] = value.crl_number
        elif isinstance(value, x509.IssuingDistributionPoint):
            fields["point"] = value
    unusable, unreadable = _entries(crl)
    return CrlScope(**fields, unusable=unusable, entries_unreadable=unreadable)  # type: ignore[arg-type]


def _entries(crl: x509.CertificateRevocationList) -> tuple[str | None, bool]:
    """Why an entry makes the CRL unusable (an unknown critical entry extension), and whether one is unreadable."""
    unreadable = False
    for revoked in crl:
        try:
            extensions = list(revoked.extensions)
        except Exception:  # a malformed extension on one entry: it still revokes what it lists
            unreadable = True
            continue
        for extension in extensions:
            if extension.critical and extension.oid not in _HANDLED_ENTRY:
                return (
                    f"has an entry with an unknown critical extension ({_oid(extension.oid)}), so RFC 5280 "
                    "forbids using it; get a CRL without it from the CA"
                ), unreadable
    return None, unreadable


def not_covering(scope: CrlScope, certificate: x509.Certificate) -> str | None:
    """Why a CRL of ``scope`` cannot answer for ``certificate``; None when it can (a delta only with its base)."""
    if scope.unusable is not None:
        return scope.unusable
    point = scope.point
    if point is None:
        return None
    if point.only_contains_attribute_certs:
        return f"covers attribute certificates only (issuingDistributionPoint onlyContainsAttributeCerts); {_COMPLETE}"
    try:
        constraints = basic_constraints(certificate)
    except Exception as error:  # the certificate validated, but be safe with what cryptography raises
        return f"cannot be matched to the certificate, whose basicConstraints cannot be read ({parse_failure(error)})"
    is_ca = constraints is not None and constraints.ca
    if point.only_contains_ca_certs and not is_ca:
        return f"covers CA certificates only (issuingDistributionPoint onlyContainsCACerts); {_COMPLETE}"
    if point.only_contains_user_certs and is_ca:
        return f"covers end-entity certificates only (issuingDistributionPoint onlyContainsUserCerts); {_COMPLETE}"
    if point.indirect_crl:
        return f"is an indirect CRL (issuingDistributionPoint indirectCRL), which is not read here; {_COMPLETE}"
    if point.only_some_reasons:
        reasons = ", ".join(sorted(reason.value for reason in point.only_some_reasons))
        return (
            f"covers only some reasons (issuingDistributionPoint onlySomeReasons: {clip(reasons, 120)}), "
            f"which this library does not combine; {_COMPLETE}"
        )
    if point.full_name is not None or point.relative_name is not None:
        return _partition_problem(point, certificate)
    return None


def _names(
    full: list[x509.GeneralName] | None, relative: x509.RelativeDistinguishedName | None, issuer: x509.Name
) -> list[x509.GeneralName]:
    """A distribution point's names; a name relative to the issuer made full (RFC 5280 5.2.5)."""
    if full is not None:
        return list(full)
    if relative is not None:
        return [x509.DirectoryName(x509.Name([*issuer.rdns, relative]))]
    return []


def _partition_problem(point: x509.IssuingDistributionPoint, certificate: x509.Certificate) -> str | None:
    """None when the certificate's cRLDistributionPoints names the partition this CRL is for."""
    ours = _names(point.full_name, point.relative_name, certificate.issuer)
    try:
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        points = x509.CRLDistributionPoints([])
    except Exception as error:
        return f"is a partition, and the certificate's cRLDistributionPoints cannot be read ({parse_failure(error)})"
    for distribution in points:
        if distribution.crl_issuer is not None:
            continue  # a CRL issued by someone else: an indirect CRL, not this one
        theirs = _names(distribution.full_name, distribution.relative_name, certificate.issuer)
        if any(name == other for name in ours for other in theirs):
            return None
    shown = clip(", ".join(str(getattr(name, "value", name)) for name in ours[:2]), 120)
    return (
        f"is the partition for distribution point {shown}, which the certificate's cRLDistributionPoints "
        f"does not name; add the CRL of the certificate's own distribution point, or a complete CRL, to crl.file"
    )


def delta_problem(scope: CrlScope, number: int | None) -> str:
    """Why the delta CRL of ``scope`` cannot be used: no complete CRL for it (``number``: the best one's)."""
    have = "no current complete CRL of the same scope" if number is None else f"only complete CRL number {number}"
    return (
        f"is a delta CRL (deltaCRLIndicator, base CRL number {scope.delta_base}) and there is {have}; a delta "
        f"is used only with its base: add the complete CRL numbered {scope.delta_base} or later to crl.file"
    )
