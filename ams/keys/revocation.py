"""Revocation: CRLs from files and OCSP, with hard-fail and soft-fail modes.

Configured through keystore.conf (``ocsp.enable``, ``ocsp.url``, ``ocsp.nonce``, ``ocsp.timeout``,
``ocsp.max_response_size``, ``ocsp.max_age``, ``crl.file``, ``revocation.fail``) or the API. CRLs and
OCSP responses are verified (signature by the issuing CA or, for OCSP, by a responder it delegated
with id-kp-OCSPSigning; the nonce echoed; the answer about this very certificate) and used only within
their validity; an OCSP answer without nextUpdate only for ``ocsp.max_age``. A CRL is used only for
the certificates in its scope, a delta CRL only with its base (``ams.keys.crl_scope``). Good answers are
cached by certificate fingerprint until they expire.

Responses and CRL files are attacker-controlled bytes: whatever they hold, a check ends in "good",
"unknown" (a warning in soft-fail mode, :class:`RevocationUnknownError` in hard-fail mode),
:class:`CertificateRevokedError` or, for an unusable CRL file, :class:`KeystoreError`. Error texts never
echo response bytes and stay short. The network I/O lives in :mod:`ams.keys.ocsp_http`.
"""

from __future__ import annotations

import datetime
import os
import warnings
from collections.abc import Callable, Sequence
from typing import TypeVar

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, SignatureAlgorithmOID

from ams.dn import DistinguishedName
from ams.errors import (
    AmsError,
    AmsSecurityWarning,
    CertificateRevokedError,
    RevocationUnknownError,
    clip,
    parse_failure,
)
from ams.keys.crl_scope import CrlScope, delta_problem, not_covering, read_scope
from ams.keys.ocsp_http import OcspHttpError, url_problem
from ams.keys.revocation_settings import RevocationSettings

Fetch = Callable[[str, bytes, float], bytes]
"""``fetch(url, der_request, timeout_seconds) -> der_response``: how an OCSP request reaches its responder."""

_T = TypeVar("_T")

SKEW = datetime.timedelta(minutes=5)  # clock difference tolerated around an OCSP answer's dates
_CACHE_SIZE = 4096
_MESSAGE_DETAILS = 600  # characters of problems in one error message, which stays under ~1,000

# the only signatures verified: RSA PKCS#1 v1.5 (AMS keys are RSA), never MD5
_RSA_PKCS1: dict[x509.ObjectIdentifier, hashes.HashAlgorithm] = {
    SignatureAlgorithmOID.RSA_WITH_SHA1: hashes.SHA1(),
    SignatureAlgorithmOID.RSA_WITH_SHA224: hashes.SHA224(),
    SignatureAlgorithmOID.RSA_WITH_SHA256: hashes.SHA256(),
    SignatureAlgorithmOID.RSA_WITH_SHA384: hashes.SHA384(),
    SignatureAlgorithmOID.RSA_WITH_SHA512: hashes.SHA512(),
    SignatureAlgorithmOID.RSA_WITH_SHA3_224: hashes.SHA3_224(),
    SignatureAlgorithmOID.RSA_WITH_SHA3_256: hashes.SHA3_256(),
    SignatureAlgorithmOID.RSA_WITH_SHA3_384: hashes.SHA3_384(),
    SignatureAlgorithmOID.RSA_WITH_SHA3_512: hashes.SHA3_512(),
}
_EXPECTED_SIGNATURE = "expected RSA PKCS#1 v1.5 with SHA-1, SHA-2 or SHA-3"


class _Unusable(Exception):
    """An answer that cannot be used; the message is the bounded problem to report."""


def _optional(read: Callable[[], _T]) -> _T | None:
    """A field that only decorates an answer already established (a revocation's date or reason)."""
    try:
        return read()
    except Exception:  # a malformed decoration must not turn "revoked" into "unknown"
        return None


