"""Attacks on CRL scope (RFC 5280 5.2.4, 5.2.5, 5.3, 6.3.3): a CRL that does not cover a
certificate must not say it is "not revoked".

A CRL for CA certificates only (an ARL), for attribute certificates only, for some reasons only,
an indirect CRL, a partition for another distribution point, a delta CRL without its base, and a
CRL with an unknown critical extension (on the list or on one of its entries) each leave the
status undetermined: hard fail refuses, soft fail accepts with a warning. The twins: a complete
CRL revokes and accepts, an ARL does revoke a CA, a partition does cover a certificate that names
it, and a delta used with its base revokes what it lists.
"""

from __future__ import annotations

import datetime
import warnings
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

import ams
import ams.errors
from ams.keys import RevocationChecker, RevocationSettings
from ams.pki import Issued, issue, make_ca
from tests.conftest import Pki, store
from tests.security.test_cli_attacks import BODY, ams_cli, assert_typed_refusal
from tests.security.test_cli_attacks import bob_conf as bob_conf
from tests.security.test_cli_attacks import revocable as revocable
from tests.security.test_trust_attacks import _signed_by

LINE = "setmqspl -m QM -p INT.Q -s SHA256"
PARTITION = "http://crl.test/part-1.crl"
UNKNOWN_OID = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1.1")
Extensions = Sequence[tuple[x509.ExtensionType, bool]]


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class World:
    """A root CA, an intermediate CA, a signer, and a signer whose certificate names a CRL partition."""

    def __init__(self) -> None:
        self.ca = make_ca("CN=Org CA,O=AMS,C=GB")
        self.sub = issue(self.ca, "CN=Org Sub CA,O=AMS,C=GB", ca_flag=True)
        self.signer = issue(self.ca, "CN=signer,O=AMS,C=GB")
        self.partitioned = _with_distribution_point(self.ca, issue(self.ca, "CN=parted,O=AMS,C=GB"), PARTITION)


def _with_distribution_point(ca: Issued, issued: Issued, url: str) -> Issued:
    """``issued`` again, with a cRLDistributionPoints extension naming ``url``."""
    old = issued.certificate
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(old.issuer)
        .public_key(old.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(old.not_valid_before_utc)
        .not_valid_after(old.not_valid_after_utc)
    )
    for extension in old.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    point = x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)
    builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    return Issued(issued.key, builder.sign(ca.key, hashes.SHA256()))


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def idp(**flags: object) -> x509.IssuingDistributionPoint:
    fields: dict[str, object] = {
        "full_name": None,
        "relative_name": None,
        "only_contains_user_certs": False,
        "only_contains_ca_certs": False,
        "only_some_reasons": None,
        "indirect_crl": False,
        "only_contains_attribute_certs": False,
    }
    fields.update(flags)
    return x509.IssuingDistributionPoint(**fields)  # type: ignore[arg-type]


