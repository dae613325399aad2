"""The NTP packet codec: bytes to frozen dataclasses and back (RFC 5905 section 7.3).

This module owns the layout of an NTP datagram: the 48-octet header, the
RFC 7822 extension fields after it, and the legacy MAC trailer. It makes no
policy decisions: any version and any mode decode; whether to answer is the
server pipeline's business. Decoding a datagram from the network raises only
:class:`simple_ntpd.errors.WireFormatError` (or, through
:func:`try_decode_packet`, returns a :class:`DropReason`); encoding checks
field ranges and raises ``ValueError``, because its input is our own code's.

Header fields are kept raw: root delay and dispersion as 32-bit short-format
ints, timestamps as 64-bit ints (see :mod:`simple_ntpd.timetypes`), poll and
precision signed.

The trailer rule
----------------

What follows the header is told apart by length alone, as RFC 7822 (which
rewrites RFC 5905 section 7.5) makes possible and as chrony 4 does
(``parse_packet`` in ``ntp_core.c``). Let ``R`` be the number of octets left:

Version 0 to 3 (no extension fields exist before NTPv4):
    * ``R == 0``: no trailer.
    * ``R == 4`` and all zero: a crypto-NAK (RFC 5905 section 7.4).
    * ``20 <= R <= 68`` and ``R % 4 == 0``: a MAC, a 32-bit key id and a
      16 to 64 octet digest. Longer digests than NTPv4 allows are legal here:
      chrony sends SHA-256 and longer MACs with version 3 for this reason.
    * anything else: ``BAD_MAC``.

Version 4 and above (5 to 7 are parsed like 4; rejecting them is policy):
    * ``R == 4`` right after the header and all zero: a crypto-NAK.
    * Then repeat while ``R > 0``:

      - ``R <= 24``: the rest must be a MAC, a key id and a 16 or 20 octet
        digest (``R`` is 20 or 24). RFC 7822 caps an NTPv4 MAC at 24 octets
        and requires the last extension field to be at least 28 octets when no
        MAC follows, which is what makes this test unambiguous. Any other
        ``R`` (1 to 19, 21 to 23) is ``BAD_MAC``.
      - ``R > 24``: an extension field: a 16-bit type and a 16-bit length
        counting its 4-octet header, the value and padding. A length under 16,
        not a multiple of 4, or running past the end is ``BAD_EXTENSION``
        (RFC 7822 section 3).

    A crypto-NAK after extension fields is refused (``BAD_MAC``), as chrony
    does. Old chrony 2.x sent NTPv4 packets with MACs longer than 24 octets;
    like chrony 4, this parser reads such a trailer as an extension field and
    refuses it.

Extension fields of unknown type are kept verbatim: ``ExtensionField.value``
is every octet after the field header, padding included, so encoding gives
back the same bytes.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass

from simple_ntpd.errors import WireFormatError
from simple_ntpd.reasons import DropReason
from simple_ntpd.wire.constants import (
    CRYPTO_NAK_LEN,
    EXTENSION_FIELD_ALIGN,
    EXTENSION_HEADER_LEN,
    HEADER_LEN,
    MAC_KEY_ID_LEN,
    MAX_EXTENSION_FIELD_LEN,
    MAX_V3_MAC_DIGEST_LEN,
    MAX_V4_MAC_LEN,
    MIN_EXTENSION_FIELD_LEN,
    MIN_LAST_EXTENSION_FIELD_LEN,
    MIN_MAC_DIGEST_LEN,
    MIN_VERSION_WITH_EXTENSIONS,
    V4_MAC_DIGEST_LENS,
    Leap,
    Mode,
)

__all__ = [
    "CRYPTO_NAK",
    "HEADER_STRUCT",
    "ExtensionField",
    "Mac",
    "NtpHeader",
    "NtpPacket",
    "ReadableBuffer",
    "decode_packet",
    "encode_extension_field",
    "encode_header",
    "encode_packet",
    "try_decode_packet",
]

_log = logging.getLogger(__name__)

ReadableBuffer = bytes | bytearray | memoryview
"""What the decoder reads: a datagram as received, or a view into a receive buffer."""

HEADER_STRUCT = struct.Struct("!BBbbII4sQQQQ")
"""The 48-octet header (RFC 5905 section 7.3, Figure 8), network byte order.

