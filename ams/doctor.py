"""``ams doctor``: check a keystore and its policies before anything runs, with a fix for each finding."""

from __future__ import annotations

import datetime
import os
import shlex
import stat
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from ams import _rules
from ams._files import private_file_problems, queue_manager_companions, read_bounded
from ams._trust import check_recipient_usage, check_signer_usage, is_anchor, is_ca, is_self_signed
from ams.algorithms import EncryptionAlgorithm, QoP, SignatureAlgorithm
from ams.dn import DistinguishedName
from ams.errors import (
    AmsError,
    CertificatePathError,
    CertificateRevokedError,
    CertificateUsageError,
    CertificateValidityError,
    RecipientNotFoundError,
    SecurityError,
    summarise,
)
from ams.hazmat.certificates import key_usage
from ams.keys import Keystore
from ams.keys.hygiene import PlantableTrustWarning
from ams.keys.keystore import describe
from ams.keys.loading import default_conf_path
from ams.limits import DEFAULT_LIMITS
from ams.policy.model import Policy, setmqspl_words
from ams.verify import Verifier

EXPIRY_WARNING = datetime.timedelta(days=30)
ROLE_SEND, ROLE_RECEIVE, ROLE_BOTH = "send", "receive", "both"


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
    strict: bool = False,
    verifier: Callable[[Keystore], Verifier] | None = None,
    role: str = ROLE_BOTH,
    allow_deprecated: bool = False,
) -> list[Finding]:
    """Check the keystore ``conf`` names (None: the default one) and ``policies`` (only ``queue``'s, when given),
    and the embedded queue manager's file ``queue_manager_file`` when given (one another user
    owns or others may read is refused when opened).

    Dates are judged at ``at`` (default: now). ``strict`` refuses what key hygiene finds (as
    ``Keystore.from_conf(strict=True)``); ``verifier`` makes the Verifier of the checks from the keystore
    (clock skew, DN comparison, revocation; default ``Verifier(keystore)``); ``role`` says whether this
    identity sends, receives or both on the queues, so that a policy swapped for it is an error rather
    than a warning; ``allow_deprecated`` as the Protector's. A keystore that does not load is the one
    finding about it; nothing is raised for what the checks find.
    """
    now = at or datetime.datetime.now(datetime.UTC)
    findings = _queue_manager_file(queue_manager_file) if queue_manager_file is not None else []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            keystore = Keystore.from_conf(conf, strict=strict)
        except AmsError as error:
            return [*findings, Finding("error", "keystore", error.message, "correct keystore.conf as the message says")]
    hygiene: list[Warning | str] = []
    for warning in caught:
        if issubclass(warning.category, PlantableTrustWarning):  # trust another local user can plant
            problem, _, fix = str(warning.message).partition("; fix: ")
            findings.append(Finding("error", "trust files", problem, f"{fix}; --strict-keystore refuses it"))
        else:
            hygiene.append(warning.message)
    findings += _hygiene(conf if conf is not None else default_conf_path(), keystore, hygiene)
    chosen = {n: p for n, p in policies.items() if queue is None or n == queue}
    if queue is not None and queue not in policies:
        findings.append(
            Finding(
                "warning",
                queue,
                "has no policy: messages on it are sent and read in the clear (IBM AMS does the same)",
                f"add one, e.g. ams policy set -p {queue} -s SHA256 -e AES256 -r DN; or refuse such queues with "
                "--require-policy",
            )
        )
    trust = verifier(keystore) if verifier is not None else Verifier(keystore)
    findings += _own_certificate(keystore, trust, chosen, now)
    findings += swapped_for(keystore, chosen, role)
    findings += _deprecated(chosen, allow_deprecated)
    findings += _recipients(trust, chosen, now)
    findings += _signers(keystore, trust, chosen, now)
    findings += _duplicates(keystore)
    return findings


def _queue_manager_file(path: Path) -> list[Finding]:
    """The embedded queue manager's file, SQLite's journals of it, its writer lock file and its get
    journals: this user's, and private (as ams makes them)."""
    journals, writer = queue_manager_companions(path)
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm"), writer]
    out = _private_directory(journals)
    if not out and journals.is_dir():
        files += sorted(journals.iterdir())
    for file in files:
        try:
            problems = private_file_problems(file)
        except OSError as error:
            problems = [(f"cannot be examined: {error.strerror or error}", "check the path and its permissions")]
        holds = "it holds every queue, the policy queue too" if file.parent != journals else _JOURNAL_HOLDS
        out += [Finding("error", f"queue manager file {file}", f"{problem}: {holds}", fix) for problem, fix in problems]
    return out


