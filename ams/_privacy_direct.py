"""A large privacy message's payload decrypted straight into the ``bytes`` the allocating call returns.

The payload lies inside the decrypted SignedData, between its framing (version, digest
algorithms, the encapContentInfo's headers: some 50 bytes) and its trailer (the signer's
certificate and SignerInfo). Decrypting all of it into a buffer and copying the payload out
costs a pass over the payload beside the decryption's. CBC decrypts any run of blocks given the
block before it, and one context decrypts consecutive runs into different places; so:

1. the first :data:`HEAD` bytes are decrypted into a small buffer and the framing is read from
   them by the reader of the shape AMS writes (:func:`~ams.hazmat.signed.read_ams_signed_head`);
   the eContent OCTET STRING must hold exactly origSize bytes (the PDMQ header's, public), so
   the object returned has a size the sender declared in the clear, never one read from
   decrypted bytes;
2. the blocks that fall inside the payload (all but its last one or two) are decrypted straight
   into a new ``bytes`` object of that size (:func:`~ams.hazmat.buffers.fresh_bytes`);
3. the rest (the payload's end, the trailer, the padding) into a small buffer, where the padding
   is checked and the trailer read by the same reader; the payload's end is copied into place.

The same one step as :func:`ams._privacy.open_privacy`: nothing is handed on before the inner
signature verified over the payload, and every failure is the one error. The values read are
those the reader of the shape AMS writes reads from the whole plaintext, read by the same
functions; so a message this path accepts is one the buffered path accepts, with the same
content, signer and digest. Anything else takes the buffered path on the same bytes: a framing
that is not AMS's (its first bytes decide, as they decide which reader reads them on the
buffered path) is decrypted on into the kept buffer; after the payload was placed, a bad
padding or a trailer of another shape has the whole plaintext assembled in the kept buffer (one
copy, whatever failed, so that a bad padding costs what a good one does) and judged there.
Every buffer that held a refused message's plaintext is zeroed (:class:`DirectOutput`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, modes

from ams._privacy import SEQUENCE_HEADROOM, OpenedPrivacy, judge_plaintext, plaintext_room, verified
from ams._signature import CarriedCertificate
from ams.errors import DecryptionError
from ams.hazmat import der
from ams.hazmat.buffers import SpareBuffer, fresh_bytes, scratch, wipe
from ams.hazmat.cbc import check_cbc_input, unpadded
from ams.hazmat.enveloped import EnvelopedContent
from ams.hazmat.signed import SignedContent, read_ams_signed_head, read_ams_signed_tail
from ams.limits import Limits

HEAD = 128  # plaintext bytes read first: AMS's framing before the payload is at most about 60
_WHAT = "privacy content"


class DirectOutput:
    """The buffers one large privacy message is decrypted into, for the allocating call: the
    ``bytes`` returned (written through a view), the small head and tail buffers, and the
    Protector's kept buffer when the buffered path is taken.

    :meth:`refuse` zeroes every byte any of them received; :meth:`accept` drops the view and
    hands back the ``bytes``. One of the two is called, once, for every message.
    """

    __slots__ = ("_out", "_scratch", "_spare", "_taken", "_view")

    def __init__(self, spare: SpareBuffer) -> None:
        self._spare = spare
        self._taken: tuple[memoryview, int] | None = None
        self._out: bytes | None = None
        self._view: memoryview | None = None
        self._scratch: list[memoryview] = []

    def small(self, size: int) -> memoryview:
        """A buffer of ``size`` bytes for the head or the tail, zeroed on refusal."""
        buffer = scratch(size)
        self._scratch.append(buffer)
        return buffer

    def result(self, size: int) -> tuple[bytes, memoryview] | None:
        """The ``bytes`` of ``size`` bytes to return and a writable view of it (None: this
        interpreter has no such object, see :func:`~ams.hazmat.buffers.fresh_bytes`)."""
        made = fresh_bytes(size)
        if made is not None:
            self._out, self._view = made
        return made

    def kept(self, size: int) -> memoryview:
        """The Protector's kept buffer, at least ``size`` bytes, for the buffered path."""
        buffer = self._spare.take(size)
        self._taken = (buffer, size)
        return buffer

    def refuse(self) -> None:
        """Zero every byte the refused message was decrypted into, and let the buffers go."""
        if self._view is not None:
            wipe(self._view)
        for buffer in self._scratch:
            wipe(buffer)
        if self._taken is not None:
            self._spare.give_back(*self._taken, refused=True)
        self._release()

    def accept(self, content: bytes | memoryview) -> bytes:
        """The payload to hand on, once every check passed: the ``bytes`` written through the view
        (now dropped), else a copy of ``content``; the kept buffer goes back for the next message."""
        out = self._out
        if out is None:  # copied before the kept buffer goes back (another thread may take it then)
            out = bytes(content) if len(content) else b""
        if self._taken is not None:
            self._spare.give_back(*self._taken, refused=False)
        self._release()
        return out

    def _release(self) -> None:
        if self._view is not None:
            self._view.release()  # the view does not keep the bytes alive: it must not outlive them
        self._view = self._out = self._taken = None
        self._scratch = []


