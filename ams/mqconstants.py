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
MQPER_PERSISTENCE_AS_Q_DEF = 2
MQPRI_PRIORITY_AS_Q_DEF = -1
MQ_MAX_PRIORITY = 9  # MaxPriority of a queue manager on Linux and UNIX
MQEI_UNLIMITED = -1
MQMT_REQUEST = 1
MQMT_REPLY = 2
MQMT_DATAGRAM = 8
MQAT_UNIX = 6  # what MQ reports for applications on Linux and UNIX

# Reason codes, with the names MQ gives them (for error texts)
MQRC_NO_MSG_AVAILABLE = 2033
MQRC_SECURITY_ERROR = 2063
MQRC_BACKOUT_THRESHOLD_REACHED = 2362
MQRC_NOT_AUTHORIZED = 2035
MQRC_NOT_OPEN_FOR_BROWSE = 2036
MQRC_NOT_OPEN_FOR_INPUT = 2037
MQRC_NOT_OPEN_FOR_OUTPUT = 2039
MQRC_OBJECT_IN_USE = 2042
MQRC_OPTIONS_ERROR = 2046
MQRC_MSG_TOO_BIG_FOR_Q = 2030
MQRC_MSG_TOO_BIG_FOR_Q_MGR = 2031
MQRC_SELECTOR_NOT_FOR_TYPE = 2068
MQRC_EXPIRY_ERROR = 2013
MQRC_SYNCPOINT_LIMIT_REACHED = 2024
MQRC_PRIORITY_EXCEEDS_MAXIMUM = 2049
MQRC_PRIORITY_ERROR = 2050
MQRC_TRUNCATED_MSG_FAILED = 2080
MQRC_UNKNOWN_OBJECT_NAME = 2085
MQRC_Q_MGR_NAME_ERROR = 2058
MQRC_Q_MGR_NOT_AVAILABLE = 2059
MQRC_CONNECTION_BROKEN = 2009
MQRC_Q_FULL = 2053
MQRC_PUT_INHIBITED = 2051
MQRC_GET_INHIBITED = 2016
MQRC_MSG_TOO_BIG_FOR_CHANNEL = 2218
MQRC_DATA_LENGTH_ERROR = 2010
MQRC_HCONN_ERROR = 2018
MQRC_MD_ERROR = 2026  # an MQMD field MQ cannot hold (an integer outside MQLONG)
MQRC_UNEXPECTED_ERROR = 2195
REASON_NAMES: dict[int, str] = {
    value: name for name, value in dict(globals()).items() if name.startswith("MQRC_") and isinstance(value, int)
}

# The queue attributes the embedded queue manager models, as MQ spells their values
PROPCTL_VALUES = ("COMPAT", "NONE", "ALL", "FORCE", "V6COMPAT")
DEFAULT_MAX_DEPTH = 5000  # MAXDEPTH of a queue by default
DEFAULT_MAX_UNCOMMITTED = 10_000  # MAXUMSGS of a queue manager by default
DEFAULT_MAX_MESSAGE_LENGTH = 4 * 1024 * 1024  # MAXMSGL of a queue, and of a client channel, by default


def reason_name(reason: int) -> str:
    """``2035 (MQRC_NOT_AUTHORIZED)``: a reason code with its name where this module knows it."""
    name = REASON_NAMES.get(reason)
    return f"{reason} ({name})" if name else str(reason)


def integer_order(encoding: int) -> str:
    """The ``struct`` byte order of an MQ Encoding: MQENC_INTEGER_REVERSED is little-endian."""
    return "<" if encoding & 0x0F == MQENC_INTEGER_REVERSED else ">"
