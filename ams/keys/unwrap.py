"""RSA PKCS#1 v1.5 key unwrap with implicit rejection, for every kind of private key.

A receiver that answers differently when the RSA padding is wrong, or when a well-padded block
holds a key of the wrong length, is a Bleichenbacher oracle: an attacker who can put messages
on its queue can decrypt other messages' keys and, since AMS signs with the same key, forge
signatures. So the unwrap never fails: on any failure it returns a key derived from the
ciphertext and a secret of the receiver (the same key for the same ciphertext). The receiver
uses that key as it would a real one, through the same decryptions, and the failure surfaces
there as the one decryption error that every other corruption gives, after the same work.

OpenSSL 3.2+ does this for software keys itself; PKCS#11 tokens do not, and the wrong-length
case is ours to hide in either case.
"""

from __future__ import annotations

import hmac

from cryptography.hazmat.primitives.asymmetric import padding

from ams.keys.keystore import Identity

_PKCS1 = padding.PKCS1v15()  # stateless: one for every unwrap


def unwrap_content_key(identity: Identity, wrapped: bytes, size: int) -> tuple[bytes, bool]:
    """The ``size``-byte content key wrapped for ``identity``, and whether it really unwrapped.

    The flag is for the receiver's local diagnostic only; the key is always ``size`` bytes.
    """
    # hmac.digest: the same HMAC-SHA256 as hmac.new(...).digest(), in one C call
    synthetic = hmac.digest(identity.rejection_secret, b"ams-implicit-rejection" + wrapped, "sha256")
    try:
        key = identity.private_key.decrypt(wrapped, _PKCS1)
    except Exception:  # a token raises its own errors; every failure is handled alike
        return synthetic[:size], False
    if len(key) != size:
        return synthetic[:size], False
    return key, True
