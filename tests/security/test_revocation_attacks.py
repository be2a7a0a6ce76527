"""Attacks on revocation checking: a hostile OCSP responder or network, and hostile CRL files.

Each attack has its accepted twin. Whatever the bytes, a check ends in "good" only for a genuine,
current answer about this very certificate, and nothing but an ``ams.AmsError`` escapes.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import re
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ams
import ams.errors
from ams.keys import RevocationChecker, RevocationSettings
from ams.pki import Issued, issue, make_ca

URL = "http://responder.test/ocsp"
SHA256_WITH_RSA = bytes.fromhex("06092a864886f70d01010b")
UNKNOWN_RSA_OID = bytes.fromhex("06092a864886f70d01017f")  # 1.2.840.113549.1.1.127: no such algorithm
MD5_WITH_RSA = bytes.fromhex("06092a864886f70d010104")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Pki:
    """A CA, a certificate it issued, and a responder it delegated."""

    def __init__(self) -> None:
        self.ca = make_ca("CN=Attack CA,O=AMS,C=GB")
        self.leaf = issue(self.ca, "CN=leaf,O=AMS,C=GB")
        self.other = issue(self.ca, "CN=other,O=AMS,C=GB")


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def respond(
    request: bytes,
    signer: Issued,
    *,
    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
    this_update: datetime.datetime | None = None,
    lifetime: datetime.timedelta | None = datetime.timedelta(days=1),
    nonce: bytes | str | None = "echo",
    serial_offset: int = 0,
    about: tuple[bytes, bytes] | None = None,
    certificates: tuple[x509.Certificate, ...] = (),
) -> bytes:
    """A DER OCSP response to ``request`` signed by ``signer``; each keyword bends one field."""
    parsed = ocsp.load_der_ocsp_request(request)
    this = this_update or now() - datetime.timedelta(minutes=1)
    name_hash, key_hash = about or (parsed.issuer_name_hash, parsed.issuer_key_hash)
    revoked = status == ocsp.OCSPCertStatus.REVOKED
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            name_hash,
            key_hash,
            parsed.serial_number + serial_offset,
            parsed.hash_algorithm,
            status,
            this,
            this + lifetime if lifetime is not None else None,
            this - datetime.timedelta(days=1) if revoked else None,
            x509.ReasonFlags.key_compromise if revoked else None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, signer.certificate)
    )
    if certificates:
        builder = builder.certificates(list(certificates))
    if nonce == "echo":
        with contextlib.suppress(x509.ExtensionNotFound):
            echoed = parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
            builder = builder.add_extension(x509.OCSPNonce(echoed), critical=False)
    elif isinstance(nonce, bytes):
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def request_for(certificate: x509.Certificate, issuer: x509.Certificate) -> ocsp.OCSPRequest:
    return ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1()).build()


def request_bytes(pki: Pki) -> bytes:
    return request_for(pki.leaf.certificate, pki.ca.certificate).public_bytes(serialization.Encoding.DER)


class Responder:
    """An injected fetch that answers with ``answer(request)`` and records the URLs it was given."""

    def __init__(self, answer: Callable[[bytes], bytes]) -> None:
        self.answer = answer
        self.urls: list[str] = []

    def __call__(self, url: str, body: bytes, timeout: float) -> bytes:
        self.urls.append(url)
        return self.answer(body)


def checker(fetch: Callable[[str, bytes, float], bytes], **options: object) -> RevocationChecker:
    values: dict[str, object] = {"ocsp": True, "ocsp_url": URL}
    values.update(options)
    return RevocationChecker.online(RevocationSettings(**values), fetch=fetch)  # type: ignore[arg-type]


def refused(check: Callable[[], object], match: str | None = None) -> str:
    """The hard-fail error of ``check``: bounded, without control characters, matching ``match``."""
    with pytest.raises(ams.errors.RevocationUnknownError, match=match) as caught:
        check()
    message = str(caught.value)
    assert len(message) < 1000, message
    assert message.isprintable(), message
    return message


def good(pki: Pki, revocation: RevocationChecker, at: datetime.datetime | None = None) -> str:
    return revocation.check(pki.leaf.certificate, pki.ca.certificate, at or now())


# -- the network: one deadline, a size cap, a sane status line ----------------------------------------


class Loopback:
    """An HTTP server on loopback; ``serve`` handles each connection in its own thread until ``stop``."""

    def __init__(self, serve: Callable[[socket.socket, threading.Event], None]) -> None:
        self.serve = serve
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/ocsp"
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._handle, args=(connection,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _handle(self, connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            connection.settimeout(5)
            self.serve(connection, self.stop)

    def close(self) -> None:
        self.stop.set()
        self.acceptor.join(timeout=5)
        self.listener.close()
        for thread in self.threads:
            thread.join(timeout=5)


@pytest.fixture
def loopback() -> Iterator[Callable[[Callable[[socket.socket, threading.Event], None]], Loopback]]:
    servers: list[Loopback] = []

    def start(serve: Callable[[socket.socket, threading.Event], None]) -> Loopback:
        servers.append(Loopback(serve))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def read_request(connection: socket.socket) -> bytes:
    """The body of the HTTP request on ``connection``."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += connection.recv(4096)
    return body


