"""The IBM MQ constants this library uses, once (the names are MQ's own, as in cmqc.h).

The wire layer, the MQ adapters and the error tree all take them from here.
"""

from __future__ import annotations

# Formats (MQMD.Format and the Format field of each header): 8 characters, blank padded
MQFMT_NONE = " " * 8
MQFMT_STRING = "MQSTR   "
MQFMT_DEAD_LETTER_HEADER = "MQDEAD  "
MQFMT_ADMIN = "MQADMIN "

# Encodings and coded character sets
MQENC_INTEGER_NORMAL = 0x01  # big-endian integers
MQENC_INTEGER_REVERSED = 0x02  # little-endian integers
MQENC_NATIVE = 546  # what Python writers on x86 and IBM's Java on Linux use (integers reversed)
MQCCSI_UTF8 = 1208

# Structures
MQDLH_LENGTH = 172

# Message descriptor values
MQPER_NOT_PERSISTENT = 0
MQPER_PERSISTENT = 1
MQMT_DATAGRAM = 8
MQAT_UNIX = 6  # what MQ reports for applications on Linux and UNIX

# Reason codes
MQRC_NO_MSG_AVAILABLE = 2033
MQRC_SECURITY_ERROR = 2063
MQRC_BACKOUT_THRESHOLD_REACHED = 2362


def integer_order(encoding: int) -> str:
    """The ``struct`` byte order of an MQ Encoding: MQENC_INTEGER_REVERSED is little-endian."""
    return "<" if encoding & 0x0F == MQENC_INTEGER_REVERSED else ">"
