"""The Protector: protect() and unprotect() for one open queue handle.

AMS's rules live here, in the order IBM's Java client applies them (AMS-FORMAT section 6),
with one change of order that security needs: for privacy, everything between the RSA unwrap
and a verified inner signature is one step with one error (see ``ams.format.privacy``), and
for confidentiality everything after the unwrap is. The Protector holds what AMS ties to a
queue handle: the sender's reusable (key, keyBlock) and the receiver's cached keys, plus
caches of parsed and validated certificates.
"""

from __future__ import annotations

import datetime
import os
import warnings
from collections.abc import Mapping

import attrs
from cryptography import x509

from ams.algorithms import (
    KEYREUSE_DISABLED,
    KEYREUSE_UNLIMITED,
    EncryptionAlgorithm,
    QualityOfProtection,
    SignatureAlgorithm,
)
from ams.dn import DistinguishedName
from ams.errors import (
    AlgorithmTooWeakError,
    AmsDeprecationWarning,
    AmsSecurityWarning,
    DecryptionError,
    DeprecatedAlgorithmError,
    EmptyFlagError,
    HeaderContentMismatchError,
    KeystoreError,
    KeyTooWeakError,
    MalformedMessageError,
    NotARecipientError,
    NotProtectedError,
    QopMismatchError,
    SizeMismatchError,
    UnauthorisedSignerError,
    summarise,
)
from ams.format import der, mqheaders
from ams.format.enveloped import (
    EnvelopedContent,
    RecipientRef,
    build_enveloped_data,
    cbc_decrypt,
    cbc_encrypt,
    parse_enveloped_data,
)
from ams.format.limits import DEFAULT_LIMITS, Limits
from ams.format.oids import ID_DATA, ID_ENVELOPED_DATA, ID_SIGNED_DATA
from ams.format.pdmq import PdmqHeader, looks_protected
from ams.format.privacy import EMPTY_MARKER, check_size, decryption_failed, open_privacy
from ams.format.signed import SignedDataWriter, load_certificate, parse_signed_data, subject_dn
from ams.keys.keystore import Identity, Keystore
from ams.keys.revocation import RevocationChecker, RevocationSettings
from ams.keys.trust import TrustValidator
from ams.keys.unwrap import unwrap_content_key
from ams.message import Protected, Unprotected
from ams.policy.model import Policy

MQFMT_STRING = "MQSTR   "
MQFMT_NONE = mqheaders.MQFMT_NONE

# Which message QoPs each policy QoP accepts (AMS-FORMAT section 6).
_ACCEPTS: dict[QualityOfProtection, tuple[QualityOfProtection, ...]] = {
    QualityOfProtection.INTEGRITY: (QualityOfProtection.INTEGRITY, QualityOfProtection.PRIVACY),
    QualityOfProtection.PRIVACY: (QualityOfProtection.PRIVACY,),
    QualityOfProtection.CONFIDENTIALITY: (QualityOfProtection.CONFIDENTIALITY,),
}
_MIN_KEY_BITS_FOR_LONG_DIGESTS = 769
_CERTIFICATE_CACHE_SIZE = 256


@attrs.define
class ProtectorStats:
    """Counts of the expensive operations, so tests and benchmarks can see the work done."""

    rsa_private_operations: int = 0
    key_reuse_hits: int = 0
    messages_protected: int = 0
    messages_unprotected: int = 0


@attrs.define
class _SenderKey:
    algorithm: EncryptionAlgorithm
    recipients: tuple[x509.Certificate, ...]
    key: bytes
    key_block: bytes
    uses: int = 0


