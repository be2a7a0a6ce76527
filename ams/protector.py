"""The Protector: ``protect()`` and ``unprotect()`` for one open queue handle.

Bytes in, bytes out. The Protector reads messages through the one wire parser (``ams._wire``),
applies AMS's rules in the order ``ams._rules`` lists them, and leaves certificates to a
:class:`~ams.verify.Verifier` (shared per connection, or its own). It holds what AMS ties to a
queue handle: the sender's signature writers and reusable keys, and the receiver's cached key.

One change of IBM's order, which security needs: for privacy, everything between the RSA
unwrap and an authenticated signer is one step with one error (``ams._privacy``); for
confidentiality everything after the unwrap is (format.md §6, SECURITY.md).
"""

from __future__ import annotations

import datetime
import functools
import os
from collections.abc import Callable, Mapping
from typing import NamedTuple

import attrs
from cryptography import x509

from ams import _rules, _wire
from ams._privacy import OpenedPrivacy, PrivacyRefused, check_size, decryption_failed, open_unwrapped
from ams._privacy_direct import DirectOutput, open_direct
from ams._sending import Sender
from ams.algorithms import KEYREUSE_DISABLED, EncryptionAlgorithm, QoP, SignatureAlgorithm
from ams.dn import DistinguishedName
from ams.errors import (
    AmsError,
    DecryptionError,
    EmptyFlagError,
    MalformedMessageError,
    NotARecipientError,
    NotProtectedError,
    PolicyRequiredError,
    SizeMismatchError,
    UsageError,
    plural,
    summarise,
)
from ams.hazmat.buffers import SpareBuffer, fresh_bytes
from ams.hazmat.enveloped import (
    CbcDecryptor,
    EnvelopedContent,
    PayloadSizeError,
    PendingCiphertext,
    Recipient,
    RecipientRef,
    enveloped_data_parts,
    recipient_ids,
)
from ams.hazmat.oids import ID_SIGNED_DATA
from ams.hazmat.pdmq import PdmqHeader
from ams.hazmat.signed import Chunk
from ams.keys.keystore import Identity, Keystore
from ams.keys.revocation import RevocationChecker
from ams.keys.revocation_settings import RevocationSettings
from ams.keys.unwrap import unwrap_content_key
from ams.limits import DEFAULT_LIMITS, Limits
from ams.message import Protected, ProtectedView, Unprotected, UnprotectedView
from ams.mqconstants import MQCCSI_UTF8, MQENC_NATIVE, MQFMT_NONE, MQFMT_STRING
from ams.policy.model import Policy
from ams.verify import Verifier

_EMPTY_MARKER = b"\x00"  # AMS protects this byte in place of an empty payload (format.md §1)
_HEADERS_KEPT = 256
_SPARE_KEPT = 32 * 1024 * 1024  # a larger plaintext buffer is not kept between messages
_DIRECT_FROM = 64 * 1024  # from this size the allocating calls write their bytes object straight (hazmat.buffers)
_BLOCK_SIZES: dict[EncryptionAlgorithm, int] = {
    a: a.spec.block_size for a in EncryptionAlgorithm if a is not EncryptionAlgorithm.NONE
}


@attrs.define
class ProtectorStats:
    """Counts of the expensive operations, so tests and benchmarks can see the work done."""

    rsa_private_operations: int = 0
    key_reuse_hits: int = 0
    messages_protected: int = 0
    messages_unprotected: int = 0


class _Opened(NamedTuple):
    """What a QoP's opening hands back: the payload, and who and what protected it."""

    content: bytes | memoryview
    signer: x509.Certificate | None = None
    digest: SignatureAlgorithm | None = None
    cipher: EncryptionAlgorithm | None = None
    offset: int = -1  # where ``content`` starts in the caller's buffer; -1 when it is not there


class _ReceivedKey:
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


