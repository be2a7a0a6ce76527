"""The wire format, syntax only: the MQ header chain, the PDMQ header and the CMS structures AMS uses.

This is a hazardous-materials layer, fenced the way ``cryptography.hazmat`` is: it is for those
who know what they are doing. It reads and writes bytes strictly and boundedly and checks
nothing else: no signature is verified, no certificate is trusted, no policy is applied, and a
successful parse says nothing about who sent a message or whether it may be read. The safe API
is :class:`ams.Protector`, which applies every check of format.md §6.

* ``der``: just enough DER to write AMS's structures and read them strictly, with bounded work.
* ``oids``: the object identifiers of the CMS structures AMS uses.
* ``mqheaders``: the chain of MQ headers left in the clear before the PDMQ header (format.md §1).
* ``pdmq``: the PDMQ header that precedes every protected payload (format.md §2).
* ``signed``: CMS SignedData, a strict parser and a reader of AMS's shape (format.md §3); its
  writer is importable from it too.
* ``signed_writer``: CMS SignedData as AMS writes it (format.md §3).
* ``enveloped``: CMS EnvelopedData, a strict parser and a reader of AMS's shape (format.md §4-5);
  its names for writing and CBC are importable from it too.
* ``enveloped_writer``: CMS EnvelopedData as AMS writes it (format.md §4-5).
* ``cbc``: CBC with PKCS#7 padding, encrypting and decrypting (format.md §4-5).
* ``certificates``: small cached readings of X.509 certificates (issuer, serial, extensions).
"""