def crl(
    ca: Issued,
    *serials: int,
    extensions: Extensions = (),
    entry_extensions: Extensions = (),
    number: int | None = None,
) -> x509.CertificateRevocationList:
    """A current CRL signed by ``ca`` listing ``serials`` (key compromise, two hours ago)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now() - datetime.timedelta(hours=1))
        .next_update(now() + datetime.timedelta(days=1))
    )
    if number is not None:
        builder = builder.add_extension(x509.CRLNumber(number), critical=False)
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    for serial in serials:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(now() - datetime.timedelta(hours=2))
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
        )
        for extension, critical in entry_extensions:
            entry = entry.add_extension(extension, critical=critical)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(ca.key, hashes.SHA256())


def delta(ca: Issued, base: int, number: int, *serials: int) -> x509.CertificateRevocationList:
    return crl(ca, *serials, extensions=[(x509.DeltaCRLIndicator(base), True)], number=number)


def checker(*crls: x509.CertificateRevocationList, hard: bool = True) -> RevocationChecker:
    settings = RevocationSettings(hard_fail=hard)
    return RevocationChecker(settings, fetch=lambda *_: b"", crls=crls)


def unknown_critical() -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(UNKNOWN_OID, b"\x05\x00")


# Each shape of CRL that, listing the signer or not, cannot say "good" for an end entity, and what
# the refusal says about it.
NOT_COVERING: dict[str, tuple[Extensions, Extensions, str]] = {
    "ca-only (ARL)": ([(idp(only_contains_ca_certs=True), True)], (), "CA certificates only"),
    "attribute-only": ([(idp(only_contains_attribute_certs=True), True)], (), "attribute certificates only"),
    "some-reasons": (
        [(idp(only_some_reasons=frozenset({x509.ReasonFlags.key_compromise})), True)],
        (),
        "onlySomeReasons",
    ),
    "indirect": ([(idp(indirect_crl=True), True)], (), "indirectCRL"),
    "another-partition": (
        [(idp(full_name=[x509.UniformResourceIdentifier(PARTITION)]), True)],
        (),
        "distribution point",
    ),
    "delta-only": ([(x509.DeltaCRLIndicator(10), True), (x509.CRLNumber(11), False)], (), "delta CRL"),
    "unknown-critical": ([(unknown_critical(), True)], (), "unknown critical extension"),
    "unknown-critical-entry": ((), [(unknown_critical(), True)], "unknown critical extension"),
}


@pytest.mark.parametrize("listed", [True, False], ids=["listing-the-signer", "not-listing-it"])
@pytest.mark.parametrize("shape", list(NOT_COVERING))
def test_a_crl_that_does_not_cover_the_signer_is_no_answer(world: World, shape: str, listed: bool) -> None:
    extensions, entry_extensions, why = NOT_COVERING[shape]
    serials = [world.signer.certificate.serial_number] if listed else [world.sub.certificate.serial_number + 1]
    odd = crl(world.ca, *serials, extensions=extensions, entry_extensions=entry_extensions)
    with pytest.raises(ams.errors.RevocationUnknownError) as refused:
        checker(odd).check(world.signer.certificate, world.ca.certificate, now())
    message = refused.value.message
    for expected in ("CN=signer,O=AMS,C=GB", "CN=Org CA,O=AMS,C=GB", why, "revocation.fail = soft"):
        assert expected in message, (expected, message)
    # soft fail: accepted, with a warning that says why
    with pytest.warns(ams.errors.AmsSecurityWarning, match=why):
        assert checker(odd, hard=False).check(world.signer.certificate, world.ca.certificate, now()) == "unknown"
    # the twin: a complete CRL answers either way
    complete = crl(world.ca, *serials)
    if listed:
        with pytest.raises(ams.errors.CertificateRevokedError, match="CN=signer"):
            checker(complete).check(world.signer.certificate, world.ca.certificate, now())
    else:
        assert checker(complete).check(world.signer.certificate, world.ca.certificate, now()) == "good"


def test_the_arl_error_names_what_to_do(world: World) -> None:
    arl = crl(world.ca, extensions=[(idp(only_contains_ca_certs=True), True)])
    with pytest.raises(ams.errors.RevocationUnknownError) as refused:
        checker(arl).check(world.signer.certificate, world.ca.certificate, now())
    assert (
        "the CRL from CN=Org CA,O=AMS,C=GB covers CA certificates only (issuingDistributionPoint "
        "onlyContainsCACerts)" in refused.value.message
    )
    assert "add the CA's complete CRL" in refused.value.message


def test_a_non_critical_unknown_extension_is_harmless(world: World) -> None:
    """The twin of the unknown critical extension: RFC 5280 5.2 lets a non-critical one be ignored."""
    listed = crl(world.ca, world.signer.certificate.serial_number, extensions=[(unknown_critical(), False)])
    with pytest.raises(ams.errors.CertificateRevokedError):
        checker(listed).check(world.signer.certificate, world.ca.certificate, now())
    clean = crl(world.ca, entry_extensions=[(unknown_critical(), False)], extensions=[(unknown_critical(), False)])
    assert checker(clean).check(world.signer.certificate, world.ca.certificate, now()) == "good"


def test_an_unknown_critical_extension_on_another_entry_spoils_the_whole_crl(world: World) -> None:
    """RFC 5280 5.3: a CRL with a critical entry extension that cannot be processed is not used at all."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(world.ca.certificate.subject)
        .last_update(now() - datetime.timedelta(hours=1))
        .next_update(now() + datetime.timedelta(days=1))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(12345)
            .revocation_date(now() - datetime.timedelta(hours=2))
            .add_extension(unknown_critical(), critical=True)
            .build()
        )
    )
    spoiled = builder.sign(world.ca.key, hashes.SHA256())
    with pytest.raises(ams.errors.RevocationUnknownError, match="unknown critical extension"):
        checker(spoiled).check(world.signer.certificate, world.ca.certificate, now())


