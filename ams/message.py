"""The values that protect() and unprotect() hand back."""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs
from cryptography import x509

from ams.algorithms import EncryptionAlgorithm, QoP, SignatureAlgorithm
from ams.dn import DistinguishedName
from ams.hazmat.pdmq import PdmqHeader


@attrs.frozen
class Protected:
    """A protected message body and the Format its MQMD must carry."""

    body: bytes
    format: str
    qop: QoP


@attrs.frozen(eq=False)
class ProtectedView:
    """What :meth:`ams.Protector.protect_into` hands back: as :class:`Protected`, but ``body`` is a
    view of the buffer the message was written into. Compared by identity: a view's bytes may
    change under it (the next protect_into into the same buffer)."""

    body: memoryview
    format: str
    qop: QoP


Body = TypeVar("Body", bytes, memoryview)


@attrs.frozen(eq=False)
class _Received(Generic[Body]):
    """What both kinds of unprotected message hold: the body and Format, and how it was protected.

    ``qop`` is the message's protection as received (NONE when it arrived unprotected and the
    policy tolerates that, or the queue has no policy).
    """

    body: Body
    format: str
    qop: QoP
    signer: x509.Certificate | None = None
    signature_algorithm: SignatureAlgorithm | None = None
    encryption_algorithm: EncryptionAlgorithm | None = None
    header: PdmqHeader | None = None

    @property
    def signer_dn(self) -> DistinguishedName | None:
        """The signer certificate's subject, or None when no signer travelled (confidentiality, unprotected)."""
        return DistinguishedName.from_x509(self.signer.subject) if self.signer else None

    @property
    def protected(self) -> bool:
        """True when the message arrived with a PDMQ header, that is, protected."""
        return self.header is not None


@attrs.frozen
class Unprotected(_Received[bytes]):
    """What a receiver gets: the original body and Format, and how the message was protected."""


@attrs.frozen(eq=False)
class UnprotectedView(_Received[memoryview]):
    """What :meth:`ams.Protector.unprotect_into` hands back: as :class:`Unprotected`, but ``body``
    is a view of the buffer the payload was decrypted into (or of the message itself when nothing
    was encrypted), never a copy. Compared by identity: a view's bytes may change under it."""