def answering(pki: Pki, **options: object) -> Callable[[socket.socket, threading.Event], None]:
    def serve(connection: socket.socket, stop: threading.Event) -> None:
        answer = respond(read_request(connection), pki.ca, **options)  # type: ignore[arg-type]
        connection.sendall(
            b"HTTP/1.0 200 OK\r\nContent-Type: application/ocsp-response\r\n"
            + f"Content-Length: {len(answer)}\r\n\r\n".encode()
            + answer
        )

    return serve


def dripping(connection: socket.socket, stop: threading.Event) -> None:
    """Answers one byte every 0.3 s: each recv() is quick, the whole answer never comes."""
    read_request(connection)
    for byte in b"HTTP/1.0 200 OK\r\nContent-Type: application/ocsp-response\r\n\r\n" * 100:
        if stop.wait(0.3):
            return
        connection.sendall(bytes([byte]))


def endless(connection: socket.socket, stop: threading.Event) -> None:
    read_request(connection)
    connection.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/ocsp-response\r\n\r\n")
    chunk = b"\x30\x82" * 32768
    for _ in range(1024):  # 64 MiB at most, should the client not hang up
        if stop.is_set():
            return
        connection.sendall(chunk)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])  # an address, and a name to look up
def test_the_default_fetch_gets_a_genuine_answer_over_http(
    pki: Pki, loopback: Callable[..., Loopback], host: str
) -> None:
    server = loopback(answering(pki))
    url = server.url.replace("127.0.0.1", host)
    revocation = RevocationChecker.online(RevocationSettings(ocsp=True, ocsp_url=url, timeout=1))
    assert good(pki, revocation) == "good"


@pytest.mark.parametrize("hard", [True, False])
def test_a_dripping_responder_is_cut_off_at_one_deadline(
    pki: Pki, loopback: Callable[..., Loopback], hard: bool
) -> None:
    server = loopback(dripping)
    revocation = RevocationChecker.online(RevocationSettings(ocsp=True, ocsp_url=server.url, timeout=1, hard_fail=hard))
    started = time.monotonic()
    if hard:
        refused(lambda: good(pki, revocation), match=r"no complete answer within 1 s \(ocsp\.timeout\)")
    else:
        with pytest.warns(ams.errors.AmsSecurityWarning, match="no complete answer within 1 s"):
            assert good(pki, revocation) == "unknown"
    assert time.monotonic() - started < 2.5


def test_an_endless_body_is_cut_at_the_size_cap(pki: Pki, loopback: Callable[..., Loopback]) -> None:
    server = loopback(endless)
    revocation = RevocationChecker.online(RevocationSettings(ocsp=True, ocsp_url=server.url, timeout=5))
    started = time.monotonic()
    refused(lambda: good(pki, revocation), match=r"larger than 262144 bytes \(ocsp\.max_response_size\)")
    assert time.monotonic() - started < 3