class Protector:
    """Protects and unprotects messages for one open queue handle.

    ``policies`` maps queue names to policies (a :class:`~ams.policy.PolicyStore` or any
    mapping); queues without a policy pass through untouched. ``verifier`` validates
    certificates (default: one of its own, with the revocation checks the keystore.conf
    configures, or ``revocation``, for signers and recipients alike, and with ``clock_skew`` and
    ``strict_dn``: exact comparison of authorised signers' DNs, as IBM's documentation says, instead
    of the way IBM's Java client compares; recipients' DNs always compare exactly).
    ``allow_deprecated`` opts in to writing MD5, SHA1, RC2, DES and 3DES. ``at`` fixes the
    validation time (default: now). ``limits`` bounds what a received message may hold.
    ``diagnose_decryption`` records which step of a failed decryption failed in
    ``DecryptionError.diagnostic``: a local diagnostic for the key owner, off by default, that
    must never be shown to senders (it is exactly the oracle the single error denies them).
    ``require_policy`` refuses (:class:`~ams.errors.PolicyRequiredError`) to protect, unprotect or
    prepare a queue that has no policy, or one that sets no algorithm, instead of passing the
    message in the clear as IBM's AMS does.
    """

    def __init__(
        self,
        keystore: Keystore,
        policies: Mapping[str, Policy],
        *,
        verifier: Verifier | None = None,
        allow_deprecated: bool = False,
        at: datetime.datetime | None = None,
        clock_skew: datetime.timedelta = datetime.timedelta(minutes=5),
        strict_dn: bool = False,
        revocation: RevocationSettings | None = None,
        limits: Limits = DEFAULT_LIMITS,
        diagnose_decryption: bool = False,
        require_policy: bool = False,
    ) -> None:
        self.keystore = keystore
        self.policies = policies
        self.require_policy = require_policy
        self.at = at
        self.limits = limits
        self.diagnose_decryption = diagnose_decryption
        self.verifier = verifier or _verifier(keystore, clock_skew, strict_dn, revocation)
        self.stats = ProtectorStats()
        self._sender = Sender(keystore, allow_deprecated=allow_deprecated)
        self._receiver_keys: dict[str, _ReceivedKey] = {}
        self._headers: dict[tuple[object, ...], bytes] = {}  # packed PDMQ headers by their fields
        self._prepared: dict[int, tuple[tuple[x509.Certificate, ...], tuple[Recipient, ...]]] = {}
        self._identity_ids: tuple[Identity | None, tuple[bytes, ...]] = (None, ())  # how RecipientInfos name it
        self._spare = SpareBuffer(keep_up_to=_SPARE_KEPT)  # large privacy plaintext, copied out of it

    def __repr__(self) -> str:
        return f"Protector({self.keystore!r}, {plural(len(self.policies), 'policy', 'policies')})"

    def prepare(self, queue: str, *, sending: bool, receiving: bool) -> Policy | None:
        """What an MQOPEN does under AMS: check now what this handle will need for ``queue``.

        Sending looks up every recipient's certificate (a missing one fails with its DN) and checks
        the signing key; receiving checks that there is a private key when the policy encrypts.
        """
        policy = self._policy(queue)
        if policy is None or policy.qop is QoP.NONE:
            return policy
        if sending:
            self._sender.check_algorithms(policy)
            if policy.encryption_algorithm is not EncryptionAlgorithm.NONE:
                self.verifier.recipients(policy, self.at)
            if policy.signature_algorithm is not SignatureAlgorithm.NONE:
                self._sender.writer(policy)
        if receiving and policy.encryption_algorithm is not EncryptionAlgorithm.NONE:
            self._sender.identity(f"reading {queue}, whose policy encrypts,")
        return policy

    # -- protect ------------------------------------------------------------------------------

    def protect(
        self,
        queue: str,
        body: bytes | memoryview,
        format: str = MQFMT_STRING,
        *,
        encoding: int = MQENC_NATIVE,
        ccsid: int = MQCCSI_UTF8,
        one_shot: bool = False,
    ) -> Protected:
        """Protect ``body`` (the message data after the MQMD) under ``queue``'s policy.

        Returns the protected body and the Format the MQMD must now carry: blank when the body
        has no clear headers (their last Format is blanked instead). ``one_shot`` is MQPUT1,
        which never reuses a key.
        """
        laid_out = self._lay_out(queue, body, format, encoding, ccsid, one_shot)
        if laid_out is None:
            return Protected(bytes(body), format, QoP.NONE)
        wire, parts, qop = laid_out
        size = _wire.assembled_size(wire.chain, parts)
        fresh = fresh_bytes(size) if size >= _DIRECT_FROM else None
        if fresh is not None:  # a large message is written once, straight into the bytes returned
            out, view = fresh
            try:
                _wire.assemble_into(wire.body, wire.chain, parts, view)
            finally:  # the view does not keep ``out`` alive: never let it outlive this call
                view.release()
        else:
            computed = [p.compute() if isinstance(p, PendingCiphertext) else p for p in parts]
            out = _wire.assemble(wire.body, wire.chain, computed)
        return Protected(out, MQFMT_NONE if wire.chain.format_offset is None else format, qop)

    def protect_into(
        self,
        queue: str,
        body: bytes | memoryview,
        buffer: bytearray | memoryview | None = None,
        format: str = MQFMT_STRING,
        *,
        encoding: int = MQENC_NATIVE,
        ccsid: int = MQCCSI_UTF8,
        one_shot: bool = False,
    ) -> ProtectedView:
        """:meth:`protect` in one pass into ``buffer``, for large messages: ``body`` is a view of it.

        The clear headers, the PDMQ header and the CMS framing are laid out first, then the
        payload is encrypted (privacy, confidentiality) or copied (integrity) straight into its
        place: no ciphertext buffer of its own and no join after. ``buffer`` is writable and
        reused from message to message; when it is too small the UsageError names the size
        needed (the payload plus some kilobytes of headers, certificates and wrapped keys).
        Without one, one buffer of the exact size is made. ``buffer`` must not be the memory
        that holds ``body``.
        """
        laid_out = self._lay_out(queue, body, format, encoding, ccsid, one_shot)
        if laid_out is None:
            out = _output(buffer, body, len(body))
            out[: len(body)] = body
            return ProtectedView(out[: len(body)], format, QoP.NONE)
        wire, parts, qop = laid_out
        out = _output(buffer, body, _wire.assembled_size(wire.chain, parts))
        written = _wire.assemble_into(wire.body, wire.chain, parts, out)
        return ProtectedView(written, MQFMT_NONE if wire.chain.format_offset is None else format, qop)

    def _lay_out(
        self, queue: str, body: bytes | memoryview, format: str, encoding: int, ccsid: int, one_shot: bool
    ) -> tuple[_wire.Wire, list[Chunk | PendingCiphertext], QoP] | None:
        """The parsed body and the protected parts after its clear headers (None: nothing to protect)."""
        policy = self._policy(queue)
        qop = policy.qop if policy is not None else QoP.NONE
        if policy is None or qop is QoP.NONE:
            return None
        self._sender.check_algorithms(policy)
        wire = _wire.parse(body, format, encoding=encoding, ccsid=ccsid, limits=self.limits)
        payload: bytes | memoryview = wire.payload
        empty = len(payload) == 0
        if empty:
            payload = _EMPTY_MARKER
        orig_format = wire.chain.last_format
        parts: list[Chunk | PendingCiphertext]
        if qop is QoP.CONFIDENTIALITY:
            parts = self._confidential_parts(queue, policy, payload, orig_format, empty, one_shot)
        else:
            header = self._header(qop, len(payload), orig_format, queue, empty)
            if qop is QoP.INTEGRITY:
                parts = [header, *self._sender.writer(policy).content_info(payload)]
            else:
                signed = self._sender.writer(policy).content_parts(payload)
                recipients = self._recipients(policy)
                (framing, ciphertext), _ = enveloped_data_parts(
                    recipients, policy.encryption_algorithm, ID_SIGNED_DATA, signed
                )
                parts = [header, framing, ciphertext]
        self.stats.messages_protected += 1
        return wire, parts, qop

    def _confidential_parts(
        self, queue: str, policy: Policy, payload: bytes | memoryview, orig_format: str, empty: bool, one_shot: bool
    ) -> list[Chunk | PendingCiphertext]:
        """The PDMQ v3 header, key block, IV and ciphertext of a confidentiality message."""
        recipients = self.verifier.recipients(policy, self.at)
        key = self._sender.confidentiality_key(queue, policy, recipients, one_shot=one_shot)
        iv = os.urandom(key.block_size)
        ciphertext = PendingCiphertext(policy.encryption_algorithm, key.key, iv, [payload], key.cipher)
        reuse = policy.key_reuse != KEYREUSE_DISABLED
        sizes = (len(key.key_block), len(iv), len(ciphertext))
        header = self._header(QoP.CONFIDENTIALITY, len(payload), orig_format, queue, empty, reuse, sizes)
        return [header, key.key_block, iv, ciphertext]

    def _recipients(self, policy: Policy) -> tuple[Recipient, ...]:
        """The policy's recipients, validated by the verifier, each prepared once for wrapping keys."""
        certificates = self.verifier.recipients(policy, self.at)
        prepared = self._prepared.get(id(certificates))
        if prepared is None or prepared[0] is not certificates:
            prepared = (certificates, tuple(Recipient.of(c) for c in certificates))
            if len(self._prepared) >= _HEADERS_KEPT:
                self._prepared.clear()
            self._prepared[id(certificates)] = prepared  # holds the tuple, so its id stays its own
        return prepared[1]

    def _header(
        self,
        qop: QoP,
        orig_size: int,
        orig_format: str,
        queue: str,
        empty: bool,
        reuse: bool = False,
        sizes: tuple[int, int, int] = (0, 0, 0),
    ) -> bytes:
        """The packed PDMQ header: a handle's messages repeat their headers, so each is packed once."""
        shape = (qop, orig_size, orig_format, queue, empty, reuse, sizes)
        packed = self._headers.get(shape)
        if packed is None:
            key_block, iv, ciphertext = sizes
            packed = PdmqHeader(
                qop,
                orig_size,
                orig_format,
                queue,
                key_reuse=reuse,
                empty=empty,
                key_block_size=key_block,
                iv_block_size=iv,
                enc_block_size=ciphertext,
            ).pack()
            if len(self._headers) >= _HEADERS_KEPT:
                self._headers.clear()
            self._headers[shape] = packed
        return packed

    # -- unprotect ----------------------------------------------------------------------------

    def unprotect(
        self,
        queue: str,
        data: bytes | memoryview | Protected,
        format: str = MQFMT_NONE,
        *,
        encoding: int = MQENC_NATIVE,
        ccsid: int = MQCCSI_UTF8,
        at: datetime.datetime | None = None,
        policy: Policy | None = None,
    ) -> Unprotected:
        """Check and unprotect a message got from ``queue``; any failure raises SecurityError.

        ``format``, ``encoding`` and ``ccsid`` are the MQMD's (a :class:`~ams.Protected` brings
        its own Format). ``policy`` judges the message by that policy instead of the queue's. No
        plaintext is returned from a message that failed any check, and no error text holds a
        byte that decryption revealed.
        """
        body, format, policy = self._received(queue, data, format, policy)
        if policy is None:
            return Unprotected(bytes(body), format, QoP.NONE)  # not AMS's business
        wire = _wire.parse(body, format, encoding=encoding, ccsid=ccsid, limits=self.limits)
        header = wire.header
        if header is None:
            self._tolerate(queue, policy, wire)
            return Unprotected(bytes(body), format, QoP.NONE)
        opened = self._open(queue, policy, wire, header, at, None)
        restored, restored_format = wire.restore(opened.content)
        return Unprotected(restored, restored_format, header.qop, opened.signer, opened.digest, opened.cipher, header)

    def unprotect_into(
        self,
        queue: str,
        data: bytes | memoryview | Protected,
        buffer: bytearray | memoryview | None = None,
        format: str = MQFMT_NONE,
        *,
        encoding: int = MQENC_NATIVE,
        ccsid: int = MQCCSI_UTF8,
        at: datetime.datetime | None = None,
        policy: Policy | None = None,
    ) -> UnprotectedView:
        """:meth:`unprotect` without copying the payload, for large messages: ``body`` is a view.

        An encrypted payload (privacy, confidentiality) is decrypted once, into ``buffer`` when
        one is given (writable, at least ``len(data)`` bytes; reuse it from message to message),
        else into one fresh buffer, and ``body`` is a view of it. A payload that was only signed,
        or not protected, is not copied at all: ``body`` is then a view of ``data``, which must
        not change while the body is in use. Clear headers in front of the payload are written
        back in front of it, in the buffer (a signed payload is then copied there once). When the
        message fails any check, every byte this call wrote into ``buffer`` is zeroed before the
        error is raised, as :meth:`unprotect` returns no plaintext of a refused message.
        """
        body, format, policy = self._received(queue, data, format, policy)
        view = memoryview(body)
        into = _writable(buffer, len(view)) if buffer is not None else None
        if into is not None and into.obj is view.obj:
            # a refusal zeroes the buffer: that would destroy the message the caller still holds
            raise UsageError("unprotect_into needs a buffer of its own, not the memory that holds the message")
        if policy is None:
            return UnprotectedView(view, format, QoP.NONE)
        wire = _wire.parse(view, format, encoding=encoding, ccsid=ccsid, limits=self.limits)
        header = wire.header
        if header is None:
            self._tolerate(queue, policy, wire)
            return UnprotectedView(view, format, QoP.NONE)
        if into is None and (header.qop is not QoP.INTEGRITY or wire.chain.format_offset is not None):
            into = memoryview(bytearray(len(view)))
        try:
            opened = self._open(queue, policy, wire, header, at, into)
            restored, restored_format = wire.restore_into(opened.content, into, opened.offset)
        except BaseException:
            if buffer is not None and into is not None:
                into[: len(view)] = bytes(len(view))  # nothing of a refused message stays behind
            raise
        return UnprotectedView(
            restored, restored_format, header.qop, opened.signer, opened.digest, opened.cipher, header
        )

    def _received(
        self, queue: str, data: bytes | memoryview | Protected, format: str, policy: Policy | None
    ) -> tuple[bytes | memoryview, str, Policy | None]:
        """The body, its Format, and the policy that protects it (None when none does)."""
        body: bytes | memoryview
        if isinstance(data, Protected):
            body, format = data.body, data.format
        else:
            body = data
        policy = policy if policy is not None else self._policy(queue)
        if policy is not None and policy.qop is QoP.NONE:
            policy = None
        return body, format, policy

    def _policy(self, queue: str) -> Policy | None:
        """``queue``'s policy; with ``require_policy``, PolicyRequiredError where none protects it."""
        policy = self.policies.get(queue)
        if self.require_policy and (policy is None or policy.qop is QoP.NONE):
            raise policy_required(queue, self.policies, policy)
        return policy

    def _tolerate(self, queue: str, policy: Policy, wire: _wire.Wire) -> None:
        """An unprotected message on a protected queue passes only when the policy tolerates it."""
        if not policy.tolerate:
            raise _not_protected(queue, policy, wire)

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
        if header.empty and bytes(signed.content) != _EMPTY_MARKER:
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
        if into is not None or len(envelope.ciphertext) < _DIRECT_FROM:
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
            self._receiver_keys[queue] = _ReceivedKey(bytes(parts.key_block), key, decryptor)
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
            if into is None and not header.empty and header.orig_size >= _DIRECT_FROM:
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


