"""Revocation: CRLs from files and OCSP, with hard-fail and soft-fail modes.

Configured through keystore.conf (``ocsp.enable``, ``ocsp.url``, ``ocsp.nonce``, ``ocsp.timeout``,
``crl.file``, ``revocation.fail``) or the API. CRLs and OCSP responses are verified (signature by
the issuing CA or, for OCSP, by a responder it delegated with id-kp-OCSPSigning) and used only
within their validity; answers are cached until their nextUpdate.
"""

from __future__ import annotations

import datetime
import os
import socket
import urllib.parse
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from ams.dn import DistinguishedName
from ams.errors import AmsSecurityWarning, CertificateRevokedError, KeystoreError, RevocationUnknownError

Fetch = Callable[[str, bytes, float], bytes]


def _http_post(url: str, body: bytes, timeout: float) -> bytes:
    """POST an OCSP request over HTTP/1.0 (what OCSP responders, openssl's included, all speak)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"OCSP URL {url!r}: only http:// responders are supported (RFC 6960 uses plain HTTP)")
    request = (
        f"POST {parts.path or '/'} HTTP/1.0\r\nHost: {parts.netloc}\r\nContent-Type: application/ocsp-request\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("ascii") + body
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout) as connection:
        connection.sendall(request)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    head, _, payload = b"".join(chunks).partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0]
    status = status_line.split()
    if len(status) < 2 or status[1] != b"200":
        raise ValueError(f"HTTP status {status_line.decode('latin-1')!r}")
    return payload


@attrs.frozen
class RevocationSettings:
    """How to check revocation. ``hard_fail``: an unknown status refuses the message."""

    crl_files: tuple[Path, ...] = ()
    ocsp: bool = False
    ocsp_url: str | None = None
    ocsp_nonce: bool = True
    timeout: float = 5.0
    hard_fail: bool = True

    @property
    def enabled(self) -> bool:
        return bool(self.crl_files) or self.ocsp

    @classmethod
    def from_conf(cls, settings: dict[str, str], base: Path) -> RevocationSettings:
        def flag(key: str, default: bool) -> bool:
            value = settings.get(key)
            if value is None:
                return default
            if value.lower() not in ("true", "false", "yes", "no", "1", "0"):
                raise KeystoreError(f"{key} = {value!r}: expected true or false")
            return value.lower() in ("true", "yes", "1")

        mode = settings.get("revocation.fail", "hard").lower()
        if mode not in ("hard", "soft"):
            raise KeystoreError(f"revocation.fail = {mode!r}: expected hard or soft")
        files = tuple(
            (p if p.is_absolute() else base / p)
            for p in (Path(os.path.expanduser(v.strip())) for v in settings.get("crl.file", "").split(","))
            if str(p) not in ("", ".")
        )
        return cls(
            crl_files=files,
            ocsp=flag("ocsp.enable", False),
            ocsp_url=settings.get("ocsp.url") or None,
            ocsp_nonce=flag("ocsp.nonce", True),
            timeout=float(settings.get("ocsp.timeout", "5")),
            hard_fail=mode == "hard",
        )


def _verify_signed_by(
    issuer: x509.Certificate, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None
) -> bool:
    key = issuer.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or algorithm is None:
        return False
    try:
        key.verify(signature, data, padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        return False
    return True


def load_crls(paths: Sequence[Path]) -> list[x509.CertificateRevocationList]:
    crls = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise KeystoreError(f"cannot read CRL file {path} (crl.file): {error.strerror}") from None
        try:
            if b"-----BEGIN" in data:
                for block in data.split(b"-----END X509 CRL-----")[:-1]:
                    crls.append(x509.load_pem_x509_crl(block + b"-----END X509 CRL-----\n"))
            else:
                crls.append(x509.load_der_x509_crl(data))
        except ValueError as error:
            raise KeystoreError(f"{path} is not a CRL in PEM or DER: {error}") from None
    return crls


class RevocationChecker:
    """Checks one certificate against its issuer at a time; caches answers until they expire."""

    def __init__(self, settings: RevocationSettings, *, fetch: Fetch = _http_post) -> None:
        self.settings = settings
        self.fetch = fetch
        self.crls = load_crls(settings.crl_files)
        self._cache: dict[tuple[bytes, int], tuple[datetime.datetime, str]] = {}

    def check(self, certificate: x509.Certificate, issuer: x509.Certificate, at: datetime.datetime) -> str:
        """'good' or a raised error; with soft-fail an unknown status warns and returns 'unknown'."""
        key = (issuer.subject.public_bytes(), certificate.serial_number)
        cached = self._cache.get(key)
        if cached is not None and at <= cached[0]:
            return cached[1]
        problems: list[str] = []
        if self.crls:
            status = self._from_crls(certificate, issuer, at, problems)
            if status is not None:
                return status
        if self.settings.ocsp:
            status = self._from_ocsp(certificate, issuer, at, problems)
            if status is not None:
                return status
        subject = DistinguishedName.from_x509(certificate.subject)
        message = f"revocation status of {subject} (serial {certificate.serial_number:#x}) is unknown: " + "; ".join(
            problems or ["no CRL or OCSP source is configured for it"]
        )
        if self.settings.hard_fail:
            raise RevocationUnknownError(message + ". Fix the CRL/OCSP source, or set revocation.fail = soft")
        warnings.warn(message + " (soft-fail: accepted)", AmsSecurityWarning, stacklevel=3)
        return "unknown"

    def _remember(self, certificate: x509.Certificate, issuer: x509.Certificate, until: datetime.datetime) -> str:
        self._cache[(issuer.subject.public_bytes(), certificate.serial_number)] = (until, "good")
        return "good"

    def _from_crls(
        self, certificate: x509.Certificate, issuer: x509.Certificate, at: datetime.datetime, problems: list[str]
    ) -> str | None:
        for crl in self.crls:
            if crl.issuer != certificate.issuer:
                continue
            if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                problems.append(f"the CRL from {DistinguishedName.from_x509(crl.issuer)} has a bad signature")
                continue
            next_update = crl.next_update_utc
            if crl.last_update_utc > at or (next_update is not None and next_update < at):
                problems.append(
                    f"the CRL from {DistinguishedName.from_x509(crl.issuer)} is valid "
                    f"{crl.last_update_utc:%Y-%m-%d %H:%M} to {next_update:%Y-%m-%d %H:%M} UTC, not at "
                    f"{at:%Y-%m-%d %H:%M} UTC: get a fresh CRL"
                )
                continue
            revoked = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
            if revoked is not None and revoked.revocation_date_utc <= at:
                raise CertificateRevokedError(
                    f"{DistinguishedName.from_x509(certificate.subject)} (serial {certificate.serial_number:#x}) "
                    f"was revoked on {revoked.revocation_date_utc:%Y-%m-%d %H:%M} UTC{_reason(revoked)} according "
                    f"to the CRL of {DistinguishedName.from_x509(crl.issuer)}"
                )
            return self._remember(certificate, issuer, next_update or at)
        return None

    def _ocsp_url(self, certificate: x509.Certificate) -> str | None:
        if self.settings.ocsp_url:
            return self.settings.ocsp_url
        try:
            access = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        except x509.ExtensionNotFound:
            return None
        for description in access:
            if description.access_method == AuthorityInformationAccessOID.OCSP:
                return str(description.access_location.value)
        return None

    def _from_ocsp(
        self, certificate: x509.Certificate, issuer: x509.Certificate, at: datetime.datetime, problems: list[str]
    ) -> str | None:
        url = self._ocsp_url(certificate)
        if url is None:
            problems.append("OCSP is enabled but neither ocsp.url nor the certificate's AIA names a responder")
            return None
        builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1())
        nonce = os.urandom(16) if self.settings.ocsp_nonce else None
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        request = builder.build().public_bytes(serialization.Encoding.DER)
        try:
            answer = ocsp.load_der_ocsp_response(self.fetch(url, request, self.settings.timeout))
        except (OSError, ValueError) as error:
            problems.append(f"the OCSP responder {url} did not answer usefully ({error})")
            return None
        if answer.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            problems.append(f"the OCSP responder {url} answered {answer.response_status.name}")
            return None
        if not self._ocsp_signature_ok(answer, issuer):
            problems.append(f"the OCSP response from {url} is not signed by the issuing CA or a responder it delegated")
            return None
        if nonce is not None:
            try:
                echoed = answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
            except x509.ExtensionNotFound:
                echoed = None
            if echoed is not None and echoed != nonce:
                problems.append(f"the OCSP response from {url} echoes another nonce (a replay?)")
                return None
        if answer.serial_number != certificate.serial_number:
            problems.append(f"the OCSP response from {url} is about serial {answer.serial_number:#x}")
            return None
        this_update, next_update = answer.this_update_utc, answer.next_update_utc
        skew = datetime.timedelta(minutes=5)
        if this_update > at + skew or (next_update is not None and next_update < at - skew):
            problems.append(f"the OCSP response from {url} is not current ({this_update} to {next_update})")
            return None
        if answer.certificate_status == ocsp.OCSPCertStatus.REVOKED:
            revoked_at = answer.revocation_time_utc
            reason = f" ({answer.revocation_reason.name})" if answer.revocation_reason else ""
            raise CertificateRevokedError(
                f"{DistinguishedName.from_x509(certificate.subject)} (serial {certificate.serial_number:#x}) was "
                f"revoked on {revoked_at:%Y-%m-%d %H:%M} UTC{reason} according to the OCSP responder {url}"
            )
        if answer.certificate_status == ocsp.OCSPCertStatus.UNKNOWN:
            problems.append(f"the OCSP responder {url} does not know serial {certificate.serial_number:#x}")
            return None
        return self._remember(certificate, issuer, next_update or at)

    @staticmethod
    def _ocsp_signature_ok(answer: ocsp.OCSPResponse, issuer: x509.Certificate) -> bool:
        data, signature, algorithm = answer.tbs_response_bytes, answer.signature, answer.signature_hash_algorithm
        if _verify_signed_by(issuer, signature, data, algorithm):
            return True
        for responder in answer.certificates:  # a delegated responder, issued by the CA for OCSP signing
            try:
                responder.verify_directly_issued_by(issuer)
                eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
                continue
            if ExtendedKeyUsageOID.OCSP_SIGNING in eku and _verify_signed_by(responder, signature, data, algorithm):
                return True
        return False


def _reason(revoked: x509.RevokedCertificate) -> str:
    try:
        return f" ({revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason.name})"
    except x509.ExtensionNotFound:
        return ""