# why a get journal matters: whoever writes one raises BackoutCounts, whoever removes one hides a crash's gets
_JOURNAL_HOLDS = "it lists the messages a connection got, which the next connection counts as backed out"


def _private_directory(directory: Path) -> list[Finding]:
    """The get journals' directory: a directory this user owns and only it may use (none: fine)."""
    try:
        found = os.lstat(directory)
    except FileNotFoundError:
        return []
    except OSError as error:
        return [_journal_finding(directory, f"cannot be examined: {error.strerror or error}", "check its permissions")]
    if not stat.S_ISDIR(found.st_mode):
        return [_journal_finding(directory, "it is not a directory", f"remove {directory}")]
    out = []
    if found.st_uid != os.geteuid():
        problem = f"it is owned by uid {found.st_uid}, not by this user (uid {os.geteuid()})"
        out.append(_journal_finding(directory, problem, f"remove {directory}, after checking who made it and why"))
    if stat.S_IMODE(found.st_mode) & 0o077:
        problem = f"group or others may use it (mode {stat.S_IMODE(found.st_mode):04o})"
        out.append(_journal_finding(directory, problem, f"chmod 700 {directory}"))
    return out


def _journal_finding(directory: Path, problem: str, fix: str) -> Finding:
    where = "the queue manager's get journals: "
    return Finding("error", f"queue manager file {directory}", f"{problem}: {where}{_JOURNAL_HOLDS}", fix)


def _hygiene(conf: Path, keystore: Keystore, warned: list[Warning | str]) -> list[Finding]:
    """Key files and keystore.conf: an error where others can read a secret, each with the command that fixes it."""
    findings: list[Finding] = []
    for message in (str(w) for w in warned):
        if "plain-text password" in message:
            continue  # the keystore.conf itself: judged below, from its mode
        problem, _, command = message.partition(": chmod 600 ")
        if command:
            # a private key others can read: the key itself, encrypted or not, is the secret
            findings.append(Finding("error", "key hygiene", problem, f"chmod 600 {command}"))
        else:
            fix = (
                "encrypt it: openssl pkcs8 -topk8 -v2 aes-256-cbc -in KEY -out KEY.enc, point pem.private at it and "
                "set pem.password (a PKCS#12: export it again with a password); --strict-keystore refuses such keys"
            )
            findings.append(Finding("warning", "key hygiene", message, fix))
    secret = any(k.endswith(("_pass", "password", "token_pin")) for k in keystore.settings) or _holds_password(conf)
    if not secret:
        return findings
    mode = _mode(conf)
    if mode is not None and mode & 0o077:
        findings.append(
            Finding(
                "error",
                str(conf),
                f"holds a plain-text password and is readable by group or others (mode {mode:04o})",
                f"chmod 600 {conf}",
            )
        )
    else:
        findings.append(
            Finding(
                "warning",
                str(conf),
                "holds a plain-text password (as IBM's keystore.conf does); its mode "
                f"({mode or 0:04o}) lets only its owner read it",
                "nothing to change in the file: keep backups of it as secret as the key, or keep the key on a "
                "PKCS#11 token (pkcs11.* in keystore.conf)",
            )
        )
    return findings


def _holds_password(conf: Path) -> bool:
    try:
        text = read_bounded(conf, "keystore.conf", limit=DEFAULT_LIMITS.file_size).decode("utf-8", "replace")
    except (OSError, AmsError):
        return False
    return any(
        line.split("=", 1)[0].strip().lower().endswith(("_pass", "password", "_pin")) for line in text.splitlines()
    )


def _mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None


def _deprecated(policies: Mapping[str, Policy], allowed: bool) -> list[Finding]:
    """Policies naming MD5, SHA1, RC2, DES or 3DES: protect refuses them without --allow-deprecated."""
    out = []
    for policy in policies.values():
        old = [str(a) for a in (policy.signature_algorithm, policy.encryption_algorithm) if a.deprecated]
        if old:
            level, what = ("warning", "writes") if allowed else ("error", "cannot be protected without")
            out.append(
                Finding(
                    level,
                    policy.name,
                    f"names deprecated {', '.join(old)}: a message on it {what} --allow-deprecated",
                    f"ams policy set -p {policy.name} with -s SHA256 (or stronger) and -e AES128/AES256",
                )
            )
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
    out += _dates(me, certificate, now, trust.skew)
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


