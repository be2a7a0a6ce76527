"""The receive side of a :class:`~ams.protector.Protector`: each QoP's checks, in AMS's order.

:meth:`Unprotecting._open` judges a parsed message under its policy and hands back its payload.
Integrity: each check may fail with its own error (the content is readable anyway). Privacy:
public checks, then the one step from the RSA unwrap to an authenticated signer that fails in
one way (``ams._privacy``, ``ams._privacy_direct``), then the signer's checks. Confidentiality:
public checks on the key block, then every later failure is one error; a reused key is kept for
the next message with the byte-identical key block only once a message decrypted with it was
accepted (format.md §5-6, SECURITY.md).
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable
from typing import NamedTuple

from cryptography import x509

from ams import _rules, _wire
from ams._privacy import (
    EMPTY_MARKER,
    OpenedPrivacy,
    PrivacyRefused,
    check_size,
    decryption_failed,
    open_unwrapped,
)
from ams._privacy_direct import DirectOutput, open_direct
from ams._protector_state import DIRECT_FROM, ProtectorState
from ams.algorithms import EncryptionAlgorithm, QoP, SignatureAlgorithm
from ams.dn import DistinguishedName
from ams.errors import (
    AmsError,
    DecryptionError,
    EmptyFlagError,
    MalformedMessageError,
    NotARecipientError,
    SizeMismatchError,
    summarise,
)
from ams.hazmat.buffers import SpareBuffer
from ams.hazmat.cbc import CbcDecryptor, PayloadSizeError
from ams.hazmat.enveloped import EnvelopedContent, RecipientRef, recipient_ids
from ams.hazmat.pdmq import PdmqHeader
from ams.keys.keystore import Identity
from ams.keys.unwrap import unwrap_content_key
from ams.policy.model import Policy

_BLOCK_SIZES: dict[EncryptionAlgorithm, int] = {
    a: a.spec.block_size for a in EncryptionAlgorithm if a is not EncryptionAlgorithm.NONE
}


class _Opened(NamedTuple):
    """What a QoP's opening hands back: the payload, and who and what protected it."""

    content: bytes | memoryview
    signer: x509.Certificate | None = None
    digest: SignatureAlgorithm | None = None
    cipher: EncryptionAlgorithm | None = None
    offset: int = -1  # where ``content`` starts in the caller's buffer; -1 when it is not there


class ReceivedKey:
    """A confidentiality message key kept for the next message with the byte-identical key block."""

    __slots__ = ("algorithm", "block_size", "decryptor", "key", "key_block")

    def __init__(self, key_block: bytes, key: bytes, decryptor: CbcDecryptor) -> None:
        self.key_block = key_block
        self.key = key
        self.algorithm = decryptor.algorithm
        self.block_size = self.algorithm.spec.block_size
        self.decryptor = decryptor  # made once, for every message that reuses the key

    def matches(self, key_block: memoryview) -> bool:
        """Whether ``key_block`` is byte for byte the one this key came from."""
        return len(key_block) == len(self.key_block) and bytes(key_block) == self.key_block