def test_a_smaller_size_cap_refuses_what_the_default_accepts(pki: Pki, loopback: Callable[..., Loopback]) -> None:
    server = loopback(answering(pki, certificates=(pki.ca.certificate,)))  # the CA's certificate: over 1 KiB
    assert good(pki, RevocationChecker.online(RevocationSettings(ocsp=True, ocsp_url=server.url))) == "good"
    revocation = RevocationChecker.online(RevocationSettings(ocsp=True, ocsp_url=server.url, max_response_size=1024))
    refused(lambda: good(pki, revocation), match=r"announces \d+ bytes, more than 1024")


@pytest.mark.parametrize(
    ("sent", "match"),
    [
        (b"", "closed before the end of the HTTP header"),
        (b"garbage\r\n\r\n", "HTTP status line 'garbage', expected 'HTTP/1.x 200'"),
        (b"HTTP/1.0 404 Not Found\r\n\r\n", "HTTP status line 'HTTP/1.0 404 Not Found'"),
        (b"HTTP/1.0 200 OK" + b"x" * 20000, "HTTP header is longer than 16384 bytes"),
        (b"\x1b[2J\x00\x07 HTTP/1.0 200" * 40 + b"\r\n\r\n", r"HTTP status line '\\x1b\[2J\\x00"),
        (b"HTTP/1.0 2000 " + b"A" * 5000 + b"\r\n\r\n", "HTTP status line 'HTTP/1.0 2000 AAAA"),
        (b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding"),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 99999999999\r\n\r\n", "announces 99999999999 bytes, more than"),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nabc", "closed after 3 of 10 bytes"),
        (b"HTTP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length is not one decimal number"),
        (b"HTTP/1.0 200 OK\r\n\r\n\x30\x05\x0a\x01", "cannot be used: it is malformed"),
    ],
)
def test_broken_http_answers_are_unknown_and_never_echoed_at_length(
    pki: Pki, loopback: Callable[..., Loopback], sent: bytes, match: str
) -> None:
    def serve(connection: socket.socket, stop: threading.Event) -> None:
        read_request(connection)
        connection.sendall(sent)

    server = loopback(serve)
    revocation = RevocationChecker.online(RevocationSettings(ocsp=True, ocsp_url=server.url, timeout=2))
    message = refused(lambda: good(pki, revocation), match=match)
    assert "A" * 201 not in message and "x" * 201 not in message


def test_the_deadline_covers_connecting(pki: Pki) -> None:
    # 192.0.2.0/24 is TEST-NET-1: nothing answers, so connect() waits (or fails at once without a route)
    revocation = RevocationChecker.online(RevocationSettings(ocsp=True, ocsp_url="http://192.0.2.1:9/", timeout=1))
    started = time.monotonic()
    refused(lambda: good(pki, revocation), match="did not answer usefully")
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("http://responder.test/ocsp", True),
        ("https://responder.test/ocsp", False),
        ("ldap://directory.test/cn=ocsp", False),
        ("http:///no-host", False),
        ("http://responder.test/a b", False),
        ("http://responder.test/a\r\nb", False),  # urlsplit() would quietly make it /ab
    ],
)
def test_only_http_responders_are_used(pki: Pki, url: str, accepted: bool) -> None:
    fetch = Responder(lambda request: respond(request, pki.ca))
    revocation = checker(fetch, ocsp_url=url)
    if accepted:
        assert good(pki, revocation) == "good" and fetch.urls == [url]
    else:
        refused(lambda: good(pki, revocation), match=r"cannot be used: .*set ocsp\.url to an http:// responder")
        assert fetch.urls == []