def _verifier(
    keystore: Keystore, clock_skew: datetime.timedelta, strict_dn: bool, revocation: RevocationSettings | None
) -> Verifier:
    if revocation is None:
        return Verifier.from_keystore(keystore, clock_skew=clock_skew, strict_dn=strict_dn)
    checker = RevocationChecker.online(revocation) if revocation.enabled else None
    return Verifier(keystore, clock_skew=clock_skew, strict_dn=strict_dn, revocation=checker)


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


def policy_required(queue: str, policies: Mapping[str, Policy], policy: Policy | None) -> PolicyRequiredError:
    """The error of ``require_policy`` for ``queue``, naming where its policy was looked for."""
    source = getattr(policies, "source", None) or (
        f"the {len(policies)} policies given ({summarise(sorted(policies), 5) or 'none'})"
    )
    found = "has no policy" if policy is None else "has a policy that sets no algorithm (-s NONE -e NONE)"
    return PolicyRequiredError(
        f"queue {queue} {found} in {source}, and a policy is required (require_policy, --require-policy): "
        f"nothing is sent or read in the clear. Add one (ams policy set --policies DIR -p {queue} -s SHA256 -e "
        "AES256 -r DN ...; setmqspl on IBM MQ), or name the queue its policy protects"
    )


def _not_protected(queue: str, policy: Policy, wire: _wire.Wire) -> NotProtectedError:
    return NotProtectedError(
        f"queue {queue} requires {policy.qop} (policy: -s {policy.signature_algorithm} "
        f"-e {policy.encryption_algorithm}) but the message is not protected: expected a blank Format followed "
        f"by a PDMQ header, found {wire.unprotected_reason()}. Check that the sender has AMS (and this policy) "
        "enabled, or set -t 1 to tolerate"
    )


def _output(buffer: bytearray | memoryview | None, body: bytes | memoryview, needed: int) -> memoryview:
    """Where protect_into writes: ``buffer`` checked, or a fresh buffer of the size needed."""
    if buffer is None:
        return memoryview(bytearray(needed))
    out = _writable(buffer, needed, "protect_into")
    if out.obj is (body.obj if isinstance(body, memoryview) else body):
        raise UsageError("protect_into needs a buffer of its own, not the memory that holds the message")
    return out


def _writable(buffer: bytearray | memoryview, needed: int, caller: str = "unprotect_into") -> memoryview:
    """``buffer`` as a writable byte view of at least ``needed`` bytes; UsageError otherwise."""
    try:
        view = memoryview(buffer)
    except TypeError:
        raise UsageError(f"{caller} needs a writable buffer, found {type(buffer).__name__}") from None
    if view.readonly or not view.c_contiguous:
        raise UsageError(f"{caller} needs a writable, contiguous buffer (a bytearray, or a memoryview of one)")
    view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
    if len(view) < needed:
        what = "the message's" if caller == "unprotect_into" else "the protected message's"
        raise UsageError(f"{caller} needs a buffer of at least {needed} bytes ({what}), found {len(view)}")
    return view
