"""The network edge of revocation checking: POST one OCSP request over HTTP/1.0 to an http:// responder.

The responder and the network are hostile until the answer's signature is verified, so one deadline
covers the whole exchange (name lookup, connect, send and every receive), the answer is capped in
size, and errors never echo what the peer sent beyond a short, escaped status line.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
import urllib.parse

from ams.errors import clip

DEFAULT_MAX_RESPONSE_SIZE = 256 * 1024
MAX_HEADER_SIZE = 16 * 1024

# name lookups cannot be interrupted, so they run in daemon threads: a few at a time at most, so
# that a resolver an attacker stalls cannot pile up threads
_LOOKUPS = threading.BoundedSemaphore(4)


class OcspHttpError(Exception):
    """The responder could not be reached or its HTTP answer is unusable; the message is bounded."""


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be used as an OCSP responder, or None if it can."""
    try:
        _parse(url)
    except OcspHttpError as error:
        return str(error)
    return None


def http_post(url: str, body: bytes, timeout: float, *, max_size: int = DEFAULT_MAX_RESPONSE_SIZE) -> bytes:
    """POST ``body`` as an OCSP request and return the response body, all within ``timeout`` seconds.

    Raises :class:`OcspHttpError` for anything but an ``HTTP/1.x 200`` answer of at most ``max_size``
    bytes received in time.
    """
    deadline = time.monotonic() + timeout
    host, port, target = _parse(url)
    request = (
        f"POST {target} HTTP/1.0\r\nHost: {_host_header(host, port)}\r\nContent-Type: application/ocsp-request\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("ascii") + body
    try:
        with _connect(host, port, deadline, timeout) as connection:
            connection.settimeout(_remaining(deadline, timeout))
            connection.sendall(request)
            return _read_response(connection, deadline, timeout, max_size)
    except TimeoutError:
        raise OcspHttpError(f"no complete answer within {timeout:g} s (ocsp.timeout)") from None
    except OSError as error:
        raise OcspHttpError(error.strerror or type(error).__name__) from None


def _parse(url: str) -> tuple[str, int, str]:
    # checked on the raw text: urlsplit() silently drops tabs and newlines, which would change the URL
    if not url.isascii() or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise OcspHttpError("the URL has spaces, control or non-ASCII characters: percent-encode them")
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise OcspHttpError("the URL cannot be parsed: expected http://host[:port][/path]") from None
    if parts.scheme.lower() != "http":
        raise OcspHttpError("only http:// responders are supported (RFC 6960 OCSP over plain HTTP)")
    if not host:
        raise OcspHttpError("the URL names no host: expected http://host[:port][/path]")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return host, 80 if port is None else port, target


def _host_header(host: str, port: int) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port == 80 else f"{name}:{port}"


def _remaining(deadline: float, timeout: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _resolve(host: str, port: int, deadline: float, timeout: float) -> list[tuple[int, int, int, tuple[str, int]]]:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:  # a literal address needs no lookup
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 0, (host, port))]
    if not _LOOKUPS.acquire(timeout=_remaining(deadline, timeout)):
        raise TimeoutError
    found: list[tuple[int, int, int, tuple[str, int]]] = []
    failure: list[OSError] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            for family, kind, protocol, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
                found.append((family, kind, protocol, (str(address[0]), int(address[1]))))
        except OSError as error:
            failure.append(error)
        finally:
            _LOOKUPS.release()
            done.set()

    try:
        threading.Thread(target=lookup, name="ams-ocsp-lookup", daemon=True).start()
    except RuntimeError:  # no thread to be had: the lookup never runs
        _LOOKUPS.release()
        raise OcspHttpError("cannot start the host name lookup (too many threads)") from None
    if not done.wait(_remaining(deadline, timeout)):
        raise TimeoutError
    if failure:
        raise OcspHttpError(f"cannot resolve the responder's host name ({failure[0].strerror or 'lookup failed'})")
    return found


def _connect(host: str, port: int, deadline: float, timeout: float) -> socket.socket:
    last: OSError | None = None
    for family, kind, protocol, address in _resolve(host, port, deadline, timeout):
        connection = socket.socket(family, kind, protocol)
        try:
            connection.settimeout(_remaining(deadline, timeout))
            connection.connect(address)
        except OSError as error:  # TimeoutError included: the deadline is checked again for the next address
            connection.close()
            last = error
            if isinstance(error, TimeoutError):
                raise
            continue
        return connection
    raise last or OcspHttpError("the responder's host name has no address")


def _read_response(connection: socket.socket, deadline: float, timeout: float, max_size: int) -> bytes:
    received = bytearray()
    head: bytes | None = None
    expected: int | None = None  # the body's Content-Length, when the responder sends one
    while True:
        if head is not None:
            body_size = len(received)
            if body_size > max_size:
                raise OcspHttpError(f"the answer is larger than {max_size} bytes (ocsp.max_response_size)")
            if expected is not None and body_size >= expected:
                return bytes(received[:expected])
        connection.settimeout(_remaining(deadline, timeout))
        chunk = connection.recv(65536)
        if not chunk:
            break
        received += chunk
        if head is None:
            end = received.find(b"\r\n\r\n")
            if end < 0:
                if len(received) > MAX_HEADER_SIZE:
                    raise OcspHttpError(f"the HTTP header is longer than {MAX_HEADER_SIZE} bytes")
                continue
            head = bytes(received[:end])
            del received[: end + 4]
            expected = _check_head(head, max_size)
    if head is None:
        raise OcspHttpError("the connection closed before the end of the HTTP header")
    if len(received) > max_size:
        raise OcspHttpError(f"the answer is larger than {max_size} bytes (ocsp.max_response_size)")
    if expected is not None and len(received) < expected:
        raise OcspHttpError(f"the connection closed after {len(received)} of {expected} bytes")
    return bytes(received)


def _check_head(head: bytes, max_size: int) -> int | None:
    """The Content-Length the header announces, or None; raises unless the status is 200."""
    lines = head.split(b"\r\n")
    status = lines[0].split(None, 2)
    if len(status) < 2 or not status[0].startswith(b"HTTP/1.") or status[1] != b"200":
        shown = clip(lines[0][:200].decode("latin-1"), 100)
        raise OcspHttpError(f"HTTP status line '{shown}', expected 'HTTP/1.x 200'")
    length: int | None = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"transfer-encoding":
            raise OcspHttpError("the answer uses Transfer-Encoding, which an HTTP/1.0 request does not allow")
        if name == b"content-length":
            value = value.strip()
            if not value.isdigit() or len(value) > 12 or (length is not None and int(value) != length):
                raise OcspHttpError("the answer's Content-Length is not one decimal number")
            length = int(value)
            if length > max_size:
                raise OcspHttpError(
                    f"the answer announces {length} bytes, more than {max_size} (ocsp.max_response_size)"
                )
    return length