@pytest.mark.parametrize("tail", ["", "\r\nX-Injected: 1\x1b[31m"])
def test_a_huge_or_hostile_aia_url_is_shown_short_and_escaped(pki: Pki, tail: str) -> None:
    url = "http://responder.test/" + "A" * 5000 + tail
    certificate = issue(pki.ca, "CN=long url,O=AMS,C=GB", ocsp_url=url).certificate

    def fail(request: bytes) -> bytes:
        raise ConnectionRefusedError(111, "Connection refused")

    fetch = Responder(fail)
    revocation = checker(fetch, ocsp_url=None)
    message = refused(lambda: revocation.check(certificate, pki.ca.certificate, now()))
    assert "A" * 201 not in message
    if tail:
        assert fetch.urls == [] and "spaces, control or non-ASCII characters" in message
    else:  # the clean twin is fetched; only its display is cut
        assert fetch.urls == [url] and "Connection refused" in message


# -- the answer: fresh, about this certificate, with our nonce ----------------------------------------


def test_an_answer_without_next_update_is_believed_only_for_max_age(pki: Pki) -> None:
    long_ago = now() - datetime.timedelta(days=730)
    stale = checker(Responder(lambda r: respond(r, pki.ca, this_update=long_ago, lifetime=None)))
    refused(lambda: good(pki, stale), match=r"stale: it has no nextUpdate .* 3600 s \(ocsp\.max_age\)")

    produced = now() - datetime.timedelta(minutes=10)
    fetch = Responder(lambda r: respond(r, pki.ca, this_update=produced, lifetime=None))
    fresh = checker(fetch)
    assert good(pki, fresh) == "good"
    assert good(pki, fresh, now() + datetime.timedelta(minutes=30)) == "good"
    assert len(fetch.urls) == 1  # cached until thisUpdate + max_age...
    refused(lambda: good(pki, fresh, produced + datetime.timedelta(minutes=61)), match="stale")
    assert len(fetch.urls) == 2  # ...and no longer


def test_max_age_is_configurable(pki: Pki) -> None:
    produced = now() - datetime.timedelta(minutes=10)
    fetch = Responder(lambda r: respond(r, pki.ca, this_update=produced, lifetime=None))
    refused(lambda: good(pki, checker(fetch, max_age=datetime.timedelta(minutes=5))), match=r"300 s \(ocsp\.max_age\)")
    assert good(pki, checker(fetch, max_age=datetime.timedelta(minutes=15))) == "good"


@pytest.mark.parametrize(("expired_for", "accepted"), [(4, True), (6, False)])
def test_next_update_keeps_five_minutes_of_skew(pki: Pki, expired_for: int, accepted: bool) -> None:
    produced = now() - datetime.timedelta(hours=1)
    lifetime = datetime.timedelta(hours=1) - datetime.timedelta(minutes=expired_for)
    revocation = checker(Responder(lambda r: respond(r, pki.ca, this_update=produced, lifetime=lifetime)))
    if accepted:
        assert good(pki, revocation) == "good"
    else:
        refused(lambda: good(pki, revocation), match="is not current")


def test_an_answer_from_the_future_is_not_current(pki: Pki) -> None:
    later = now() + datetime.timedelta(minutes=10)
    revocation = checker(Responder(lambda r: respond(r, pki.ca, this_update=later)))
    refused(lambda: good(pki, revocation), match="check the clocks")


@pytest.mark.parametrize(
    ("sent", "nonce", "accepted"),
    [
        (True, "echo", True),
        (True, None, False),
        (True, b"a nonce of yore!", False),
        (False, None, True),
        (False, b"a nonce of yore!", True),
    ],
)
def test_the_nonce_must_be_echoed_when_sent(pki: Pki, sent: bool, nonce: bytes | str | None, accepted: bool) -> None:
    revocation = checker(Responder(lambda r: respond(r, pki.ca, nonce=nonce)), ocsp_nonce=sent)
    if accepted:
        assert good(pki, revocation) == "good"
    else:
        found = "no nonce" if nonce is None else "another nonce"
        refused(lambda: good(pki, revocation), match=rf"has {found} .*set ocsp\.nonce = false")