def test_an_arl_covers_a_ca_and_a_user_only_crl_does_not(world: World) -> None:
    serial = world.sub.certificate.serial_number
    arl = crl(world.ca, serial, extensions=[(idp(only_contains_ca_certs=True), True)])
    with pytest.raises(ams.errors.CertificateRevokedError, match="CN=Org Sub CA"):
        checker(arl).check(world.sub.certificate, world.ca.certificate, now())
    users = crl(world.ca, serial, extensions=[(idp(only_contains_user_certs=True), True)])
    with pytest.raises(ams.errors.RevocationUnknownError, match="end-entity certificates only"):
        checker(users).check(world.sub.certificate, world.ca.certificate, now())
    # and a user-only CRL does cover an end entity
    only_users = [(idp(only_contains_user_certs=True), True)]
    users = crl(world.ca, world.signer.certificate.serial_number, extensions=only_users)
    with pytest.raises(ams.errors.CertificateRevokedError, match="CN=signer"):
        checker(users).check(world.signer.certificate, world.ca.certificate, now())


def test_a_partition_covers_the_certificates_that_name_it(world: World) -> None:
    point = [(idp(full_name=[x509.UniformResourceIdentifier(PARTITION)]), True)]
    parted = world.partitioned.certificate
    assert checker(crl(world.ca, extensions=point)).check(parted, world.ca.certificate, now()) == "good"
    with pytest.raises(ams.errors.CertificateRevokedError, match="CN=parted"):
        checker(crl(world.ca, parted.serial_number, extensions=point)).check(parted, world.ca.certificate, now())
    elsewhere = [(idp(full_name=[x509.UniformResourceIdentifier("http://crl.test/part-2.crl")]), True)]
    with pytest.raises(ams.errors.RevocationUnknownError, match="distribution point"):
        checker(crl(world.ca, extensions=elsewhere)).check(parted, world.ca.certificate, now())
    # a complete CRL (no issuingDistributionPoint) covers a certificate that names a partition
    assert checker(crl(world.ca)).check(parted, world.ca.certificate, now()) == "good"


# -- delta CRLs ----------------------------------------------------------------------------------------


def test_a_delta_with_its_base_revokes_what_it_lists(world: World) -> None:
    serial = world.signer.certificate.serial_number
    base = crl(world.ca, number=10)
    with pytest.raises(ams.errors.CertificateRevokedError, match=r"CN=signer.*delta CRL"):
        checker(base, delta(world.ca, 10, 11, serial)).check(world.signer.certificate, world.ca.certificate, now())
    # the twins: the delta lists someone else; a newer base than the delta needs
    assert checker(base, delta(world.ca, 10, 11, 999)).check(world.signer.certificate, world.ca.certificate, now())
    newer = crl(world.ca, number=12)
    with pytest.raises(ams.errors.CertificateRevokedError):
        checker(newer, delta(world.ca, 10, 13, serial)).check(world.signer.certificate, world.ca.certificate, now())


def test_a_delta_whose_base_is_missing_cannot_be_outvoted_by_an_older_base(world: World) -> None:
    """Base 9 is current and does not list the signer; the delta on base 10 does. Without base 10
    the delta cannot be used, and what it lists cannot be ignored either: undetermined."""
    serial = world.signer.certificate.serial_number
    older = crl(world.ca, number=9)
    with pytest.raises(ams.errors.RevocationUnknownError, match="base CRL number 10"):
        checker(older, delta(world.ca, 10, 11, serial)).check(world.signer.certificate, world.ca.certificate, now())
    # a delta that does not list it leaves the older base's answer standing
    assert checker(older, delta(world.ca, 10, 11)).check(world.signer.certificate, world.ca.certificate, now())


def test_a_delta_and_a_base_must_share_a_scope(world: World) -> None:
    serial = world.signer.certificate.serial_number
    base = crl(world.ca, number=10)
    scoped = crl(
        world.ca,
        serial,
        extensions=[(x509.DeltaCRLIndicator(10), True), (idp(only_contains_user_certs=True), True)],
        number=11,
    )
    with pytest.raises(ams.errors.RevocationUnknownError, match="delta CRL"):
        checker(base, scoped).check(world.signer.certificate, world.ca.certificate, now())


# -- through the API and the files an operator configures ------------------------------------------------


