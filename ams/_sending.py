"""What a sender keeps per queue handle: its signature writers and confidentiality keys.

A signature writer holds everything about the signer's signature that does not change per
message; a confidentiality key is reused, with its byte-identical key block, for as many
messages as the policy's key reuse count allows (format.md §5). A one-shot put never reuses.
"""

from __future__ import annotations

import os
import warnings

import attrs
from cryptography import x509
from cryptography.hazmat.primitives.ciphers import BlockCipherAlgorithm

from ams import _rules
from ams.algorithms import KEYREUSE_DISABLED, KEYREUSE_UNLIMITED, EncryptionAlgorithm, SignatureAlgorithm
from ams.errors import AmsDeprecationWarning, DeprecatedAlgorithmError, KeystoreError
from ams.hazmat.enveloped_writer import build_enveloped_data
from ams.hazmat.oids import ID_DATA
from ams.hazmat.signed_writer import SignedDataWriter
from ams.keys.keystore import Identity, Keystore
from ams.policy.model import Policy


@attrs.define
class ReusableKey:
    """A confidentiality message key, its key block, and how often it was used."""

    algorithm: EncryptionAlgorithm
    recipients: tuple[x509.Certificate, ...]
    key: bytes
    key_block: bytes
    uses: int = 0
    cipher: BlockCipherAlgorithm = attrs.field(init=False)  # made once, for every message that uses the key
    block_size: int = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.cipher = self.algorithm.spec.factory(self.key)
        self.block_size = self.algorithm.spec.block_size


class Sender:
    """A handle's sending state: one SignedDataWriter per digest, one reusable key per queue."""

    def __init__(self, keystore: Keystore, *, allow_deprecated: bool) -> None:
        self.keystore = keystore
        self.allow_deprecated = allow_deprecated
        self._writers: dict[SignatureAlgorithm, SignedDataWriter] = {}
        self._keys: dict[str, ReusableKey] = {}
        self._checked: Policy | None = None

    def identity(self, why: str) -> Identity:
        """This keystore's identity; a KeystoreError saying ``why`` one is needed when there is none."""
        identity = self.keystore.identity
        if identity is None:
            raise KeystoreError(f"{why} needs a private key, but {self.keystore.source} has no identity")
        return identity

    def check_algorithms(self, policy: Policy) -> None:
        """Deprecated algorithms are written only with the explicit opt-in, and with a warning."""
        if policy is self._checked:
            return  # the same (immutable) policy as last time, which passed without a warning
        deprecated = False
        for algorithm in (policy.signature_algorithm, policy.encryption_algorithm):
            if not algorithm.deprecated:
                continue
            if not self.allow_deprecated:
                raise DeprecatedAlgorithmError(
                    f"policy {policy.name} asks for {algorithm}, which is deprecated; writing it needs an explicit "
                    "opt-in (Protector(..., allow_deprecated=True) or --allow-deprecated). Prefer SHA256 or "
                    "stronger and AES128/AES256"
                )
            message = f"writing deprecated algorithm {algorithm} for policy {policy.name}"
            warnings.warn(message, AmsDeprecationWarning, stacklevel=4)
            deprecated = True
        if not deprecated:
            self._checked = policy

    def writer(self, policy: Policy) -> SignedDataWriter:
        """The signature writer for the policy's digest (the key-size rule checked once)."""
        algorithm = policy.signature_algorithm
        writer = self._writers.get(algorithm)
        if writer is None:
            identity = self.identity(f"signing for policy {policy.name}")
            _rules.check_signing_key(policy.name, algorithm, str(identity.dn), identity.key_size)
            writer = SignedDataWriter(identity.certificate, identity.private_key, algorithm)
            self._writers[algorithm] = writer
        return writer

    def confidentiality_key(
        self, queue: str, policy: Policy, recipients: tuple[x509.Certificate, ...], *, one_shot: bool
    ) -> ReusableKey:
        """The message key and its key block: reused while the policy allows, fresh otherwise."""
        algorithm = policy.encryption_algorithm
        reusable = not one_shot and policy.key_reuse != KEYREUSE_DISABLED
        state = self._keys.get(queue) if reusable else None
        if state is not None and (
            state.algorithm is not algorithm
            or state.recipients != recipients
            or (policy.key_reuse != KEYREUSE_UNLIMITED and state.uses >= policy.key_reuse)
        ):
            state = None
        if state is None:
            key = os.urandom(algorithm.spec.key_size)
            key_block_parts, _ = build_enveloped_data(recipients, algorithm, ID_DATA, [key])
            state = ReusableKey(algorithm, recipients, key, b"".join(key_block_parts))
            if reusable:
                self._keys[queue] = state
        state.uses += 1
        return state