def test_an_answer_about_another_certificate_is_no_answer(pki: Pki) -> None:
    refused(lambda: good(pki, checker(Responder(lambda r: respond(r, pki.ca, serial_offset=1)))), match="no answer for")
    stranger = make_ca("CN=Attack CA,O=AMS,C=GB")  # same name, other key: its CertID hashes differ
    other_id = request_for(pki.leaf.certificate, stranger.certificate)
    about = (other_id.issuer_name_hash, other_id.issuer_key_hash)
    refused(lambda: good(pki, checker(Responder(lambda r: respond(r, pki.ca, about=about)))), match="no answer for")


@pytest.mark.parametrize("current", [True, False])
def test_a_delegated_responder_must_be_within_its_dates(pki: Pki, current: bool) -> None:
    start = now() - datetime.timedelta(days=30)
    end = now() + datetime.timedelta(days=30) if current else now() - datetime.timedelta(days=1)
    eku = [ExtendedKeyUsageOID.OCSP_SIGNING]
    delegate = issue(pki.ca, f"CN=responder {current}", not_before=start, not_after=end, extended_key_usage=eku)
    revocation = checker(Responder(lambda r: respond(r, delegate, certificates=(delegate.certificate,))))
    if current:
        assert good(pki, revocation) == "good"
    else:
        refused(lambda: good(pki, revocation), match="not signed by the issuing CA or a responder it delegated")


@pytest.mark.parametrize("source", ["crl", "ocsp"])
def test_a_rekeyed_ca_cannot_launder_a_revoked_serial_through_the_cache(source: str, tmp_path: Path) -> None:
    old, new = make_ca("CN=Rekeyed CA,O=AMS,C=GB"), make_ca("CN=Rekeyed CA,O=AMS,C=GB")
    serial = x509.random_serial_number()
    kept = issue(old, "CN=kept,O=AMS,C=GB", serial=serial)
    revoked = issue(new, "CN=revoked,O=AMS,C=GB", serial=serial)
    if source == "crl":
        (tmp_path / "old.pem").write_bytes(crl_of(old).public_bytes(serialization.Encoding.PEM))
        (tmp_path / "new.pem").write_bytes(crl_of(new, serial).public_bytes(serialization.Encoding.PEM))
        files = (tmp_path / "old.pem", tmp_path / "new.pem")
        revocation = RevocationChecker.online(RevocationSettings(crl_files=files))
    else:
        old_hash = request_for(kept.certificate, old.certificate).issuer_key_hash

        def answer(request: bytes) -> bytes:
            if ocsp.load_der_ocsp_request(request).issuer_key_hash == old_hash:
                return respond(request, old)
            return respond(request, new, status=ocsp.OCSPCertStatus.REVOKED)

        revocation = checker(Responder(answer))
    assert revocation.check(kept.certificate, old.certificate, now()) == "good"
    with pytest.raises(ams.errors.CertificateRevokedError, match=r"CN=revoked.*was revoked on .*key_compromise"):
        revocation.check(revoked.certificate, new.certificate, now())
    assert revocation.check(kept.certificate, old.certificate, now()) == "good"


# -- bytes that make cryptography raise ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        (None, ""),
        (UNKNOWN_RSA_OID, r"signed with OID 1\.2\.840\.113549\.1\.1\.127; expected RSA PKCS#1"),
        (MD5_WITH_RSA, r"signed with OID 1\.2\.840\.113549\.1\.1\.4; expected"),
    ],
)
def test_an_answer_signed_with_an_algorithm_we_do_not_verify_is_unknown(
    pki: Pki, patch: bytes | None, match: str
) -> None:
    def answer(request: bytes) -> bytes:
        data = respond(request, pki.ca)
        return data if patch is None else data.replace(SHA256_WITH_RSA, patch)

    revocation = checker(Responder(answer))
    if patch is None:
        assert good(pki, revocation) == "good"
        return
    if patch == UNKNOWN_RSA_OID:  # the very case where cryptography raises UnsupportedAlgorithm
        with pytest.raises(UnsupportedAlgorithm):
            _ = ocsp.load_der_ocsp_response(answer(request_bytes(pki))).signature_hash_algorithm
    refused(lambda: good(pki, revocation), match=match)


