"""A long-run mutation fuzzer over ams's public API, in one process (no atheris needed).

The rule it checks: whatever the bytes, every public function raises only ``ams.AmsError``
subclasses (or returns), never hangs, and takes time proportional to the input. For protected
messages also: a mutated message is refused, or accepted with the ORIGINAL payload (integrity,
privacy); confidentiality (no MAC, by AMS's design) may give a garbled payload, never one of
another length.

Run it::

    .venv/bin/python -m tests.security.fuzz --target all --inputs 20000
    .venv/bin/python -m tests.security.fuzz --target unprotect --inputs 1000000 --seed 7
    .venv/bin/python -m tests.security.fuzz --replay fuzz-crashes/unprotect/<site>.bin
    .venv/bin/python -m tests.security.fuzz --target all --scaling   # time inputs of 16 KiB .. 4 MiB

For hours (``--seconds`` bounds each target, so ``--target all --seconds 3600`` runs 8 hours; Ctrl-C
or SIGTERM still prints the report). ``fuzz-crashes/`` must be git-ignored::

    nohup .venv/bin/python -m tests.security.fuzz --target all --inputs 100000000 --seconds 3600 \\
        --seed "$RANDOM" --crashes fuzz-crashes > fuzz.log 2>&1 &

Targets (``--target`` takes one, a comma list, or all): unprotect, inspect, headers, keystore_conf,
policy_files, pcf, crl, ocsp. Seeds are valid inputs made on the spot; each input applies 1-8
mutations (bit flips, interesting bytes and 32-bit words, inserted/deleted/duplicated ranges, splices
from other seeds, large DER lengths, truncation), landing mostly inside the CMS blob after the PDMQ
header, inside the DER of a PEM file, or inside the plaintext of a privacy message (re-encrypted for
the recipient, as any sender can). Inputs whose AmsError (raising line and text, numbers left out)
is new join the corpus: cheap feedback in place of coverage. unprotect runs with decryption
diagnostics on, so that a non-AmsError hidden behind the one DecryptionError is a finding ("masked").

For each distinct crash site (exception type + innermost ``ams/`` frame) a minimised reproducer
goes to ``--crashes DIR/<target>/<site>.bin`` with a ``.json`` sidecar (type, message, traceback,
seed, variant); inputs slower than ``--slow`` seconds go to ``DIR/<target>/slow-*.bin``. The keys are
kept in ``DIR/pki`` so that ``--replay`` decrypts with the same keys. The exit status is 1 when a
crash, a hang or a rule violation was found. Keys are 1,024-bit RSA for speed (``--bits``) and the
PKCS#12 keystore uses one KDF round: the parsing code is the same whatever the key size.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import hashlib
import json
import os
import random
import re
import signal
import struct
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, ClassVar, Generic, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

import ams
import ams.errors
from ams.hazmat import der, mqheaders
from ams.hazmat.enveloped import build_enveloped_data
from ams.hazmat.oids import ID_SIGNED_DATA
from ams.hazmat.pdmq import V2_SIZE, V3_SIZE, PdmqHeader
from ams.hazmat.signed import SignedDataWriter
from ams.inspect import inspect_message, render
from ams.keys import RevocationChecker, RevocationSettings
from ams.mqconstants import MQDLH_LENGTH, MQFMT_NONE
from ams.pki import Issued, issue, make_ca, new_key
from ams.policy import PcfMessage, encode_policy_queue, render_dspmqspl, to_mqsc
from ams.policy.dspmqspl import parse_dspmqspl
from ams.policy.mqsc import delete_mqsc
from ams.policy.pcf import INDEX_CORREL_ID, decode_index, decode_policy, decode_policy_queue, encode_policy

C = TypeVar("C")
T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
SRC_PREFIX = str(Path(ams.__file__).resolve().parent) + os.sep
DEFAULT_BITS = 1024
DEFAULT_MAX_SIZE = 256 * 1024
DEFAULT_SLOW = 1.0
DEFAULT_TIMEOUT = 30.0
CORPUS_SIZE = 2000  # mutants kept per target for further mutation
OCSP_URL = "http://127.0.0.1:1/"
PASSWORD = "fuzz-secret"

# -- mutations ---------------------------------------------------------------------------------

INTERESTING_BYTES = (0x00, 0x7F, 0x80, 0xFF)
# counts and lengths in PDMQ, MQ and PCF headers: boundaries, the header sizes, sign changes
INTERESTING_INT32 = (
    0,
    1,
    -1,
    2,
    3,
    4,
    8,
    16,
    36,
    104,
    112,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x10000,
    0x7FFFFFFF,
    -0x80000000,
    -2,
)
DER_TAGS = frozenset({0x02, 0x03, 0x04, 0x05, 0x06, 0x0C, 0x13, 0x17, 0x18, 0x30, 0x31, 0x80, 0x81, 0xA0, 0xA1, 0xA3})
# replacements for a DER length field: huge, past the container, indefinite, non-minimal, too many octets
LARGE_LENGTHS = (
    b"\x84\xff\xff\xff\xff",
    b"\x84\x7f\xff\xff\xff",
    b"\x84\x00\x00\x01\x00",
    b"\x83\xff\xff\xff",
    b"\x82\xff\xff",
    b"\x82\x00\x05",
    b"\x81\xff",
    b"\x81\x05",
    b"\x80",
    b"\x7f",
    b"\x00",
    b"\x85\x01\x00\x00\x00\x00",
    b"\x88\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\xff",
)
_LENGTHS = (1, 1, 1, 2, 3, 4, 8, 16, 32, 64, 256, 1024)


class Mutator:
    """Applies random mutations to bytes, mostly inside the weighted ``regions``.

    ``regions`` are (start, end, weight) triples; ``der`` are offsets of DER TLV headers (for the
    length mutation); ``splice`` are other inputs to copy ranges from.
    """

    def __init__(
        self,
        rng: random.Random,
        *,
        regions: Sequence[tuple[int, int, float]] = (),
        der: Sequence[int] = (),
        splice: Sequence[bytes] = (),
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        self.rng = rng
        self.regions = list(regions)
        self.weights = [w for _, _, w in regions]
        self.der = der
        self.splice = splice
        self.max_size = max_size
        self.operations: list[tuple[Callable[[bytearray], None], float]] = [
            (self.flip_bit, 3.0),
            (self.interesting_byte, 2.0),
            (self.random_byte, 1.0),
            (self.add_to_byte, 1.0),
            (self.interesting_word, 1.5),
            (self.insert, 1.0),
            (self.delete, 1.5),
            (self.duplicate, 1.0),
            (self.splice_in, 1.0),
            (self.der_length, 2.0),
            (self.truncate, 0.5),
        ]

    def apply(self, data: bytes, count: int) -> bytes:
        buf = bytearray(data)
        functions = [op for op, _ in self.operations]
        weights = [w for _, w in self.operations]
        for _ in range(count):
            self.rng.choices(functions, weights)[0](buf)
            if len(buf) > self.max_size:
                del buf[self.max_size :]
        return bytes(buf)

    def position(self, buf: bytearray) -> int:
        """An offset in ``buf``: inside a region most of the time (where the structure is)."""
        size = len(buf)
        if size == 0:
            return 0
        if self.regions and self.rng.random() < 0.85:
            start, end, _ = self.rng.choices(self.regions, self.weights)[0]
            start = min(start, size - 1)
            end = min(max(end, start + 1), size)
            return self.rng.randrange(start, end)
        return self.rng.randrange(size)

    def length(self, limit: int) -> int:
        return max(1, min(limit, self.rng.choice(_LENGTHS)))

    def flip_bit(self, buf: bytearray) -> None:
        if buf:
            buf[self.position(buf)] ^= 1 << self.rng.randrange(8)

    def interesting_byte(self, buf: bytearray) -> None:
        if buf:
            buf[self.position(buf)] = self.rng.choice(INTERESTING_BYTES)

    def random_byte(self, buf: bytearray) -> None:
        if buf:
            buf[self.position(buf)] = self.rng.randrange(256)

    def add_to_byte(self, buf: bytearray) -> None:
        if buf:
            at = self.position(buf)
            buf[at] = (buf[at] + self.rng.choice((-16, -2, -1, 1, 2, 16))) & 0xFF

    def interesting_word(self, buf: bytearray) -> None:
        """A 32-bit count or length (PDMQ, MQ and PCF headers), in either byte order, often aligned."""
        if len(buf) < 4:
            return
        at = self.position(buf)
        if self.rng.random() < 0.6:
            at -= at % 4
        at = min(at, len(buf) - 4)
        struct.pack_into(self.rng.choice("<>") + "i", buf, at, self.rng.choice(INTERESTING_INT32))

    def insert(self, buf: bytearray) -> None:
        at = self.position(buf) if buf else 0
        size = self.length(64)
        if self.rng.random() < 0.5:
            piece = bytes([self.rng.choice(INTERESTING_BYTES)]) * size
        else:
            piece = self.rng.randbytes(size)
        buf[at:at] = piece

    def delete(self, buf: bytearray) -> None:
        if buf:
            at = self.position(buf)
            del buf[at : at + self.length(len(buf) - at)]

    def duplicate(self, buf: bytearray) -> None:
        """A range copied elsewhere, sometimes hundreds of times (many certificates, recipients...)."""
        if not buf:
            return
        start = self.position(buf)
        piece = bytes(buf[start : start + self.length(len(buf) - start)])
        times = 1 if self.rng.random() < 0.8 else self.rng.choice((2, 8, 64, 512))
        room = max(0, self.max_size - len(buf))
        times = max(1, min(times, room // len(piece))) if room >= len(piece) else 1
        at = self.position(buf)
        buf[at:at] = piece * times

    def splice_in(self, buf: bytearray) -> None:
        """A range of another seed, written over this input or inserted into it."""
        if not self.splice:
            return
        other = self.rng.choice(self.splice)
        if not other:
            return
        start = self.rng.randrange(len(other))
        piece = other[start : start + self.length(len(other) - start)]
        at = self.position(buf) if buf else 0
        if self.rng.random() < 0.5:
            buf[at : at + len(piece)] = piece
        else:
            buf[at:at] = piece

    def der_length(self, buf: bytearray) -> None:
        """Overwrite the length field of a DER element with a large, broken or off-by-some value."""
        candidates = [o for o in self.der if o + 1 < len(buf)]
        if not candidates:
            for _ in range(8):  # no map of this input's DER: guess at tag bytes
                guess = self.position(buf) if buf else 0
                if guess + 1 < len(buf) and buf[guess] in DER_TAGS:
                    candidates.append(guess)
                    break
        if not candidates:
            return
        offset = self.rng.choice(candidates)
        first = buf[offset + 1]
        octets = 0 if first < 0x80 else min(first & 0x7F, 4)
        current = int.from_bytes(buf[offset + 2 : offset + 2 + octets], "big") if octets else first
        if self.rng.random() < 0.6:
            replacement = self.rng.choice(LARGE_LENGTHS)
        else:
            replacement = der.length(max(0, current + self.rng.choice((-2, -1, 1, 2, 0x80, 0x100, 0x10000))))
        buf[offset + 1 : offset + 2 + octets] = replacement

    def truncate(self, buf: bytearray) -> None:
        if buf:
            del buf[self.position(buf) :]


def der_offsets(data: bytes, start: int = 0, end: int | None = None, limit: int = 4096) -> tuple[int, ...]:
    """Offsets of the TLV headers in a DER blob, by a best-effort walk (also into OCTET/BIT STRINGs
    that happen to hold DER): where the length mutation aims."""
    found: list[int] = []
    stack = [(start, len(data) if end is None else min(end, len(data)))]
    while stack and len(found) < limit:
        offset, stop = stack.pop()
        while offset + 2 <= stop and len(found) < limit:
            tag, first = data[offset], data[offset + 1]
            if first < 0x80:
                size, body = first, offset + 2
            elif 0x81 <= first <= 0x84 and offset + 2 + (first & 0x7F) <= stop:
                octets = first & 0x7F
                size, body = int.from_bytes(data[offset + 2 : offset + 2 + octets], "big"), offset + 2 + octets
            else:
                break
            if body + size > stop:
                break
            found.append(offset)
            if tag & 0x20 or (tag == 0x04 and size > 2 and data[body] in (0x30, 0x31, 0x02)):
                stack.append((body, body + size))
            elif tag == 0x03 and size > 3 and data[body + 1] == 0x30:
                stack.append((body + 1, body + size))
            offset = body + size
    return tuple(sorted(found))


@dataclass(frozen=True)
class Seed(Generic[C]):
    """A valid input and what the target needs to judge its mutants (``context``).

    ``inner``/``wrap``: the DER inside a PEM seed, and how to wrap mutated DER back into PEM, so
    that most mutants are well-formed PEM around broken DER (rather than broken base64).
    """

    label: str
    data: bytes
    context: C
    regions: tuple[tuple[int, int, float], ...] = ()
    der: tuple[int, ...] = ()
    inner: bytes | None = None
    wrap: Callable[[bytes], bytes] | None = None
    expect_ok: bool = True  # whether the seed itself runs without any AmsError (a sanity check of the harness)


def mutation_count(rng: random.Random) -> int:
    """1 to 8, fewer more often: each length-changing mutation pushes later checks out of reach."""
    return min(8, 1 + int(rng.expovariate(0.45)))


def make_mutant(
    rng: random.Random,
    seed: Seed[Any],
    splice: Sequence[bytes],
    *,
    base: bytes | None = None,
    count: int | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
) -> tuple[bytes, bytes | None]:
    """One mutant of ``seed`` (or of ``base``, an earlier mutant of it), 1-8 mutations unless ``count``;
    and the mutated inner bytes when the mutations went inside the seed's wrapping."""
    count = count if count is not None else mutation_count(rng)
    if base is None and seed.inner is not None and seed.wrap is not None and rng.random() < 0.7:
        mutator = Mutator(rng, der=seed.der, splice=splice, max_size=max_size)
        inner = mutator.apply(seed.inner, count)
        return seed.wrap(inner), inner
    der_map = seed.der if seed.inner is None else ()
    mutator = Mutator(rng, regions=seed.regions, der=der_map, splice=splice, max_size=max_size)
    return mutator.apply(seed.data if base is None else base, count), None


