"""Output memory for large messages made without filling it first.

``bytearray(n)`` writes n zero bytes, and ``bytes(view)`` copies a buffer into a new object:
for a 1 MiB message each costs about a third of decrypting it. The allocating ``protect`` and
``unprotect`` return ``bytes``, so until now they decrypted into a zeroed buffer and then
copied the result out. Here, on CPython, the ``bytes`` object is made first, uninitialised, by
the C API made for that (``PyBytes_FromStringAndSize(NULL, n)``: "the contents are
uninitialized", for the caller to fill before anyone else sees it), and the cipher writes
straight into it. The writable view on it must be dropped before the object is handed on; no
one else holds the object before then, so no one sees it change. Objects this small the
interpreter may share (the empty and one-byte ones) are never made here. Elsewhere (another
interpreter, no ``ctypes``), :func:`fresh_bytes` gives None and callers copy as before.
"""

from __future__ import annotations

import sys

_SMALLEST = 2  # bytes of length 0 and 1 may be shared singletons: never written into

try:
    if sys.implementation.name != "cpython":
        raise ImportError("not CPython")
    import ctypes

    _new_bytes = ctypes.pythonapi.PyBytes_FromStringAndSize
    _new_bytes.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
    _new_bytes.restype = ctypes.py_object
    _bytes_address = ctypes.pythonapi.PyBytes_AsString
    _bytes_address.argtypes = (ctypes.py_object,)
    _bytes_address.restype = ctypes.c_void_p
    _new_bytearray = ctypes.pythonapi.PyByteArray_FromStringAndSize
    _new_bytearray.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
    _new_bytearray.restype = ctypes.py_object
    _AVAILABLE = True
except (ImportError, AttributeError):  # pragma: no cover - CPython always has them
    _AVAILABLE = False


def fresh_bytes(size: int) -> tuple[bytes, memoryview] | None:
    """A new ``bytes`` object of ``size`` bytes whose content is not yet written, and a writable
    view of that content; None where this interpreter offers no such thing (or ``size`` < 2).

    The caller writes every byte through the view, drops the view, and only then hands the object
    on: until then it is no one else's. Nothing of a previous use of the memory stays readable
    once every byte is written.
    """
    if not _AVAILABLE or size < _SMALLEST:
        return None
    out = _new_bytes(None, size)
    view = memoryview((ctypes.c_char * size).from_address(_bytes_address(out))).cast("B")
    return out, view


def scratch(size: int) -> memoryview:
    """A writable buffer of ``size`` bytes that is not zeroed first (a ``bytearray``, which is
    mutable anyway): for a decryption that overwrites what it reads back. Zeroed where this
    interpreter offers no uninitialised one."""
    if not _AVAILABLE or size < _SMALLEST:
        return memoryview(bytearray(size))
    return memoryview(_new_bytearray(None, size))


def wipe(view: memoryview) -> None:
    """Zero every byte of the writable ``view`` (one memset, no zero buffer made to copy from)."""
    if _AVAILABLE and len(view) >= _SMALLEST:
        ctypes.memset(ctypes.addressof(ctypes.c_char.from_buffer(view)), 0, len(view))
    else:
        view[:] = bytes(len(view))


class SpareBuffer:
    """One buffer kept from message to message for plaintext that is copied out of it: a fresh one
    per message costs its page faults again each time (for 1 MiB, as much as decrypting it).

    :meth:`take` hands it out and :meth:`give_back` keeps it for the next message; what a refused
    message left in it is zeroed (``refused``), as ``unprotect_into`` zeroes a caller's buffer,
    and that buffer is dropped. An accepted message's plaintext, which the caller now holds a copy of, is left to be
    overwritten, as the memory of any freed buffer is. A second thread that asks while the buffer
    is out gets a fresh one (the list's pop is atomic). Buffers over ``keep_up_to`` bytes are not
    kept.
    """

    def __init__(self, keep_up_to: int) -> None:
        self.keep_up_to = keep_up_to
        self._held: list[memoryview] = []

    def take(self, size: int) -> memoryview:
        """A writable buffer of at least ``size`` bytes, not zeroed first (see :func:`scratch`)."""
        try:
            held = self._held.pop()
        except IndexError:
            held = None
        return held if held is not None and len(held) >= size else scratch(size)

    def give_back(self, buffer: memoryview, used: int, *, refused: bool) -> None:
        """Keep ``buffer`` for the next message; a ``refused`` message's buffer has its first ``used``
        bytes (all that was written) zeroed and is not kept: a sender with no key must not make a
        handle hold memory of the size it chose."""
        if refused:
            wipe(buffer[:used])
            return
        if len(buffer) <= self.keep_up_to:
            self._held[:] = [buffer]