def _verify_signed_by(
    signer: x509.Certificate, signature: bytes, data: bytes, algorithm_oid: x509.ObjectIdentifier
) -> bool:
    key = signer.public_key()
    algorithm = _RSA_PKCS1.get(algorithm_oid)
    if not isinstance(key, rsa.RSAPublicKey) or algorithm is None:
        return False
    try:
        key.verify(signature, data, padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        return False
    return True


def _name(name: x509.Name) -> str:
    return clip(str(DistinguishedName.from_x509(name)))


def _url(url: str) -> str:
    return clip(url, 120)  # short enough to leave room for the advice that follows it


def _algorithm(oid: x509.ObjectIdentifier) -> str:
    return f"OID {clip(oid.dotted_string, 60)}"


@attrs.frozen
class _Verdict:
    """What a verified CRL or OCSP answer says about one certificate."""

    revoked: bool
    unknown: bool = False
    valid_from: datetime.datetime | None = None
    valid_until: datetime.datetime | None = None
    revoked_at: datetime.datetime | None = None
    reason: str = ""


_Complete = tuple[CrlScope, _Verdict]  # a complete CRL in scope, and what it says
_Delta = tuple[x509.CertificateRevocationList, CrlScope, _Verdict]


class RevocationChecker:
    """Checks one certificate against its issuer at a time; caches good answers until they expire.

    ``fetch`` (default: HTTP POST with the settings' size cap) is how OCSP requests are sent.
    """

    def __init__(
        self,
        settings: RevocationSettings,
        *,
        fetch: Fetch,
        crls: Sequence[x509.CertificateRevocationList] = (),
    ) -> None:
        self.settings = settings
        self.fetch = fetch
        self.crls = list(crls)
        # keyed by the certificate's SHA-256 fingerprint: issuer DN and serial do not identify a certificate
        # once a CA is re-keyed under the same name
        self._cache: dict[bytes, tuple[datetime.datetime, datetime.datetime]] = {}
        self._scopes: dict[int, tuple[x509.CertificateRevocationList, CrlScope]] = {}  # by index in crls: read once

    @classmethod
    def online(cls, settings: RevocationSettings, *, fetch: Fetch | None = None) -> RevocationChecker:
        """A checker that reads the settings' CRL files now and sends OCSP requests with ``fetch``
        (default: HTTP POST with the settings' size cap). The I/O edges are ``ams.keys.crl_files``
        and ``ams.keys.ocsp_http``."""
        from ams.keys.crl_files import load_crls
        from ams.keys.ocsp_http import http_post

        def http(url: str, body: bytes, timeout: float) -> bytes:
            return http_post(url, body, timeout, max_size=settings.max_response_size)

        return cls(settings, fetch=fetch or http, crls=load_crls(settings.crl_files))

    def check(self, certificate: x509.Certificate, issuer: x509.Certificate, at: datetime.datetime) -> str:
        """'good' or a raised error; with soft-fail an unknown status warns and returns 'unknown'."""
        fingerprint = certificate.fingerprint(hashes.SHA256())
        cached = self._cache.get(fingerprint)
        if cached is not None and cached[0] <= at <= cached[1]:
            return "good"
        problems: list[str] = []
        if self.crls:
            status = self._from_crls(certificate, issuer, at, problems)
            if status is not None:
                return status
        if self.settings.ocsp:
            status = self._from_ocsp(certificate, issuer, at, problems)
            if status is not None:
                return status
        details = "; ".join(clip(p, 400) for p in problems) or "no CRL or OCSP source is configured for it"
        message = (
            f"revocation status of {_name(certificate.subject)} (serial {clip(f'{certificate.serial_number:#x}', 60)}) "
            f"is unknown: {clip(details, _MESSAGE_DETAILS)}"
        )
        if self.settings.hard_fail:
            raise RevocationUnknownError(message + ". Fix the CRL/OCSP source, or set revocation.fail = soft")
        warnings.warn(message + " (soft-fail: accepted)", AmsSecurityWarning, stacklevel=3)
        return "unknown"

    def good_until(self, certificate: x509.Certificate, at: datetime.datetime) -> datetime.datetime | None:
        """Until when the cached good answer about ``certificate`` holds at ``at``; None when none does."""
        cached = self._cache.get(certificate.fingerprint(hashes.SHA256()))
        return cached[1] if cached is not None and cached[0] <= at <= cached[1] else None

    def _remember(self, certificate: x509.Certificate, verdict: _Verdict) -> str:
        if verdict.valid_from is not None and verdict.valid_until is not None:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[certificate.fingerprint(hashes.SHA256())] = (verdict.valid_from, verdict.valid_until)
        return "good"

    @staticmethod
    def _revoked(certificate: x509.Certificate, verdict: _Verdict, source: str) -> CertificateRevokedError:
        when = f" on {verdict.revoked_at:%Y-%m-%d %H:%M} UTC" if verdict.revoked_at is not None else ""
        return CertificateRevokedError(
            f"{_name(certificate.subject)} (serial {clip(f'{certificate.serial_number:#x}', 60)}) was revoked"
            f"{when}{verdict.reason} according to {source}"
        )

    # -- CRLs -----------------------------------------------------------------------------------

    def _from_crls(
        self, certificate: x509.Certificate, issuer: x509.Certificate, at: datetime.datetime, problems: list[str]
    ) -> str | None:
        complete: list[_Complete] = []
        deltas: list[_Delta] = []
        # every current CRL of the issuer in scope: an older one may not list a newer revocation
        for index, crl in enumerate(self.crls):
            try:
                if crl.issuer != certificate.issuer:
                    continue
                scope = self._scope(index, crl)
                verdict = self._read_crl(crl, certificate, issuer, at)
            except _Unusable as unusable:
                problems.append(str(unusable))
                continue
            except Exception as error:  # cryptography reading a CRL file that may be hostile
                problems.append(f"a CRL from {_name(certificate.issuer)} cannot be used: {parse_failure(error)}")
                continue
            why = not_covering(scope, certificate)
            if why is not None:
                problems.append(f"the CRL from {_name(crl.issuer)} {why}")
            elif scope.is_delta:
                deltas.append((crl, scope, verdict))
            elif verdict.revoked:
                raise self._revoked(certificate, verdict, f"the CRL of {_name(crl.issuer)}")
            elif scope.entries_unreadable:
                problems.append(f"the CRL from {_name(crl.issuer)} has unreadable entries: it vouches for none")
            else:
                complete.append((scope, verdict))
        good = self._with_deltas(certificate, complete, deltas, problems)
        return None if good is None else self._remember(certificate, good)

    def _with_deltas(
        self, certificate: x509.Certificate, complete: list[_Complete], deltas: list[_Delta], problems: list[str]
    ) -> _Verdict | None:
        """The complete CRLs' good answer, as the delta CRLs used with them leave it (RFC 5280 5.2.4).

        A delta without its base is not used; if it lists the certificate, nothing is good.
        """
        good = complete[0][1] if complete else None
        for crl, scope, verdict in deltas:
            if any(scope.pairs_with(base) for base, _ in complete):
                if verdict.revoked:
                    number = f" (CRL number {scope.number})" if scope.number is not None else ""
                    raise self._revoked(certificate, verdict, f"the delta CRL of {_name(crl.issuer)}{number}")
                if good is not None and scope.entries_unreadable:
                    problems.append(f"the delta CRL from {_name(crl.issuer)} has entries that cannot be read")
                    good = None
                elif good is not None and good.valid_until is not None:  # good until the first of them ends
                    until = verdict.valid_until and min(good.valid_until, verdict.valid_until)
                    good = attrs.evolve(good, valid_until=until)
                continue
            numbers = [base.number for base, _ in complete if base.point == scope.point and base.number is not None]
            if verdict.revoked or good is None:
                problems.append(f"the CRL from {_name(crl.issuer)} {delta_problem(scope, max(numbers, default=None))}")
            if verdict.revoked:
                good = None  # what it lists can be neither used nor ignored: undetermined
        return good

    def _scope(self, index: int, crl: x509.CertificateRevocationList) -> CrlScope:
        known = self._scopes.get(index)
        if known is None or known[0] is not crl:  # read again if the list was changed
            known = self._scopes[index] = (crl, read_scope(crl))
        return known[1]

    @staticmethod
    def _read_crl(
        crl: x509.CertificateRevocationList,
        certificate: x509.Certificate,
        issuer: x509.Certificate,
        at: datetime.datetime,
    ) -> _Verdict:
        name = _name(crl.issuer)
        algorithm = crl.signature_algorithm_oid
        if algorithm not in _RSA_PKCS1:
            raise _Unusable(f"the CRL from {name} is signed with {_algorithm(algorithm)}; {_EXPECTED_SIGNATURE}")
        if not _verify_signed_by(issuer, crl.signature, crl.tbs_certlist_bytes, algorithm):
            raise _Unusable(f"the CRL from {name} has a bad signature: the issuing CA's key did not sign it")
        last_update, next_update = crl.last_update_utc, crl.next_update_utc
        if last_update > at or (next_update is not None and next_update < at):
            until = f"{next_update:%Y-%m-%d %H:%M} UTC" if next_update is not None else "(no nextUpdate)"
            raise _Unusable(
                f"the CRL from {name} is valid {last_update:%Y-%m-%d %H:%M} UTC to {until}, not at "
                f"{at:%Y-%m-%d %H:%M} UTC: get a fresh CRL"
            )
        entry = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
        if entry is not None:
            revoked_at = _optional(lambda: entry.revocation_date_utc)
            if revoked_at is None or revoked_at <= at:
                return _Verdict(revoked=True, revoked_at=revoked_at, reason=_reason(entry))
            return _Verdict(revoked=False)  # good at ``at`` only: not cached, as it is revoked later
        return _Verdict(revoked=False, valid_from=last_update, valid_until=next_update or at)

    # -- OCSP -----------------------------------------------------------------------------------

    def _ocsp_url(self, certificate: x509.Certificate, problems: list[str]) -> str | None:
        if self.settings.ocsp_url:
            candidates, source = [self.settings.ocsp_url], "ocsp.url"
        else:
            source = "the certificate's authorityInfoAccess"
            try:
                access = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
                candidates = [
                    description.access_location.value
                    for description in access
                    if description.access_method == AuthorityInformationAccessOID.OCSP
                    and isinstance(description.access_location, x509.UniformResourceIdentifier)
                ]
            except x509.ExtensionNotFound:
                candidates = []
            except Exception as error:  # a malformed extension in a CA-issued certificate
                problems.append(f"the certificate's authorityInfoAccess cannot be read: {parse_failure(error)}")
                return None
        if not candidates:
            problems.append("OCSP is enabled but neither ocsp.url nor the certificate's AIA names a responder")
            return None
        for url in candidates:
            if url_problem(url) is None:
                return url
        problems.append(
            f"the OCSP responder {_url(candidates[0])} from {source} cannot be used: {url_problem(candidates[0])}; "
            "set ocsp.url to an http:// responder"
        )
        return None

    def _from_ocsp(
        self, certificate: x509.Certificate, issuer: x509.Certificate, at: datetime.datetime, problems: list[str]
    ) -> str | None:
        url = self._ocsp_url(certificate, problems)
        if url is None:
            return None
        shown = _url(url)
        nonce = os.urandom(16) if self.settings.ocsp_nonce else None
        try:
            builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1())
            if nonce is not None:
                builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
            request = builder.build().public_bytes(serialization.Encoding.DER)
            data = self.fetch(url, request, self.settings.timeout)
        except AmsError:
            raise
        except OcspHttpError as error:  # its message is built to be bounded and safe to show
            problems.append(f"the OCSP responder {shown} did not answer usefully ({clip(str(error))})")
            return None
        except OSError as error:
            problems.append(f"the OCSP responder {shown} did not answer usefully ({error.strerror or 'network error'})")
            return None
        except Exception as error:  # an injected fetch may fail in any way; never a traceback
            problems.append(f"the OCSP responder {shown} did not answer usefully ({type(error).__name__})")
            return None
        try:
            verdict = self._read_ocsp(data, certificate, issuer, at, nonce, shown)
        except _Unusable as unusable:
            problems.append(str(unusable))
            return None
        except Exception as error:  # cryptography reading the responder's bytes
            problems.append(f"the OCSP response from {shown} cannot be used: {parse_failure(error)}")
            return None
        if verdict.revoked:
            raise self._revoked(certificate, verdict, f"the OCSP responder {shown}")
        if verdict.unknown:
            serial = clip(f"{certificate.serial_number:#x}", 60)
            problems.append(f"the OCSP responder {shown} does not know serial {serial}")
            return None
        return self._remember(certificate, verdict)

    def _read_ocsp(
        self,
        data: bytes,
        certificate: x509.Certificate,
        issuer: x509.Certificate,
        at: datetime.datetime,
        nonce: bytes | None,
        url: str,
    ) -> _Verdict:
        """The verdict of a responder's answer about ``certificate``; _Unusable when it cannot be believed."""
        answer = self._signed_answer(data, issuer, at, url)
        if nonce is not None:
            self._check_nonce(answer, nonce, url)
        single = self._single_response(answer, certificate, issuer, url)
        this_update, until = self._believed_until(single, at, url)
        status = single.certificate_status
        if status == ocsp.OCSPCertStatus.REVOKED:
            reason = _optional(lambda: single.revocation_reason)
            return _Verdict(
                revoked=True,
                revoked_at=_optional(lambda: single.revocation_time_utc),
                reason=f" ({reason.name})" if reason is not None else "",
            )
        if status != ocsp.OCSPCertStatus.GOOD:
            return _Verdict(revoked=False, unknown=True)
        return _Verdict(revoked=False, valid_from=this_update - SKEW, valid_until=until)

    def _signed_answer(
        self, data: bytes, issuer: x509.Certificate, at: datetime.datetime, url: str
    ) -> ocsp.OCSPResponse:
        """The response, once its size, status and signature (by the CA or a responder it delegated) are checked."""
        if not isinstance(data, bytes) or len(data) > self.settings.max_response_size:
            raise _Unusable(
                f"the OCSP response from {url} is not bytes of at most {self.settings.max_response_size} "
                "(ocsp.max_response_size)"
            )
        answer = ocsp.load_der_ocsp_response(data)
        if answer.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise _Unusable(f"the OCSP responder {url} answered {answer.response_status.name}")
        algorithm = answer.signature_algorithm_oid
        if algorithm not in _RSA_PKCS1:
            raise _Unusable(
                f"the OCSP response from {url} is signed with {_algorithm(algorithm)}; {_EXPECTED_SIGNATURE}"
            )
        if not self._ocsp_signature_ok(answer, issuer, algorithm, at):
            raise _Unusable(f"the OCSP response from {url} is not signed by the issuing CA or a responder it delegated")
        return answer

    @staticmethod
    def _check_nonce(answer: ocsp.OCSPResponse, nonce: bytes, url: str) -> None:
        """The response echoes the request's nonce."""
        try:
            echoed: bytes | None = answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            echoed = None
        if echoed != nonce:
            found = "no nonce" if echoed is None else "another nonce"
            raise _Unusable(
                f"the OCSP response from {url} has {found} where the request's was expected (a replayed "
                "answer, or a responder without nonce support: for such a responder set ocsp.nonce = false)"
            )

    def _believed_until(
        self, single: ocsp.OCSPSingleResponse, at: datetime.datetime, url: str
    ) -> tuple[datetime.datetime, datetime.datetime]:
        """thisUpdate, and until when the answer holds: nextUpdate, or thisUpdate plus ``ocsp.max_age``."""
        this_update, next_update = single.this_update_utc, single.next_update_utc
        if this_update > at + SKEW:
            raise _Unusable(
                f"the OCSP response from {url} is not current: thisUpdate {this_update:%Y-%m-%d %H:%M} UTC is after "
                f"{at:%Y-%m-%d %H:%M} UTC (check the clocks)"
            )
        if next_update is not None:
            if next_update < this_update or next_update < at - SKEW:
                raise _Unusable(
                    f"the OCSP response from {url} is not current ({this_update:%Y-%m-%d %H:%M} to "
                    f"{next_update:%Y-%m-%d %H:%M} UTC, checked at {at:%Y-%m-%d %H:%M} UTC)"
                )
            return this_update, next_update
        max_age = self.settings.max_age
        if at - this_update > max_age:
            raise _Unusable(
                f"the OCSP response from {url} is stale: it has no nextUpdate and its thisUpdate "
                f"{this_update:%Y-%m-%d %H:%M} UTC is more than {max_age.total_seconds():.0f} s (ocsp.max_age) "
                f"before {at:%Y-%m-%d %H:%M} UTC; have the responder answer afresh or raise ocsp.max_age"
            )
        return this_update, this_update + max_age  # believed, and cached, only that long

    @staticmethod
    def _single_response(
        answer: ocsp.OCSPResponse, certificate: x509.Certificate, issuer: x509.Certificate, url: str
    ) -> ocsp.OCSPSingleResponse:
        """The one answer about this certificate: its serial and its issuer's name and key hashes."""
        found: list[ocsp.OCSPSingleResponse] = []
        for single in answer.responses:
            if single.serial_number != certificate.serial_number:
                continue
            try:
                request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, single.hash_algorithm).build()
            except (UnsupportedAlgorithm, ValueError):
                continue  # a CertID hash we cannot compute cannot name our certificate
            if (single.issuer_name_hash, single.issuer_key_hash) == (request.issuer_name_hash, request.issuer_key_hash):
                found.append(single)
        serial = clip(f"{certificate.serial_number:#x}", 60)
        if len(found) != 1:
            what = "no answer" if not found else "more than one answer"
            raise _Unusable(f"the OCSP response from {url} has {what} for serial {serial} of {_name(issuer.subject)}")
        return found[0]

    @staticmethod
    def _ocsp_signature_ok(
        answer: ocsp.OCSPResponse, issuer: x509.Certificate, algorithm: x509.ObjectIdentifier, at: datetime.datetime
    ) -> bool:
        data, signature = answer.tbs_response_bytes, answer.signature
        if _verify_signed_by(issuer, signature, data, algorithm):
            return True
        # a delegated responder: issued by the CA for OCSP signing, and within its own dates
        for responder in answer.certificates[:8]:
            try:
                responder.verify_directly_issued_by(issuer)
                eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
                current = responder.not_valid_before_utc - SKEW <= at <= responder.not_valid_after_utc + SKEW
                if (
                    current
                    and ExtendedKeyUsageOID.OCSP_SIGNING in eku
                    and _verify_signed_by(responder, signature, data, algorithm)
                ):
                    return True
            except (InvalidSignature, x509.ExtensionNotFound):
                continue
            except Exception:  # TypeError, ValueError, UnsupportedAlgorithm: a certificate that is no candidate
                continue
        return False


def _reason(revoked: x509.RevokedCertificate) -> str:
    try:
        return f" ({revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason.name})"
    except Exception:  # ExtensionNotFound, or a malformed extension: the entry still revokes
        return ""