class Unprotecting(ProtectorState):
    """The Protector's receive side, and the keys, recipient identifiers and buffer it keeps."""

    diagnose_decryption: bool
    _receiver_keys: dict[str, ReceivedKey]
    _identity_ids: tuple[Identity | None, tuple[bytes, ...]]  # how RecipientInfos name it
    _spare: SpareBuffer  # large privacy plaintext, copied out of it

    def _open(
        self,
        queue: str,
        policy: Policy,
        wire: _wire.Wire,
        header: PdmqHeader,
        at: datetime.datetime | None,
        into: memoryview | None,
    ) -> _Opened:
        """The checks of the message's QoP, in AMS's order, and its payload (decrypted into ``into``
        after room for the clear headers, when given).

        A refusal leaves with no traceback and no context: their frames hold the decrypted bytes
        (and views of the buffer kept for the next message), which anything that keeps or walks
        the error (``capture_locals``, a debugger, an error reporter) could read."""
        failure: AmsError | None = None
        try:
            return self._open_checked(queue, policy, wire, header, at, into)
        except AmsError as error:
            failure = error.with_traceback(None)
            failure.__cause__ = failure.__context__ = None
        raise failure

    def _open_checked(
        self,
        queue: str,
        policy: Policy,
        wire: _wire.Wire,
        header: PdmqHeader,
        at: datetime.datetime | None,
        into: memoryview | None,
    ) -> _Opened:
        """:meth:`_open`, whose frames a refusal must not carry out."""
        qop = header.qop
        if qop is not policy.qop:  # a policy accepts its own QoP; which others, the rules say
            _rules.check_qop(queue, policy.qop, qop, header.name)
        if qop is QoP.CONFIDENTIALITY:
            opened = self._open_confidential(queue, policy, wire, header, into)
        else:
            when = at or self.at or datetime.datetime.now(datetime.UTC)
            if qop is QoP.INTEGRITY:
                opened = self._open_integrity(policy, wire, header, when)
            else:
                opened = self._open_privacy(policy, wire, header, when, into)
        self.stats.messages_unprotected += 1
        return opened

    def _open_integrity(self, policy: Policy, wire: _wire.Wire, header: PdmqHeader, when: datetime.datetime) -> _Opened:
        """Integrity: the content is readable anyway, so each check may fail with its own error."""
        signed = wire.signed_data()
        _rules.check_digest_strength(policy.name, policy.signature_algorithm, signed.digest_algorithm)
        signer = self.verifier.signer(signed)
        self.verifier.validate_signer(signer, when)
        self.verifier.verify_signature(signed, signer)
        self.verifier.check_authorised(policy, signer)
        if len(signed.content) != header.orig_size:
            raise SizeMismatchError(
                f"the signed payload is {len(signed.content)} bytes but the PDMQ header's origSize says "
                f"{header.orig_size}: the header was changed"
            )
        if header.empty and bytes(signed.content) != EMPTY_MARKER:
            raise EmptyFlagError(
                "the PDMQ empty-message flag is set, so the signed content must be the single byte 0x00; "
                f"it is {len(signed.content)} byte(s): the header was changed"
            )
        return _Opened(b"" if header.empty else signed.content, signer.certificate, signed.digest_algorithm)

    def _open_privacy(
        self, policy: Policy, wire: _wire.Wire, header: PdmqHeader, when: datetime.datetime, into: memoryview | None
    ) -> _Opened:
        """Privacy: public checks, then one step that fails in one way, then the signer's checks."""
        envelope = wire.enveloped_data()
        _rules.check_cipher_strength(policy.name, policy.encryption_algorithm, envelope.algorithm)
        identity = self._sender.identity("decrypting a privacy message")
        # implicit rejection: a key that did not unwrap is a key derived from the block, used as a
        # real one would be, so that a bad RSA block costs what a wrong key does and fails with it
        key, unwrapped = self._unwrap(envelope, identity)
        if into is not None or len(envelope.ciphertext) < DIRECT_FROM:
            return self._open_unwrapped(policy, wire, header, when, (envelope, identity, key, unwrapped), into)
        # a large payload of the allocating call is decrypted straight into the bytes returned
        # (or, for a framing not AMS's, into a buffer kept for the next message, whose fresh pages
        # would cost about as much as the decryption, and copied out); a refusal zeroes them all
        output = DirectOutput(self._spare)
        opener = functools.partial(open_direct, output=output)
        try:
            opened = self._open_unwrapped(
                policy, wire, header, when, (envelope, identity, key, unwrapped), None, opener
            )
        except BaseException:
            output.refuse()
            raise
        return opened._replace(content=output.accept(opened.content), offset=-1)

    def _open_unwrapped(
        self,
        policy: Policy,
        wire: _wire.Wire,
        header: PdmqHeader,
        when: datetime.datetime,
        unwrapped_key: tuple[EnvelopedContent, Identity, bytes, bool],
        into: memoryview | None,
        opener: Callable[..., OpenedPrivacy] | None = None,
    ) -> _Opened:
        """The privacy message's one step, then the signer's checks, with the content key unwrapped
        (decrypted into ``into``, or by ``opener``: see :func:`ams._privacy.open_unwrapped`)."""
        envelope, identity, key, unwrapped = unwrapped_key
        try:
            opened = open_unwrapped(
                envelope,
                key,
                unwrapped,
                orig_size=header.orig_size,
                empty=header.empty,
                authenticate=self.verifier.authenticate,
                steps=["unwrapping the content key with RSA"],
                limits=self.limits,
                load=self.verifier.carried,
                into=into,
                headroom=0 if opener is not None else wire.chain.payload_offset,
                opener=opener,
            )
        except PrivacyRefused as refused:  # the key owner's diagnostic names the step that really failed
            raise self._failed(
                header, envelope.algorithm, len(envelope.ciphertext), identity, refused.steps, refused.error
            ) from None
        # the content and the signer's certificate are authentic: a failure now reveals nothing
        digest = opened.signed.digest_algorithm
        _rules.check_digest_strength(policy.name, policy.signature_algorithm, digest)
        self.verifier.validate_signer(opened.carried, when)
        self.verifier.check_authorised(policy, opened.carried)
        offset = -1 if header.empty else opened.offset
        return _Opened(opened.content, opened.certificate, digest, envelope.algorithm, offset)

    def _open_confidential(
        self, queue: str, policy: Policy, wire: _wire.Wire, header: PdmqHeader, into: memoryview | None
    ) -> _Opened:
        """Confidentiality: public checks on the key block, then every later failure is one error.

        A reused key is cached only after a message decrypted with it was accepted, and dropped
        when one fails, so that a failing message always costs the receiver an RSA operation (the
        key-reuse flag is not authenticated and must not make probing cheaper).
        """
        parts = wire.confidential()
        cached = self._receiver_keys.pop(queue, None) if header.key_reuse else None
        headroom = wire.chain.payload_offset if into is not None else 0
        if cached is not None and cached.matches(parts.key_block):
            self.stats.key_reuse_hits += 1
            algorithm = cached.algorithm
            if algorithm is not policy.encryption_algorithm or header.iv_block_size != cached.block_size:
                _check_cipher(policy, header, algorithm)
            steps = ["using the key cached for this key block"]
            content = self._decrypt_payload(header, parts, cached.decryptor, (into, headroom), steps)
            self._receiver_keys[queue] = cached
            return _Opened(content, cipher=algorithm, offset=-1 if header.empty else headroom)
        envelope = wire.key_block(parts)
        algorithm = envelope.algorithm
        _check_cipher(policy, header, algorithm)
        identity = self._sender.identity("decrypting a confidentiality message")
        # implicit rejection: a key that did not unwrap is used as a real one would be (the key
        # block, then the payload), so that a bad RSA block costs what a wrong key does
        content_key, unwrapped = self._unwrap(envelope, identity)
        steps = ["unwrapping the key block's key with RSA"]
        key, step_error = _message_key(envelope, content_key, steps)
        decryptor = CbcDecryptor(algorithm, algorithm.spec.factory(key))
        content = self._decrypt_payload(header, parts, decryptor, (into, headroom), steps, step_error, not unwrapped)
        if header.key_reuse:
            self._receiver_keys[queue] = ReceivedKey(bytes(parts.key_block), key, decryptor)
        return _Opened(content, cipher=algorithm, offset=-1 if header.empty else headroom)

    def _decrypt_payload(
        self,
        header: PdmqHeader,
        parts: _wire.Confidential,
        decryptor: CbcDecryptor,
        output: tuple[memoryview | None, int],
        steps: list[str],
        step_error: Exception | None = None,
        rejected: bool = False,
    ) -> bytes | memoryview:
        """A confidentiality payload decrypted (into ``output``: a buffer and the room to leave in
        it, or None) and checked against the PDMQ header. Every failure is the one error:
        ``step_error`` is one found before; ``rejected`` (the key did not unwrap) refuses after the
        same work, with a diagnostic that stops at the unwrap. A large payload of the allocating
        call goes straight into the bytes object it returns."""
        (into, headroom), what = output, "confidentiality payload"
        try:
            if step_error is not None:
                raise step_error
            steps.append("decrypting and unpadding the payload")
            if into is None and not header.empty and header.orig_size >= DIRECT_FROM:
                try:
                    content: bytes | memoryview = decryptor.decrypt_exact(
                        parts.iv, parts.ciphertext, header.orig_size, what=what
                    )
                except PayloadSizeError as differs:  # the padding was good: the size's step failed
                    steps.append("checking origSize and the empty flag")
                    raise MalformedMessageError(differs.message) from None
            else:
                decrypted = decryptor.decrypt(parts.iv, parts.ciphertext, what=what, headroom=headroom, into=into)
                steps.append("checking origSize and the empty flag")
                content = check_size(decrypted, header.orig_size, header.empty)
            if rejected:  # garbage that decrypted and had the right size: refused all the same
                raise DecryptionError("implicit rejection")
        except Exception as error:  # every failure after the unwrap is the same error
            # the key owner's diagnostic names the step that really failed
            failure = DecryptionError("implicit rejection") if rejected else error
            done = steps[:1] if rejected else steps
            identity = self.keystore.identity
            raise self._failed(header, decryptor.algorithm, header.enc_block_size, identity, done, failure) from None
        return content

    def _unwrap(self, envelope: EnvelopedContent, identity: Identity) -> tuple[bytes, bool]:
        """This identity's content key (implicit rejection: a failed unwrap still gives a key)."""
        if self._identity_ids[0] is not identity:
            self._identity_ids = (identity, recipient_ids(identity.certificate))
        index = envelope.index_of(self._identity_ids[1])
        if index is None:
            refs = envelope.recipient_refs()
            listed = summarise([self._describe_recipient(ref) for ref in refs[:5]], total=len(refs))
            raise NotARecipientError(
                f"this message was encrypted for {len(refs)} recipient(s): {listed}; this identity is "
                f"{identity.dn} (issuer {DistinguishedName.from_x509(identity.certificate.issuer)}, serial "
                f"{identity.certificate.serial_number:#x}). Add this identity's DN to the sender's policy "
                "recipients (-r), or read with a recipient's keystore"
            )
        wrapped = envelope.wrapped_key(index)
        self.stats.rsa_private_operations += 1
        return unwrap_content_key(identity, wrapped, envelope.algorithm.spec.key_size)

    def _describe_recipient(self, ref: RecipientRef) -> str:
        if ref.issuer is not None and ref.serial is not None:
            for certificate in self.keystore.certificates:
                if ref.matches(certificate):
                    return f"{DistinguishedName.from_x509(certificate.subject)} ({ref.describe()})"
        return ref.describe()

    def _failed(
        self,
        header: PdmqHeader,
        algorithm: EncryptionAlgorithm,
        ciphertext_size: int,
        identity: Identity | None,
        steps: list[str],
        error: Exception,
    ) -> DecryptionError:
        """The one decryption error; with diagnostics on, it also records the step that failed
        (its name and the exception's class only: never what the step read)."""
        step = f"{steps[-1]} failed ({type(error).__name__})" if self.diagnose_decryption else None
        reader = identity.dn if identity is not None else None
        return decryption_failed(header.qop, algorithm, ciphertext_size, reader, step=step)


def _message_key(envelope: EnvelopedContent, content_key: bytes, steps: list[str]) -> tuple[bytes, Exception | None]:
    """The confidentiality message key from its key block; a failure is returned, to be raised as the one error."""
    size = envelope.algorithm.spec.key_size
    try:
        steps.append("decrypting the key block")
        key = bytes(envelope.decrypt(content_key, what="confidentiality key block"))
        if len(key) != size:
            raise DecryptionError("the key block does not hold a key of the cipher's size")
    except Exception as error:
        return content_key, error
    return key, None


def _check_cipher(policy: Policy, header: PdmqHeader, algorithm: EncryptionAlgorithm) -> None:
    """The key block's cipher is strong enough, and the PDMQ IV size is its block size."""
    if algorithm is not policy.encryption_algorithm:  # the policy's own cipher is strong enough for it
        _rules.check_cipher_strength(policy.name, policy.encryption_algorithm, algorithm)
    if header.iv_block_size != _BLOCK_SIZES[algorithm]:
        raise MalformedMessageError(
            f"PDMQ IVBlockSize {header.iv_block_size} does not match {algorithm}'s block size "
            f"{algorithm.spec.block_size}"
        )
