"""The verifier: who a message's signer is, whether to trust them, and whom to encrypt for.

A :class:`Verifier` owns everything about certificates that a Protector needs: loading the
certificate a message carries, its chain to the receiver's trust anchors, dates and key usage,
the SignedData signature, the policy's authorised signers, revocation (through an injected
fetch), and recipients' certificates for the sender (exactly the policy's DN, revocation
checked). It keeps the long-lived caches (parsed certificates, chains, recipients per policy),
so there is one per queue manager connection
(``ProtectedQueueManager`` shares one among its handles), or one per Protector by default.

It does no I/O itself: :meth:`Verifier.from_keystore` is where CRL files are read and the OCSP
fetch is chosen (the HTTP client by default), both at the edge, in ``ams.keys``.

The caches are keyed by exact bytes (a carried certificate's DER) or by the certificate itself,
hold only what follows from those bytes and the keystore (the parsed certificate, its chain,
its usage as a signer, a DN match), and are bounded; a signer's dates and revocation are checked
on every use. The recipients chosen for a policy are the exception: their lookup, dates and
revocation included, is cached until the first certificate in their chains expires or the first
revocation answer does (a status that is unknown under soft fail is asked again each time).
"""

from __future__ import annotations

import datetime
import itertools
import warnings
from collections.abc import Sequence

import attrs
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ams._signature import CarriedCertificate, carried_certificate, signer_certificate, verify_signed_data
from ams._trust import build_chain, check_usage, check_validity
from ams.algorithms import QoP
from ams.dn import DistinguishedName, by_closeness
from ams.errors import (
    AmsSecurityWarning,
    RecipientCertificateError,
    RecipientNotFoundError,
    SecurityError,
    UnauthorisedSignerError,
    summarise,
)
from ams.hazmat.certificates import key_usage, subject_dn
from ams.hazmat.signed import SignedContent
from ams.keys.keystore import Keystore
from ams.keys.revocation import Fetch, RevocationChecker
from ams.policy.model import Policy

_CACHE_SIZE = 1024
_AUTHORISED_SIZE = 16
_Link = tuple[x509.Certificate, datetime.datetime, datetime.datetime]


class _Known:
    """What this verifier learned from one carried certificate's exact bytes: the parsed
    certificate; once built, its chain (each link's dates are checked on every use); whether its
    usage suits a signer; and the authorised-signer lists its subject matched."""

    __slots__ = ("authorised", "carried", "chain", "signer_usage")

    def __init__(self, carried: CarriedCertificate) -> None:
        self.carried = carried
        self.chain: tuple[_Link, ...] | None = None
        self.signer_usage = False
        self.authorised: dict[int, tuple[tuple[DistinguishedName, ...], bool]] = {}  # by id: (signers, strict_dn)


@attrs.frozen
class RecipientCertificate:
    """The certificate chosen for a recipient's DN, and until when its chain is valid."""

    certificate: x509.Certificate
    valid_until: datetime.datetime


