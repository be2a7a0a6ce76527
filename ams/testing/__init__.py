"""``ams.testing``: a conformance kit for IBM MQ Advanced Message Security implementations.

For teams that run IBM's C or Java AMS clients, a gateway or their own implementation, and for
this project's own tests:

* :mod:`ams.testing.pki`: a throwaway PKI (a CA, users, keystore.conf files, and expired,
  not-yet-valid, revoked and wrong-usage certificates on request). No Hypothesis needed.
* :mod:`ams.testing.headers`: clear MQ header chains (MQRFH2 with folders, MQCIH, MQIIH, MQDLH...);
  :mod:`ams.testing.payloads`: payload shapes up to several MiB that make their bytes on demand.
* :mod:`ams.testing.mutations`: changes to a protected message that say what they changed and
  whether a correct receiver must refuse the result.
* :mod:`ams.testing.strategies`: Hypothesis strategies (``pip install ams[testing]``): DNs as
  people write them, valid and invalid policies, PDMQ headers, header chains, payloads,
  protected messages and their mutations.
* :mod:`ams.testing.plugin`: a pytest plugin with the fixtures ``ams_pki``, ``ams_keystore_conf``
  and ``ams_policy_dir``, registered for every ``pip install ams[testing]``.
* :mod:`ams.testing.conformance`: ``ams conformance``, which drives another implementation
  through a small command protocol (docs/conformance.md).
"""
