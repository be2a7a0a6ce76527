"""OpenSSL's own chain verifier, ``X509_verify_cert``, called in process through ctypes.

This is the function ``openssl verify`` calls (apps/verify.c: a store of trusted certificates,
the untrusted intermediates, the target), in the system's libcrypto (the same library as the
``openssl`` command). It is the second opinion that implements directoryName name constraints,
which cryptography's verifier refuses, and it is fast enough for thousands of generated chains
where a process per chain is not. No purpose is set, as ``openssl verify`` sets none by default,
so extendedKeyUsage is not its business (AMS checks it on top).

:func:`openssl_verdict` returns None when the chain verifies, else OpenSSL's error text.
:func:`libcrypto` is None when no libcrypto 3 can be loaded (the tests that need it skip).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime
import functools
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

X509_V_FLAG_X509_STRICT = 0x20
X509_V_FLAG_POLICY_CHECK = 0x80
_P = ctypes.c_void_p


@functools.cache
def libcrypto() -> ctypes.CDLL | None:
    """The system's libcrypto, OpenSSL 3, with the signatures used here declared; None if absent."""
    name = ctypes.util.find_library("crypto")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        if lib.OpenSSL_version_num() < 0x30000000:
            return None
    except (OSError, AttributeError):
        return None
    signatures: dict[str, tuple[list[type], type | None]] = {
        "d2i_X509": ([_P, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long], _P),
        "X509_free": ([_P], None),
        "X509_STORE_new": ([], _P),
        "X509_STORE_free": ([_P], None),
        "X509_STORE_add_cert": ([_P, _P], ctypes.c_int),
        "X509_STORE_CTX_new": ([], _P),
        "X509_STORE_CTX_free": ([_P], None),
        "X509_STORE_CTX_init": ([_P, _P, _P, _P], ctypes.c_int),
        "X509_STORE_CTX_get0_param": ([_P], _P),
        "X509_STORE_CTX_get_error": ([_P], ctypes.c_int),
        "X509_VERIFY_PARAM_set_flags": ([_P, ctypes.c_ulong], ctypes.c_int),
        "X509_VERIFY_PARAM_set_time": ([_P, ctypes.c_int64], None),
        "X509_verify_cert": ([_P], ctypes.c_int),
        "X509_verify_cert_error_string": ([ctypes.c_long], ctypes.c_char_p),
        "OPENSSL_sk_new_null": ([], _P),
        "OPENSSL_sk_push": ([_P, _P], ctypes.c_int),
        "OPENSSL_sk_free": ([_P], None),
    }
    for function, (arguments, result) in signatures.items():
        getattr(lib, function).argtypes = arguments
        getattr(lib, function).restype = result
    return lib


def _parse(lib: ctypes.CDLL, certificate: x509.Certificate) -> int:
    encoded = certificate.public_bytes(serialization.Encoding.DER)
    pointer = ctypes.c_char_p(encoded)
    parsed: int | None = lib.d2i_X509(None, ctypes.byref(pointer), len(encoded))
    if not parsed:
        raise ValueError(f"libcrypto could not parse the certificate of {certificate.subject.rfc4514_string()}")
    return parsed


def openssl_verdict(
    leaf: x509.Certificate,
    trusted: Sequence[x509.Certificate],
    untrusted: Sequence[x509.Certificate] = (),
    *,
    at: datetime.datetime,
    flags: int = 0,
) -> str | None:
    """None when OpenSSL verifies ``leaf`` to one of ``trusted`` at ``at``, else its error text."""
    lib = libcrypto()
    if lib is None:
        raise RuntimeError("no OpenSSL 3 libcrypto to load")
    parsed: list[int] = []
    store = lib.X509_STORE_new()
    context = lib.X509_STORE_CTX_new()
    stack = lib.OPENSSL_sk_new_null()
    try:
        for certificate in trusted:
            parsed.append(_parse(lib, certificate))
            lib.X509_STORE_add_cert(store, parsed[-1])
        for certificate in untrusted:
            parsed.append(_parse(lib, certificate))
            lib.OPENSSL_sk_push(stack, parsed[-1])
        parsed.append(_parse(lib, leaf))
        if lib.X509_STORE_CTX_init(context, store, parsed[-1], stack) != 1:
            raise RuntimeError("X509_STORE_CTX_init failed")
        parameters = lib.X509_STORE_CTX_get0_param(context)
        lib.X509_VERIFY_PARAM_set_time(parameters, int(at.timestamp()))
        if flags:
            lib.X509_VERIFY_PARAM_set_flags(parameters, flags)
        if lib.X509_verify_cert(context) == 1:
            return None
        error = lib.X509_STORE_CTX_get_error(context)
        return str(lib.X509_verify_cert_error_string(error).decode("ascii"))
    finally:
        lib.X509_STORE_CTX_free(context)
        lib.OPENSSL_sk_free(stack)
        lib.X509_STORE_free(store)
        for pointer in parsed:
            lib.X509_free(pointer)
