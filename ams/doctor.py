"""``ams doctor``: check a keystore and its policies before anything runs, with a fix for each finding."""

from __future__ import annotations

import datetime
import warnings
from collections.abc import Mapping
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from ams import _rules
from ams._files import private_file_problems, read_bounded
from ams._trust import check_recipient_usage, check_signer_usage, is_anchor, is_ca, is_self_signed
from ams.algorithms import EncryptionAlgorithm, QoP, SignatureAlgorithm
from ams.dn import DistinguishedName
from ams.errors import AmsError, RecipientNotFoundError, SecurityError, summarise
from ams.hazmat.certificates import key_usage
from ams.keys import Keystore
from ams.keys.hygiene import PlantableTrustWarning
from ams.keys.keystore import describe
from ams.limits import DEFAULT_LIMITS
from ams.policy.model import Policy
from ams.verify import Verifier

EXPIRY_WARNING = datetime.timedelta(days=30)


@attrs.frozen
class Finding:
    """One problem ``ams doctor`` reports: how grave, what it concerns, what is wrong and how to fix it."""

    level: str  # "error" or "warning"
    subject: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.level.upper():<7} {self.subject}: {self.problem}\n        fix: {self.fix}"


def diagnose(
    conf: Path | None,
    policies: Mapping[str, Policy],
    *,
    queue: str | None = None,
    at: datetime.datetime | None = None,
    queue_manager_file: Path | None = None,
) -> list[Finding]:
    """Check the keystore ``conf`` names (None: the default one) and ``policies`` (only ``queue``'s, when given),
    and the embedded queue manager's file ``queue_manager_file`` when given (one another user
    owns or others may read is refused when opened).

    Dates are judged at ``at`` (default: now). A keystore that does not load is the one finding
    about it; nothing is raised for what the checks find.
    """
    now = at or datetime.datetime.now(datetime.UTC)
    findings = _queue_manager_file(queue_manager_file) if queue_manager_file is not None else []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            keystore = Keystore.from_conf(conf)
        except AmsError as error:
            return [*findings, Finding("error", "keystore", error.message, "correct keystore.conf as the message says")]
    for warning in caught:
        fix = "see the problem; --strict-keystore (Keystore.from_conf(strict=True)) refuses"
        if issubclass(warning.category, PlantableTrustWarning):  # trust another local user can plant
            problem, _, fix = str(warning.message).partition("; fix: ")
            findings.append(Finding("error", "trust files", problem, f"{fix}; --strict-keystore refuses it"))
            continue
        findings.append(Finding("warning", "key hygiene", str(warning.message), fix))
    if any(k for k in keystore.settings if k.startswith(("pkcs12.", "jks.", "jceks.", "pem."))) and conf is not None:
        text = read_bounded(conf, "keystore.conf", limit=DEFAULT_LIMITS.file_size).decode("utf-8", "replace")
        if any(line.split("=", 1)[0].strip().endswith(("_pass", "password")) for line in text.splitlines()):
            findings.append(
                Finding(
                    "warning",
                    str(conf),
                    "holds a plain-text password",
                    f"keep it readable by its owner only (chmod 600 {conf}) on a disk only this user can read",
                )
            )
    chosen = {n: p for n, p in policies.items() if queue is None or n == queue}
    if queue is not None and queue not in policies:
        findings.append(
            Finding(
                "warning",
                queue,
                "has no policy: messages on it are not protected",
                f"add one, e.g. ams policy set -p {queue} -s SHA256 -e AES256 -r DN",
            )
        )
    trust = Verifier(keystore)
    findings += _own_certificate(keystore, trust, chosen, now)
    findings += _recipients(trust, chosen, now)
    findings += _signers(keystore, trust, chosen, now)
    findings += _duplicates(keystore)
    return findings


def _queue_manager_file(path: Path) -> list[Finding]:
    """The embedded queue manager's file and journals: this user's, and private (as ams makes them)."""
    out = []
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            problems = private_file_problems(file)
        except OSError as error:
            problems = [(f"cannot be examined: {error.strerror or error}", "check the path and its permissions")]
        holds = "it holds every queue, the policy queue too"
        out += [Finding("error", f"queue manager file {file}", f"{problem}: {holds}", fix) for problem, fix in problems]
    return out