def open_direct(
    envelope: EnvelopedContent,
    key: bytes,
    *,
    orig_size: int,
    empty: bool,
    limits: Limits,
    load: Callable[[bytes], CarriedCertificate],
    steps: list[str],
    output: DirectOutput,
    into: memoryview | None = None,
    headroom: int = 0,
) -> OpenedPrivacy:
    """:func:`ams._privacy.open_privacy` for the allocating call (no ``into``), with the payload
    decrypted into the ``bytes`` ``output`` makes when the framing is AMS's; raises what the failing
    step raised (the caller makes it the one error and calls ``output.refuse()``)."""
    judge = functools.partial(judge_plaintext, orig_size=orig_size, empty=empty, limits=limits, load=load, steps=steps)
    steps.append("decrypting and unpadding the content")
    if into is not None or headroom or len(envelope.ciphertext) < 2 * HEAD:
        buffer = output.kept(plaintext_room(envelope))
        plaintext = envelope.decrypt(key, what=_WHAT, headroom=SEQUENCE_HEADROOM, into=buffer)
        return judge(buffer, SEQUENCE_HEADROOM, len(plaintext))
    algorithm, ciphertext = envelope.algorithm, envelope.ciphertext
    cipher = algorithm.spec.factory(key)
    block = cipher.block_size // 8
    check_cbc_input(algorithm, block, envelope.iv, ciphertext, _WHAT)
    context = Cipher(cipher, modes.CBC(envelope.iv)).decryptor()
    head = output.small(HEAD + block)
    context.update_into(ciphertext[:HEAD], head)
    framing = None if empty else _framing(head, len(ciphertext), orig_size, block)
    placed = output.result(orig_size) if framing is not None else None
    if framing is None or placed is None:  # the buffered path, the head already decrypted
        buffer = output.kept(plaintext_room(envelope))
        start, size = SEQUENCE_HEADROOM, len(ciphertext)
        buffer[start : start + HEAD] = head[:HEAD]
        end = start + HEAD + context.update_into(ciphertext[HEAD:], buffer[start + HEAD : start + size + block])
        return judge(buffer, start, len(unpadded(buffer, start, end, block, algorithm, _WHAT)))
    split = _Split(envelope, context, block, head, framing, placed)
    return split.open(output, judge, load, steps)


class _Split:
    """One plaintext in three places: the head buffer, the ``bytes`` returned (from the payload's
    start to the last block that leaves a block of room), and the tail buffer."""

    def __init__(
        self,
        envelope: EnvelopedContent,
        context: CipherContext,
        block: int,
        head: memoryview,
        framing: tuple[int, str, int, int],
        placed: tuple[bytes, memoryview],
    ) -> None:
        self.envelope, self.context, self.block, self.head = envelope, context, block, head
        self.version, self.digest_oid, self.content_start, self.content_stop = framing
        self.out, self.view = placed
        middle = self.content_stop - (block - 1)
        self.middle = middle - middle % block  # the last block decrypted into ``out`` leaves a block of room

    def open(
        self,
        output: DirectOutput,
        judge: Callable[[memoryview, int, int], OpenedPrivacy],
        load: Callable[[bytes], CarriedCertificate],
        steps: list[str],
    ) -> OpenedPrivacy:
        """Decrypt the payload into place and the rest into the tail; read the trailer, verify."""
        ciphertext, algorithm, block = self.envelope.ciphertext, self.envelope.algorithm, self.block
        start, stop, middle, view = self.content_start, self.content_stop, self.middle, self.view
        view[: HEAD - start] = self.head[start:HEAD]
        self.context.update_into(ciphertext[HEAD:middle], view[HEAD - start :])
        tail = output.small(len(ciphertext) - middle + block)
        written = self.context.update_into(ciphertext[middle:], tail)
        try:
            end = middle + len(unpadded(tail, 0, written, block, algorithm, _WHAT))
            if stop > end:
                raise der.DerError("the payload runs into the padding")
            certificates, info, digest = read_ams_signed_tail(tail, stop - middle, end - middle, False)
        except (DecryptionError, der.DerError):  # judged on the whole plaintext, as the buffered path judges it
            return self._judged_whole(output, tail, judge)
        view[middle - start :] = tail[: stop - middle]
        steps.append("parsing the decrypted SignedData")
        signed = SignedContent(
            self.version, digest, (self.digest_oid,), certificates, memoryview(self.out), (info,), start
        )
        return verified(signed, 0, orig_size=len(view), empty=False, load=load, steps=steps)

    def _judged_whole(
        self, output: DirectOutput, tail: memoryview, judge: Callable[[memoryview, int, int], OpenedPrivacy]
    ) -> OpenedPrivacy:
        """The whole plaintext assembled in the kept buffer (one copy, whatever failed) and judged
        there; an accepted payload is copied into the ``bytes`` returned."""
        envelope, size, start = self.envelope, len(self.envelope.ciphertext), SEQUENCE_HEADROOM
        buffer = output.kept(plaintext_room(envelope))
        placed = self.view[HEAD - self.content_start : self.middle - self.content_start]
        buffer[start : start + HEAD] = self.head[:HEAD]
        buffer[start + HEAD : start + self.middle] = placed
        buffer[start + self.middle : start + size] = tail[: size - self.middle]
        plaintext = unpadded(buffer, start, start + size, self.block, envelope.algorithm, _WHAT)
        opened = judge(buffer, start, len(plaintext))
        self.view[:] = opened.content  # origSize bytes: the size was checked
        return opened


def _framing(head: memoryview, size: int, orig_size: int, block: int) -> tuple[int, str, int, int] | None:
    """The version, digest OID and the payload's start and stop in the plaintext, read from its first
    :data:`HEAD` bytes, when the framing is AMS's and the payload is origSize bytes that end at least
    a block after ``HEAD`` and before the last block; None otherwise."""
    try:  # the plaintext is at most size - 1 bytes long (at least one byte of padding)
        found = read_ams_signed_head(head[:HEAD], 0, size - 1)
    except (der.DerError, IndexError):  # IndexError: framing longer than HEAD, which AMS never writes
        return None
    _, _, content_start, content_stop = found
    if content_stop - content_start != orig_size or content_start > HEAD or content_stop - 2 * block < HEAD:
        return None
    return found
