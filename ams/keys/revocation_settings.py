"""How to check revocation: the settings, and how keystore.conf spells them."""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path

import attrs

from ams.errors import KeystoreError, UsageError, clip
from ams.keys.ocsp_http import DEFAULT_MAX_RESPONSE_SIZE, url_problem

MAX_TIMEOUT = 600.0
MAX_AGE_LIMIT = datetime.timedelta(days=7)
MIN_RESPONSE_SIZE, MAX_RESPONSE_SIZE = 1024, 16 * 1024 * 1024


def _positive_timeout(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not isinstance(value, int | float) or not 0 < value <= MAX_TIMEOUT:  # also refuses nan
        raise UsageError(
            f"RevocationSettings.{attribute.name} = {value!r}: expected seconds, > 0 and <= {MAX_TIMEOUT:g}"
        )


def _valid_max_age(_: object, attribute: attrs.Attribute[datetime.timedelta], value: datetime.timedelta) -> None:
    if not isinstance(value, datetime.timedelta) or not datetime.timedelta(0) <= value <= MAX_AGE_LIMIT:
        raise UsageError(
            f"RevocationSettings.{attribute.name} = {value!r}: expected a datetime.timedelta from 0 to {MAX_AGE_LIMIT}"
        )


def _valid_size(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or not MIN_RESPONSE_SIZE <= value <= MAX_RESPONSE_SIZE:
        raise UsageError(
            f"RevocationSettings.{attribute.name} = {value!r}: expected bytes from {MIN_RESPONSE_SIZE} "
            f"to {MAX_RESPONSE_SIZE}"
        )


@attrs.frozen
class RevocationSettings:
    """How to check revocation. ``hard_fail``: an unknown status refuses the message.

    ``timeout`` (seconds) bounds a whole OCSP exchange; ``max_response_size`` (bytes) caps the answer;
    ``max_age`` is how long an OCSP answer without nextUpdate is believed after its thisUpdate;
    ``ocsp_nonce`` requires the responder to echo a fresh nonce.
    """

    crl_files: tuple[Path, ...] = ()
    ocsp: bool = False
    ocsp_url: str | None = None
    ocsp_nonce: bool = True
    timeout: float = attrs.field(default=5.0, validator=_positive_timeout)
    hard_fail: bool = True
    max_response_size: int = attrs.field(default=DEFAULT_MAX_RESPONSE_SIZE, validator=_valid_size)
    max_age: datetime.timedelta = attrs.field(default=datetime.timedelta(hours=1), validator=_valid_max_age)

    @property
    def enabled(self) -> bool:
        """Whether any revocation source is configured."""
        return bool(self.crl_files) or self.ocsp

    @classmethod
    def from_conf(cls, settings: dict[str, str], base: Path) -> RevocationSettings:
        """The settings a keystore.conf gives; a bad value raises :class:`KeystoreError` starting with its key."""
        mode = settings.get("revocation.fail", "hard").lower()
        if mode not in ("hard", "soft"):
            raise KeystoreError(f"revocation.fail = '{clip(mode, 60)}': expected hard or soft")
        files = _crl_files(settings, base)
        url = settings.get("ocsp.url") or None
        if url is not None and (problem := url_problem(url)) is not None:
            raise KeystoreError(f"ocsp.url = '{clip(url, 100)}': expected an http:// URL; {problem}")
        timeout = _number(settings, "ocsp.timeout")
        max_age = _number(settings, "ocsp.max_age")
        size = _number(settings, "ocsp.max_response_size")
        return cls(
            crl_files=files,
            ocsp=_flag(settings, "ocsp.enable", False),
            ocsp_url=url,
            ocsp_nonce=_flag(settings, "ocsp.nonce", True),
            timeout=timeout,
            hard_fail=mode == "hard",
            max_response_size=int(size),
            max_age=datetime.timedelta(seconds=int(max_age)),
        )


def _crl_files(settings: dict[str, str], base: Path) -> tuple[Path, ...]:
    """``crl.file``: comma-separated paths, ``~`` expanded, relative ones taken from ``base``."""
    return tuple(
        (p if p.is_absolute() else base / p)
        for p in (Path(os.path.expanduser(v.strip())) for v in settings.get("crl.file", "").split(","))
        if str(p) not in ("", ".")
    )


def _flag(settings: dict[str, str], key: str, default: bool) -> bool:
    """A true/false setting (true, yes, 1 / false, no, 0, any case); ``default`` when absent."""
    value = settings.get(key)
    if value is None:
        return default
    if value.lower() not in ("true", "false", "yes", "no", "1", "0"):
        raise KeystoreError(f"{key} = '{clip(value, 60)}': expected true or false")
    return value.lower() in ("true", "yes", "1")


_LONGEST_AGE = int(MAX_AGE_LIMIT.total_seconds())

# The numeric settings: default, the spelling accepted, lowest and highest value, and what an
# error says is expected. A plain decimal only: float() would also take "nan", "inf", "1e9" and "1_000".
_NUMBERS: dict[str, tuple[float, str, float, float, str]] = {
    "ocsp.timeout": (
        5.0,
        r"[0-9]{1,6}(\.[0-9]{1,6})?",
        0.001,
        MAX_TIMEOUT,
        f"a number of seconds greater than 0 and at most {MAX_TIMEOUT:g}, such as 5 or 2.5 (no unit)",
    ),
    "ocsp.max_age": (
        3600,
        r"[0-9]{1,7}",
        0,
        _LONGEST_AGE,
        f"a whole number of seconds from 0 to {_LONGEST_AGE}, such as 3600",
    ),
    "ocsp.max_response_size": (
        DEFAULT_MAX_RESPONSE_SIZE,
        r"[0-9]{1,9}",
        MIN_RESPONSE_SIZE,
        MAX_RESPONSE_SIZE,
        f"a whole number of bytes from {MIN_RESPONSE_SIZE} to {MAX_RESPONSE_SIZE}, such as 262144",
    ),
}


def _number(settings: dict[str, str], key: str) -> float:
    """One of the :data:`_NUMBERS` settings, checked against its spelling and bounds; its default when absent."""
    default, pattern, low, high, expected = _NUMBERS[key]
    value = settings.get(key)
    if value is None:
        return default
    if not re.fullmatch(pattern, value) or not low <= float(value) <= high:
        raise KeystoreError(f"{key} = '{clip(value, 60)}': expected {expected}")
    return float(value)