def _own_certificate(
    keystore: Keystore, trust: Verifier, policies: Mapping[str, Policy], now: datetime.datetime
) -> list[Finding]:
    """This user's key and certificate, against the policies that sign with it or encrypt to it."""
    identity = keystore.identity
    signs = [p for p in policies.values() if p.signature_algorithm is not SignatureAlgorithm.NONE]
    if identity is None:
        if signs or any(p.encryption_algorithm is not EncryptionAlgorithm.NONE for p in policies.values()):
            return [
                Finding(
                    "error",
                    "identity",
                    "the keystore has no private key, but policies sign or encrypt",
                    "add this user's key and certificate to the keystore",
                )
            ]
        return []
    certificate, me = identity.certificate, str(identity.dn)
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return [Finding("error", me, "the key is not RSA", "issue an RSA certificate (2048 bits or more)")]
    reads = [p for p in policies.values() if any(identity.dn.matches(r) for r in p.recipients)]
    out = _key_size(me, key, signs)
    out += _own_usage(me, certificate, signs, reads)
    out += _dates(me, certificate, now)
    try:
        trust.validate_signer(certificate, now)
    except SecurityError as error:
        out.append(
            Finding(
                "error",
                me,
                f"does not validate here: {error.message}",
                "add the issuing CA to the keystore; receivers need it too",
            )
        )
    return out


def _key_size(me: str, key: rsa.RSAPublicKey, signs: list[Policy]) -> list[Finding]:
    """An RSA key too short for a policy's digest (an error) or shorter than 2048 bits (a warning)."""
    out: list[Finding] = []
    long_digests = [p.name for p in signs if _rules.key_too_small(p.signature_algorithm, key.key_size)]
    if long_digests:
        out.append(
            Finding(
                "error",
                me,
                f"{key.key_size}-bit key, but {', '.join(long_digests)} sign with SHA384/SHA512",
                f"use a key longer than {_rules.LONG_DIGEST_KEY_BITS} bits (2048 or more) or SHA256",
            )
        )
    if key.key_size < 2048:
        out.append(Finding("warning", me, f"{key.key_size}-bit RSA key", "issue a 2048-bit or longer key"))
    return out


def _own_usage(me: str, certificate: x509.Certificate, signs: list[Policy], reads: list[Policy]) -> list[Finding]:
    """A keyUsage that does not allow signing for ``signs`` or receiving ``reads``."""
    out: list[Finding] = []
    if signs:
        try:
            check_signer_usage(certificate)
        except SecurityError as error:
            out.append(
                Finding(
                    "error",
                    me,
                    f"cannot sign for {', '.join(p.name for p in signs)}: {error.message}",
                    "issue a certificate with keyUsage digitalSignature or nonRepudiation",
                )
            )
    if reads:
        try:
            check_recipient_usage(certificate)
        except SecurityError as error:
            out.append(
                Finding(
                    "error",
                    me,
                    f"cannot receive {', '.join(p.name for p in reads)}: {error.message}",
                    "issue a certificate with keyUsage keyEncipherment",
                )
            )
    return out


def _dates(who: str, certificate: x509.Certificate, now: datetime.datetime) -> list[Finding]:
    if certificate.not_valid_after_utc < now:
        return [
            Finding("error", who, f"expired on {certificate.not_valid_after_utc:%Y-%m-%d}", "renew the certificate")
        ]
    if certificate.not_valid_before_utc > now:
        return [
            Finding(
                "error", who, f"not valid until {certificate.not_valid_before_utc:%Y-%m-%d}", "check the clock, or wait"
            )
        ]
    if certificate.not_valid_after_utc - now < EXPIRY_WARNING:
        return [
            Finding(
                "warning",
                who,
                f"expires on {certificate.not_valid_after_utc:%Y-%m-%d}, within 30 days",
                "renew it now and distribute the new certificate to senders and receivers",
            )
        ]
    return []