Fields in order: LI/VN/Mode octet, stratum, poll (signed), precision (signed),
root delay, root dispersion, reference id (4 bytes), then the reference,
origin, receive and transmit timestamps as 64-bit unsigned ints. Public so the
server fast path can ``pack_into`` a preallocated buffer.
"""
assert HEADER_STRUCT.size == HEADER_LEN

_EF_HEADER_STRUCT = struct.Struct("!HH")
_KEY_ID_STRUCT = struct.Struct("!I")

# Every 2- and 3-bit value names a member, so decoding indexes these tuples
# instead of calling the enum constructors (faster on the hot path).
_LEAPS: tuple[Leap, ...] = tuple(Leap)
_MODES: tuple[Mode, ...] = tuple(Mode)
assert all(i == m.value for i, m in enumerate(_LEAPS))
assert all(i == m.value for i, m in enumerate(_MODES))

_U32_MAX = 0xFFFF_FFFF
_ZERO_KEY_ID = b"\x00\x00\x00\x00"


@dataclass(frozen=True, slots=True)
class NtpHeader:
    """The fixed 48-octet NTP header, fields raw as on the wire (RFC 5905 section 7.3)."""

    leap: Leap
    """Leap indicator, 2 bits."""
    version: int
    """Version number, 3 bits (0 to 7)."""
    mode: Mode
    """Association mode, 3 bits."""
    stratum: int
    """Stratum, 0 to 255 (0 is unspecified or kiss-o'-death)."""
    poll: int
    """log2 of the poll interval in seconds, signed 8 bits."""
    precision: int
    """log2 of the clock precision in seconds, signed 8 bits."""
    root_delay: int
    """Root delay, 32-bit unsigned short format (16.16 seconds)."""
    root_dispersion: int
    """Root dispersion, 32-bit unsigned short format (16.16 seconds)."""
    reference_id: bytes
    """Reference id, exactly 4 bytes."""
    reference_ts: int
    """Reference timestamp, 64-bit."""
    origin_ts: int
    """Origin timestamp (T1 echoed), 64-bit."""
    receive_ts: int
    """Receive timestamp (T2), 64-bit."""
    transmit_ts: int
    """Transmit timestamp (T3), 64-bit."""


@dataclass(frozen=True, slots=True)
class ExtensionField:
    """One RFC 7822 extension field.

    ``value`` is everything after the 4-octet field header, padding included,
    so its length is a multiple of 4 and the field's wire length is
    ``4 + len(value)``.
    """

    field_type: int
    """16-bit field type (see :class:`simple_ntpd.wire.constants.ExtensionFieldType`)."""
    value: bytes
    """The body: value and padding."""


@dataclass(frozen=True, slots=True)
class Mac:
    """The legacy symmetric-key MAC trailer: a key id and a digest (RFC 5905 section 7.3).

    ``Mac(0, b"")`` is the crypto-NAK, four zero octets (RFC 5905 section 7.4).
    """

    key_id: int
    """32-bit key identifier."""
    digest: bytes
    """The digest; empty only in a crypto-NAK."""

    @property
    def is_crypto_nak(self) -> bool:
        """Whether this is the four-zero-octet crypto-NAK."""
        return self.key_id == 0 and not self.digest


CRYPTO_NAK = Mac(0, b"")
"""The crypto-NAK trailer (RFC 5905 section 7.4)."""


@dataclass(frozen=True, slots=True)
class NtpPacket:
    """A whole NTP datagram: header, extension fields in order, optional MAC."""

    header: NtpHeader
    extensions: tuple[ExtensionField, ...] = ()
    mac: Mac | None = None


# -- decoding -----------------------------------------------------------------


def decode_packet(data: ReadableBuffer) -> NtpPacket:
    """Decode one NTP datagram.

    Any version and mode decode; the trailer after the header follows the
    rule in this module's docstring.

    Args:
        data: the UDP payload (bytes, or a bytearray or memoryview of a
            receive buffer; decoded values are copied out as bytes).

    Returns:
        The decoded packet.

    Raises:
        WireFormatError: with reason ``TOO_SHORT`` (under 48 octets),
            ``BAD_EXTENSION`` or ``BAD_MAC``. Nothing else, for any input.
    """
    length = len(data)
    if length < HEADER_LEN:
        raise WireFormatError(DropReason.TOO_SHORT, f"{length} octets")
    (
        lvm,
        stratum,
        poll,
        precision,
        root_delay,
        root_dispersion,
        reference_id,
        reference_ts,
        origin_ts,
        receive_ts,
        transmit_ts,
    ) = HEADER_STRUCT.unpack_from(data)
    version = (lvm >> 3) & 7
    header = NtpHeader(
        _LEAPS[lvm >> 6],
        version,
        _MODES[lvm & 7],
        stratum,
        poll,
        precision,
        root_delay,
        root_dispersion,
        reference_id,
        reference_ts,
        origin_ts,
        receive_ts,
        transmit_ts,
    )
    if length == HEADER_LEN:
        return NtpPacket(header)
    if version < MIN_VERSION_WITH_EXTENSIONS:
        return NtpPacket(header, (), _decode_legacy_mac(data, HEADER_LEN))
    extensions, mac = _decode_v4_trailer(data)
    return NtpPacket(header, extensions, mac)


def _is_crypto_nak(data: ReadableBuffer, pos: int) -> bool:
    return len(data) - pos == CRYPTO_NAK_LEN and data[pos : pos + 4] == _ZERO_KEY_ID


def _decode_legacy_mac(data: ReadableBuffer, pos: int) -> Mac:
    """The trailer of an NTPv3-or-older packet: only a MAC or a crypto-NAK is possible."""
    if _is_crypto_nak(data, pos):
        return CRYPTO_NAK
    digest_len = len(data) - pos - MAC_KEY_ID_LEN
    if digest_len < MIN_MAC_DIGEST_LEN or digest_len > MAX_V3_MAC_DIGEST_LEN or digest_len % 4 != 0:
        raise WireFormatError(
            DropReason.BAD_MAC, f"{len(data) - pos} trailing octets in an NTPv3 packet"
        )
    (key_id,) = _KEY_ID_STRUCT.unpack_from(data, pos)
    return Mac(key_id, bytes(data[pos + MAC_KEY_ID_LEN :]))


def _decode_v4_trailer(
    data: ReadableBuffer,
) -> tuple[tuple[ExtensionField, ...], Mac | None]:
    """Extension fields and MAC after an NTPv4 header; see the module docstring."""
    end = len(data)
    pos = HEADER_LEN
    if _is_crypto_nak(data, pos):
        return (), CRYPTO_NAK
    extensions: list[ExtensionField] = []
    while pos < end:
        remaining = end - pos
        if remaining <= MAX_V4_MAC_LEN:
            digest_len = remaining - MAC_KEY_ID_LEN
            if digest_len not in V4_MAC_DIGEST_LENS:
                raise WireFormatError(
                    DropReason.BAD_MAC,
                    f"{remaining} trailing octets at offset {pos}: not a 20 or 24 octet MAC",
                )
            (key_id,) = _KEY_ID_STRUCT.unpack_from(data, pos)
            return tuple(extensions), Mac(key_id, bytes(data[pos + MAC_KEY_ID_LEN :]))
        field_type, field_len = _EF_HEADER_STRUCT.unpack_from(data, pos)
        if field_len < MIN_EXTENSION_FIELD_LEN:
            raise WireFormatError(
                DropReason.BAD_EXTENSION, f"field length {field_len} < 16 at offset {pos}"
            )
        if field_len % EXTENSION_FIELD_ALIGN != 0:
            raise WireFormatError(
                DropReason.BAD_EXTENSION,
                f"field length {field_len} not a multiple of 4 at offset {pos}",
            )
        if field_len > remaining:
            raise WireFormatError(
                DropReason.BAD_EXTENSION,
                f"field length {field_len} overruns the {remaining} octets left at offset {pos}",
            )
        extensions.append(
            ExtensionField(field_type, bytes(data[pos + EXTENSION_HEADER_LEN : pos + field_len]))
        )
        pos += field_len
    return tuple(extensions), None


_internal_errors = 0


def try_decode_packet(data: ReadableBuffer) -> NtpPacket | DropReason:
    """Decode one NTP datagram without ever raising.

    Returns the packet, or the :class:`DropReason` of the
    :class:`WireFormatError` that :func:`decode_packet` raised. Any other
    exception is a bug in this module: it is logged (at WARNING the first
    time, then at DEBUG, so a peer that found the bug cannot flood the log)
    and mapped to ``DropReason.INTERNAL`` so the request pipeline still
    counts the datagram exactly once.
    """
    global _internal_errors
    try:
        return decode_packet(data)
    except WireFormatError as exc:
        return exc.reason
    except Exception:
        _internal_errors += 1
        level = logging.WARNING if _internal_errors == 1 else logging.DEBUG
        _log.log(level, "bug: unexpected error decoding %d octets", len(data), exc_info=True)
        return DropReason.INTERNAL


# -- encoding -----------------------------------------------------------------


def encode_header(h: NtpHeader) -> bytes:
    """Encode the 48-octet header.

    Raises:
        ValueError: a field is out of its wire range, or the reference id is
            not exactly 4 bytes.
    """
    if not 0 <= h.leap <= 3:
        raise ValueError(f"leap {h.leap} not in 0..3")
    if not 0 <= h.version <= 7:
        raise ValueError(f"version {h.version} not in 0..7")
    if not 0 <= h.mode <= 7:
        raise ValueError(f"mode {h.mode} not in 0..7")
    if len(h.reference_id) != 4:
        raise ValueError(f"reference id is {len(h.reference_id)} bytes, not 4")
    try:
        return HEADER_STRUCT.pack(
            (h.leap << 6) | (h.version << 3) | h.mode,
            h.stratum,
            h.poll,
            h.precision,
            h.root_delay,
            h.root_dispersion,
            h.reference_id,
            h.reference_ts,
            h.origin_ts,
            h.receive_ts,
            h.transmit_ts,
        )
    except struct.error as exc:
        # struct names the format code, not the field; say which ranges apply.
        raise ValueError(
            "header field out of range (stratum 0..255, poll and precision -128..127, "
            f"root delay/dispersion 0..2**32-1, timestamps 0..2**64-1): {exc}"
        ) from exc


def encode_extension_field(field: ExtensionField, *, last_without_mac: bool = False) -> bytes:
    """Encode one extension field: type, length, value.

    Args:
        field: the field; its value must already be padded to a multiple of 4.
        last_without_mac: the field ends a packet that has no MAC, so it must
            be at least 28 octets (RFC 7822 section 3).

    Raises:
        ValueError: the type is not 16 bits or the length breaks RFC 7822.
    """
    if not 0 <= field.field_type <= 0xFFFF:
        raise ValueError(f"extension field type {field.field_type} not in 0..0xFFFF")
    field_len = EXTENSION_HEADER_LEN + len(field.value)
    minimum = MIN_LAST_EXTENSION_FIELD_LEN if last_without_mac else MIN_EXTENSION_FIELD_LEN
    if field_len < minimum:
        raise ValueError(f"extension field of {field_len} octets is shorter than {minimum}")
    if field_len % EXTENSION_FIELD_ALIGN != 0:
        raise ValueError(f"extension field of {field_len} octets is not padded to 4")
    if field_len > MAX_EXTENSION_FIELD_LEN:
        raise ValueError(f"extension field of {field_len} octets exceeds the 16-bit length")
    return _EF_HEADER_STRUCT.pack(field.field_type, field_len) + field.value


def _encode_mac(mac: Mac, version: int, has_extensions: bool) -> bytes:
    if not 0 <= mac.key_id <= _U32_MAX:
        raise ValueError(f"MAC key id {mac.key_id} not in 0..2**32-1")
    digest_len = len(mac.digest)
    if digest_len == 0:
        if mac.key_id != 0:
            raise ValueError("a MAC without digest must have key id 0 (crypto-NAK)")
        if has_extensions:
            raise ValueError("a crypto-NAK cannot follow extension fields")
        return _ZERO_KEY_ID
    if version >= MIN_VERSION_WITH_EXTENSIONS:
        if digest_len not in V4_MAC_DIGEST_LENS:
            raise ValueError(f"NTPv4 MAC digest of {digest_len} octets; must be 16 or 20")
    elif (
        digest_len < MIN_MAC_DIGEST_LEN or digest_len > MAX_V3_MAC_DIGEST_LEN or digest_len % 4 != 0
    ):
        raise ValueError(f"NTPv3 MAC digest of {digest_len} octets; must be 16..64 in words")
    return _KEY_ID_STRUCT.pack(mac.key_id) + mac.digest


def encode_packet(p: NtpPacket) -> bytes:
    """Encode a whole datagram: header, extension fields, MAC.

    The result always decodes back to ``p`` with :func:`decode_packet`; a
    packet that could not (extension fields before NTPv4, an NTPv4 MAC longer
    than 24 octets, a too-short last field, a crypto-NAK after extension
    fields) is refused.

    Raises:
        ValueError: a field is out of range or the trailer breaks the rule in
            this module's docstring.
    """
    header = encode_header(p.header)
    if not p.extensions and p.mac is None:
        return header
    version = p.header.version
    parts = [header]
    if p.extensions:
        if version < MIN_VERSION_WITH_EXTENSIONS:
            raise ValueError(f"NTPv{version} packets cannot carry extension fields")
        last = len(p.extensions) - 1
        for i, field in enumerate(p.extensions):
            parts.append(
                encode_extension_field(field, last_without_mac=i == last and p.mac is None)
            )
    if p.mac is not None:
        parts.append(_encode_mac(p.mac, version, bool(p.extensions)))
    return b"".join(parts)
