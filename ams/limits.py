"""How much a received message, and a file the library reads, may hold: bounds checked before
anything is allocated or copied.

A hostile sender controls every count in a message. Without bounds, a 2 MB message of a million
empty certificates or 20,000 RecipientInfos costs seconds and hundreds of megabytes before the
first real check runs. Each bound below is far above what AMS writes, and is checked while the
elements are walked, so the work per message stays proportional to its size with a small
constant.
"""

from __future__ import annotations

import attrs

from ams.errors import UsageError


@attrs.frozen
class Limits:
    """Bounds on the elements of a protected message (defaults suit every AMS deployment we know).

    ``recipients`` is the one a deployment may need to raise: a privacy or confidentiality policy
    with more than 1,024 recipients (``-r``). AMS writes exactly one certificate, one SignerInfo,
    one digest algorithm and three signed attributes; the bounds leave room for what other CMS
    writers add, so that a message is refused by the rule it breaks rather than by a bound.

    ``file_size``, ``crl_file_size`` and ``message_file_size`` bound the files the library and
    ``ams`` read (keystores and their certificates, CRLs, policy files, keystore.conf, the
    proxy's TOML, messages given with ``-i``): each is checked to be a regular file and read
    with the bound, so that a FIFO, a device or a huge sparse file is a prompt
    ConfigurationError naming the file and the limit instead of a hang or a MemoryError. The
    loaders use :data:`DEFAULT_LIMITS`.
    """

    recipients: int = 1024
    certificates: int = 8
    signer_infos: int = 8
    digest_algorithms: int = 8
    signed_attributes: int = 32
    attribute_values: int = 8
    #: bytes of a keystore.conf, PKCS#12, PEM key or certificate file, policy file or proxy TOML;
    #: a larger file, a FIFO or a device is refused with a ConfigurationError naming it
    file_size: int = 16 * 1024 * 1024
    #: bytes of one CRL file (crl.file, --crl): a large CA's full CRL runs to tens of megabytes
    crl_file_size: int = 256 * 1024 * 1024
    #: bytes of a message read from a file or a pipe by ``ams`` (-i, --file): MQ's largest MAXMSGL
    message_file_size: int = 100 * 1024 * 1024

    def __attrs_post_init__(self) -> None:
        for field in attrs.fields(Limits):
            if getattr(self, field.name) < 1:
                raise UsageError(f"Limits.{field.name} must be at least 1, found {getattr(self, field.name)}")


DEFAULT_LIMITS = Limits()