def _recipients(trust: Verifier, policies: Mapping[str, Policy], now: datetime.datetime) -> list[Finding]:
    out: list[Finding] = []
    for policy in policies.values():
        for dn in policy.recipients:
            who = f"{policy.name} recipient {dn}"
            try:
                certificate = trust.recipient(dn, now).certificate  # as protect chooses it: exact DN, newest valid
            except RecipientNotFoundError as error:
                out.append(
                    Finding("error", who, error.message, "import the recipient's certificate, or correct the DN")
                )
                continue
            except AmsError as error:
                out.append(
                    Finding(
                        "error",
                        who,
                        error.message,
                        "import a valid certificate of the recipient (in date, keyEncipherment, issued by a CA here)",
                    )
                )
                continue
            out += _look_alikes(trust, who, dn)
            usage = key_usage(certificate)
            if policy.qop is QoP.CONFIDENTIALITY and usage is not None and not usage.data_encipherment:
                out.append(
                    Finding(
                        "warning",
                        who,
                        "keyUsage lacks dataEncipherment, which IBM's documentation names for confidentiality",
                        "issue recipient certificates with dataEncipherment too",
                    )
                )
            out += _dates(who, certificate, now)
    return out


def _look_alikes(trust: Verifier, who: str, dn: DistinguishedName) -> list[Finding]:
    """Certificates whose subject differs from a recipient's DN only in case or spacing: never used, but suspect."""
    similar = trust.look_alikes(dn)
    if not similar:
        return []
    names = summarise([str(DistinguishedName.from_x509(c.subject)) for c in similar], 3)
    return [
        Finding(
            "warning",
            who,
            f"{names} look{'s' if len(similar) == 1 else ''} like this recipient, differing only in case or "
            "spacing; recipients match exactly, so it never receives, but it may be an impostor's look-alike",
            "remove it from the keystore unless it belongs to someone who should have it",
        )
    ]


def _signers(
    keystore: Keystore, trust: Verifier, policies: Mapping[str, Policy], now: datetime.datetime
) -> list[Finding]:
    out: list[Finding] = []
    # CAs anchor chains; a self-signed end-entity certificate can only be trusted as itself
    anchors = [c for c in keystore.certificates if is_anchor(c) or (is_self_signed(c) and not is_ca(c))]
    for policy in policies.values():
        for dn in policy.signers:
            who = f"{policy.name} authorised signer {dn}"
            if not anchors:
                out.append(
                    Finding(
                        "error",
                        who,
                        "this keystore has no trust anchor, so no signer can ever validate",
                        "add the signers' CA certificates to the keystore",
                    )
                )
                continue
            known = keystore.find(dn)
            if not known:
                names = ", ".join(str(DistinguishedName.from_x509(a.subject)) for a in anchors)
                out.append(
                    Finding(
                        "warning",
                        who,
                        f"no certificate for this signer here, so its issuer cannot be checked; anchors here: {names}",
                        "make sure the signer's CA is one of them (import the signer's certificate to check)",
                    )
                )
                continue
            try:
                trust.validate_signer(known[0], now)
            except SecurityError as error:
                out.append(
                    Finding(
                        "error",
                        who,
                        f"would never validate here: {error.message}",
                        "add the signer's issuing CA to this keystore",
                    )
                )
    return out


def _duplicates(keystore: Keystore) -> list[Finding]:
    seen: dict[tuple[object, ...], list[x509.Certificate]] = {}
    for certificate in keystore.certificates:
        seen.setdefault(DistinguishedName.from_x509(certificate.subject).match_key, []).append(certificate)
    return [
        Finding(
            "warning",
            str(DistinguishedName.from_x509(found[0].subject)),
            f"{len(found)} certificates share this DN ({'; '.join(describe(c) for c in found)}); IBM calls "
            "the choice between them undefined",
            "keep one certificate per DN in the keystore",
        )
        for found in seen.values()
        if len(found) > 1
    ]