class Verifier:
    """Validates signers' and recipients' certificates against one keystore's trust anchors.

    ``clock_skew`` widens every certificate's validity on both sides; ``strict_dn`` compares
    authorised signers' DNs exactly instead of the way IBM's Java client does (recipients' DNs
    always compare exactly); ``revocation`` checks each signer's and recipient's chain (none by
    default: see :meth:`from_keystore`).
    """

    def __init__(
        self,
        keystore: Keystore,
        *,
        clock_skew: datetime.timedelta = datetime.timedelta(minutes=5),
        strict_dn: bool = False,
        revocation: RevocationChecker | None = None,
    ) -> None:
        self.keystore = keystore
        self.skew = clock_skew
        self.strict_dn = strict_dn
        self.revocation = revocation
        self._known: dict[bytes, _Known] = {}
        self._chains: dict[x509.Certificate, tuple[_Link, ...]] = {}
        self._usable: set[tuple[x509.Certificate, str]] = set()
        self._recipients: dict[Policy, tuple[tuple[x509.Certificate, ...], datetime.datetime]] = {}
        self._recipients_of: dict[int, tuple[Policy, tuple[x509.Certificate, ...], datetime.datetime]] = {}

    @classmethod
    def from_keystore(
        cls,
        keystore: Keystore,
        *,
        clock_skew: datetime.timedelta = datetime.timedelta(minutes=5),
        strict_dn: bool = False,
        fetch: Fetch | None = None,
    ) -> Verifier:
        """A verifier with the revocation checks the keystore.conf configures (none when it configures
        none): its CRL files are read now, and OCSP requests go through ``fetch`` (HTTP by default)."""
        settings = keystore.revocation
        checker = RevocationChecker.online(settings, fetch=fetch) if settings is not None and settings.enabled else None
        return cls(keystore, clock_skew=clock_skew, strict_dn=strict_dn, revocation=checker)

    def __repr__(self) -> str:
        return f"Verifier({self.keystore!r}, revocation {'on' if self.revocation else 'off'})"

    # -- signers ------------------------------------------------------------------------------

    def certificate(self, encoded: bytes) -> x509.Certificate:
        """A certificate a message carries, parsed in full (cached by its bytes); MalformedMessageError if not."""
        return self.carried(encoded).certificate

    def carried(self, encoded: bytes) -> CarriedCertificate:
        """:meth:`certificate` with the facts the signature checks read (cached by its bytes)."""
        return self._known_bytes(encoded).carried

    def signer_certificate(self, signed: SignedContent) -> x509.Certificate:
        """The one certificate a SignedData must carry, parsed."""
        return signer_certificate(signed, self.certificate)

    def signer(self, signed: SignedContent) -> CarriedCertificate:
        """:meth:`signer_certificate` with the facts the signature checks read."""
        return signer_certificate(signed, self.carried)

    def verify_signature(self, signed: SignedContent, certificate: x509.Certificate | CarriedCertificate) -> None:
        """``certificate`` made the SignedData's one signature over its content; BadSignatureError if not."""
        verify_signed_data(signed, certificate)

    def authenticate(
        self, certificate: x509.Certificate | CarriedCertificate, role: str = "signer"
    ) -> Sequence[x509.Certificate]:
        """The chain from ``certificate`` to an anchor, every issuer's signature verified.

        Only this makes a certificate's bytes trustworthy: a privacy receiver calls it before it
        says anything about a signer's certificate, because the inner signature does not cover
        the certificate (a changed ciphertext can alter it and leave that signature valid).
        """
        return [link for link, _, _ in self._chain_of(certificate, role)]

    def validate_signer(
        self, certificate: x509.Certificate | CarriedCertificate, at: datetime.datetime | None = None
    ) -> Sequence[x509.Certificate]:
        """The signer's chain, authenticated, then key usage, dates and revocation checked."""
        when = at or datetime.datetime.now(datetime.UTC)
        if isinstance(certificate, CarriedCertificate):
            # _chain_of's steps, with the one cache entry looked up once for the chain and the usage
            known = self._known_carried(certificate)
            chain = known.chain
            if chain is None:
                chain = known.chain = self._chain(certificate.certificate, "signer")
            if not known.signer_usage:
                check_usage(certificate.certificate, "signer")
                known.signer_usage = True
        else:
            chain = self._chain(certificate, "signer")
            self._check_usage(certificate, "signer")
        self._check_dates(chain, when, "signer")
        links = [link for link, _, _ in chain]
        if self.revocation is not None:
            for child, issuer in itertools.pairwise(links):
                self.revocation.check(child, issuer, when)
        return links

    def check_authorised(self, policy: Policy, certificate: x509.Certificate | CarriedCertificate) -> None:
        """The policy's authorised signers (``-a``) include the signer; any signer when it lists none."""
        if not policy.signers:
            return
        signers = policy.signers
        # remembered only for a tuple (a list could change under the memo), and with the DN rule used
        known = (
            self._known_carried(certificate)
            if isinstance(certificate, CarriedCertificate) and type(signers) is tuple
            else None
        )
        entry = known.authorised.get(id(signers)) if known is not None else None
        if entry is not None and entry[0] is signers and entry[1] == bool(self.strict_dn):
            return  # this exact certificate matched this very list, under the same rule, before
        x509_certificate = certificate.certificate if isinstance(certificate, CarriedCertificate) else certificate
        subject = subject_dn(x509_certificate)
        if any(subject.matches(allowed, strict=self.strict_dn) for allowed in signers):
            if known is not None:
                if len(known.authorised) >= _AUTHORISED_SIZE:
                    known.authorised.clear()
                known.authorised[id(signers)] = (signers, bool(self.strict_dn))  # held, so the id stays this list's
            return
        # ranked among the first 100 only: a sender may make every message fail here, so the work stays bounded
        closest = by_closeness(subject, policy.signers[:100])[:5]
        near = [f"{allowed} ({'; '.join(subject.differences(allowed))})" for allowed in closest]
        allowed = summarise(near, total=len(policy.signers))
        raise UnauthorisedSignerError(
            f"the message is signed by {subject} (issuer {DistinguishedName.from_x509(x509_certificate.issuer)}), "
            f"who is not an authorised signer (-a) for queue {policy.name}; "
            f"the policy allows (closest first): {allowed}. "
            "Add the signer's DN with -a if it should be accepted",
            signer=str(subject),
        )

    # -- recipients ---------------------------------------------------------------------------

    def recipient(self, dn: DistinguishedName, at: datetime.datetime | None = None) -> RecipientCertificate:
        """The certificate to encrypt for ``dn``: of those whose subject is exactly ``dn``, the newest valid one.

        Exactly, as IBM's documentation says recipient DNs match (whatever ``strict_dn`` says for
        signers): a certificate that matches only in case or spacing, perhaps another person's
        look-alike, is never used, and is named in the error when nothing else matches. Valid
        means as a signer's is valid: dates, a chain to an anchor, keyEncipherment, and
        revocation when it is checked. Valid certificates from different issuing CAs make the DN
        ambiguous: an error. When none is valid, the error names the DN and why each was refused.
        """
        when = at or datetime.datetime.now(datetime.UTC)
        candidates = self.keystore.find(dn, strict=True)
        if not candidates:
            raise self._not_found(dn)
        usable: list[tuple[x509.Certificate, tuple[_Link, ...]]] = []
        problems: list[str] = []
        for certificate in candidates:
            try:
                chain = self._chain(certificate, "recipient")
                self._check_usage(certificate, "recipient")
                self._check_dates(chain, when, "recipient")
            except SecurityError as error:
                problems.append(f"serial {certificate.serial_number:#x}: {error.message}")
                continue
            usable.append((certificate, chain))
        if usable:
            self._one_issuer(dn, usable)
        for certificate, chain in sorted(usable, key=lambda found: found[0].not_valid_before_utc, reverse=True):
            try:
                checked_until = self._recipient_revocation(chain, when)
            except SecurityError as error:
                problems.append(f"serial {certificate.serial_number:#x}: {error.message}")
                continue
            return RecipientCertificate(certificate, min(min(end for _, _, end in chain) + self.skew, checked_until))
        raise RecipientCertificateError(
            f"no usable certificate for recipient {dn} in {self.keystore.source}: {summarise(problems, 3)}. "
            "Nothing was encrypted for it: import a valid certificate of the recipient, issued by a CA "
            "in this keystore"
        )

    def look_alikes(self, dn: DistinguishedName) -> list[x509.Certificate]:
        """The certificates whose subject matches ``dn`` only in case or spacing: never used for it."""
        return [c for c in self.keystore.find(dn) if not subject_dn(c).matches(dn, strict=True)]

    def _not_found(self, dn: DistinguishedName) -> RecipientNotFoundError:
        """The error for a recipient DN that no certificate has exactly, naming the look-alikes."""
        similar = self.look_alikes(dn)
        if not similar:
            try:
                self.keystore.recipient(dn, strict=True)
            except RecipientNotFoundError as error:  # with the near misses
                return error
        names = [str(subject_dn(c)) for c in similar[:3]]
        return RecipientNotFoundError(
            f"no certificate in {self.keystore.source} has exactly the recipient DN {dn}; "
            f"{summarise(names, 3, total=len(similar))} differ{'s' if len(similar) == 1 else ''} from it only in "
            "case or spacing. Recipient DNs must match a certificate's subject exactly (IBM's documented rule), "
            "so a look-alike, perhaps another person's, never receives: if it is the recipient's certificate, "
            "write its DN exactly in the policy (-r)"
        )

    def _one_issuer(self, dn: DistinguishedName, usable: list[tuple[x509.Certificate, tuple[_Link, ...]]]) -> None:
        """Valid certificates for one DN come from one issuing CA (a renewal); else the DN is ambiguous."""
        if len(usable) < 2:
            return
        # an issuer is its name and key: a CA certificate re-issued with the same key is the same CA
        spki = Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        issuers = {
            (link.subject.public_bytes(), link.public_key().public_bytes(*spki))
            for link in (chain[min(1, len(chain) - 1)][0] for _, chain in usable)
        }
        if len(issuers) < 2:
            return
        found = [
            f"serial {c.serial_number:#x} issued by {DistinguishedName.from_x509(c.issuer)}" for c, _ in usable[:4]
        ]
        raise RecipientCertificateError(
            f"recipient {dn} is ambiguous: {len(usable)} valid certificates from {len(issuers)} different CAs "
            f"have exactly this DN ({summarise(found, 4, total=len(usable))}). Nothing was encrypted for it: keep "
            f"only the recipient's own certificate in {self.keystore.source} (IBM leaves the choice undefined)"
        )

    def _recipient_revocation(self, chain: Sequence[_Link], when: datetime.datetime) -> datetime.datetime:
        """Check the chain's revocation as a signer's is checked; until when the answers hold.

        An answer that is not cached (unknown under soft fail) holds only for ``when``, so the
        next message asks again, as it would for a signer.
        """
        until = datetime.datetime.max.replace(tzinfo=datetime.UTC)
        if self.revocation is None:
            return until
        for (child, _, _), (issuer, _, _) in itertools.pairwise(chain):
            self.revocation.check(child, issuer, when)
            until = min(until, self.revocation.good_until(child, when) or when)
        return until

    def recipients(self, policy: Policy, at: datetime.datetime | None = None) -> tuple[x509.Certificate, ...]:
        """Each of the policy's recipients' certificates, validated; cached until one expires."""
        now = at or datetime.datetime.now(datetime.UTC)
        seen = self._recipients_of.get(id(policy))  # this very policy object: no hashing of its DNs
        if seen is not None and seen[0] is policy and now <= seen[2]:
            return seen[1]
        cached = self._recipients.get(policy)
        if cached is not None and now <= cached[1]:
            self._remember_recipients(policy, cached)
            return cached[0]
        chosen = [self.recipient(dn, now) for dn in policy.recipients]
        for dn, found in zip(policy.recipients, chosen, strict=True):
            usage = key_usage(found.certificate)
            if policy.qop is QoP.CONFIDENTIALITY and usage is not None and not usage.data_encipherment:
                warnings.warn(
                    f"confidentiality recipient {dn} has keyUsage without dataEncipherment, which IBM's "
                    "documentation names for confidentiality: issue its certificates with it",
                    AmsSecurityWarning,
                    stacklevel=4,
                )
        certificates = tuple(found.certificate for found in chosen)
        if len(self._recipients) >= _CACHE_SIZE:
            self._recipients.clear()
        self._recipients[policy] = (certificates, min(found.valid_until for found in chosen))
        self._remember_recipients(policy, self._recipients[policy])
        return certificates

    def _remember_recipients(
        self, policy: Policy, found: tuple[tuple[x509.Certificate, ...], datetime.datetime]
    ) -> None:
        if len(self._recipients_of) >= _CACHE_SIZE:
            self._recipients_of.clear()
        self._recipients_of[id(policy)] = (policy, *found)  # holds the policy, so its id stays its own

    # -- caches -------------------------------------------------------------------------------

    def _known_bytes(self, encoded: bytes) -> _Known:
        known = self._known.get(encoded)
        if known is None:
            known = _Known(carried_certificate(encoded))
            if len(self._known) >= _CACHE_SIZE:
                self._known.clear()
            self._known[encoded] = known
        return known

    def _known_carried(self, carried: CarriedCertificate) -> _Known:
        known = self._known.get(carried.encoded)
        if known is None or known.carried is not carried:
            known = _Known(carried)  # made elsewhere, or evicted: learn it again
            if len(self._known) >= _CACHE_SIZE:
                self._known.clear()
            self._known[carried.encoded] = known
        return known

    def _chain_of(self, certificate: x509.Certificate | CarriedCertificate, role: str) -> tuple[_Link, ...]:
        if not isinstance(certificate, CarriedCertificate):
            return self._chain(certificate, role)
        known = self._known_carried(certificate)
        if known.chain is None:
            known.chain = self._chain(certificate.certificate, role)
        return known.chain

    def _chain(self, certificate: x509.Certificate, role: str) -> tuple[_Link, ...]:
        chain = self._chains.get(certificate)
        if chain is None:
            built = build_chain(self.keystore, certificate, role)
            chain = tuple((c, c.not_valid_before_utc, c.not_valid_after_utc) for c in built)
            if len(self._chains) >= _CACHE_SIZE:
                self._chains.clear()
            self._chains[certificate] = chain
        return chain

    def _check_usage(self, certificate: x509.Certificate, role: str) -> None:
        if (certificate, role) in self._usable:
            return
        check_usage(certificate, role)
        if len(self._usable) >= _CACHE_SIZE:
            self._usable.clear()
        self._usable.add((certificate, role))

    def _check_dates(self, chain: Sequence[_Link], when: datetime.datetime, role: str) -> None:
        for index, (link, not_before, not_after) in enumerate(chain):
            if not not_before - self.skew <= when <= not_after + self.skew:
                check_validity(link, when, self.skew, role if index == 0 else "issuing CA")