@pytest.mark.parametrize("shape", ["ca-only (ARL)", "delta-only", "unknown-critical"])
def test_a_revoked_signer_with_only_an_odd_crl_through_a_protector(world: World, tmp_path: Path, shape: str) -> None:
    extensions, entry_extensions, why = NOT_COVERING[shape]
    path = tmp_path / "odd.crl"
    serial = world.signer.certificate.serial_number
    odd = crl(world.ca, serial, extensions=extensions, entry_extensions=entry_extensions)
    path.write_bytes(odd.public_bytes(serialization.Encoding.PEM))
    message = _signed_by(world.signer, LINE)
    keystore = ams.Keystore(None, [world.ca.certificate], source="the receiver")

    def receiver(hard: bool) -> ams.Protector:
        return ams.Protector(keystore, store(LINE), revocation=RevocationSettings(crl_files=(path,), hard_fail=hard))

    with pytest.raises(ams.errors.RevocationUnknownError, match=why):
        receiver(True).unprotect("INT.Q", message)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert receiver(False).unprotect("INT.Q", message).body
    assert any(why in str(w.message) for w in caught), [str(w.message) for w in caught]
    # the twin: a complete CRL refuses the revoked signer in either mode
    path.write_bytes(crl(world.ca, world.signer.certificate.serial_number).public_bytes(serialization.Encoding.PEM))
    for hard in (True, False):
        with pytest.raises(ams.errors.CertificateRevokedError):
            receiver(hard).unprotect("INT.Q", message)


def test_good_answers_from_a_base_and_delta_expire_with_the_first_of_them(world: World) -> None:
    base = crl(world.ca, number=10)  # next update in a day
    soon = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(world.ca.certificate.subject)
        .last_update(now() - datetime.timedelta(minutes=10))
        .next_update(now() + datetime.timedelta(hours=1))
        .add_extension(x509.DeltaCRLIndicator(10), critical=True)
        .add_extension(x509.CRLNumber(11), critical=False)
        .sign(world.ca.key, hashes.SHA256())
    )
    revocation = checker(base, soon)
    assert revocation.check(world.signer.certificate, world.ca.certificate, now()) == "good"
    until = revocation.good_until(world.signer.certificate, now())
    assert until is not None and until <= now() + datetime.timedelta(hours=1)


# -- through the ams command ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["ca-only (ARL)", "delta-only", "unknown-critical"])
def test_cli_an_odd_crl_never_passes_a_revoked_signer(
    pki: Pki,
    bob_conf: Path,
    revocable: tuple[Issued, Path, bytes],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    shape: str,
) -> None:
    extensions, entry_extensions, why = NOT_COVERING[shape]
    signer, policies, message = revocable
    source = tmp_path / "signed.bin"
    source.write_bytes(message)
    odd = tmp_path / "odd.crl"
    serial = signer.certificate.serial_number
    odd.write_bytes(
        crl(pki.ca, serial, extensions=extensions, entry_extensions=entry_extensions).public_bytes(
            serialization.Encoding.PEM
        )
    )
    out = tmp_path / "out"
    keys = ["--policies", str(policies), "--keystore-conf", str(bob_conf), "--crl", str(odd), "-i", str(source)]
    run = ams_cli(capsys, "unprotect", "-p", "INT.Q", *keys, "--revocation-fail", "hard", "-o", str(out))
    assert_typed_refusal(run, 3, "revocation_unknown", "CN=revocable,O=AMS,C=GB", str(pki.ca.dn), why)
    assert not out.exists()
    with pytest.warns(ams.errors.AmsSecurityWarning, match=why):
        run = ams_cli(capsys, "unprotect", "-p", "INT.Q", *keys, "--revocation-fail", "soft", "-o", str(out))
    assert run.code == 0 and out.read_bytes() == BODY, run
    # the twins: the complete CRL refuses in either mode, and so does a base with a delta that lists the signer
    out.unlink()
    base = tmp_path / "base.crl"
    base.write_bytes(crl(pki.ca, number=10).public_bytes(serialization.Encoding.DER))
    for files, says in (([], "the CRL of"), (["--crl", str(base)], "the delta CRL of")):
        if files:
            odd.write_bytes(delta(pki.ca, 10, 11, serial).public_bytes(serialization.Encoding.PEM))
        else:
            odd.write_bytes(crl(pki.ca, serial).public_bytes(serialization.Encoding.PEM))
        for mode in ("hard", "soft"):
            run = ams_cli(capsys, "unprotect", "-p", "INT.Q", *keys, *files, "--revocation-fail", mode, "-o", str(out))
            assert_typed_refusal(run, 3, "certificate_revoked", "CN=revocable,O=AMS,C=GB", says)
            assert not out.exists()
