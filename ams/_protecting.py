"""The send side of a :class:`~ams.protector.Protector`: a message's protected parts, laid out.

:meth:`Protecting._lay_out` parses the body, applies the policy's QoP and hands back the parts
that follow the clear headers: the packed PDMQ header, then the SignedData (integrity), the
EnvelopedData around it (privacy) or the key block, IV and ciphertext (confidentiality), with
the ciphertext still to compute, so that ``protect`` and ``protect_into`` can write it straight
into its place. A handle repeats its headers and recipients, so each is made once and kept.
"""

from __future__ import annotations

import os

from cryptography import x509

from ams import _wire
from ams._privacy import EMPTY_MARKER
from ams._protector_state import ProtectorState
from ams.algorithms import KEYREUSE_DISABLED, QoP
from ams.hazmat.cbc import PendingCiphertext
from ams.hazmat.der import Chunk
from ams.hazmat.enveloped_writer import Recipient, enveloped_data_parts
from ams.hazmat.oids import ID_SIGNED_DATA
from ams.hazmat.pdmq import PdmqHeader
from ams.policy.model import Policy

_HEADERS_KEPT = 256


class Protecting(ProtectorState):
    """The Protector's send side, and the packed headers and prepared recipients it keeps."""

    _headers: dict[tuple[object, ...], bytes]  # packed PDMQ headers by their fields
    _prepared: dict[int, tuple[tuple[x509.Certificate, ...], tuple[Recipient, ...]]]

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
            payload = EMPTY_MARKER
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
