"""The Protector: ``protect()`` and ``unprotect()`` for one open queue handle.

Bytes in, bytes out. The Protector reads messages through the one wire parser (``ams._wire``),
applies AMS's rules in the order ``ams._rules`` lists them, and leaves certificates to a
:class:`~ams.verify.Verifier` (shared per connection, or its own). It holds what AMS ties to a
queue handle: the sender's signature writers and reusable keys, and the receiver's cached key.

This module holds its public face: construction, ``prepare``, and the allocating and ``_into``
variants of ``protect`` and ``unprotect``. The send side, which lays a protected message's parts
out, is ``ams._protecting``; the receive side, each QoP's checks and decryption, is
``ams._unprotecting``; what both share (settings, :class:`ProtectorStats`, the policy lookup) is
``ams._protector_state``.

One change of IBM's order, which security needs: for privacy, everything between the RSA
unwrap and an authenticated signer is one step with one error (``ams._privacy``); for
confidentiality everything after the unwrap is (format.md §6, SECURITY.md).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping

from ams import _wire
from ams._protecting import Protecting
from ams._protector_state import DIRECT_FROM
from ams._protector_state import ProtectorStats as ProtectorStats
from ams._protector_state import policy_required as policy_required
from ams._sending import Sender
from ams._unprotecting import Unprotecting
from ams.algorithms import EncryptionAlgorithm, QoP, SignatureAlgorithm
from ams.errors import NotProtectedError, UsageError, plural
from ams.hazmat.buffers import SpareBuffer, fresh_bytes
from ams.hazmat.cbc import PendingCiphertext
from ams.keys.keystore import Keystore
from ams.keys.revocation import RevocationChecker
from ams.keys.revocation_settings import RevocationSettings
from ams.limits import DEFAULT_LIMITS, Limits
from ams.message import Protected, ProtectedView, Unprotected, UnprotectedView
from ams.mqconstants import MQCCSI_UTF8, MQENC_NATIVE, MQFMT_NONE, MQFMT_STRING
from ams.policy.model import Policy
from ams.verify import Verifier

_SPARE_KEPT = 32 * 1024 * 1024  # a larger plaintext buffer is not kept between messages


class Protector(Protecting, Unprotecting):
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
        self._receiver_keys = {}
        self._headers = {}
        self._prepared = {}
        self._identity_ids = (None, ())
        self._spare = SpareBuffer(keep_up_to=_SPARE_KEPT)
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
        fresh = fresh_bytes(size) if size >= DIRECT_FROM else None
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

    def _tolerate(self, queue: str, policy: Policy, wire: _wire.Wire) -> None:
        """An unprotected message on a protected queue passes only when the policy tolerates it."""
        if not policy.tolerate:
            raise _not_protected(queue, policy, wire)


def _verifier(
    keystore: Keystore, clock_skew: datetime.timedelta, strict_dn: bool, revocation: RevocationSettings | None
) -> Verifier:
    if revocation is None:
        return Verifier.from_keystore(keystore, clock_skew=clock_skew, strict_dn=strict_dn)
    checker = RevocationChecker.online(revocation) if revocation.enabled else None
    return Verifier(keystore, clock_skew=clock_skew, strict_dn=strict_dn, revocation=checker)


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
