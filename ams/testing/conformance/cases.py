"""The cases each property draws, within what the peer can do: Hypothesis strategies, and the
deterministic must-check and must-accept cases sent before them."""

from __future__ import annotations

import attrs
from hypothesis import strategies as st

from ams.algorithms import EncryptionAlgorithm, QoP, SignatureAlgorithm
from ams.mqconstants import MQENC_NATIVE
from ams.testing.algorithms import CIPHERS, DIGESTS, QOPS
from ams.testing.conformance.properties import (
    ACCEPTED_QOPS,
    MUST_ACCEPT_KIND,
    MUST_CHECK_KIND,
    QOP_MATRIX,
    Case,
    Property,
)
from ams.testing.conformance.protocol import Capabilities
from ams.testing.conformance.tampering import (
    CANONICAL_CHAIN,
    CANONICAL_PAYLOAD,
    MUST_ACCEPT,
    MUST_CHECK,
    canonical_algorithms,
)
from ams.testing.conformance.world import INVALID_SIGNERS, RECIPIENTS, REVOKED_SIGNERS, SENDER, UNTRUSTED_SIGNERS
from ams.testing.headers import ClearChain
from ams.testing.mutations import MUTATION_KINDS
from ams.testing.payloads import PayloadSpec
from ams.testing.strategies import clear_chains, payload_specs

QUEUES = ("Q", "AMS.CONFORMANCE.QUEUE", "lower.case.queue", "PAYROLL/2026%EU_1", "Q" * 48)
FINAL_FORMATS = ("MQSTR", "        ", "MQADMIN", "MQXMIT", "APPDATA")


def other_qops(qops: tuple[QoP, ...]) -> list[tuple[QoP, QoP]]:
    """(the policy's, the message's) QoP pairs within ``qops`` that a receiver must refuse."""
    return [(p, m) for p in qops for m in qops if (p, m) not in ACCEPTED_QOPS]


BACKDATED_SIGNERS = ("expired", "not-yet-valid")  # signed within their validity, which does not hold now
KEY_REUSE_COUNTS = (1, 2, -1)  # -c N below every stream's length (3-4), so a count exceeded shows; -1 is UNLIMITED
NEED_A_PAYLOAD = ("the signed content", "the messageDigest attribute", "PDMQ empty flag")


def must_check_cases(caps: Capabilities) -> list[Case]:
    """For each QoP the peer implements, a canonical message with each field of
    :data:`~ams.testing.conformance.tampering.MUST_CHECK` changed (those the message has)."""
    out = []
    for case in _canonical_cases(caps):
        for index, name in enumerate(MUST_CHECK[case.qop]):
            if name == "the last clear Format" and not case.chain.headers:
                continue
            if not case.payload.size and name in (
                "the signed content",
                "the messageDigest attribute",
                "PDMQ empty flag",
            ):
                continue
            out.append(attrs.evolve(case, mutation=(MUST_CHECK_KIND, index, 0)))
    return out


def must_accept_cases(caps: Capabilities) -> list[Case]:
    """For each QoP the peer implements, a canonical message with each field of
    :data:`~ams.testing.conformance.tampering.MUST_ACCEPT` changed."""
    return [
        attrs.evolve(case, mutation=(MUST_ACCEPT_KIND, index, 0))
        for case in _canonical_cases(caps)
        for index in range(len(MUST_ACCEPT[case.qop]))
    ]


def qop_matrix_cases(caps: Capabilities) -> list[Case]:
    """Every cell of format.md §6's table the peer implements: for each policy QoP, -t 0 and -t 1, a
    canonical message of each QoP, and the canonical body not protected."""
    canonical = {case.qop: case for case in _canonical_cases(caps)}
    return [
        attrs.evolve(canonical[message or policy], policy_qop=policy, tolerate=tolerate, unprotected=message is None)
        for policy in canonical
        for tolerate in (False, True)
        for message in (None, *canonical)
    ]


def _canonical_cases(caps: Capabilities) -> list[Case]:
    """Per QoP the peer implements: a 40-byte text behind an MQRFH2, for one recipient, its first algorithms."""
    out = []
    for qop in (q for q in QOPS if q in caps.qops):
        digest, cipher = canonical_algorithms(qop, caps.digests, caps.ciphers)
        chain = CANONICAL_CHAIN if caps.clear_headers else ClearChain()
        payload = PayloadSpec("text", min(CANONICAL_PAYLOAD.size, caps.max_payload))
        out.append(Case(qop, digest, cipher, int(qop is not QoP.INTEGRITY), 0, payload, chain, "Q"))
    return out


# -- the cases ---------------------------------------------------------------------------------------------------------


def weaker_choices(caps: Capabilities) -> list[tuple[QoP, SignatureAlgorithm | EncryptionAlgorithm]]:
    """(QoP, the peer's policy algorithm) pairs for which a weaker algorithm exists."""
    out: list[tuple[QoP, SignatureAlgorithm | EncryptionAlgorithm]] = []
    for qop in QOPS:
        if qop not in caps.qops:
            continue
        if qop is not QoP.CONFIDENTIALITY:
            out += [(qop, d) for d in caps.digests if d.value > 1]
        if qop is not QoP.INTEGRITY:
            out += [(qop, c) for c in caps.ciphers if c.value > 1]
    return out


def case_strategy(prop: Property, caps: Capabilities) -> st.SearchStrategy[Case]:
    """The cases ``prop`` tries against a peer that can do ``caps``."""
    return _cases(prop, caps)