def make_input(
    rng: random.Random,
    seed: Seed[Any],
    splice: Sequence[bytes],
    *,
    count: int | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
) -> bytes:
    """One mutant of ``seed``: what the Hypothesis twin draws."""
    return make_mutant(rng, seed, splice, count=count, max_size=max_size)[0]


def pem_wrapper(label: str) -> Callable[[bytes], bytes]:
    def wrap(data: bytes) -> bytes:
        return f"-----BEGIN {label}-----\n".encode() + base64.encodebytes(data) + f"-----END {label}-----\n".encode()

    return wrap


# -- outcomes ----------------------------------------------------------------------------------


class RuleViolation(AssertionError):
    """A rule broken without an exception escaping the API (an accepted message with the wrong body)."""

    def __init__(self, site: str, message: str, *, kind: str = "rule") -> None:
        super().__init__(f"{site}: {message}")
        self.site = site
        self.message = message
        self.kind = kind


class Hang(BaseException):
    """Raised by the alarm; a BaseException so that the library's broad ``except Exception`` cannot eat it."""


def _frames(tb: TracebackType | None) -> list[tuple[str, int]]:
    out = []
    while tb is not None:
        out.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno))
        tb = tb.tb_next
    return out


def _shown_path(filename: str) -> str:
    path = Path(filename)
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(REPO))
    parts = path.parts
    for anchor in ("site-packages", "lib"):  # library files: from the package name on
        if anchor in parts:
            return "/".join(parts[len(parts) - parts[::-1].index(anchor) :])
    return filename


def where(error: BaseException) -> str:
    """The innermost ams/ frame of ``error``'s traceback as file:line (else the innermost frame)."""
    frames = _frames(error.__traceback__)
    inside = [frame for frame in frames if frame[0].startswith(SRC_PREFIX)]
    filename, line = (inside or frames or [("?", 0)])[-1]
    return f"{_shown_path(filename)}:{line}"


_LINE = re.compile(r"@([^:|]+:\d+)")
_NUMBERS = re.compile(r"0x[0-9a-fA-F]+|\d+")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def outcome_key(error: ams.AmsError) -> str:
    """Where an AmsError was raised and the shape of its text (numbers and quoted values left out):
    revocation problems, for one, are all raised on one line and differ only in the text."""
    shape = _NUMBERS.sub("#", _QUOTED.sub("'.'", error.message))[:240]
    return f"{error.code}@{where(error)}:{shape}"


def type_name(error: BaseException) -> str:
    kind = type(error)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def format_traceback(error: BaseException, limit: int = 6000) -> str:
    import traceback

    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return text if len(text) <= limit else text[:limit] + "\n... (cut)"


@dataclass
class Finding:
    kind: str  # "crash", "hang" or "rule"
    site: str
    exception: str
    message: str
    location: str
    trace: str


@dataclass
class Outcome:
    elapsed: float
    key: str  # which AmsErrors were raised where (or "ok"): a cheap stand-in for coverage
    finding: Finding | None


