"""Describe a protected message without unprotecting it: header, QoP, algorithms, signer, recipients.

Only public facts are described. For a privacy message that the given keystore can open, the
inner SignedData is described only once its signature verified with the certificate it
carries; anything else about the decrypted content would be an oracle for whoever can read
the output (``ams errors explain`` runs this on messages an attacker put on the queue).
"""

from __future__ import annotations

from typing import Any

from cryptography import x509

from ams import _wire
from ams._privacy import PrivacyRefused, decryption_failed, open_unwrapped
from ams._signature import load_certificate
from ams.algorithms import QoP
from ams.dn import DistinguishedName
from ams.errors import AmsError, clip
from ams.hazmat.enveloped import EnvelopedContent
from ams.hazmat.pdmq import PdmqHeader
from ams.hazmat.signed import SignedContent, signing_time
from ams.keys import Keystore
from ams.keys.unwrap import unwrap_content_key
from ams.limits import DEFAULT_LIMITS, Limits
from ams.mqconstants import MQCCSI_UTF8, MQENC_NATIVE, MQFMT_NONE
from ams.verify import Verifier


def _certificate(certificate: x509.Certificate) -> dict[str, Any]:
    return {
        "subject": str(DistinguishedName.from_x509(certificate.subject)),
        "issuer": str(DistinguishedName.from_x509(certificate.issuer)),
        "serial": f"{certificate.serial_number:#x}",
        "not_before": certificate.not_valid_before_utc.isoformat(),
        "not_after": certificate.not_valid_after_utc.isoformat(),
    }


_RECIPIENTS_SHOWN = 20


def _recipients(envelope: EnvelopedContent, keystore: Keystore | None) -> list[dict[str, Any]]:
    """The first recipients, by issuer and serial (and DN where the keystore knows them)."""
    refs = envelope.recipient_refs()
    out = []
    for ref in refs[:_RECIPIENTS_SHOWN]:
        entry: dict[str, Any] = {"id": ref.describe()}
        if keystore is not None:
            known = next((c for c in keystore.certificates if ref.matches(c)), None)
            if known is not None:
                entry["dn"] = str(DistinguishedName.from_x509(known.subject))
        out.append(entry)
    if len(refs) > _RECIPIENTS_SHOWN:
        out.append({"id": f"and {len(refs) - _RECIPIENTS_SHOWN:,} more"})
    return out


def _signed_report(signed: SignedContent) -> dict[str, Any]:
    report: dict[str, Any] = {
        "signature_algorithm": signed.digest_algorithm.label,
        "certificates": len(signed.certificates),
    }
    if signed.certificates:
        try:
            report["signer"] = _certificate(load_certificate(signed.certificates[0]))
        except AmsError as error:
            report["signer"] = {"unparseable": error.message}
    try:
        when = signing_time(signed.signer_infos[0]) if signed.signer_infos else None
    except AmsError:
        report["signing_time"] = "unreadable"
    else:
        if when is not None:
            report["signing_time"] = when.isoformat()
    report["content_size"] = len(signed.content)
    return report


def _privacy_inside(
    envelope: EnvelopedContent, header: PdmqHeader, keystore: Keystore | None, verifier: Verifier | None
) -> dict[str, Any]:
    """The inner SignedData, for a keystore that can open it and only when its signature verifies."""
    identity = keystore.identity if keystore is not None else None
    index = envelope.recipient_index(identity.certificate) if identity is not None else None
    if keystore is None or identity is None or index is None:
        return {"signature_algorithm": "(inside the encrypted content)"}
    key, unwrapped = unwrap_content_key(identity, envelope.wrapped_key(index), envelope.algorithm.spec.key_size)
    try:
        # the one decryption unprotect runs: implicit rejection included, so that a bad RSA block
        # costs what a wrong key costs here too (ams errors explain runs this on attackers' messages)
        opened = open_unwrapped(
            envelope,
            key,
            unwrapped,
            orig_size=header.orig_size,
            empty=header.empty,
            authenticate=(verifier or Verifier(keystore)).authenticate,
            steps=["unwrapping the content key with RSA"],
        )
    except PrivacyRefused:  # the one error of the decryption path, as unprotect gives it
        error = decryption_failed(header.qop, envelope.algorithm, len(envelope.ciphertext), identity.dn)
        return {"signature_algorithm": "(inside the encrypted content)", "inner": error.message}
    report = _signed_report(opened.signed)
    report["inner_signature"] = (
        "verifies, with a certificate issued by a CA in this keystore (dates, usage, revocation and the policy "
        "are checked by unprotect)"
    )
    return report


