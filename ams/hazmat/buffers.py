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
