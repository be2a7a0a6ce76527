"""The file edge of revocation checking: read the CRLs that keystore.conf's ``crl.file`` names."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cryptography import x509

from ams._files import read_bounded
from ams.errors import KeystoreError, clip, parse_failure
from ams.limits import DEFAULT_LIMITS


def _pem_crl_blocks(data: bytes) -> list[bytes] | None:
    """The PEM CRL blocks in ``data``; None if one has no END line."""
    begin, end = b"-----BEGIN X509 CRL-----", b"-----END X509 CRL-----"
    blocks, start = [], data.find(begin)
    while start >= 0:  # find() rather than a regex: linear even for a file of unterminated BEGIN lines
        stop = data.find(end, start)
        if stop < 0:
            return None
        blocks.append(data[start : stop + len(end)] + b"\n")
        start = data.find(begin, stop)
    return blocks


def load_crls(paths: Sequence[Path]) -> list[x509.CertificateRevocationList]:
    """The CRLs in ``paths`` (PEM, one or more per file, or DER); an unusable file raises :class:`KeystoreError`."""
    crls = []
    for path in paths:
        shown = clip(str(path))
        data = read_bounded(path, "CRL file (crl.file)", limit=DEFAULT_LIMITS.crl_file_size, error=KeystoreError)
        pem = b"-----BEGIN" in data
        advice = f"check it with `openssl crl -in {shown}{'' if pem else ' -inform DER'} -noout -text` and replace it"
        blocks = _pem_crl_blocks(data) if pem else [data]
        if blocks is None:
            raise KeystoreError(
                f"{shown} (crl.file) has a '-----BEGIN X509 CRL-----' line without its END line; {advice}"
            )
        if not blocks:
            raise KeystoreError(
                f"{shown} (crl.file) is PEM without a '-----BEGIN X509 CRL-----' block: it holds no CRL; {advice}"
            )
        try:
            for block in blocks:
                crl = x509.load_pem_x509_crl(block) if pem else x509.load_der_x509_crl(block)
                # read now what every check reads, so that a broken file is refused here, naming it
                _ = crl.issuer.public_bytes(), crl.last_update_utc, crl.next_update_utc, crl.signature_algorithm_oid
                _ = crl.signature, crl.tbs_certlist_bytes
                for revoked in crl:
                    _ = revoked.serial_number, revoked.revocation_date_utc
                crls.append(crl)
        except Exception as error:  # cryptography parsing a file that may be hostile
            failure = parse_failure(error)
            raise KeystoreError(f"{shown} (crl.file) is not a CRL in PEM or DER: {failure}; {advice}") from None
    return crls