class Protector:
    """Protects and unprotects messages for one open queue handle.

    ``policies`` maps queue names to policies (a :class:`~ams.policy.PolicyStore` or any
    mapping); queues without a policy pass through untouched. ``allow_deprecated`` opts in to
    writing MD5, SHA1, RC2, DES and 3DES. ``at`` fixes the validation time (default: now).
    ``revocation`` (default: what the keystore.conf configures) checks the signer's chain against
    CRLs and OCSP. ``strict_dn`` compares DNs exactly, as IBM's documentation says, instead of the way IBM's
    Java client does (case-insensitively). ``limits`` bounds what a received message may hold.
    ``diagnose_decryption`` records which step of a failed decryption failed in
    ``DecryptionError.diagnostic``: a local diagnostic for the key owner, off by default, that must
    never be shown to senders (it is exactly the oracle the single error exists to deny them).
    """

    def __init__(
        self,
        keystore: Keystore,
        policies: Mapping[str, Policy],
        *,
        allow_deprecated: bool = False,
        at: datetime.datetime | None = None,
        clock_skew: datetime.timedelta = datetime.timedelta(minutes=5),
        strict_dn: bool = False,
        revocation: RevocationSettings | None = None,
        limits: Limits = DEFAULT_LIMITS,
        diagnose_decryption: bool = False,
    ) -> None:
        self.keystore = keystore
        self.strict_dn = strict_dn
        self.policies = policies
        self.allow_deprecated = allow_deprecated
        self.at = at
        self.limits = limits
        self.diagnose_decryption = diagnose_decryption
        self.stats = ProtectorStats()
        settings = revocation if revocation is not None else keystore.revocation
        checker = RevocationChecker(settings) if settings is not None and settings.enabled else None
        self.trust = TrustValidator(keystore, skew=clock_skew, revocation=checker, strict_dn=strict_dn)
        self._writers: dict[SignatureAlgorithm, SignedDataWriter] = {}
        # recipients' certificates per policy, and until when all of them are valid
        self._recipients: dict[Policy, tuple[tuple[x509.Certificate, ...], datetime.datetime]] = {}
        self._sender_keys: dict[str, _SenderKey] = {}
        self._receiver_keys: dict[str, tuple[bytes, bytes, EncryptionAlgorithm]] = {}
        self._certificates: dict[bytes, x509.Certificate] = {}

    def __repr__(self) -> str:
        return f"Protector({self.keystore!r}, {len(self.policies)} policies)"

    def prepare(self, queue: str, *, sending: bool, receiving: bool) -> Policy | None:
        """What an MQOPEN does under AMS: check now what this handle will need for ``queue``.

        Sending looks up every recipient's certificate (a missing one fails with its DN) and checks
        the signing key; receiving checks that there is a private key when the policy encrypts.
        """
        policy = self.policies.get(queue)
        if policy is None or policy.qop is QualityOfProtection.NONE:
            return policy
        if sending:
            self._check_write_algorithms(policy)
            if policy.encryption_algorithm is not EncryptionAlgorithm.NONE:
                self._recipient_certificates(policy)
            if policy.signature_algorithm is not SignatureAlgorithm.NONE:
                self._writer(policy)
        if receiving and policy.encryption_algorithm is not EncryptionAlgorithm.NONE:
            self._identity(f"reading {queue}, whose policy encrypts,")
        return policy

    # -- protect ------------------------------------------------------------------------------

    def protect(
        self,
        queue: str,
        body: bytes,
        format: str = MQFMT_STRING,
        *,
        encoding: int = mqheaders.MQENC_NATIVE,
        ccsid: int = mqheaders.MQCCSI_UTF8,
        one_shot: bool = False,
    ) -> bytes:
        """Protect ``body`` (the message data after the MQMD) for ``queue``.

        When the body has no clear MQ headers the MQMD Format must become MQFMT_NONE (blanks):
        :meth:`protect_message` returns it alongside the bytes.
        """
        return self.protect_message(queue, body, format, encoding=encoding, ccsid=ccsid, one_shot=one_shot).body

    def protect_message(
        self,
        queue: str,
        body: bytes,
        format: str = MQFMT_STRING,
        *,
        encoding: int = mqheaders.MQENC_NATIVE,
        ccsid: int = mqheaders.MQCCSI_UTF8,
        one_shot: bool = False,
    ) -> Protected:
        """Protect a message; ``one_shot`` is MQPUT1, which never reuses a key."""
        policy = self.policies.get(queue)
        if policy is None or policy.qop is QualityOfProtection.NONE:
            return Protected(bytes(body), format, QualityOfProtection.NONE)
        self._check_write_algorithms(policy)
        view = memoryview(body)
        chain = mqheaders.walk(view, format, encoding, ccsid)
        payload: bytes | memoryview = view[chain.payload_offset :]
        empty = len(payload) == 0
        if empty:
            payload = b"\x00"
        qop = policy.qop
        key_reuse = False
        key_block_size = iv_size = enc_size = 0
        if qop is QualityOfProtection.INTEGRITY:
            blob_parts: list[bytes | memoryview] = self._writer(policy).content_info(payload)
        elif qop is QualityOfProtection.PRIVACY:
            parts = self._writer(policy).content_parts(payload)
            blob_parts, _ = build_enveloped_data(
                self._recipient_certificates(policy), policy.encryption_algorithm, ID_SIGNED_DATA, parts
            )
        else:
            key, key_block = self._confidentiality_key(queue, policy, one_shot)
            key_reuse = policy.key_reuse != KEYREUSE_DISABLED
            spec = policy.encryption_algorithm.spec
            iv = os.urandom(spec.block_size)
            ciphertext = cbc_encrypt(policy.encryption_algorithm, key, iv, [payload])
            key_block_size, iv_size, enc_size = len(key_block), len(iv), len(ciphertext)
            blob_parts = [key_block, iv, ciphertext]
        header = PdmqHeader(
            qop=qop,
            orig_size=len(payload),
            orig_format=chain.last_format,
            name=queue,
            key_reuse=key_reuse,
            empty=empty,
            key_block_size=key_block_size,
            iv_block_size=iv_size,
            enc_block_size=enc_size,
        ).pack()
        self.stats.messages_protected += 1
        if chain.format_offset is None:
            return Protected(b"".join([header, *blob_parts]), MQFMT_NONE, qop)
        blank = mqheaders.encode_format(MQFMT_NONE, chain.format_charset)
        out = b"".join(
            [
                view[: chain.format_offset],
                blank,
                view[chain.format_offset + 8 : chain.payload_offset],
                header,
                *blob_parts,
            ]
        )
        return Protected(out, format, qop)

    def _check_write_algorithms(self, policy: Policy) -> None:
        for algorithm in (policy.signature_algorithm, policy.encryption_algorithm):
            if algorithm.deprecated:
                if not self.allow_deprecated:
                    raise DeprecatedAlgorithmError(
                        f"policy {policy.name} asks for {algorithm}, which is deprecated; writing it "
                        "needs an explicit opt-in (Protector(..., allow_deprecated=True) or "
                        "--allow-deprecated). Prefer SHA256 or stronger and AES128/AES256"
                    )
                warnings.warn(
                    f"writing deprecated algorithm {algorithm} for policy {policy.name}",
                    AmsDeprecationWarning,
                    stacklevel=3,
                )

    def _identity(self, why: str) -> Identity:
        identity = self.keystore.identity
        if identity is None:
            raise KeystoreError(f"{why} needs a private key, but {self.keystore.source} has no identity")
        return identity

    def _writer(self, policy: Policy) -> SignedDataWriter:
        algorithm = policy.signature_algorithm
        writer = self._writers.get(algorithm)
        if writer is None:
            identity = self._identity(f"signing for policy {policy.name}")
            if (
                algorithm in (SignatureAlgorithm.SHA384, SignatureAlgorithm.SHA512)
                and identity.key_size < _MIN_KEY_BITS_FOR_LONG_DIGESTS
            ):
                raise KeyTooWeakError(
                    f"policy {policy.name} signs with {algorithm}, which needs an RSA key longer than "
                    f"768 bits; {identity.dn} has {identity.key_size} bits: use SHA256 or a longer key"
                )
            writer = SignedDataWriter(identity, algorithm)
            self._writers[algorithm] = writer
        return writer

    def _recipient_certificates(self, policy: Policy) -> tuple[x509.Certificate, ...]:
        """Each recipient's certificate, validated (dates, chain, keyEncipherment) before use."""
        now = self.at or datetime.datetime.now(datetime.UTC)
        cached = self._recipients.get(policy)
        if cached is not None and now <= cached[1]:
            return cached[0]
        chosen = [self.trust.recipient(dn, now) for dn in policy.recipients]
        for dn, found in zip(policy.recipients, chosen, strict=True):
            if policy.qop is QualityOfProtection.CONFIDENTIALITY and not _data_encipherment(found.certificate):
                warnings.warn(
                    f"confidentiality recipient {dn} has keyUsage without dataEncipherment, which IBM's "
                    "documentation names for confidentiality: issue its certificates with it",
                    AmsSecurityWarning,
                    stacklevel=4,
                )
        certificates = tuple(found.certificate for found in chosen)
        self._recipients[policy] = (certificates, min(found.valid_until for found in chosen))
        return certificates

    def _confidentiality_key(self, queue: str, policy: Policy, one_shot: bool) -> tuple[bytes, bytes]:
        recipients = self._recipient_certificates(policy)
        algorithm = policy.encryption_algorithm
        reusable = not one_shot and policy.key_reuse != KEYREUSE_DISABLED
        state = self._sender_keys.get(queue) if reusable else None
        if state is not None and (
            state.algorithm is not algorithm
            or state.recipients != recipients
            or (policy.key_reuse != KEYREUSE_UNLIMITED and state.uses >= policy.key_reuse)
        ):
            state = None
        if state is None:
            key = os.urandom(algorithm.spec.key_size)
            key_block_parts, _ = build_enveloped_data(recipients, algorithm, ID_DATA, [key])
            key_block = b"".join(key_block_parts)
            state = _SenderKey(algorithm, recipients, key, key_block)
            if reusable:
                self._sender_keys[queue] = state
        state.uses += 1
        return state.key, state.key_block

    # -- unprotect ----------------------------------------------------------------------------

    def unprotect(
        self,
        queue: str,
        data: bytes,
        format: str = MQFMT_NONE,
        *,
        encoding: int = mqheaders.MQENC_NATIVE,
        ccsid: int = mqheaders.MQCCSI_UTF8,
        at: datetime.datetime | None = None,
        policy: Policy | None = None,
    ) -> Unprotected:
        """Check and unprotect a message got from ``queue``; any failure raises SecurityError.

        ``format``, ``encoding`` and ``ccsid`` are the MQMD's. ``policy`` judges the message by
        that policy instead of the queue's. No plaintext is returned from a message that failed
        any check, and no error text holds a byte that decryption revealed.
        """
        policy = policy if policy is not None else self.policies.get(queue)
        if policy is None or policy.qop is QualityOfProtection.NONE:
            return Unprotected(bytes(data), format, QualityOfProtection.NONE)  # not AMS's business
        view = memoryview(data)
        chain = mqheaders.walk(view, format, encoding, ccsid)
        payload = view[chain.payload_offset :]
        if not (chain.last_format == MQFMT_NONE and looks_protected(payload)):
            if policy.tolerate:
                return Unprotected(bytes(data), format, QualityOfProtection.NONE)
            raise _not_protected(queue, policy, chain.last_format)
        header = PdmqHeader.unpack(payload)
        if header.qop not in _ACCEPTS[policy.qop]:
            raise QopMismatchError(
                f"queue {queue}'s policy requires {policy.qop} but the message is protected with "
                f"{header.qop}: the sender's policy for {header.name or queue} differs from the receiver's; "
                "make both sides use the same setmqspl policy"
            )
        blob = payload[header.size :]
        when = at or self.at or datetime.datetime.now(datetime.UTC)
        signer: x509.Certificate | None = None
        digest: SignatureAlgorithm | None = None
        encryption: EncryptionAlgorithm | None = None
        if header.qop is QualityOfProtection.INTEGRITY:
            content, signer, digest = self._open_integrity(policy, header, blob, when)
        elif header.qop is QualityOfProtection.PRIVACY:
            content, signer, digest, encryption = self._open_privacy(policy, header, blob, when)
        else:
            content, encryption = self._open_confidential(queue, policy, header, blob)
        self.stats.messages_unprotected += 1
        body, restored_format = _restore(view, chain, header, content, format)
        return Unprotected(
            body=body,
            format=restored_format,
            qop=header.qop,
            signer=signer,
            signature_algorithm=digest,
            encryption_algorithm=encryption,
            header=header,
        )

    def _open_integrity(
        self, policy: Policy, header: PdmqHeader, blob: memoryview, when: datetime.datetime
    ) -> tuple[bytes | memoryview, x509.Certificate, SignatureAlgorithm]:
        """Integrity: the content is readable anyway, so each check may fail with its own error."""
        _expect_content(blob, ID_SIGNED_DATA, header)
        signed = parse_signed_data(blob, wrapped=True, limits=self.limits)
        self._check_digest_strength(policy, signed.digest_algorithm)
        certificate = signed.signer_certificate(self._certificate)
        self.trust.validate(certificate, when)
        signed.verify(certificate)
        self._check_signer(policy, certificate)
        if len(signed.content) != header.orig_size:
            raise SizeMismatchError(
                f"the signed payload is {len(signed.content)} bytes but the PDMQ header's origSize says "
                f"{header.orig_size}: the header was changed"
            )
        if header.empty and bytes(signed.content) != EMPTY_MARKER:
            raise EmptyFlagError(
                "the PDMQ empty-message flag is set, so the signed content must be the single byte 0x00; "
                f"it is {len(signed.content)} byte(s): the header was changed"
            )
        return (b"" if header.empty else signed.content), certificate, signed.digest_algorithm

    def _open_privacy(
        self, policy: Policy, header: PdmqHeader, blob: memoryview, when: datetime.datetime
    ) -> tuple[bytes | memoryview, x509.Certificate, SignatureAlgorithm, EncryptionAlgorithm]:
        """Privacy: public checks, then one step that fails in one way, then the signer's checks."""
        _expect_content(blob, ID_ENVELOPED_DATA, header)
        envelope = parse_enveloped_data(blob, limits=self.limits)
        if envelope.content_type != ID_SIGNED_DATA:
            raise HeaderContentMismatchError(
                f"PDMQ header says PRIVACY, so the envelope must hold signedData ({ID_SIGNED_DATA}); "
                f"it holds {envelope.content_type}"
            )
        self._check_cipher_strength(policy, envelope.algorithm)
        identity = self._identity("decrypting a privacy message")
        key, unwrapped = self._unwrap(envelope, identity)
        steps = ["unwrapping the content key with RSA"]
        try:
            if not unwrapped:
                raise DecryptionError("implicit rejection")
            opened = open_privacy(
                envelope,
                key,
                orig_size=header.orig_size,
                empty=header.empty,
                limits=self.limits,
                load=self._certificate,
                steps=steps,
            )
            # The inner signature does not cover the certificate: until its issuer's signature
            # is verified, its fields are bytes an attacker may have steered
            steps.append("chaining the signer's certificate to a CA in this keystore")
            self.trust.authenticate(opened.certificate)
        except Exception as error:  # every failure here is the same error, whatever its kind
            raise self._failed(header, envelope.algorithm, len(envelope.ciphertext), identity, steps, error) from None
        # the content and the signer's certificate are authentic: a failure now reveals nothing
        self._check_digest_strength(policy, opened.signed.digest_algorithm)
        self.trust.validate(opened.certificate, when)
        self._check_signer(policy, opened.certificate)
        return opened.content, opened.certificate, opened.signed.digest_algorithm, envelope.algorithm

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
        return decryption_failed(
            header.qop, algorithm, ciphertext_size, identity.dn if identity is not None else None, step=step
        )

    def _check_digest_strength(self, policy: Policy, found: SignatureAlgorithm) -> None:
        required = policy.signature_algorithm
        if found.value < required.value:
            raise AlgorithmTooWeakError(
                f"the message is signed with {found}, weaker than the policy's {required} for queue "
                f"{policy.name} (strength MD5 < SHA1 < SHA256 < SHA384 < SHA512): the sender must use "
                f"{required} or stronger"
            )

    def _check_cipher_strength(self, policy: Policy, found: EncryptionAlgorithm) -> None:
        required = policy.encryption_algorithm
        if found.value < required.value:
            raise AlgorithmTooWeakError(
                f"the message is encrypted with {found}, weaker than the policy's {required} for queue "
                f"{policy.name} (strength RC2 < DES < 3DES < AES128 < AES256): the sender must use "
                f"{required} or stronger"
            )

    def _describe_recipient(self, ref: RecipientRef) -> str:
        if ref.issuer is not None and ref.serial is not None:
            for certificate in self.keystore.certificates:
                if ref.matches(certificate):
                    return f"{DistinguishedName.from_x509(certificate.subject)} ({ref.describe()})"
        return ref.describe()

    def _unwrap(self, envelope: EnvelopedContent, identity: Identity) -> tuple[bytes, bool]:
        """This identity's content key (implicit rejection: a failed unwrap still gives a key)."""
        index = envelope.recipient_index(identity.certificate)
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

    def _open_confidential(
        self, queue: str, policy: Policy, header: PdmqHeader, blob: memoryview
    ) -> tuple[bytes | memoryview, EncryptionAlgorithm]:
        """Confidentiality: public checks on the key block, then every later failure is one error.

        A reused key is cached only after a message decrypted with it was accepted, and dropped
        when one fails, so that a failing message always costs the receiver an RSA operation (the
        key-reuse flag is not authenticated and must not make probing cheaper).
        """
        expected = header.key_block_size + header.iv_block_size + header.enc_block_size
        if expected != len(blob):
            raise MalformedMessageError(
                f"PDMQ v3 sizes keyBlock {header.key_block_size} + IV {header.iv_block_size} + "
                f"ciphertext {header.enc_block_size} = {expected} bytes, but {len(blob)} follow the header"
            )
        key_block = blob[: header.key_block_size]
        iv = bytes(blob[header.key_block_size : header.key_block_size + header.iv_block_size])
        ciphertext = blob[header.key_block_size + header.iv_block_size :]
        cached = self._receiver_keys.pop(queue, None) if header.key_reuse else None
        identity = self.keystore.identity
        if cached is not None and cached[0] == key_block:
            _, key, algorithm = cached
            self.stats.key_reuse_hits += 1
            self._check_cipher_strength(policy, algorithm)
            self._check_iv_size(header, algorithm)
            step_error: Exception | None = None
            steps = ["using the key cached for this key block"]
        else:
            _expect_content(key_block, ID_ENVELOPED_DATA, header)
            envelope = parse_enveloped_data(key_block, limits=self.limits)
            if envelope.content_type != ID_DATA:
                raise HeaderContentMismatchError(
                    f"the CONFIDENTIALITY key block must hold id-data ({ID_DATA}), found {envelope.content_type}"
                )
            algorithm = envelope.algorithm
            self._check_cipher_strength(policy, algorithm)
            self._check_iv_size(header, algorithm)
            identity = self._identity("decrypting a confidentiality message")
            content_key, unwrapped = self._unwrap(envelope, identity)
            steps = ["unwrapping the key block's key with RSA"]
            key, step_error = _message_key(envelope, content_key, unwrapped, steps)
        try:
            if step_error is not None:
                raise step_error
            steps.append("decrypting and unpadding the payload")
            decrypted = cbc_decrypt(algorithm, key, iv, ciphertext, what="confidentiality payload")
            steps.append("checking origSize and the empty flag")
            content = check_size(decrypted, header.orig_size, header.empty)
        except Exception as error:  # every failure after the unwrap is the same error
            raise self._failed(header, algorithm, header.enc_block_size, identity, steps, error) from None
        if header.key_reuse:
            self._receiver_keys[queue] = (bytes(key_block), key, algorithm)
        return content, algorithm

    @staticmethod
    def _check_iv_size(header: PdmqHeader, algorithm: EncryptionAlgorithm) -> None:
        if header.iv_block_size != algorithm.spec.block_size:
            raise MalformedMessageError(
                f"PDMQ IVBlockSize {header.iv_block_size} does not match {algorithm}'s block size "
                f"{algorithm.spec.block_size}"
            )

    def _certificate(self, encoded: bytes) -> x509.Certificate:
        certificate = self._certificates.get(encoded)
        if certificate is None:
            certificate = load_certificate(encoded)
            if len(self._certificates) >= _CERTIFICATE_CACHE_SIZE:
                self._certificates.clear()
            self._certificates[encoded] = certificate
        return certificate

    def _check_signer(self, policy: Policy, certificate: x509.Certificate) -> None:
        """The policy's authorised signers (-a), for a signer whose signature and chain are valid."""
        if not policy.signers:
            return
        subject = subject_dn(certificate)
        if any(subject.matches(allowed, strict=self.strict_dn) for allowed in policy.signers):
            return
        near = [f"{allowed} ({'; '.join(subject.differences(allowed))})" for allowed in policy.signers[:5]]
        allowed = summarise(near, total=len(policy.signers))
        raise UnauthorisedSignerError(
            f"the message is signed by {subject} (issuer {DistinguishedName.from_x509(certificate.issuer)}), "
            f"who is not an authorised signer (-a) for queue {policy.name}; the policy allows: {allowed}. "
            "Add the signer's DN with -a if it should be accepted"
        )