class Exploding:
    """Stands in for a parsed response whose every field raises, as a cryptography bug might."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(f"\x1b[31m{name} exploded")


class Bent:
    """A parsed object with some fields replaced by functions of nothing."""

    def __init__(self, inner: object, **fields: Callable[[], object]) -> None:
        self.inner, self.fields = inner, fields

    def __getattr__(self, name: str) -> object:
        return self.fields[name]() if name in self.fields else getattr(self.inner, name)


def _raise() -> object:
    raise ValueError("unparseable")


def test_fields_that_raise_make_the_answer_unknown(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocsp, "load_der_ocsp_response", lambda data: Exploding())
    message = refused(lambda: good(pki, checker(Responder(lambda r: b"anything"), ocsp_nonce=False)))
    assert "reading it failed (RuntimeError)" in message and "exploded" not in message


@pytest.mark.parametrize("status", [ocsp.OCSPCertStatus.REVOKED, ocsp.OCSPCertStatus.GOOD])
def test_a_revoked_answer_with_broken_details_still_revokes(
    pki: Pki, monkeypatch: pytest.MonkeyPatch, status: ocsp.OCSPCertStatus
) -> None:
    load = ocsp.load_der_ocsp_response

    def bent(data: bytes) -> object:
        answer = load(data)
        singles = [Bent(s, revocation_reason=_raise, revocation_time_utc=_raise) for s in answer.responses]
        return Bent(answer, responses=lambda: iter(singles))

    monkeypatch.setattr(ocsp, "load_der_ocsp_response", bent)
    revocation = checker(Responder(lambda r: respond(r, pki.ca, status=status)), hard_fail=False)
    if status == ocsp.OCSPCertStatus.GOOD:
        assert good(pki, revocation) == "good"
    else:
        with pytest.raises(ams.errors.CertificateRevokedError, match=r"CN=leaf.*was revoked according to the OCSP"):
            good(pki, revocation)


@pytest.mark.parametrize(
    "failure",
    [RuntimeError("\x1b[31m secret payload"), OSError(113, "No route to host"), ams.errors.KeystoreError("typed")],
)
def test_a_failing_fetch_is_a_problem_and_typed_errors_pass(pki: Pki, failure: Exception) -> None:
    def fail(request: bytes) -> bytes:
        raise failure

    revocation = checker(Responder(fail))
    if isinstance(failure, ams.AmsError):
        with pytest.raises(ams.errors.KeystoreError, match="typed"):
            good(pki, revocation)
        return
    message = refused(lambda: good(pki, revocation), match="did not answer usefully")
    assert "payload" not in message


def test_an_oversized_answer_from_an_injected_fetch_is_unknown(pki: Pki) -> None:
    refused(lambda: good(pki, checker(Responder(lambda r: b"\x30" * (256 * 1024 + 1)))), match="at most 262144")


@FUZZ
@given(data=st.binary(max_size=4096), hard=st.booleans())
def test_arbitrary_bytes_as_an_ocsp_response_are_never_good(pki: Pki, data: bytes, hard: bool) -> None:
    revocation = checker(Responder(lambda r: data), hard_fail=hard)
    if hard:
        refused(lambda: good(pki, revocation))
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert good(pki, revocation) == "unknown"
    assert [w.category for w in caught] == [ams.errors.AmsSecurityWarning]


@pytest.fixture(scope="module")
def genuine(pki: Pki) -> bytes:
    return respond(request_bytes(pki), pki.ca, nonce=None)


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4))
def test_a_mutated_genuine_response_ends_typed(pki: Pki, genuine: bytes, edits: list[tuple[int, int]]) -> None:
    data = bytearray(genuine)
    for at, value in edits:
        data[at % len(data)] = value
    revocation = checker(Responder(lambda r: bytes(data)), ocsp_nonce=False)
    try:
        result = good(pki, revocation)
    except ams.AmsError as error:
        assert len(str(error)) < 1000
    else:
        assert result == "good"  # a byte outside the signed part may change harmlessly


# -- CRL files ----------------------------------------------------------------------------------------


def crl_of(
    ca: Issued,
    *serials: int,
    key: ec.EllipticCurvePrivateKey | None = None,
    age: datetime.timedelta = datetime.timedelta(hours=1),
    revoked_at: datetime.datetime | None = None,
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now() - age)
        .next_update(now() + datetime.timedelta(days=1))
    )
    for serial in serials:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(revoked_at or now() - datetime.timedelta(hours=2))
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
        )
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(key or ca.key, hashes.SHA256())


def crl_checker(path: Path, data: bytes) -> RevocationChecker:
    path.write_bytes(data)
    return RevocationChecker.online(RevocationSettings(crl_files=(path,)))


def test_a_genuine_crl_revokes_and_accepts(pki: Pki, tmp_path: Path) -> None:
    crl = crl_of(pki.ca, pki.other.certificate.serial_number)
    revocation = crl_checker(tmp_path / "ca.crl", crl.public_bytes(serialization.Encoding.DER))
    assert good(pki, revocation) == "good"
    with pytest.raises(ams.errors.CertificateRevokedError, match="key_compromise"):
        revocation.check(pki.other.certificate, pki.ca.certificate, now())


def test_an_older_crl_cannot_hide_a_newer_revocation(pki: Pki, tmp_path: Path) -> None:
    older = crl_of(pki.ca, age=datetime.timedelta(days=2))  # still current, but from before the revocation
    newer = crl_of(pki.ca, pki.other.certificate.serial_number)
    (tmp_path / "older.pem").write_bytes(older.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "newer.pem").write_bytes(newer.public_bytes(serialization.Encoding.PEM))
    files = (tmp_path / "older.pem", tmp_path / "newer.pem")
    revocation = RevocationChecker.online(RevocationSettings(crl_files=files))
    assert good(pki, revocation) == "good"
    with pytest.raises(ams.errors.CertificateRevokedError, match="CN=other"):
        revocation.check(pki.other.certificate, pki.ca.certificate, now())


def test_a_revocation_dated_later_is_not_cached_away(pki: Pki, tmp_path: Path) -> None:
    later = now() + datetime.timedelta(hours=1)
    crl = crl_of(pki.ca, pki.other.certificate.serial_number, revoked_at=later)
    revocation = crl_checker(tmp_path / "ca.crl", crl.public_bytes(serialization.Encoding.DER))
    assert revocation.check(pki.other.certificate, pki.ca.certificate, now()) == "good"
    with pytest.raises(ams.errors.CertificateRevokedError, match="CN=other"):
        revocation.check(pki.other.certificate, pki.ca.certificate, later + datetime.timedelta(minutes=1))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\x00\x01garbage", "is not a CRL in PEM or DER: it is malformed"),
        (b"-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n-----END X509 CRL-----\n", "is not a CRL in PEM or DER"),
        (b"-----BEGIN X509 CRL-----\n" * 1000, "line without its END line"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "holds no CRL"),
        ("truncated", "is not a CRL in PEM or DER"),
    ],
)
def test_a_broken_crl_file_is_a_keystore_error_naming_it(
    pki: Pki, tmp_path: Path, content: bytes | str, match: str
) -> None:
    if content == "truncated":
        whole = crl_of(pki.ca, 1, 2, 3).public_bytes(serialization.Encoding.DER)
        content = whole[: len(whole) // 2]
    assert isinstance(content, bytes)
    where = re.escape(str(tmp_path / "broken.crl"))
    with pytest.raises(ams.errors.KeystoreError, match=rf"{where} \(crl\.file\).*{match}"):
        crl_checker(tmp_path / "broken.crl", content)


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        (None, ""),
        (UNKNOWN_RSA_OID, r"signed with OID 1\.2\.840\.113549\.1\.1\.127; expected RSA PKCS#1"),
        (MD5_WITH_RSA, r"signed with OID 1\.2\.840\.113549\.1\.1\.4; expected RSA PKCS#1"),
        (b"ecdsa", r"signed with OID 1\.2\.840\.10045\.4\.3\.2; expected RSA PKCS#1"),
    ],
)
def test_a_crl_signed_in_a_way_we_do_not_verify_is_unknown(
    pki: Pki, tmp_path: Path, patch: bytes | None, match: str
) -> None:
    if patch == b"ecdsa":  # the CA's name, but an EC key's signature
        data = crl_of(pki.ca, key=ec.generate_private_key(ec.SECP256R1())).public_bytes(serialization.Encoding.DER)
    else:
        data = crl_of(pki.ca).public_bytes(serialization.Encoding.DER)
        data = data if patch is None else data.replace(SHA256_WITH_RSA, patch)
    revocation = crl_checker(tmp_path / "odd.crl", data)
    if patch is None:
        assert good(pki, revocation) == "good"
    else:
        refused(lambda: good(pki, revocation), match=match)


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=2048),
        st.binary(max_size=1024).map(
            lambda b: b"-----BEGIN X509 CRL-----\n" + base64.encodebytes(b) + b"-----END X509 CRL-----\n"
        ),
    )
)
def test_arbitrary_bytes_as_a_crl_file_are_never_good(pki: Pki, tmp_path: Path, data: bytes) -> None:
    try:
        revocation = crl_checker(tmp_path / "fuzz.crl", data)
    except ams.errors.KeystoreError as error:
        assert len(str(error)) < 1000
        return
    refused(lambda: good(pki, revocation))


# -- settings -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ocsp.timeout", "5s"),
        ("ocsp.timeout", "-1"),
        ("ocsp.timeout", "0"),
        ("ocsp.timeout", "nan"),
        ("ocsp.timeout", "inf"),
        ("ocsp.timeout", "1e3"),
        ("ocsp.timeout", "601"),
        ("ocsp.max_age", "one hour"),
        ("ocsp.max_age", "-1"),
        ("ocsp.max_age", "1.5"),
        ("ocsp.max_age", "604801"),
        ("ocsp.max_response_size", "1MiB"),
        ("ocsp.max_response_size", "100"),
        ("ocsp.max_response_size", "nan"),
        ("ocsp.url", "https://ocsp.example/"),
        ("ocsp.url", "ldap://ocsp.example/"),
    ],
)
def test_bad_settings_name_the_key_and_the_expected_form(key: str, value: str) -> None:
    with pytest.raises(ams.errors.KeystoreError, match=rf"^\[keystore\] {re.escape(key)} = '.*': expected "):
        RevocationSettings.from_conf({key: value}, Path("."))


def test_good_settings_are_read() -> None:
    read = RevocationSettings.from_conf(
        {
            "ocsp.timeout": "2.5",
            "ocsp.max_age": "600",
            "ocsp.max_response_size": "65536",
            "ocsp.url": "http://o.test:8080/x",
        },
        Path("."),
    )
    assert (read.timeout, read.max_age, read.max_response_size) == (2.5, datetime.timedelta(minutes=10), 65536)
    default = RevocationSettings.from_conf({}, Path("."))
    assert (default.timeout, default.max_age, default.max_response_size) == (5.0, datetime.timedelta(hours=1), 262144)


@pytest.mark.parametrize(
    "options",
    [
        {"timeout": -1.0},
        {"timeout": float("nan")},
        {"timeout": float("inf")},
        {"max_age": datetime.timedelta(seconds=-1)},
        {"max_age": datetime.timedelta(days=30)},
        {"max_response_size": 10},
    ],
)
def test_bad_settings_through_the_api_are_usage_errors(options: dict[str, object]) -> None:
    with pytest.raises(ams.UsageError, match=r"RevocationSettings\.\w+ = .*: expected"):
        RevocationSettings(**options)  # type: ignore[arg-type]
