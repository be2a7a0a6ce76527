"""Describe a protected message without unprotecting it: header, QoP, algorithms, signer, recipients.

Only public facts are described. For a privacy message that the given keystore can open, the
inner SignedData is described only once its signature verified with the certificate it
carries; anything else about the decrypted content would be an oracle for whoever can read
the output (``ams errors explain`` runs this on messages an attacker put on the queue).
"""

from __future__ import annotations

from typing import Any

from cryptography import x509

from ams.algorithms import QualityOfProtection
from ams.dn import DistinguishedName
from ams.errors import AmsError, MalformedMessageError
from ams.format import mqheaders
from ams.format.enveloped import EnvelopedContent, parse_enveloped_data
from ams.format.pdmq import PdmqHeader, looks_protected
from ams.format.privacy import decryption_failed, open_privacy
from ams.format.signed import SignedContent, load_certificate, parse_signed_data, signing_time
from ams.keys import Keystore
from ams.keys.trust import TrustValidator
from ams.keys.unwrap import unwrap_content_key


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


def _privacy_inside(envelope: EnvelopedContent, header: PdmqHeader, keystore: Keystore | None) -> dict[str, Any]:
    """The inner SignedData, for a keystore that can open it and only when its signature verifies."""
    identity = keystore.identity if keystore is not None else None
    index = envelope.recipient_index(identity.certificate) if identity is not None else None
    if keystore is None or identity is None or index is None:
        return {"signature_algorithm": "(inside the encrypted content)"}
    key, unwrapped = unwrap_content_key(identity, envelope.wrapped_key(index), envelope.algorithm.spec.key_size)
    try:
        if not unwrapped:
            raise ValueError("unwrap")
        opened = open_privacy(envelope, key, orig_size=header.orig_size, empty=header.empty)
        # the inner signature does not cover the certificate: describe it only once its issuer vouched for it
        TrustValidator(keystore).authenticate(opened.certificate)
    except Exception:  # the one error of the decryption path, as unprotect gives it
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
    format: str = mqheaders.MQFMT_NONE,
    *,
    keystore: Keystore | None = None,
    encoding: int = mqheaders.MQENC_NATIVE,
    ccsid: int = mqheaders.MQCCSI_UTF8,
) -> dict[str, Any]:
    """A JSON-ready description of a (possibly) protected message."""
    view = memoryview(data)
    chain = mqheaders.walk(view, format, encoding, ccsid)
    payload = view[chain.payload_offset :]
    report: dict[str, Any] = {
        "size": len(data),
        "clear_headers": list(chain.headers),
        "payload_offset": chain.payload_offset,
    }
    if chain.last_format != mqheaders.MQFMT_NONE or not looks_protected(payload):
        report["protected"] = False
        report["format"] = chain.last_format.strip()
        return report
    header = PdmqHeader.unpack(payload)
    blob = bytes(payload[header.size :])
    report.update(
        {
            "protected": True,
            "qop": header.qop.name,
            "header": {
                "version": header.version,
                "encoding": "big-endian" if header.encoding == 1 else "reversed",
                "size": header.size,
                "prot_type": f"{header.prot_type:#x}",
                "key_reuse_flag": header.key_reuse,
                "orig_size": header.orig_size,
                "orig_format": header.orig_format.strip(),
                "empty_flag": header.empty,
                "name": header.name,
            },
            "blob_size": len(blob),
        }
    )
    if header.qop is QualityOfProtection.INTEGRITY:
        report.update(_signed_report(parse_signed_data(blob, wrapped=True)))
    elif header.qop is QualityOfProtection.PRIVACY:
        envelope = parse_enveloped_data(blob)
        report["encryption_algorithm"] = envelope.algorithm.label
        report["recipients"] = _recipients(envelope, keystore)
        report["ciphertext_size"] = len(envelope.ciphertext)
        report.update(_privacy_inside(envelope, header, keystore))
    else:
        if header.key_block_size > len(blob):
            raise MalformedMessageError(
                f"keyBlockSize {header.key_block_size} is larger than the {len(blob)}-byte blob"
            )
        envelope = parse_enveloped_data(blob[: header.key_block_size])
        report["encryption_algorithm"] = envelope.algorithm.label
        report["recipients"] = _recipients(envelope, keystore)
        report["key_block_size"] = header.key_block_size
        report["iv_size"] = header.iv_block_size
        report["ciphertext_size"] = header.enc_block_size
    return report


def render(report: dict[str, Any]) -> str:
    """The report as aligned text lines."""
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
                lines.append(f"{pad}  - " + ", ".join(f"{k}: {v}" for k, v in item.items()))
        else:
            lines.append(f"{pad}{key + ':':<22}{value}")

    for key, value in report.items():
        emit(key, value)
    return "\n".join(lines)