def inspect_message(
    data: bytes,
    format: str = MQFMT_NONE,
    *,
    keystore: Keystore | None = None,
    encoding: int = MQENC_NATIVE,
    ccsid: int = MQCCSI_UTF8,
    verifier: Verifier | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> dict[str, Any]:
    """A JSON-ready description of a (possibly) protected message; MalformedMessageError and the
    like for what the wire parser refuses (within ``limits``). ``verifier`` authenticates the signer
    inside a privacy message the keystore opens (default: ``Verifier(keystore)``)."""
    wire = _wire.parse(data, format, encoding=encoding, ccsid=ccsid, limits=limits)
    report: dict[str, Any] = {
        "size": len(data),
        "clear_headers": list(wire.chain.headers),
        "payload_offset": wire.chain.payload_offset,
    }
    header = wire.header
    if header is None:
        report["protected"] = False
        report["format"] = wire.chain.last_format.strip()
        return report
    report.update({"protected": True, "qop": header.qop.name, "header": _header(header), "blob_size": len(wire.blob)})
    if header.qop is QoP.INTEGRITY:
        report.update(_signed_report(wire.signed_data()))
    elif header.qop is QoP.PRIVACY:
        envelope = wire.enveloped_data()
        report["encryption_algorithm"] = envelope.algorithm.label
        report["recipients"] = _recipients(envelope, keystore)
        report["ciphertext_size"] = len(envelope.ciphertext)
        report.update(_privacy_inside(envelope, header, keystore, verifier))
    else:
        envelope = wire.key_block(wire.confidential())
        report["encryption_algorithm"] = envelope.algorithm.label
        report["recipients"] = _recipients(envelope, keystore)
        report["key_block_size"] = header.key_block_size
        report["iv_size"] = header.iv_block_size
        report["ciphertext_size"] = header.enc_block_size
    return report


def _header(header: PdmqHeader) -> dict[str, Any]:
    return {
        "version": header.version,
        "encoding": "big-endian" if header.encoding == 1 else "reversed",
        "size": header.size,
        "prot_type": f"{header.prot_type:#x}",
        "key_reuse_flag": header.key_reuse,
        "orig_size": header.orig_size,
        "orig_format": header.orig_format.strip(),
        "empty_flag": header.empty,
        "name": header.name,
    }


_SHOWN_LIMIT = 4000


def _shown(value: Any) -> str:
    return clip(str(value), _SHOWN_LIMIT)


def render(report: dict[str, Any]) -> str:
    """The report as aligned text lines, every value escaped for a terminal (:func:`ams.errors.clip`):
    a report describes messages, MQDLHs and certificates that others wrote."""
    lines: list[str] = []

    def emit(key: str, value: Any, indent: int = 0) -> None:
        pad = " " * indent
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            for k, v in value.items():
                emit(k, v, indent + 2)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{pad}{key}:")
            for item in value:
                lines.append(f"{pad}  - " + ", ".join(f"{k}: {_shown(v)}" for k, v in item.items()))
        else:
            lines.append(f"{pad}{key + ':':<22}{_shown(value)}")

    for key, value in report.items():
        emit(key, value)
    return "\n".join(lines)