def _short(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


class Target(Generic[C]):
    """One public entry point, its seeds, and how to call it with a mutant; ``run`` raises
    AmsErrors (allowed), RuleViolation (a broken rule) or anything else (a crash)."""

    name: ClassVar[str] = ""
    variants: ClassVar[int] = 1  # ways of calling with the same bytes (format, nonce, hard/soft fail...)

    def __init__(self, seeds: list[Seed[C]]) -> None:
        self.seeds = seeds
        self.by_label = {seed.label: seed for seed in seeds}
        self.splice = [seed.inner if seed.inner is not None else seed.data for seed in seeds]
        self.trail: list[str] = []

    def run(self, seed: Seed[C], data: bytes, variant: int) -> None:
        raise NotImplementedError

    def attempt(self, call: Callable[[], T]) -> T | None:
        """``call()``, an AmsError being one allowed outcome (noted for the corpus feedback)."""
        try:
            return call()
        except ams.AmsError as error:
            self.trail.append(outcome_key(error))
            return None


def execute(target: Target[Any], seed: Seed[Any], data: bytes, variant: int, timeout: float | None = None) -> Outcome:
    """Run one input, timed, with an alarm after ``timeout`` seconds (main thread only)."""
    target.trail.clear()
    finding: Finding | None = None
    key = ""
    start = time.perf_counter()
    try:
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            target.run(seed, data, variant)
        finally:
            if timeout:
                signal.setitimer(signal.ITIMER_REAL, 0)
        key = "ok"
    except ams.AmsError as error:
        key = outcome_key(error)
    except RuleViolation as violation:
        finding = Finding(
            violation.kind, f"{violation.kind} {violation.site}", "RuleViolation", violation.message, "", ""
        )
    except Hang as hang:
        finding = Finding("hang", f"hang at {where(hang)}", "Hang", str(hang), where(hang), format_traceback(hang))
    except Exception as error:
        site = f"{type_name(error)} at {where(error)}"
        finding = Finding("crash", site, type_name(error), _short(str(error)), where(error), format_traceback(error))
    elapsed = time.perf_counter() - start
    return Outcome(elapsed, "|".join([*target.trail, key]), finding)


def _raise_hang(signum: int, frame: FrameType | None) -> None:
    raise Hang("the call did not return within the --timeout")


# -- the world: keys, certificates, policies, files --------------------------------------------

USERS = ("alice", "bob", "carol", "dave")


def dn(user: str) -> str:
    return f"CN={user},O=AMS,C=GB"


POLICY_LINES = (
    "setmqspl -m QM -p INT.SHA256 -s SHA256",
    f'setmqspl -m QM -p INT.SHA512 -s SHA512 -a "{dn("alice")}"',
    f'setmqspl -m QM -p PRIV.ONE -s SHA256 -e AES256 -r "{dn("bob")}"',
    f'setmqspl -m QM -p PRIV.THREE -s SHA256 -e AES256 -r "{dn("bob")}" -r "{dn("carol")}" -r "{dn("dave")}"',
    f'setmqspl -m QM -p PRIV.RFH2 -s SHA256 -e AES256 -r "{dn("bob")}"',
    f'setmqspl -m QM -p CONF.FRESH -e AES256 -r "{dn("bob")}"',
    f'setmqspl -m QM -p CONF.REUSE -e AES256 -r "{dn("bob")}" -c 10',
)


def _make_pki(bits: int) -> dict[str, Issued]:
    ca = make_ca("CN=Fuzz CA,O=AMS,C=GB", key=new_key(bits))
    pki = {"ca": ca, "foreign": make_ca("CN=Foreign CA,O=ELSEWHERE,C=US", key=new_key(bits))}
    for user in USERS:
        pki[user] = issue(ca, dn(user), key=new_key(bits))
    pki["responder"] = issue(
        ca, "CN=Fuzz OCSP,O=AMS,C=GB", key=new_key(bits), extended_key_usage=(ExtendedKeyUsageOID.OCSP_SIGNING,)
    )
    return pki


def load_or_make_pki(bits: int, cache: Path | None) -> dict[str, Issued]:
    """The test PKI; kept in ``cache`` (when given) so that reproducers replay with the same keys."""
    names = ("ca", "foreign", *USERS, "responder")
    if cache is not None:
        try:
            loaded = {}
            for name in names:
                key = serialization.load_pem_private_key((cache / f"{name}.key.pem").read_bytes(), None)
                certificate = x509.load_pem_x509_certificate((cache / f"{name}.cert.pem").read_bytes())
                if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != bits:
                    raise ValueError("another key size")
                if certificate.not_valid_after_utc < datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=7):
                    raise ValueError("about to expire")
                loaded[name] = Issued(key, certificate)
            return loaded
        except (OSError, ValueError):
            pass
    pki = _make_pki(bits)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        for name, issued in pki.items():
            key_pem = issued.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            (cache / f"{name}.key.pem").write_bytes(key_pem)
            (cache / f"{name}.cert.pem").write_bytes(issued.certificate.public_bytes(serialization.Encoding.PEM))
    return pki


