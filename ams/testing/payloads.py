"""Payload shapes for tests: empty, one byte, text, binary, and large (up to several MiB).

A :class:`PayloadSpec` is a small value that makes the same bytes every time, so that a failing
case can be printed, saved and replayed without carrying a megabyte around, and so that
Hypothesis shrinks a 1 MiB payload by shrinking two integers.
"""

from __future__ import annotations

import random

import attrs

SHAPES = ("empty", "byte", "text", "binary", "large")
_TEXT = "AMS protects the payload; the MQMD and clear headers stay readable. 0123456789 £€\n".encode()


@attrs.frozen
class PayloadSpec:
    """``shape`` (one of :data:`SHAPES`), ``size`` in bytes and the ``seed`` the bytes come from."""

    shape: str
    size: int = 0
    seed: int = 0

    def data(self) -> bytes:
        """The payload's bytes (the same for the same spec)."""
        if self.shape == "empty":
            return b""
        if self.shape == "text":
            text = _TEXT * (self.size // len(_TEXT) + 2)
            start = self.seed % len(_TEXT)
            return text[start : start + self.size]
        return random.Random(self.seed).randbytes(self.size)

    def describe(self) -> str:
        """The payload in words: ``empty``, ``1 byte``, ``text, 42 bytes``, ``binary, 1,048,576 bytes``."""
        if self.shape == "empty":
            return "empty"
        if self.shape == "byte":
            return f"1 byte ({self.data().hex()})"
        return f"{self.shape}, {self.size:,} bytes (seed {self.seed})"
