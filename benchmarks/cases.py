"""Benchmark cases: our protect/unprotect, the raw bound, and cryptography's pkcs7 as the peer.

The bound is what cryptography's primitives alone need for the same work: the RSA operations,
the hash over the payload, the cipher over the payload (update_into a preallocated buffer, the
fastest way cryptography offers) and the random bytes. Nothing else: no DER, no header, no checks.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import attrs
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import pkcs7

from benchmarks.setup import World

Op = Callable[[], object]
SIGNED_ATTRIBUTES = b"\x31" + bytes(100)  # the size of the DER AMS signs


@attrs.frozen
class Case:
    name: str
    queue: str
    qop: str
    recipients: int
    key_reuse: str

    def label(self, op: str, size: int) -> str:
        return f"{self.name} {op} {size}"


CASES = [
    Case("integrity", "INTEGRITY", "integrity", 0, "-"),
    Case("privacy-1", "PRIVACY.1", "privacy", 1, "-"),
    Case("privacy-3", "PRIVACY.3", "privacy", 3, "-"),
    Case("privacy-10", "PRIVACY.10", "privacy", 10, "-"),
    Case("confidentiality-reuse-disabled", "CONF.DISABLED", "confidentiality", 1, "DISABLED"),
    Case("confidentiality-reuse-32", "CONF.32", "confidentiality", 1, "32"),
    Case("confidentiality-reuse-unlimited", "CONF.UNLIMITED", "confidentiality", 1, "UNLIMITED"),
]


def _rsa(key: object) -> rsa.RSAPublicKey:
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def _cbc(key: bytes, iv: bytes, data: bytes, buffer: bytearray, encrypt: bool) -> int:
    cipher = Cipher(algorithms.AES(key), modes.CBC(iv))
    context = cipher.encryptor() if encrypt else cipher.decryptor()
    n = context.update_into(data, buffer)
    context.finalize()
    return n


class Primitives:
    """The raw work of each case, for one payload size."""

    def __init__(self, world: World, size: int) -> None:
        self.world = world
        self.size = size
        self.payload = os.urandom(size)
        padded = size + 16 - size % 16
        self.padded = os.urandom(padded)
        self.buffer = bytearray(padded + 16)
        self.signer_key = world.signer.key
        self.signer_public = _rsa(world.signer.certificate.public_key())
        self.reader_key = world.recipients[0].key
        self.publics = [_rsa(r.certificate.public_key()) for r in world.recipients]
        self.key = os.urandom(32)
        self.wrapped = self.publics[0].encrypt(self.key, padding.PKCS1v15())
        self.signature = self.signer_key.sign(SIGNED_ATTRIBUTES, padding.PKCS1v15(), hashes.SHA256())

    def _hash(self) -> None:
        digest = hashes.Hash(hashes.SHA256())
        digest.update(self.payload)
        digest.finalize()

    def sign(self) -> None:
        self._hash()
        self.signer_key.sign(SIGNED_ATTRIBUTES, padding.PKCS1v15(), hashes.SHA256())

    def verify(self) -> None:
        self._hash()
        self.signer_public.verify(self.signature, SIGNED_ATTRIBUTES, padding.PKCS1v15(), hashes.SHA256())

    def wrap(self, recipients: int) -> None:
        key = os.urandom(32)
        for public in self.publics[:recipients]:
            public.encrypt(key, padding.PKCS1v15())

    def encrypt(self) -> None:
        _cbc(self.key, os.urandom(16), self.padded, self.buffer, True)

    def decrypt(self) -> None:
        _cbc(self.key, bytes(16), self.padded, self.buffer, False)

    def unwrap(self) -> None:
        self.reader_key.decrypt(self.wrapped, padding.PKCS1v15())

    def _privacy_protect(self, recipients: int) -> Op:
        def work() -> None:
            self.sign()
            self.wrap(recipients)
            self.encrypt()

        return work

    def _privacy_unprotect(self) -> None:
        self.unwrap()
        self.decrypt()
        self.verify()

    def bound(self, case: Case, op: str) -> Op:
        """The primitives' work for one message of ``case`` (with key reuse, RSA only when renewed)."""
        if case.qop == "integrity":
            return self.sign if op == "protect" else self.verify
        if case.qop == "privacy":
            if op == "protect":
                return self._privacy_protect(case.recipients)
            return self._privacy_unprotect
        counter = [0]

        def confidential() -> None:
            counter[0] += 1
            renew = {"DISABLED": 1, "32": 32}.get(case.key_reuse)
            fresh = counter[0] == 1 if renew is None else counter[0] % renew == 1 % renew
            if op == "protect":
                if fresh:
                    self.wrap(case.recipients)
                    _cbc(self.key, os.urandom(16), bytes(32), self.buffer, True)
                self.encrypt()
            else:
                if fresh:
                    self.unwrap()
                    _cbc(self.key, bytes(16), bytes(32), self.buffer, False)
                self.decrypt()

        return confidential


class Peer:
    """cryptography's own pkcs7 module doing the nearest equivalent."""

    def __init__(self, world: World, size: int, payload: bytes) -> None:
        self.world = world
        self.payload = payload
        self.options = [pkcs7.PKCS7Options.Binary]
        self.sign_options = [pkcs7.PKCS7Options.Binary, pkcs7.PKCS7Options.NoCapabilities]

    def _signed(self) -> bytes:
        return (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(self.payload)
            .add_signer(self.world.signer.certificate, self.world.signer.key, hashes.SHA256())
            .sign(serialization.Encoding.DER, self.sign_options)
        )

    def _envelope(self, data: bytes, recipients: int) -> bytes:
        builder = pkcs7.PKCS7EnvelopeBuilder().set_data(data)
        if hasattr(builder, "set_content_encryption_algorithm"):
            builder = builder.set_content_encryption_algorithm(algorithms.AES256)
        for reader in self.world.recipients[:recipients]:
            builder = builder.add_recipient(reader.certificate)
        return builder.encrypt(serialization.Encoding.DER, self.options)

    def operation(self, case: Case, op: str) -> Op | None:
        if case.qop == "integrity":
            return self._signed if op == "protect" else None  # cryptography has no pkcs7 verify
        reader = self.world.recipients[0]
        if case.qop == "privacy":
            if op == "protect":
                return lambda: self._envelope(self._signed(), case.recipients)
            enveloped = self._envelope(self._signed(), case.recipients)
            return lambda: pkcs7.pkcs7_decrypt_der(enveloped, reader.certificate, reader.key, [])
        if case.key_reuse != "DISABLED":
            return None  # pkcs7 has no key reuse: nothing comparable
        if op == "protect":
            return lambda: self._envelope(self.payload, case.recipients)
        enveloped = self._envelope(self.payload, case.recipients)
        return lambda: pkcs7.pkcs7_decrypt_der(enveloped, reader.certificate, reader.key, [])