@st.composite
def _cases(draw: st.DrawFn, prop: Property, caps: Capabilities) -> Case:
    qops = [q for q in QOPS if q in prop.qops and q in caps.qops]
    if prop.name == "peer-refuses-weaker-algorithm":  # only where a weaker algorithm exists
        qops = [q for q in qops if any(w is q for w, _ in weaker_choices(caps))]
    if prop.name == "peer-refuses-other-qop":
        qops = [q for q in qops if any(m is q for _, m in other_qops(caps.qops))]
    qop = draw(st.sampled_from(qops))
    digest = draw(st.sampled_from(caps.digests)) if qop is not QoP.CONFIDENTIALITY else SignatureAlgorithm.NONE
    cipher = draw(st.sampled_from(caps.ciphers)) if qop is not QoP.INTEGRITY else EncryptionAlgorithm.NONE
    count = draw(st.integers(1, max(1, caps.max_recipients))) if qop is not QoP.INTEGRITY else 0
    reader = draw(st.integers(0, count - 1)) if count else 0
    payload = draw(payload_specs(max_size=caps.max_payload))
    headers = 3 if caps.clear_headers else 0
    chain = draw(clear_chains(max_headers=headers, mqmd_encoding=MQENC_NATIVE, final_formats=FINAL_FORMATS))
    case = Case(qop, digest, cipher, count, reader, payload, chain, draw(st.sampled_from(QUEUES)))
    if prop.name in ("peer-refuses-tampered", "we-refuse-tampered"):
        mutation = (draw(st.sampled_from(MUTATION_KINDS)), draw(st.integers(0, 2**24)), draw(st.integers(0, 7)))
        return attrs.evolve(case, mutation=mutation)
    if prop.name == "peer-refuses-other-qop":
        policy = draw(st.sampled_from([p for p, m in other_qops(caps.qops) if m is qop]))
        return attrs.evolve(case, policy_qop=policy)
    if prop.name == "peer-accepts-higher-qop":
        return attrs.evolve(case, policy_qop=QoP.INTEGRITY)
    if prop.name in ("peer-refuses-unprotected", "peer-tolerates-unprotected"):  # the body on a queue of ``qop``
        tolerate = prop.name == "peer-tolerates-unprotected"
        return attrs.evolve(case, policy_qop=qop, tolerate=tolerate, unprotected=True)
    if prop.name == QOP_MATRIX:  # a cell at random (every one is sent first: qop_matrix_cases), with its case
        policy, tolerate = draw(st.sampled_from(qops)), draw(st.booleans())
        return attrs.evolve(case, policy_qop=policy, tolerate=tolerate, unprotected=draw(st.integers(0, 3)) == 0)
    if prop.name == "peer-accepts-unchecked-fields":
        return attrs.evolve(case, mutation=(MUST_ACCEPT_KIND, draw(st.integers(0, 255)), 0))
    if prop.name == "peer-refuses-untrusted-signer":
        return attrs.evolve(case, signer=draw(st.sampled_from(list(UNTRUSTED_SIGNERS))))
    if prop.name in ("peer-refuses-unauthorised-signer", "peer-accepts-authorised-signer"):
        others = draw(st.lists(st.sampled_from(RECIPIENTS), min_size=1, max_size=3, unique=True))
        signer = [SENDER] if prop.name == "peer-accepts-authorised-signer" else []
        return attrs.evolve(case, authorised=tuple(others + signer))
    if prop.name == "peer-restores-format":  # no clear header: the Format travels in PDMQ origFormat only
        return attrs.evolve(case, chain=ClearChain(final_format=draw(st.sampled_from(FINAL_FORMATS))))
    if prop.name == "peer-refuses-revoked-signer":
        return attrs.evolve(case, signer=draw(st.sampled_from(list(REVOKED_SIGNERS))))
    if prop.name == "peer-refuses-backdated-signer":
        return attrs.evolve(case, signer=draw(st.sampled_from(BACKDATED_SIGNERS)))
    if prop.name == "peer-refuses-invalid-signer":
        return attrs.evolve(case, signer=draw(st.sampled_from(list(INVALID_SIGNERS))))
    if prop.name == "peer-refuses-weaker-algorithm":
        return _weaker(draw, case, caps)
    if prop.name in ("peer-writes-fresh-keys", "peer-honours-key-reuse"):
        reuse = draw(st.sampled_from(KEY_REUSE_COUNTS)) if prop.name == "peer-honours-key-reuse" else 0
        return attrs.evolve(case, stream=draw(st.integers(3, 4)), key_reuse=reuse)
    return case


def _weaker(draw: st.DrawFn, case: Case, caps: Capabilities) -> Case:
    """The case with a policy for the peer stronger than the message in at least one algorithm."""
    choices = [(q, a) for q, a in weaker_choices(caps) if q is case.qop]
    _, stronger = draw(st.sampled_from(choices))
    if isinstance(stronger, SignatureAlgorithm):
        weaker = draw(st.sampled_from([d for d in DIGESTS if d.value < stronger.value]))
        cipher = case.cipher
        return attrs.evolve(case, digest=weaker, policy_digest=stronger, policy_cipher=cipher if cipher.value else None)
    weaker_cipher = draw(st.sampled_from([c for c in CIPHERS if c.value < stronger.value]))
    digest = case.digest
    return attrs.evolve(
        case, cipher=weaker_cipher, policy_cipher=stronger, policy_digest=digest if digest.value else None
    )
