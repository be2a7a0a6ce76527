"""Integrity messages signed again with a chosen signingTime: backdated into the validity of a
signer that is not valid now (which a receiver must refuse), or forward-dated for a signer valid
now (which this project's receiver accepts: format.md §6 checks the certificate now, not the
signingTime; SECURITY.md: "signingTime is not checked for freshness")."""

from __future__ import annotations

import datetime

from ams.algorithms import SignatureAlgorithm
from ams.testing.conformance.tampering import resigned_at
from ams.testing.mutations import ProtectedMessage
from ams.testing.pki import Issued

FORWARD = datetime.timedelta(days=30)  # far beyond any clock skew (ams: 5 minutes by default)


def forward_dated(
    message: ProtectedMessage, signer: Issued, name: str, digest: SignatureAlgorithm
) -> tuple[bytes, str]:
    """``message`` signed again by ``signer`` with a signingTime :data:`FORWARD` ahead, within its validity."""
    end = signer.certificate.not_valid_after_utc
    when = min(datetime.datetime.now(datetime.UTC) + FORWARD, end - datetime.timedelta(days=1))
    note = f"signed by {name}, valid now, with the signingTime {when:%Y-%m-%d %H:%M}Z, ahead of now"
    return resigned_at(message, signer, digest, when), note


def backdated(message: ProtectedMessage, signer: Issued, name: str, digest: SignatureAlgorithm) -> tuple[bytes, str]:
    """``message`` signed again by ``signer`` with a signingTime inside its validity, which is not now."""
    certificate = signer.certificate
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    now = datetime.datetime.now(datetime.UTC)
    when = end - datetime.timedelta(days=1) if end < now else start + datetime.timedelta(days=1)
    note = (
        f"signed by {name} at {when:%Y-%m-%d} (signingTime), inside its certificate's validity "
        f"{start:%Y-%m-%d} to {end:%Y-%m-%d}, which does not hold now"
    )
    return resigned_at(message, signer, digest, when), note
