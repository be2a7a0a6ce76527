"""CBC with PKCS#7 padding, as AMS encrypts content (format.md §4-5). Syntax only.

Encryption: :class:`PendingCiphertext` knows its length before it is computed, so a writer lays
the DER around it out first and then encrypts straight into its place; the ciphertext is written
with ``update_into`` into one preallocated buffer: the fastest way cryptography offers, and one
copy. Decryption: :func:`cbc_decrypt` into a fresh buffer or the caller's, after room for a
header; :class:`CbcDecryptor` for many messages under one reused key with one OpenSSL context;
a bad length or padding is a DecryptionError.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers import BlockCipherAlgorithm, Cipher, modes

from ams.algorithms import EncryptionAlgorithm
from ams.errors import DecryptionError, MalformedMessageError
from ams.hazmat.buffers import fresh_bytes, wipe
from ams.hazmat.der import Chunk


def cbc_encrypt(
    algorithm: EncryptionAlgorithm,
    key: bytes,
    iv: bytes,
    parts: Sequence[Chunk],
    *,
    cipher: BlockCipherAlgorithm | None = None,
) -> memoryview:
    """PKCS#7-padded CBC over the concatenation of ``parts``, without joining them.

    ``cipher`` is ``algorithm``'s primitive already made with ``key``, for a key used again.
    """
    return PendingCiphertext(algorithm, key, iv, parts, cipher).compute()


class PendingCiphertext:
    """A PKCS#7-padded CBC ciphertext whose length is known before it is computed.

    The DER around a ciphertext needs only its length, so a writer can lay the framing out first
    and then encrypt straight into the place the ciphertext keeps (``write_into``): a large
    message is then encrypted once, into its final buffer, with no copy after.
    """

    __slots__ = ("_cipher", "_iv", "_pad", "_parts", "_spec", "size")

    def __init__(
        self,
        algorithm: EncryptionAlgorithm,
        key: bytes,
        iv: bytes,
        parts: Sequence[Chunk],
        cipher: BlockCipherAlgorithm | None = None,
    ) -> None:
        self._spec = algorithm.spec
        self._cipher = cipher or self._spec.factory(key)
        self._iv = iv
        self._parts = parts
        total = sum(len(p) for p in parts)
        self._pad = self._spec.block_size - total % self._spec.block_size
        self.size = total + self._pad

    def __len__(self) -> int:
        return self.size

    def compute(self) -> memoryview:
        """The ciphertext in a buffer of its own."""
        buffer = bytearray(self.size + self._spec.block_size)  # update_into wants a block of room
        view = memoryview(buffer)
        encryptor = Cipher(self._cipher, modes.CBC(self._iv)).encryptor()
        if self.size <= _JOIN_BELOW:  # one pass over a small copy costs less than a pass per part
            encryptor.update_into(b"".join([*self._parts, _PADDING[self._pad]]), view)
        else:
            position = 0
            for part in self._parts:
                if len(part):
                    position += encryptor.update_into(part, view[position:])
            encryptor.update_into(_PADDING[self._pad], view[position:])
        encryptor.finalize()  # CBC over whole blocks leaves nothing buffered
        return view[: self.size]

    def write_into(self, out: memoryview) -> None:
        """Encrypt into ``out``, exactly ``size`` bytes long, with no buffer of its own.

        update_into wants block_size - 1 bytes of room past what it writes; the last few bytes of
        the stream, where ``out`` has no such room, go through update() instead.
        """
        if len(out) != self.size:
            raise ValueError(f"the ciphertext is {self.size} bytes, the place for it {len(out)}")
        encryptor = Cipher(self._cipher, modes.CBC(self._iv)).encryptor()
        slack = self._spec.block_size - 1
        stream = [p for p in self._parts if len(p)]
        stream.append(_PADDING[self._pad])
        remaining = self.size
        position = 0
        for part in stream:
            remaining -= len(part)
            direct = len(part) if remaining >= slack else max(0, len(part) - (slack - remaining))
            if direct:
                position += encryptor.update_into(part[:direct], out[position:])
            if direct < len(part):
                produced = encryptor.update(part[direct:])
                out[position : position + len(produced)] = produced
                position += len(produced)
        encryptor.finalize()


_JOIN_BELOW = 16 * 1024


_PADDING = [bytes((pad,)) * pad for pad in range(17)]  # PKCS#7 padding of each length, by length


def cbc_decrypt(
    algorithm: EncryptionAlgorithm,
    key: bytes,
    iv: bytes,
    ciphertext: Chunk,
    *,
    what: str,
    headroom: int = 0,
    into: memoryview | None = None,
    cipher: BlockCipherAlgorithm | None = None,
) -> memoryview:
    """Decrypt and strip PKCS#7 padding; bad length or padding is a DecryptionError.

    The result is a view into a fresh buffer (or ``into``, which must hold ``headroom`` plus
    the ciphertext plus one block) that has ``headroom`` spare bytes before it, so a caller can
    put a DER header in front without copying the plaintext. ``cipher`` is ``algorithm``'s
    primitive already made with ``key``, for a key used again.
    """
    if cipher is None:
        cipher = algorithm.spec.factory(key)
    block = cipher.block_size // 8
    if len(ciphertext) == 0 or len(ciphertext) % block or len(iv) != block:  # checked inline; errors there
        check_cbc_input(algorithm, block, iv, ciphertext, what)
    into, needed = _output_room(into, headroom, len(ciphertext), block, what)
    decryptor = Cipher(cipher, modes.CBC(iv)).decryptor()
    end = headroom + decryptor.update_into(ciphertext, into[headroom:needed])
    decryptor.finalize()
    return unpadded(into, headroom, end, block, algorithm, what)


def _output_room(into: memoryview | None, headroom: int, size: int, block: int, what: str) -> tuple[memoryview, int]:
    """The buffer a CBC decryption of ``size`` ciphertext bytes writes into after ``headroom``
    (``into``, or a fresh one), and the bytes it needs: update_into wants a block of room past
    what it writes."""
    needed = headroom + size + block
    if into is None:
        return memoryview(bytearray(needed)), needed
    if len(into) < needed:
        raise ValueError(f"{what}: the output buffer holds {len(into)} bytes; {needed} are needed")
    return into, needed


def unpadded(
    into: memoryview, start: int, end: int, block: int, algorithm: EncryptionAlgorithm, what: str
) -> memoryview:
    """The plaintext from ``start`` to ``end`` in ``into`` without its PKCS#7 padding; DecryptionError when
    the padding is bad."""
    pad = into[end - 1] if end > start else 0
    if not 1 <= pad <= min(block, end - start) or bytes(into[end - pad : end]) != _PADDING[pad]:
        raise DecryptionError(
            f"{what}: bad {algorithm} padding after decryption: the content key is wrong or the ciphertext was changed"
        )
    return into[start : end - pad]


def check_cbc_input(algorithm: EncryptionAlgorithm, block: int, iv: bytes, ciphertext: Chunk, what: str) -> None:
    """DecryptionError unless ``ciphertext`` is whole blocks and ``iv`` one block."""
    if len(ciphertext) == 0 or len(ciphertext) % block:
        raise DecryptionError(
            f"{what}: ciphertext of {len(ciphertext)} bytes is not a whole number of {block}-byte {algorithm} blocks"
        )
    if len(iv) != block:
        raise DecryptionError(f"{what}: {algorithm} IV must be {block} bytes, found {len(iv)}")


class CbcDecryptor:
    """CBC decryption of many messages under one key (a reused confidentiality key) with one
    OpenSSL context, made once: making a context costs more than decrypting a small message.

    CBC decrypts block i as D(C[i]) xor C[i-1], with C[0] the IV. So a message's IV, put through
    the context as a block of its own (its output thrown away), becomes the chaining value for the
    message's first block, whatever the context decrypted before, even a call that failed half
    way. The context is never finalised. One user at a time: the Protector takes a cached key out
    of its cache while it decrypts with it.
    """

    __slots__ = ("_block", "_context", "_scratch", "algorithm")

    def __init__(self, algorithm: EncryptionAlgorithm, cipher: BlockCipherAlgorithm) -> None:
        self.algorithm = algorithm
        self._block = cipher.block_size // 8
        self._context = Cipher(cipher, modes.CBC(bytes(self._block))).decryptor()
        self._scratch = memoryview(bytearray(2 * self._block))  # the IV block's output, thrown away

    def decrypt(
        self, iv: bytes, ciphertext: Chunk, *, what: str, headroom: int = 0, into: memoryview | None = None
    ) -> memoryview:
        """As :func:`cbc_decrypt` with this decryptor's key."""
        block, algorithm = self._block, self.algorithm
        if len(ciphertext) == 0 or len(ciphertext) % block or len(iv) != block:  # as cbc_decrypt
            check_cbc_input(algorithm, block, iv, ciphertext, what)
        into, needed = _output_room(into, headroom, len(ciphertext), block, what)
        context = self._context
        context.update_into(iv, self._scratch)  # the IV is now the chaining value
        end = headroom + context.update_into(ciphertext, into[headroom:needed])
        return unpadded(into, headroom, end, block, algorithm, what)

    def decrypt_exact(self, iv: bytes, ciphertext: Chunk, size: int, *, what: str) -> bytes:
        """The plaintext, which must be ``size`` bytes once unpadded, decrypted straight into a new
        ``bytes`` object (no buffer of its own, no copy after): DecryptionError when the padding is
        bad, MalformedMessageError when the length is not ``size``.

        All but the last two blocks go straight to their place (update_into wants a block of room
        past what it writes, which the padding leaves); the last two through a small buffer.
        """
        block, algorithm = self._block, self.algorithm
        check_cbc_input(algorithm, block, iv, ciphertext, what)
        fresh = fresh_bytes(size) if len(ciphertext) - block <= size < len(ciphertext) else None
        if fresh is None:  # a size the padding cannot give, or no such object here: decrypt, then copy
            return _exact(self.decrypt(iv, ciphertext, what=what), size)
        out, view = fresh
        head = max(0, len(ciphertext) - 2 * block)
        context = self._context
        tail = memoryview(bytearray(3 * block))
        try:
            context.update_into(iv, self._scratch)  # the IV is now the chaining value
            if head:
                context.update_into(ciphertext[:head], view)
            last = unpadded(tail, 0, context.update_into(ciphertext[head:], tail), block, algorithm, what)
            if head + len(last) != size:
                raise _size_differs()
            view[head:] = last
        except BaseException:  # a refused plaintext is not left in memory that nobody can zero later
            wipe(view)
            wipe(tail)
            raise
        finally:  # the view does not keep ``out`` alive: never let it outlive this call
            view.release()
        return out


def _exact(plaintext: memoryview, size: int) -> bytes:
    if len(plaintext) != size:
        raise _size_differs()
    return bytes(plaintext)


class PayloadSizeError(MalformedMessageError):
    """The payload decrypted and unpadded, and its length is not origSize: a step of its own, which
    the key owner's diagnostic names (the error any sender sees is the one error all the same)."""


def _size_differs() -> PayloadSizeError:
    return PayloadSizeError("the unprotected payload's length differs from the PDMQ header's origSize")