def swapped_for(keystore: Keystore, policies: Mapping[str, Policy], role: str = ROLE_BOTH) -> list[Finding]:
    """Policies with both -a and -r that do not work for this identity in its ``role``: it sends but is
    not an authorised signer (receivers refuse what it signs), or it receives but is not a recipient.

    When it is in the other list, -r and -a look swapped and the corrected command is shown (the same
    diagnosis setmqspl lines get when one list is empty). With ``role`` both, only the sending side is
    judged, and as a warning, when a DN of -a has a certificate here (it looks like a recipient): a
    correct sender's -r always does, so the receiving side needs ``role`` receive."""
    identity = keystore.identity
    if identity is None:
        return []
    me, out = identity.dn, []
    for policy in policies.values():
        if not (policy.signers and policy.recipients):
            continue
        signer = any(me.matches(dn) for dn in policy.signers)
        recipient = any(me.matches(dn) for dn in policy.recipients)
        sends = policy.signature_algorithm is not SignatureAlgorithm.NONE and not signer
        reads = policy.encryption_algorithm is not EncryptionAlgorithm.NONE and not recipient
        if role in (ROLE_SEND, ROLE_BOTH) and sends:
            looks_recipient = [str(dn) for dn in policy.signers if keystore.find(dn) and not dn.matches(me)]
            if role == ROLE_SEND or (recipient and looks_recipient):
                what = f"{me} is not an authorised signer (-a) of {policy.name}: receivers refuse what it signs"
                if role == ROLE_BOTH:
                    what = f"if {me} sends on {policy.name}: {what.split(': ', 1)[1]}"
                out.append(_swap_finding(policy, "error" if role == ROLE_SEND else "warning", what, recipient))
        if role == ROLE_RECEIVE and reads:
            what = f"{me} is not a recipient (-r) of {policy.name}: it cannot decrypt what is sent there"
            out.append(_swap_finding(policy, "error", what, signer))
    return out


def _swap_finding(policy: Policy, level: str, what: str, in_other_list: bool) -> Finding:
    swapped = setmqspl_words(
        "QMGR", policy.name, policy.signature_algorithm, policy.encryption_algorithm, policy.recipients, policy.signers
    )
    if in_other_list:
        return Finding(
            level,
            policy.name,
            f"{what}; it is in the other list, so -r and -a look swapped (-r names who can decrypt, -a whose "
            "signatures are accepted)",
            f"if they are swapped: {shlex.join(swapped)}; else add this identity to the right list",
        )
    return Finding(level, policy.name, what, f"add this identity to the policy (ams policy set -p {policy.name} ...)")


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


def _dates(who: str, certificate: x509.Certificate, now: datetime.datetime, skew: datetime.timedelta) -> list[Finding]:
    """Expired or not yet valid (beyond the clock skew the checks allow), or expiring within 30 days."""
    if certificate.not_valid_after_utc < now - skew:
        return [
            Finding("error", who, f"expired on {certificate.not_valid_after_utc:%Y-%m-%d}", "renew the certificate")
        ]
    if certificate.not_valid_before_utc > now + skew:
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
            out += _dates(who, certificate, now, trust.skew)
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
                        _signer_fix(error),
                    )
                )
    return out


def _signer_fix(error: SecurityError) -> str:
    """What to do about a signer that would never validate, by what its validation found."""
    if isinstance(error, CertificatePathError):  # a path exists, and breaks an RFC 5280 rule
        return (
            "the signer's CA chain breaks the rule named above: adding CAs will not help; ask the signer's CA "
            "to issue within its constraints, or trust a CA whose constraints allow this signer"
        )
    if isinstance(error, CertificateValidityError):
        return "the signer needs a certificate valid now: ask the signer to renew it, then import the new one"
    if isinstance(error, CertificateUsageError):
        return "the signer needs a certificate whose keyUsage allows signing (digitalSignature or nonRepudiation)"
    if isinstance(error, CertificateRevokedError):
        return "the signer's certificate is revoked: remove its DN from the policy's -a, or import its new certificate"
    return "add the signer's issuing CA (and any CA between it and a trust anchor) to this keystore"


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
