"""Protocol code points and sizes of the NTP wire format.

This module owns the numbers: modes, leap indicators, extension field types,
kiss codes, header and trailer lengths, each next to the RFC section that
defines it. It holds no logic; :mod:`simple_ntpd.wire.packet` and
:mod:`simple_ntpd.wire.kod` use these names.
"""

from __future__ import annotations

from enum import Enum, IntEnum


class Mode(IntEnum):
    """Association mode, the low three bits of the first octet (RFC 5905 section 7.3, Figure 10).

    All eight values are defined, so any 3-bit field decodes to a member.
    """

    RESERVED = 0
    SYMMETRIC_ACTIVE = 1
    SYMMETRIC_PASSIVE = 2
    CLIENT = 3
    SERVER = 4
    BROADCAST = 5
    CONTROL = 6
    """NTP control message (RFC 9327)."""
    PRIVATE = 7
    """Reserved for private use (ntpd's mode 7, monlist)."""


class Leap(IntEnum):
    """Leap indicator, the top two bits of the first octet (RFC 5905 section 7.3, Figure 9)."""

    NO_WARNING = 0
    ADD_SECOND = 1
    """The last minute of the day has 61 seconds."""
    DEL_SECOND = 2
    """The last minute of the day has 59 seconds."""
    UNSYNCHRONIZED = 3
    """Unknown: the clock is unsynchronized (also the leap of every kiss-o'-death)."""


class ExtensionFieldType(IntEnum):
    """Known extension field types (IANA "NTP Extension Field Types").

    The codec keeps any type, known or not, as a plain int; these names are
    for the code that builds and interprets the fields.
    """

    # RFC 8915 section 5.3: NTS Unique Identifier.
    UNIQUE_IDENTIFIER = 0x0104
    # RFC 8915 section 5.4: NTS Cookie.
    NTS_COOKIE = 0x0204
    # RFC 8915 section 5.5: NTS Cookie Placeholder.
    NTS_COOKIE_PLACEHOLDER = 0x0304
    # RFC 8915 section 5.6: NTS Authenticator and Encrypted Extension Fields.
    NTS_AUTHENTICATOR = 0x0404


class KissCode(bytes, Enum):
    """Kiss-o'-death codes, carried in the reference id of a stratum-0 packet.

    RFC 5905 section 7.4, Figure 13, plus NTSN from RFC 8915 section 5.7.
    """

    ACST = b"ACST"
    """The association belongs to a unicast server."""
    AUTH = b"AUTH"
    """Server authentication failed."""
    AUTO = b"AUTO"
    """Autokey sequence failed."""
    BCST = b"BCST"
    """The association belongs to a broadcast server."""
    CRYP = b"CRYP"
    """Cryptographic authentication or identification failed."""
    DENY = b"DENY"
    """Access denied by remote server."""
    DROP = b"DROP"
    """Lost peer in symmetric mode."""
    RSTR = b"RSTR"
    """Access denied due to local policy."""
    INIT = b"INIT"
    """The association has not yet synchronized for the first time."""
    MCST = b"MCST"
    """The association belongs to a dynamically discovered server."""
    NKEY = b"NKEY"
    """No key found."""
    RATE = b"RATE"
    """Rate exceeded: the server has temporarily denied access."""
    RMOT = b"RMOT"
    """Alteration of association from a remote host running ntpdc."""
    STEP = b"STEP"
    """A step change in system time has occurred, not yet resynchronized."""
    NTSN = b"NTSN"
    """NTS negative-acknowledgment: the cookie could not be used (RFC 8915 section 5.7)."""


# RFC 5905 section 7.3: the fixed header is 12 words.
HEADER_LEN = 48

# RFC 5905 section 7.3: version numbers. 4 is current; 3 (RFC 1305) and older
# carry no extension fields.
NTP_VERSION = 4
MIN_VERSION_WITH_EXTENSIONS = 4

# RFC 7822 section 3 (updating RFC 5905 section 7.5): an extension field is a
# 16-bit type and a 16-bit length that counts the 4-octet field header, the value
# and its padding; the length is at least 16 and a multiple of 4.
EXTENSION_HEADER_LEN = 4
MIN_EXTENSION_FIELD_LEN = 16
EXTENSION_FIELD_ALIGN = 4
# RFC 7822 section 3: with no MAC after it, the last extension field is at least
# 28 octets, so it cannot be mistaken for a MAC of at most 24 octets.
MIN_LAST_EXTENSION_FIELD_LEN = 28
# The length field is 16 bits; the largest multiple of 4 it can hold.
MAX_EXTENSION_FIELD_LEN = 0xFFFC

# RFC 5905 section 7.3 and Appendix A: the legacy MAC trailer is a 32-bit key id
# followed by the digest.
MAC_KEY_ID_LEN = 4
# RFC 5905 section 7.4 ("crypto-NAK"): a MAC of only a zero key id and no digest.
CRYPTO_NAK_LEN = 4
# NTPv4 digests: 16 octets (MD5, AES-128-CMAC, RFC 8573) or 20 (SHA-1). RFC 7822
# limits the whole NTPv4 MAC to 24 octets so that parsing is deterministic.
V4_MAC_DIGEST_LENS: frozenset[int] = frozenset({16, 20})
MAX_V4_MAC_LEN = MAC_KEY_ID_LEN + 20
# The whole NTPv4 MAC trailer: key id plus digest. (A crypto-NAK is CRYPTO_NAK_LEN.)
V4_MAC_TRAILER_LENS: frozenset[int] = frozenset(MAC_KEY_ID_LEN + n for n in V4_MAC_DIGEST_LENS)
# NTPv3 and older carry no extension fields, so any trailer is a MAC; chrony also
# accepts longer digests there (SHA-256 to SHA-512 keys force version 3). Digests of
# 16 to 64 octets in whole words.
MIN_MAC_DIGEST_LEN = 16
MAX_V3_MAC_DIGEST_LEN = 64