def _message_key(
    envelope: EnvelopedContent, content_key: bytes, unwrapped: bool, steps: list[str]
) -> tuple[bytes, Exception | None]:
    """The confidentiality message key from its key block; a failure is returned, to be raised as the one error."""
    size = envelope.algorithm.spec.key_size
    try:
        if not unwrapped:
            raise DecryptionError("implicit rejection")
        steps.append("decrypting the key block")
        key = bytes(envelope.decrypt(content_key, what="confidentiality key block"))
        if len(key) != size:
            raise DecryptionError("the key block does not hold a key of the cipher's size")
    except Exception as error:
        return content_key, error
    return key, None


def _not_protected(queue: str, policy: Policy, last_format: str) -> NotProtectedError:
    found = "a blank Format but no PDMQ header" if last_format == MQFMT_NONE else f"Format {last_format.strip()!r}"
    return NotProtectedError(
        f"queue {queue} requires {policy.qop} (policy: -s {policy.signature_algorithm} "
        f"-e {policy.encryption_algorithm}) but the message is not protected: expected "
        f"a blank Format followed by a PDMQ header, found {found}. "
        "Check that the sender has AMS (and this policy) enabled, or set -t 1 to tolerate"
    )


def _restore(
    view: memoryview, chain: mqheaders.HeaderChain, header: PdmqHeader, content: bytes | memoryview, format: str
) -> tuple[bytes, str]:
    """The original body and MQMD Format: the PDMQ header's origFormat goes back where it came from."""
    if chain.format_offset is None:
        return bytes(content), header.orig_format
    original = mqheaders.encode_format(header.orig_format, chain.format_charset)
    body = b"".join(
        [
            view[: chain.format_offset],
            original,
            view[chain.format_offset + 8 : chain.payload_offset],
            content,
        ]
    )
    return body, format


def _expect_content(blob: memoryview, expected: str, header: PdmqHeader) -> None:
    """The blob is exactly one ContentInfo of the type the PDMQ header's QoP carries."""
    try:
        found, length = der.content_type(blob)
    except ValueError as error:
        raise MalformedMessageError(
            f"the {header.qop} blob after the PDMQ header is not a DER ContentInfo: {error}"
        ) from None
    if found != expected:
        raise HeaderContentMismatchError(
            f"PDMQ header says {header.qop}, which carries a ContentInfo of type {expected}, "
            f"but the blob holds {found}"
        )
    if length != len(blob):
        raise MalformedMessageError(
            f"{len(blob) - length} unexpected bytes after the {header.qop} ContentInfo ({length} bytes)"
        )


def _data_encipherment(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.KeyUsage).value.data_encipherment)
    except x509.ExtensionNotFound:
        return True