class World:
    """Everything the targets share: the PKI, keystores, policies, and a directory for files."""

    def __init__(self, workdir: Path, *, bits: int = DEFAULT_BITS, pki_cache: Path | None = None) -> None:
        self.workdir = workdir
        self.bits = bits
        self.pki = load_or_make_pki(bits, pki_cache)
        self.ca = self.pki["ca"]
        # one validation time for the whole run, so that a replay judges dates alike
        self.now = datetime.datetime.now(datetime.UTC)
        self.policies = ams.PolicyStore.of(*(ams.Policy.from_setmqspl(line) for line in POLICY_LINES))

    def keystore(self, user: str) -> ams.Keystore:
        me = self.pki[user]
        others = [self.ca.certificate] + [self.pki[u].certificate for u in USERS if u != user]
        return ams.Keystore(ams.Identity(me.certificate, me.key), others, source=f"{user}'s fuzz keystore")

    def write_keystore_files(self, directory: Path, user: str = "bob") -> Path:
        """PKCS#12, PEM, DER and CRL files for ``user``, and a keystore.conf (mode 0600) for the PKCS#12."""
        directory.mkdir(parents=True, exist_ok=True)
        me = self.pki[user]
        # one KDF round: loading the PKCS#12 is what is fuzzed, not PBKDF2
        encryption = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(1)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
            .build(PASSWORD.encode())
        )
        others = [self.ca.certificate] + [self.pki[u].certificate for u in USERS if u != user]
        bundle = pkcs12.serialize_key_and_certificates(user.encode(), me.key, me.certificate, others, encryption)
        pem = serialization.Encoding.PEM
        files = {
            f"{user}.p12": bundle,
            f"{user}.pem": me.certificate.public_bytes(pem),
            f"{user}.key.pem": me.key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            f"{user}.enc.key.pem": me.key.private_bytes(
                pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.BestAvailableEncryption(b"pw")
            ),
            "ca.pem": self.ca.certificate.public_bytes(pem),
            "ca.crl": self.crl([]).public_bytes(pem),
            "ca.crl.der": self.crl([self.pki["carol"]]).public_bytes(serialization.Encoding.DER),
        }
        certs = directory / "certs"
        certs.mkdir(exist_ok=True)
        files["certs/alice.pem"] = self.pki["alice"].certificate.public_bytes(pem)
        files["certs/carol.der"] = self.pki["carol"].certificate.public_bytes(serialization.Encoding.DER)
        for name, content in files.items():
            path = directory / name
            path.write_bytes(content)
            path.chmod(0o600)
        conf = directory / "keystore.conf"
        conf.write_text(
            f"pkcs12.keystore = {user}.p12\npkcs12.keystore_pass = {PASSWORD}\npkcs12.certificate = {user}\n"
        )
        conf.chmod(0o600)
        return conf

    def write_policy_directory(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "fuzz.spl").write_text("\n".join(POLICY_LINES) + "\n")
        return directory

    def crl(
        self,
        revoked: Sequence[Issued],
        *,
        issuer: Issued | None = None,
        last: datetime.timedelta = datetime.timedelta(hours=-1),
        lifetime: datetime.timedelta = datetime.timedelta(days=7),
        algorithm: hashes.SHA256 | hashes.SHA512 | None = None,
        extra_serials: int = 0,
    ) -> x509.CertificateRevocationList:
        signer = issuer or self.ca
        this_update = self.now + last
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(signer.certificate.subject)
            .last_update(this_update)
            .next_update(this_update + lifetime)
            .add_extension(x509.CRLNumber(7), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.key.public_key()), critical=False)
        )
        serials = [(c.certificate.serial_number, True) for c in revoked]
        serials += [(1000 + n, n % 2 == 0) for n in range(extra_serials)]
        for serial, with_reason in serials:
            entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(this_update)
            if with_reason:
                entry = entry.add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
                entry = entry.add_extension(x509.InvalidityDate(this_update.replace(tzinfo=None)), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        return builder.sign(signer.key, algorithm or hashes.SHA256())


def _rfh2(next_format: str = "MQSTR", folder: bytes = b"<usr><Colour>blue</Colour></usr>") -> bytes:
    folder += b" " * (-len(folder) % 4)
    fixed = struct.pack("<4siiii8sii", b"RFH ", 2, 40 + len(folder), 546, 1208, next_format.ljust(8).encode(), 0, 1208)
    return fixed + struct.pack("<i", len(folder)) + folder


def _dlh(next_format: str) -> bytes:
    head = b"DLH " + struct.pack("<ii", 1, 2063) + b"DEST.Q".ljust(48) + b"QM".ljust(48)
    return (head + struct.pack("<ii", 546, 1208) + next_format.ljust(8).encode()).ljust(MQDLH_LENGTH, b"\x00")


# -- message targets: unprotect, inspect, headers ----------------------------------------------


@dataclass(frozen=True)
class Message:
    queue: str
    format: str
    payload: bytes  # what was protected: the body after the clear headers
    qop: ams.QoP
    reuse: bool
    pdmq_offset: int = 0  # where the PDMQ header starts: after the clear headers


PAYLOADS = (b"", b"\x00", b"hello, fuzz: 0123456789abcdef", bytes(range(256)) + b"tail")


def message_seeds(world: World) -> list[Seed[Message]]:
    """Valid messages of every QoP, with clear header chains, empty payloads and key reuse."""
    alice = ams.Protector(world.keystore("alice"), world.policies)
    plan: list[tuple[str, str, bytes, tuple[bytes, ...]]] = [
        ("INT.SHA256", "MQSTR", b"", PAYLOADS),
        ("INT.SHA256", "MQDEAD", _dlh("MQHRF2") + _rfh2(), PAYLOADS[:3]),
        ("INT.SHA512", "MQSTR", b"", PAYLOADS[2:]),
        ("PRIV.ONE", "MQSTR", b"", PAYLOADS),
        ("PRIV.THREE", "MQSTR", b"", PAYLOADS[2:]),
        ("PRIV.RFH2", "MQHRF2", _rfh2(), (b"", *PAYLOADS[2:])),
        ("CONF.FRESH", "MQSTR", b"", PAYLOADS),
        ("CONF.REUSE", "MQSTR", b"", (PAYLOADS[2], PAYLOADS[3], PAYLOADS[0], PAYLOADS[2])),
    ]
    seeds: list[Seed[Message]] = []
    seeds += privacy_plaintext_seeds(world)
    for queue, fmt, prefix, payloads in plan:
        for number, payload in enumerate(payloads):
            protected = alice.protect(queue, prefix + payload, fmt)
            data = protected.body
            policy = world.policies[queue]
            start = len(prefix)
            blob = start + (V3_SIZE if policy.qop is ams.QoP.CONFIDENTIALITY else V2_SIZE)
            header = PdmqHeader.unpack(data[start:])
            der_end = blob + header.key_block_size if header.key_block_size else len(data)
            regions = [(blob, len(data), 0.6), (start, blob, 0.25), (0, len(data), 0.15)]
            if prefix:
                regions.append((0, start, 0.1))
            context = Message(queue, protected.format, payload, policy.qop, header.key_reuse, start)
            seeds.append(
                Seed(
                    f"{queue}/{fmt}/{len(payload)}B/{number}",
                    data,
                    context,
                    tuple(regions),
                    der_offsets(data, blob, der_end),
                )
            )
    return seeds


def _names(kind: type[BaseException]) -> set[str]:
    return {kind.__name__}.union(*(_names(sub) for sub in kind.__subclasses__()))


_DIAGNOSTIC = re.compile(r"(.*) failed \((\w+)\)$")


def check_diagnostic(error: ams.errors.DecryptionError) -> None:
    """The decryption path turns every failure into one DecryptionError; its local diagnostic names the
    failure's class. Anything but an AmsError there is a crash the one error hides."""
    match = _DIAGNOSTIC.fullmatch(error.diagnostic or "")
    if match is not None and match.group(2) not in _names(ams.AmsError):
        raise RuleViolation(
            f"{match.group(2)} while {match.group(1)}",
            f"DecryptionError hides a {match.group(2)} ({error.diagnostic})",
            kind="masked",
        )


def privacy_plaintext_seeds(world: World) -> list[Seed[Message]]:
    """Privacy messages whose mutations mostly go into the plaintext: anyone with the recipient's
    certificate can encrypt any plaintext, so the parser of decrypted SignedData sees arbitrary bytes."""
    alice = world.keystore("alice").identity
    assert alice is not None
    writer = SignedDataWriter(alice.certificate, alice.private_key, ams.SignatureAlgorithm.SHA256)
    bob = world.pki["bob"].certificate
    seeds: list[Seed[Message]] = []
    for number, payload in enumerate(PAYLOADS):
        plaintext = b"".join(bytes(part) for part in writer.content_parts(payload or b"\x00"))
        header = PdmqHeader(ams.QoP.PRIVACY, max(1, len(payload)), "MQSTR   ", "PRIV.ONE", empty=not payload).pack()
        key = os.urandom(32)

        def wrap(inner: bytes, header: bytes = header, key: bytes = key) -> bytes:
            parts, _ = build_enveloped_data([bob], ams.EncryptionAlgorithm.AES256, ID_SIGNED_DATA, [inner], key=key)
            return header + b"".join(bytes(part) for part in parts)

        data = wrap(plaintext)
        context = Message("PRIV.ONE", MQFMT_NONE, payload, ams.QoP.PRIVACY, False)
        regions = ((V2_SIZE, len(data), 0.6), (0, V2_SIZE, 0.25), (0, len(data), 0.15))
        label = f"PRIV.ONE/plaintext/{len(payload)}B/{number}"
        seeds.append(Seed(label, data, context, regions, der_offsets(plaintext), plaintext, wrap))
    return seeds


class UnprotectTarget(Target[Message]):
    """``Protector.unprotect``, the body rule for whatever it accepts, and what the decryption error hides."""

    name = "unprotect"
    variants = 2  # 1: the genuine key-reuse message is read first, so its key is cached

    def __init__(self, world: World, seeds: list[Seed[Message]]) -> None:
        super().__init__(seeds)
        self.world = world
        self.bob = world.keystore("bob")
        # integrity and privacy read through one long-lived handle (its caches are part of what is fuzzed)
        self.receiver = self.protector()

    def protector(self) -> ams.Protector:
        # diagnostics on: they name the class of a failure hidden behind the one decryption error
        return ams.Protector(self.bob, self.world.policies, at=self.world.now, diagnose_decryption=True)

    def run(self, seed: Seed[Message], data: bytes, variant: int) -> None:
        message = seed.context
        receiver = self.receiver
        if message.qop is ams.QoP.CONFIDENTIALITY:
            # a fresh handle: the key-reuse cache would make the outcome depend on earlier inputs
            receiver = self.protector()
            if variant == 1 and message.reuse:
                receiver.unprotect(message.queue, seed.data, message.format)
        try:
            result = receiver.unprotect(message.queue, data, message.format)
        except ams.errors.DecryptionError as error:
            check_diagnostic(error)
            raise
        check_body(message, data, result)


def check_body(message: Message, data: bytes, result: ams.Unprotected) -> None:
    """Accepted: the original payload (integrity, privacy) or one of the original length (confidentiality)."""
    # the clear headers are not protected by AMS's design: compare what follows them
    chain = mqheaders.walk(data, message.format)
    payload = result.body[chain.payload_offset :]
    qop = message.qop.name.lower()
    # b"" and b"\x00" are told apart by the PDMQ empty flag alone: a site of its own, so that it cannot
    # hide other length changes
    swapped = {bytes(payload), message.payload} == {b"", b"\x00"}
    if message.qop is ams.QoP.CONFIDENTIALITY:
        if len(payload) != len(message.payload):
            raise RuleViolation(
                f"body-rule/{qop}/{'empty-flag' if swapped else 'length'}",
                f"a mutated {message.queue} message was accepted with a {len(payload)}-byte payload "
                f"({payload[:16]!r}); the original has {len(message.payload)} bytes; result qop {result.qop}",
            )
    elif payload != message.payload:
        kind = "empty-flag" if swapped else "length" if len(payload) != len(message.payload) else "content"
        raise RuleViolation(
            f"body-rule/{qop}/{kind}",
            f"a mutated {message.queue} message was accepted with payload {_short(repr(payload), 80)} "
            f"({len(payload)} bytes); the original is {_short(repr(message.payload), 80)} "
            f"({len(message.payload)} bytes); result qop {result.qop}",
        )


class InspectTarget(Target[Message]):
    """``ams.inspect.inspect_message`` and what ``ams inspect`` does with its report."""

    name = "inspect"

    def __init__(self, world: World, seeds: list[Seed[Message]]) -> None:
        super().__init__(seeds)
        self.bob = world.keystore("bob")

    def run(self, seed: Seed[Message], data: bytes, variant: int) -> None:
        report = inspect_message(data, seed.context.format, keystore=self.bob)
        json.dumps(report)
        render(report)


@dataclass(frozen=True)
class Chain:
    format: str
    encoding: int
    ccsid: int


def _header(kind: str, next_format: str, *, order: str, ebcdic: bool = False, extra: int = 8) -> bytes:
    charset = "cp500" if ebcdic else "ascii"
    struc_id = mqheaders.CLEAR_HEADERS[kind][0].decode().encode(charset)
    fmt = next_format.ljust(8).encode(charset)
    encoding = 546 if order == "<" else 273
    if kind == "MQDEAD":
        body = struc_id + struct.pack(order + "ii", 1, 2063) + b"Q".ljust(48) + b"QM".ljust(48)
        return (body + struct.pack(order + "ii", encoding, 1208) + fmt).ljust(MQDLH_LENGTH, b"\x00")
    length = 36 + extra
    return (struc_id + struct.pack(order + "iiii", 2, length, encoding, 1208) + fmt).ljust(length, b"\x00")


# other ways to read the same bytes: each clear-header format, both integer encodings, EBCDIC CCSIDs
CHAIN_VARIANTS = (
    None,
    Chain("MQHRF2", 546, 1208),
    Chain("MQHRF2", 273, 1208),
    Chain("MQDEAD", 546, 1208),
    Chain("MQDEAD", 785, 500),
    Chain("MQHMDE", 546, 1208),
    Chain("MQHDIST", 2, 1208),
    Chain("MQIMS", 0x222, 37),
    Chain("MQCICS", 1, 1208),
    Chain("MQHEPCF", 546, 1208),
    Chain("        ", 546, 1208),
    Chain("MQSTR", 546, 1208),
    Chain("", -1, -1),
)


def header_seeds(messages: list[Seed[Message]]) -> list[Seed[Chain]]:
    seeds: list[Seed[Chain]] = []
    pdmq = next(s.data for s in messages if s.context.qop is ams.QoP.INTEGRITY and s.context.format.strip() == "")
    conf = next(s.data for s in messages if s.context.qop is ams.QoP.CONFIDENTIALITY)
    chains: list[tuple[str, Chain, bytes]] = [
        ("rfh2", Chain("MQHRF2", 546, 1208), _rfh2("        ") + pdmq[:V2_SIZE]),
        ("dlh-rfh2", Chain("MQDEAD", 546, 1208), _dlh("MQHRF2") + _rfh2("        ") + conf[:V3_SIZE]),
        (
            "big-endian",
            Chain("MQHMDE", 273, 1208),
            _header("MQHMDE", "MQHRF2", order=">") + _header("MQHRF2", "        ", order=">") + pdmq[:V2_SIZE],
        ),
        (
            "ebcdic",
            Chain("MQHWIH", 785, 500),
            _header("MQHWIH", "MQIMS", order=">", ebcdic=True)
            + _header("MQIMS", "        ", order=">", ebcdic=True)
            + pdmq[:V2_SIZE],
        ),
        (
            "every-kind",
            Chain("MQHDIST", 546, 1208),
            b"".join(
                _header(kind, following, order="<")
                for kind, following in [
                    ("MQHDIST", "MQHREF"),
                    ("MQHREF", "MQCICS"),
                    ("MQCICS", "MQHEPCF"),
                    ("MQHEPCF", "MQHRF"),
                    ("MQHRF", "        "),
                ]
            )
            + pdmq[:V2_SIZE],
        ),
        ("pdmq-v2", Chain("        ", 546, 1208), pdmq[:V2_SIZE]),
        ("pdmq-v3", Chain("        ", 546, 1208), conf[:V3_SIZE]),
    ]
    for label, chain, data in chains:
        seeds.append(Seed(label, data, chain, ((0, len(data), 1.0),)))
    for seed in messages:
        if seed.context.format.strip() == "MQHRF2" or seed.label.startswith("INT.SHA256/MQDEAD"):
            chain = Chain(seed.context.format, 546, 1208)
            end = seed.context.pdmq_offset + V2_SIZE  # the clear headers and the PDMQ header
            seeds.append(Seed(f"message:{seed.label}", seed.data[:end], chain, ((0, end, 1.0),)))
    return seeds


class HeadersTarget(Target[Chain]):
    """``mqheaders.walk`` and ``PdmqHeader.unpack`` (with a pack/unpack round trip on success)."""

    name = "headers"
    variants = len(CHAIN_VARIANTS)

    def run(self, seed: Seed[Chain], data: bytes, variant: int) -> None:
        chain = CHAIN_VARIANTS[variant] or seed.context
        walked = self.attempt(lambda: mqheaders.walk(data, chain.format, chain.encoding, chain.ccsid))
        if walked is not None:
            if not 0 <= walked.payload_offset <= len(data) or (
                walked.format_offset is not None and walked.format_offset + 8 > walked.payload_offset
            ):
                raise RuleViolation("walk-offsets", f"walk gave offsets {walked} for {len(data)} bytes")
            view = memoryview(data)[walked.payload_offset :]
            self.attempt(lambda: _roundtrip_pdmq(view))
        else:  # the bytes as a PDMQ header all the same
            self.attempt(lambda: _roundtrip_pdmq(data))


def _roundtrip_pdmq(data: bytes | memoryview) -> None:
    header = PdmqHeader.unpack(data)
    again = PdmqHeader.unpack(header.pack())
    if again != header:
        raise RuleViolation("pdmq-roundtrip", f"unpack(pack(h)) differs from h: {again} != {header}")


# -- keystore.conf -----------------------------------------------------------------------------

CONF_SEEDS = {
    "pkcs12+revocation": (
        "# AMS keystore for bob (fuzz)\n"
        "pkcs12.keystore = bob.p12\n"
        f"pkcs12.keystore_pass = {PASSWORD}\n"
        "pkcs12.certificate = bob\n"
        "crl.file = ca.crl, ca.crl.der\n"
        "ocsp.enable = true\n"
        f"ocsp.url = {OCSP_URL}ocsp\n"
        "ocsp.nonce = false\n"
        "ocsp.timeout = 2.5\n"
        "ocsp.max_age = 3600\n"
        "ocsp.max_response_size = 262144\n"
        "revocation.fail = soft\n"
    ),
    "pem+crl": (
        "pem.private = bob.key.pem\n"
        "pem.public = bob.pem\n"
        "pem.certificates = ca.pem, certs\n"
        "crl.file = ca.crl\n"
        "revocation.fail = hard\n"
    ),
    "pem-encrypted": (
        "pem.private = bob.enc.key.pem\npem.public = bob.pem\npem.password = pw\n"
        f"pem.certificates = ca.pem\nocsp.enable = yes\nocsp.url = {OCSP_URL}\n"
    ),
    "jks": (
        f"JKS.keystore = bob.p12\njks.keystore_pass = {PASSWORD}\njks.key_pass = {PASSWORD}\njks.certificate = bob\n"
    ),
    "certificates-only": (
        "\ufeffpem.certificates = certs/alice.pem,certs/carol.der\r\n# no identity\r\ncrl.file=ca.crl.der\r\n"
    ),
}


class KeystoreConfTarget(Target[None]):
    """``Keystore.from_conf`` on a mutated keystore.conf whose files exist, then a Protector over it
    (which loads the CRL files the conf names)."""

    name = "keystore_conf"

    def __init__(self, world: World, directory: Path) -> None:
        self.directory = directory
        self.conf = world.write_keystore_files(directory)
        seeds = [
            Seed(label, text.encode("utf-8"), None, ((0, len(text.encode("utf-8")), 1.0),))
            for label, text in CONF_SEEDS.items()
        ]
        super().__init__(seeds)

    def run(self, seed: Seed[None], data: bytes, variant: int) -> None:
        self.conf.write_bytes(data)  # keeps its mode 0600
        keystore = ams.Keystore.from_conf(self.conf)
        ams.Protector(keystore, ams.PolicyStore.of())


# -- policy files ------------------------------------------------------------------------------


def _policy_set(world: World) -> list[ams.Policy]:
    extra = (
        "setmqspl -m QM -p CONF.ALL -e AES128 -r 'CN=Smith\\, John,O=AMS,C=GB' -c '*' -t 1",
        f"setmqspl -m QM -p Q_WITH%SIGNERS/1 -s SHA384 -a 'CN=a+OU=b,O=AMS,C=GB' -a '{dn('bob')}'",
        "setmqspl -m QM -p BIG.REUSE -e AES256 -r 'CN=Zoë,O=AMS,C=GB' -c 9000000",
    )
    return [*world.policies.values(), *(ams.Policy.from_setmqspl(line) for line in extra)]


def policy_file_seeds(world: World) -> list[Seed[str]]:
    policies = _policy_set(world)
    setmqspl = (
        "\n".join(
            [
                "# fuzz policies",
                *(p.to_setmqspl("QM") for p in policies),
                "",
                "setmqspl -m QM -p GONE -remove",
                "setmqspl -m QM -p INT.SHA256 -remove",
                *POLICY_LINES[:1],
            ]
        )
        + "\n"
    )
    crlf = "\r\n".join(POLICY_LINES) + "\r\n"
    mqsc = "\n".join(
        [
            "* fuzz MQSC",
            f"SET POLICY('PRIV.ONE') SIGNALG(SHA256) ENCALG(AES256) +\n    RECIP('{dn('bob')}') ENFORCE -\n"
            "KEYREUSE(DISABLED) ACTION(REPLACE)",
            f"set policy(conf.reuse) encalg(aes256) recip('{dn('bob')}') keyreuse(10)",
            f"SET POLICY('PRIV.ONE') RECIP('{dn('carol')}') ACTION(ADD)",
            f"SET POLICY('PRIV.ONE') RECIP('{dn('carol')}') ACTION(REMOVE)",
            "SET POLICY('IT''S') SIGNALG(SHA1) TOLERATE KEYREUSE(UNLIMITED)",
            *(to_mqsc(p) for p in policies),
            delete_mqsc("GONE"),
            "",
        ]
    )
    dspmqspl = render_dspmqspl(policies)
    # the context is the file the text belongs in (dspmqspl output belongs in none: it is parsed as text)
    texts = [
        ("setmqspl", ".spl", setmqspl),
        ("setmqspl-crlf", ".spl", crlf),
        ("mqsc", ".mqsc", mqsc),
        ("dspmqspl", "", dspmqspl),
    ]
    return [
        Seed(label, text.encode("utf-8"), suffix, ((0, len(text.encode()), 1.0),), expect_ok=False)
        for label, suffix, text in texts
    ]


class PolicyFilesTarget(Target[str]):
    """``PolicyStore.from_directory`` over the bytes as a .spl and a .mqsc file, and ``parse_dspmqspl``."""

    name = "policy_files"
    # variant % 3: the bytes as both files (0), only as the seed's own kind (1) or only as the other (2);
    # variant // 3: how they become text for parse_dspmqspl (replace, surrogateescape, latin-1)
    variants = 9

    def __init__(self, world: World, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        super().__init__(policy_file_seeds(world))

    def run(self, seed: Seed[str], data: bytes, variant: int) -> None:
        own = seed.context or ".spl"
        other = ".mqsc" if own == ".spl" else ".spl"
        written = {0: (own, other), 1: (own,), 2: (other,)}[variant % 3]
        for suffix in (".spl", ".mqsc"):
            path = self.directory / f"fuzz{suffix}"
            if suffix in written:
                path.write_bytes(data)
            else:
                path.unlink(missing_ok=True)
        self.attempt(lambda: ams.PolicyStore.from_directory(self.directory))
        mode = variant // 3
        text = data.decode("latin-1") if mode == 2 else data.decode("utf-8", "surrogateescape" if mode else "replace")
        self.attempt(lambda: parse_dspmqspl(text))


# -- PCF records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Queue:
    messages: tuple[PcfMessage, ...]
    index: int  # which message the mutant replaces
    encoding: int


class PcfTarget(Target[Queue]):
    """``decode_policy_queue`` with one message mutated, and ``decode_policy``/``decode_index`` on it;
    a decoded policy must encode and decode back to itself."""

    name = "pcf"
    variants = 2  # 1: the mutant carries the index CorrelId

    def __init__(self, world: World) -> None:
        policies = _policy_set(world)
        seeds: list[Seed[Queue]] = []
        for encoding in (273, 546):
            messages = tuple(encode_policy_queue(policies, error_queue="SYSTEM.ERROR.Q", encoding=encoding))
            for index, message in enumerate(messages):
                body = message.body
                seeds.append(
                    Seed(
                        f"{encoding}/{'index' if index == 0 else 'policy'}/{index}",
                        body,
                        Queue(messages, index, encoding),
                        ((0, 36, 0.3), (36, len(body), 0.7)),
                        expect_ok=False,  # an index is no policy, and a policy with repeated DNs is no index
                    )
                )
        super().__init__(seeds)

    def run(self, seed: Seed[Queue], data: bytes, variant: int) -> None:
        queue = seed.context
        messages = list(queue.messages)
        correl_id = INDEX_CORREL_ID if variant == 1 else messages[queue.index].correl_id
        messages[queue.index] = PcfMessage(correl_id, data)
        self.attempt(lambda: decode_policy_queue(messages))
        policy = self.attempt(lambda: decode_policy(data))
        if policy is not None:
            again = self.attempt(lambda: decode_policy(encode_policy(policy, encoding=queue.encoding)))
            if again != policy:
                raise RuleViolation("pcf-roundtrip", f"decode(encode(p)) gave {again!r} for {policy!r}")
        self.attempt(lambda: decode_index(data))


# -- revocation: CRL files and OCSP answers ----------------------------------------------------


@dataclass(frozen=True)
class Subject:
    user: str  # whose certificate is checked (issued by the fuzz CA)


class CrlTarget(Target[Subject]):
    """A CRL file read by ``RevocationChecker`` and used by ``check``."""

    name = "crl"
    variants = 3  # 0: hard fail, 1: soft fail, 2: check another certificate

    def __init__(self, world: World, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.world = world
        self.path = directory / "fuzz.crl"
        bob, alice, carol = world.pki["bob"], world.pki["alice"], world.pki["carol"]
        crls = {
            "empty": world.crl([]),
            "bob-revoked": world.crl([bob]),
            "others-revoked": world.crl([alice, carol], extra_serials=20),
            "foreign-issuer": world.crl([bob], issuer=world.pki["foreign"]),
            "expired": world.crl([], last=datetime.timedelta(days=-10), lifetime=datetime.timedelta(days=1)),
            "sha512": world.crl([carol], algorithm=hashes.SHA512()),
        }
        seeds: list[Seed[Subject]] = []
        for label, crl in crls.items():
            encoded = crl.public_bytes(serialization.Encoding.DER)
            offsets = der_offsets(encoded)
            good = label in ("empty", "others-revoked", "sha512")
            seeds.append(
                Seed(f"{label}/der", encoded, Subject("bob"), ((0, len(encoded), 1.0),), offsets, expect_ok=good)
            )
            wrap = pem_wrapper("X509 CRL")
            seeds.append(
                Seed(f"{label}/pem", wrap(encoded), Subject("bob"), (), offsets, encoded, wrap, expect_ok=good)
            )
        two = crls["empty"].public_bytes(serialization.Encoding.PEM) + crls["bob-revoked"].public_bytes(
            serialization.Encoding.PEM
        )
        seeds.append(Seed("two-blocks/pem", two, Subject("bob"), ((0, len(two), 1.0),), expect_ok=False))
        super().__init__(seeds)

    def run(self, seed: Seed[Subject], data: bytes, variant: int) -> None:
        self.path.write_bytes(data)
        checker = RevocationChecker.online(RevocationSettings(crl_files=(self.path,), hard_fail=variant != 1))
        subject = self.world.pki["alice" if variant == 2 else seed.context.user].certificate
        checker.check(subject, self.world.ca.certificate, self.world.now)


class OcspTarget(Target[Subject]):
    """An OCSP answer handed to ``RevocationChecker.check`` by an injected fetch."""

    name = "ocsp"
    variants = 3  # 0: no nonce, hard fail (as asked); 1: nonce required; 2: soft fail

    def __init__(self, world: World) -> None:
        self.world = world
        ca, bob, responder = world.ca, world.pki["bob"], world.pki["responder"]
        this = world.now - datetime.timedelta(minutes=1)
        day = datetime.timedelta(days=1)

        def answer(
            *,
            status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
            signer: Issued = ca,
            about: Issued = bob,
            next_update: datetime.datetime | None = this + day,
            reason: x509.ReasonFlags | None = None,
            certid_hash: hashes.HashAlgorithm | None = None,
            by_name: bool = False,
            certificates: Sequence[x509.Certificate] = (),
            nonce: bytes | None = None,
            algorithm: hashes.HashAlgorithm | None = None,
        ) -> bytes:
            revoked = status is ocsp.OCSPCertStatus.REVOKED
            builder = ocsp.OCSPResponseBuilder().add_response(
                cert=about.certificate,
                issuer=ca.certificate,
                algorithm=certid_hash or hashes.SHA1(),
                cert_status=status,
                this_update=this,
                next_update=next_update,
                revocation_time=this - day if revoked else None,
                revocation_reason=reason,
            )
            encoding = ocsp.OCSPResponderEncoding.NAME if by_name else ocsp.OCSPResponderEncoding.HASH
            builder = builder.responder_id(encoding, signer.certificate)
            if certificates:
                builder = builder.certificates(list(certificates))
            if nonce is not None:
                builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
            signed = builder.sign(signer.key, algorithm or hashes.SHA256())
            return signed.public_bytes(serialization.Encoding.DER)

        answers = {
            "good": answer(),
            "good-no-next-update": answer(next_update=None),
            "revoked-key-compromise": answer(
                status=ocsp.OCSPCertStatus.REVOKED, reason=x509.ReasonFlags.key_compromise
            ),
            "revoked-no-reason": answer(status=ocsp.OCSPCertStatus.REVOKED),
            "unknown": answer(status=ocsp.OCSPCertStatus.UNKNOWN),
            "good-delegated": answer(signer=responder, certificates=[responder.certificate]),
            "good-by-name": answer(by_name=True, algorithm=hashes.SHA512()),
            "good-with-nonce": answer(nonce=b"\x01" * 16),
            "good-sha256-certid": answer(certid_hash=hashes.SHA256()),
            "about-alice": answer(about=world.pki["alice"]),
            "foreign-signer": answer(signer=world.pki["foreign"]),
            "unsuccessful": ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER).public_bytes(
                serialization.Encoding.DER
            ),
        }
        seeds = [
            Seed(
                label,
                data,
                Subject("bob"),
                ((0, len(data), 1.0),),
                der_offsets(data),
                expect_ok=label.startswith("good"),
            )
            for label, data in answers.items()
        ]
        super().__init__(seeds)

    def run(self, seed: Seed[Subject], data: bytes, variant: int) -> None:
        settings = RevocationSettings(ocsp=True, ocsp_url=OCSP_URL, ocsp_nonce=variant == 1, hard_fail=variant != 2)

        def fetch(url: str, body: bytes, timeout: float) -> bytes:
            return data

        checker = RevocationChecker.online(settings, fetch=fetch)
        checker.check(self.world.pki[seed.context.user].certificate, self.world.ca.certificate, self.world.now)


# -- targets and the run loop ------------------------------------------------------------------

TARGET_NAMES = ("unprotect", "inspect", "headers", "keystore_conf", "policy_files", "pcf", "crl", "ocsp")


def build_targets(world: World, names: Sequence[str] = TARGET_NAMES) -> dict[str, Target[Any]]:
    targets: dict[str, Target[Any]] = {}
    messages = message_seeds(world) if {"unprotect", "inspect", "headers"} & set(names) else []
    for name in names:
        if name == "unprotect":
            targets[name] = UnprotectTarget(world, messages)
        elif name == "inspect":
            targets[name] = InspectTarget(world, messages)
        elif name == "headers":
            targets[name] = HeadersTarget(header_seeds(messages))
        elif name == "keystore_conf":
            targets[name] = KeystoreConfTarget(world, world.workdir / "keystore")
        elif name == "policy_files":
            targets[name] = PolicyFilesTarget(world, world.workdir / "policies")
        elif name == "pcf":
            targets[name] = PcfTarget(world)
        elif name == "crl":
            targets[name] = CrlTarget(world, world.workdir / "crl")
        elif name == "ocsp":
            targets[name] = OcspTarget(world)
        else:
            raise ValueError(f"unknown target {name!r}; expected one of {', '.join(TARGET_NAMES)}")
    return targets


def minimise(
    target: Target[Any],
    seed: Seed[Any],
    data: bytes,
    variant: int,
    site: str,
    *,
    timeout: float | None,
    max_runs: int = 3000,
    max_seconds: float = 60.0,
    wrap: Callable[[bytes], bytes] | None = None,
    reference: bytes | None = None,
) -> bytes:
    """The smallest input found that still fails at ``site``: bytes put back to the seed's
    (``reference``, when the length is the same) so that only the changes that matter remain, then
    ever smaller chunks deleted. With ``wrap``, ``data`` is the inner bytes, wrapped before each run."""
    deadline = time.monotonic() + max_seconds
    runs = 0

    def same(candidate: bytes) -> bool:
        nonlocal runs
        runs += 1
        finding = execute(target, seed, wrap(candidate) if wrap else candidate, variant, timeout).finding
        return finding is not None and finding.site == site

    if reference is not None and len(reference) == len(data):
        for offset in [i for i in range(len(data)) if data[i] != reference[i]]:
            if runs >= max_runs or time.monotonic() > deadline:
                break
            candidate = data[:offset] + reference[offset : offset + 1] + data[offset + 1 :]
            if same(candidate):
                data = candidate
    chunk = max(1, len(data) // 2)
    while runs < max_runs and time.monotonic() < deadline:
        offset, changed = 0, False
        while offset < len(data) and runs < max_runs and time.monotonic() < deadline:
            candidate = data[:offset] + data[offset + chunk :]
            if same(candidate):
                data, changed = candidate, True
            else:
                offset += chunk
        if not changed:
            if chunk == 1:
                break
            chunk //= 2
    return data


@dataclass
class Site:
    finding: Finding
    seed: str
    variant: int
    size: int
    minimised: bytes
    path: Path
    changes: str = ""
    count: int = 1


@dataclass
class Report:
    target: str
    inputs: int = 0
    seconds: float = 0.0
    sites: dict[str, Site] = field(default_factory=dict)
    slow: list[tuple[float, int, str]] = field(default_factory=list)  # seconds, size, file
    slowest: tuple[float, int] = (0.0, 0)
    outcomes: dict[str, int] = field(default_factory=dict)
    corpus: int = 0
    seeds_ok: int = 0
    seeds_total: int = 0
    seeds_refused: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.inputs / self.seconds if self.seconds else 0.0


def changes(seed: bytes, data: bytes, shown: int = 12) -> str:
    """How a mutant differs from its seed, byte by byte when the length is the same."""
    if len(seed) != len(data):
        return f"length {len(seed):,} -> {len(data):,} bytes"
    changed = [f"[{i}] {seed[i]:#04x}->{data[i]:#04x}" for i in range(len(data)) if seed[i] != data[i]]
    more = f" and {len(changed) - shown} more" if len(changed) > shown else ""
    return (", ".join(changed[:shown]) + more) or "none"


def _save(directory: Path, name: str, data: bytes, meta: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.bin"
    path.write_bytes(data)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def fuzz_target(
    target: Target[Any],
    *,
    inputs: int,
    seconds: float | None,
    rng: random.Random,
    crashes: Path,
    slow: float = DEFAULT_SLOW,
    timeout: float | None = DEFAULT_TIMEOUT,
    max_size: int = DEFAULT_MAX_SIZE,
    progress: float = 30.0,
    log: Callable[[str], None] = print,
) -> Report:
    report = Report(target.name)
    directory = crashes / target.name
    # the seeds themselves: a seed that crashes is a finding too; one refused is worth knowing
    for seed in target.seeds:
        outcome = execute(target, seed, seed.data, 0, timeout)
        report.seeds_total += 1
        if outcome.finding is None and outcome.key == "ok":
            report.seeds_ok += 1
        elif outcome.finding is not None or seed.expect_ok:
            report.seeds_refused.append(f"{seed.label}: {outcome.finding.site if outcome.finding else outcome.key}")
    evolved: list[tuple[Seed[Any], bytes]] = []
    seen: set[str] = set()
    seen_lines: set[str] = set()
    start = time.monotonic()
    last_progress = start
    try:
        for number in range(inputs):
            if seconds is not None and number % 64 == 0 and time.monotonic() - start > seconds:
                break
            if evolved and rng.random() < 0.3:
                seed, base = rng.choice(evolved)
                data, inner = make_mutant(rng, seed, target.splice, base=base, max_size=max_size)
            else:
                seed = rng.choice(target.seeds)
                data, inner = make_mutant(rng, seed, target.splice, max_size=max_size)
            variant = rng.randrange(target.variants) if target.variants > 1 and rng.random() < 0.5 else 0
            outcome = execute(target, seed, data, variant, timeout)
            report.inputs += 1
            if outcome.elapsed > report.slowest[0]:
                report.slowest = (outcome.elapsed, len(data))
            if outcome.elapsed > slow and len(report.slow) < 50:
                name = f"slow-{hashlib.sha256(data).hexdigest()[:12]}"
                meta = {
                    "target": target.name,
                    "seed": seed.label,
                    "variant": variant,
                    "seconds": outcome.elapsed,
                    "size": len(data),
                }
                path = _save(directory, name, data, meta)
                report.slow.append((outcome.elapsed, len(data), str(path)))
                log(f"  [{target.name}] slow input: {outcome.elapsed:.2f} s for {len(data):,} bytes -> {path}")
            finding = outcome.finding
            if finding is not None:
                known = report.sites.get(finding.site)
                if known is not None:
                    known.count += 1
                else:
                    log(f"  [{target.name}] new {finding.kind} site: {finding.site}: {_short(finding.message, 200)}")
                    small, small_inner = data, inner
                    if finding.kind != "hang" and inner is not None and seed.wrap is not None:
                        small_inner = minimise(
                            target,
                            seed,
                            inner,
                            variant,
                            finding.site,
                            timeout=timeout,
                            wrap=seed.wrap,
                            reference=seed.inner,
                        )
                        small = seed.wrap(small_inner)
                    elif finding.kind != "hang":
                        small = minimise(
                            target, seed, data, variant, finding.site, timeout=timeout, reference=seed.data
                        )
                    name = hashlib.sha256(finding.site.encode()).hexdigest()[:12]
                    meta = {
                        "target": target.name,
                        "kind": finding.kind,
                        "site": finding.site,
                        "exception": finding.exception,
                        "message": finding.message,
                        "location": finding.location,
                        "seed": seed.label,
                        "variant": variant,
                        "size": len(small),
                        "original_size": len(data),
                        "changes": changes(seed.data, small),
                        # the mutated bytes inside the wrapping (the plaintext of a privacy message, a CRL's DER)
                        "inner_hex": small_inner.hex() if small_inner is not None else None,
                        "inner_changes": changes(seed.inner, small_inner)
                        if seed.inner is not None and small_inner is not None
                        else None,
                        "traceback": finding.trace,
                    }
                    path = _save(directory, name, small, meta)
                    report.sites[finding.site] = Site(
                        finding, seed.label, variant, len(data), small, path, str(meta["changes"])
                    )
            elif outcome.key not in seen:
                seen.add(outcome.key)
                report.outcomes[outcome.key] = report.outcomes.get(outcome.key, 0) + 1
                lines = set(_LINE.findall(outcome.key))
                new_line = not lines <= seen_lines
                seen_lines |= lines
                if len(evolved) < CORPUS_SIZE:
                    evolved.append((seed, data))
                elif new_line or rng.random() < 0.05:  # keep the corpus moving once it is full
                    evolved[rng.randrange(CORPUS_SIZE)] = (seed, data)
            now = time.monotonic()
            if progress and now - last_progress > progress:
                last_progress = now
                elapsed = now - start
                log(
                    f"  [{target.name}] {report.inputs:,} inputs, {report.inputs / elapsed:,.0f}/s, "
                    f"{len(report.sites)} sites, {len(report.slow)} slow, corpus {len(evolved)}"
                )
    except KeyboardInterrupt:
        log(f"  [{target.name}] interrupted")
        report.seconds = time.monotonic() - start
        report.corpus = len(evolved)
        raise _Interrupted(report) from None
    report.seconds = time.monotonic() - start
    report.corpus = len(evolved)
    return report


class _Interrupted(Exception):
    def __init__(self, report: Report) -> None:
        super().__init__("interrupted")
        self.report = report


def describe(report: Report) -> str:
    lines = [
        f"== {report.target}: {report.inputs:,} inputs in {report.seconds:,.1f} s ({report.rate:,.0f} inputs/s); "
        f"{len(report.sites)} crash site(s); {len(report.slow)} slow; slowest {report.slowest[0]:.3f} s "
        f"({report.slowest[1]:,} bytes); {len(report.outcomes)} distinct refusals; "
        f"{report.seeds_ok} of {report.seeds_total} seeds ran without an AmsError",
    ]
    lines += [f"   seed unexpectedly refused: {text}" for text in report.seeds_refused]
    for number, site in enumerate(report.sites.values(), start=1):
        finding = site.finding
        lines.append(f"   site {number}: [{finding.kind}] {finding.site} ({site.count} input(s))")
        lines.append(f"      message: {_short(finding.message, 300)}")
        lines.append(
            f"      reproducer: {site.path} ({len(site.minimised):,} bytes, minimised from {site.size:,}; "
            f"seed {site.seed}, variant {site.variant})"
        )
        lines.append(f"      changes from the seed: {site.changes}")
    for seconds, size, path in report.slow:
        lines.append(f"   slow: {seconds:.2f} s for {size:,} bytes: {path}")
    return "\n".join(lines)


SCALING_SIZES = (16 * 1024, 64 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024)


def scaling(
    target: Target[Any],
    rng: random.Random,
    crashes: Path,
    *,
    seeds: int = 6,
    give_up: float = 10.0,
    log: Callable[[str], None] = print,
) -> int:
    """Work proportional to the input: each seed blown up to 16 KiB .. 4 MiB by repeating one of its
    ranges in place (many certificates, recipients, lines, PCF parameters, one long word...). A 4x
    larger input taking more than 8x longer between the two largest sizes tried (over 0.2 s, and again
    when timed afresh: single timings are noisy) is reported, and its input of at most 1 MiB saved as
    ``DIR/<target>/superlinear-*.bin``. Returns the number of findings."""
    findings = 0
    for seed in rng.sample(target.seeds, min(seeds, len(target.seeds))):
        wrapped = seed.inner is not None and seed.wrap is not None
        base = seed.inner if seed.inner is not None and wrapped else seed.data
        start = rng.randrange(len(base))
        piece = base[start : start + rng.choice((1, 4, 16, 64, 256))]
        at = rng.randrange(len(base) + 1)
        times: list[tuple[int, float]] = []
        inputs: list[bytes] = []
        for size in SCALING_SIZES:
            inner = base[:at] + piece * max(1, (size - len(base)) // len(piece)) + base[at:]
            data = seed.wrap(inner) if seed.wrap is not None and wrapped else inner
            outcome = execute(target, seed, data, 0, None)
            times.append((len(data), outcome.elapsed))
            inputs.append(data)
            if outcome.finding is not None:
                log(f"  [{target.name}] scaling input of {len(data):,} bytes: {outcome.finding.site}")
                findings += 1
            if outcome.elapsed > give_up:  # the trend is plain; larger sizes would only take minutes
                break
        shown = ", ".join(f"{size // 1024:,} KiB {seconds * 1000:,.1f} ms" for size, seconds in times)
        last = times[-1][1] / max(times[-2][1], 1e-4)
        if last > 8 and times[-1][1] > 0.2:  # time the two largest again: a GC pass can inflate one timing
            again = [
                min(seconds, execute(target, seed, data, 0, None).elapsed)
                for data, (_, seconds) in zip(inputs[-2:], times[-2:], strict=True)
            ]
            last = again[1] / max(again[0], 1e-4)
        flagged = last > 8 and times[-1][1] > 0.2
        log(f"  [{target.name}] {seed.label}: {shown}; last step x{last:.1f}{'  SUPERLINEAR' if flagged else ''}")
        saved = next(data for data in reversed(inputs) if len(data) <= 1024 * 1024 + 4096)
        if flagged:
            findings += 1
            meta = {
                "target": target.name,
                "kind": "superlinear",
                "seed": seed.label,
                "variant": 0,
                "piece_hex": piece.hex(),
                "at": at,
                "times": times,
                "size": len(saved),
            }
            name = f"superlinear-{hashlib.sha256(saved).hexdigest()[:12]}"
            log(f"  [{target.name}] saved {_save(crashes / target.name, name, saved, meta)}")
    return findings


def replay(path: Path, world: World, timeout: float | None, target_name: str | None) -> int:
    """Run one saved input again and show what happens (exit 1 if it still fails)."""
    meta_path = path.with_suffix(".json")
    meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    name = target_name or meta.get("target")
    if name not in TARGET_NAMES:
        print(f"say which target {path} is for: --target NAME", file=sys.stderr)
        return 2
    target = build_targets(world, [name])[name]
    seed = target.by_label.get(meta.get("seed", ""), target.seeds[0])
    variant = int(meta.get("variant", 0))
    data = path.read_bytes()
    outcome = execute(target, seed, data, variant, timeout)
    print(f"{name}: {len(data):,} bytes, seed {seed.label}, variant {variant}: {outcome.elapsed:.3f} s, {outcome.key}")
    if outcome.finding is not None:
        print(f"{outcome.finding.kind}: {outcome.finding.site}\n{outcome.finding.message}\n{outcome.finding.trace}")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.security.fuzz", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--target", default="all", help=f"one of {', '.join(TARGET_NAMES)}, or all")
    parser.add_argument("--inputs", type=int, default=20000, help="inputs per target (default 20000)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    parser.add_argument("--seconds", type=float, default=None, help="time limit per target")
    parser.add_argument("--crashes", type=Path, default=Path("fuzz-crashes"), help="where reproducers go")
    parser.add_argument("--bits", type=int, default=DEFAULT_BITS, help="RSA key size of the test PKI")
    parser.add_argument("--slow", type=float, default=DEFAULT_SLOW, help="seconds after which an input is slow")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds after which a call hangs")
    parser.add_argument("--max-size", type=int, default=DEFAULT_MAX_SIZE, help="largest mutant in bytes")
    parser.add_argument("--progress", type=float, default=30.0, help="seconds between progress lines (0: none)")
    parser.add_argument("--replay", type=Path, default=None, help="run one saved input again")
    parser.add_argument("--scaling", action="store_true", help="time seeds blown up to 4 MiB instead of fuzzing")
    args = parser.parse_args(argv)
    names = list(TARGET_NAMES) if args.target == "all" else args.target.split(",")
    unknown = [n for n in names if n not in TARGET_NAMES]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; expected {', '.join(TARGET_NAMES)} or all")
    warnings.simplefilter("ignore")  # soft-fail revocation, unprotected key files, deprecated algorithms
    signal.signal(signal.SIGALRM, _raise_hang)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a report on kill, as on Ctrl-C
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    with tempfile.TemporaryDirectory(prefix="ams-fuzz-") as workdir:
        world = World(Path(workdir), bits=args.bits, pki_cache=args.crashes / "pki")
        if args.replay is not None:
            return replay(args.replay, world, args.timeout, None if args.target == "all" else args.target)
        if args.scaling:
            found = 0
            for number, target in enumerate(build_targets(world, names).values()):
                found += scaling(target, random.Random(seed * 1000 + number), args.crashes)
            return 1 if found else 0
        print(f"fuzzing {', '.join(names)}: {args.inputs:,} inputs each, --seed {seed}, {args.bits}-bit RSA keys")
        reports: list[Report] = []
        try:
            targets = build_targets(world, names)
            for number, name in enumerate(names):
                rng = random.Random(seed * 1000 + number)
                reports.append(
                    fuzz_target(
                        targets[name],
                        inputs=args.inputs,
                        seconds=args.seconds,
                        rng=rng,
                        crashes=args.crashes,
                        slow=args.slow,
                        timeout=args.timeout,
                        max_size=args.max_size,
                        progress=args.progress,
                    )
                )
                print(describe(reports[-1]), flush=True)
        except _Interrupted as interrupted:
            reports.append(interrupted.report)
            print(describe(interrupted.report), flush=True)
        print("\nsummary:")
        for report in reports:
            print(
                f"  {report.target:14} {report.inputs:>10,} inputs {report.rate:>9,.0f}/s "
                f"{len(report.sites):>3} crash sites {len(report.slow):>3} slow"
            )
        return 1 if any(report.sites for report in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
