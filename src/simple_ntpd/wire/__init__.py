"""The NTP wire format, sans-IO: bytes to frozen dataclasses and back.

No policy lives here: :mod:`.packet` decodes any version and mode, :mod:`.kod`
builds and recognises kiss-o'-death headers, :mod:`.constants` names the code
points. Time conversions are in :mod:`simple_ntpd.timetypes`.
"""

from simple_ntpd.wire.constants import (
    HEADER_LEN,
    MIN_EXTENSION_FIELD_LEN,
    ExtensionFieldType,
    KissCode,
    Leap,
    Mode,
)
from simple_ntpd.wire.kod import kiss_code, make_kod
from simple_ntpd.wire.packet import (
    CRYPTO_NAK,
    HEADER_STRUCT,
    ExtensionField,
    Mac,
    NtpHeader,
    NtpPacket,
    decode_packet,
    encode_extension_field,
    encode_header,
    encode_packet,
    try_decode_packet,
)

__all__ = [
    "CRYPTO_NAK",
    "HEADER_LEN",
    "HEADER_STRUCT",
    "MIN_EXTENSION_FIELD_LEN",
    "ExtensionField",
    "ExtensionFieldType",
    "KissCode",
    "Leap",
    "Mac",
    "Mode",
    "NtpHeader",
    "NtpPacket",
    "decode_packet",
    "encode_extension_field",
    "encode_header",
    "encode_packet",
    "kiss_code",
    "make_kod",
    "try_decode_packet",
]
