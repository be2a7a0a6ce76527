"""``ams conformance``: property-based conformance tests against another AMS implementation.

A peer is driven through two command templates (docs/conformance.md): one protects, one
unprotects; exit 0 means done, 1-125 refused, anything else (a signal, a timeout) a crash. The
kit draws cases (every quality of protection, algorithm pair, 1 to 10 recipients, payloads
from empty to 1 MiB, clear header chains), checks round trips both ways, that the peer refuses
what must be refused and writes AMS's format exactly, shrinks any failure to a minimal
counterexample and saves it with the command that replays it::

    from ams.testing.conformance import Options, run_conformance
    from ams.testing.conformance.peers import BUILTIN

    report = run_conformance(BUILTIN["self-cli"], Options(max_examples=10, output=Path("out")))
    print(report.text())

:mod:`~ams.testing.conformance.protocol` (templates and placeholders),
:mod:`~ams.testing.conformance.peers` (the peers that ship),
:mod:`~ams.testing.conformance.properties` (what is checked),
:mod:`~ams.testing.conformance.runner` (Hypothesis; ``pip install ams[testing]``),
:mod:`~ams.testing.conformance.cases` (what each property draws),
:mod:`~ams.testing.conformance.tampering` (the must-check fields),
:mod:`~ams.testing.conformance.sandbox` (what keeps the kit safe from its peer),
:mod:`~ams.testing.conformance.coverage`, :mod:`~ams.testing.conformance.report` and
:mod:`~ams.testing.conformance.replay`.
Only the runner needs Hypothesis.
"""
