"""Unit tests for simple_ntpd.wire.packet: header fields, trailer shapes, encode checks."""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

import pytest

from simple_ntpd.errors import WireFormatError
from simple_ntpd.reasons import DropReason
from simple_ntpd.wire import packet as packet_module
from simple_ntpd.wire.constants import ExtensionFieldType, Leap, Mode
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

HEADER = NtpHeader(
    leap=Leap.NO_WARNING,
    version=4,
    mode=Mode.CLIENT,
    stratum=2,
    poll=6,
    precision=-20,
    root_delay=0x0000_1234,
    root_dispersion=0x0001_8000,
    reference_id=b"\x7f\x00\x00\x01",
    reference_ts=0xEEBD_6300_0000_0001,
    origin_ts=0xEEBD_6301_8000_0000,
    receive_ts=0xEEBD_6302_4000_0000,
    transmit_ts=0xEEBD_6303_2000_0000,
)
HEADER_V3 = dataclasses.replace(HEADER, version=3)


def header_bytes(version: int = 4) -> bytes:
    return encode_header(dataclasses.replace(HEADER, version=version))


def ef(field_type: int, total_len: int, fill: int = 0xAB) -> bytes:
    """Raw extension field bytes of the given total length (header included)."""
    return struct.pack("!HH", field_type, total_len) + bytes([fill]) * (total_len - 4)


def mac(key_id: int, digest_len: int) -> bytes:
    return struct.pack("!I", key_id) + bytes(range(1, digest_len + 1))


def reason_of(data: bytes) -> DropReason:
    with pytest.raises(WireFormatError) as info:
        decode_packet(data)
    return info.value.reason


# -- header ---------------------------------------------------------------------


def test_header_struct_is_48_octets() -> None:
    assert HEADER_STRUCT.size == 48


def test_header_layout_by_offset() -> None:
    data = encode_header(HEADER)
    assert len(data) == 48
    assert data[0] == (0 << 6) | (4 << 3) | 3 == 0x23
    assert data[1] == 2
    assert data[2] == 6
    assert data[3] == 0xEC  # -20 as a signed octet
    assert data[4:8] == b"\x00\x00\x12\x34"
    assert data[8:12] == b"\x00\x01\x80\x00"
    assert data[12:16] == b"\x7f\x00\x00\x01"
    assert data[16:24] == bytes.fromhex("eebd630000000001")
    assert data[24:32] == bytes.fromhex("eebd630180000000")
    assert data[32:40] == bytes.fromhex("eebd630240000000")
    assert data[40:48] == bytes.fromhex("eebd630320000000")


def test_decode_plain_header() -> None:
    packet = decode_packet(encode_header(HEADER))
    assert packet == NtpPacket(HEADER)
    assert packet.extensions == ()
    assert packet.mac is None
    assert type(packet.header.mode) is Mode
    assert type(packet.header.leap) is Leap


def test_first_octet_of_a_typical_client_request() -> None:
    # 0xE3: leap 3 (unsynchronized), version 4, mode 3, as ntpdig sends it.
    data = b"\xe3" + bytes(47)
    h = decode_packet(data).header
    assert (h.leap, h.version, h.mode) == (Leap.UNSYNCHRONIZED, 4, Mode.CLIENT)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("leap", Leap.NO_WARNING),
        ("leap", Leap.UNSYNCHRONIZED),
        ("version", 0),
        ("version", 7),
        ("mode", Mode.RESERVED),
        ("mode", Mode.PRIVATE),
        ("stratum", 0),
        ("stratum", 255),
        ("poll", -128),
        ("poll", 127),
        ("precision", -128),
        ("precision", 127),
        ("root_delay", 0),
        ("root_delay", 0xFFFF_FFFF),
        ("root_dispersion", 0xFFFF_FFFF),
        ("reference_id", b"\x00\x00\x00\x00"),
        ("reference_id", b"\xff\xfe\xfd\xfc"),
        ("reference_ts", 0),
        ("reference_ts", 2**64 - 1),
        ("origin_ts", 2**64 - 1),
        ("receive_ts", 2**64 - 1),
        ("transmit_ts", 2**64 - 1),
        ("transmit_ts", 1),
    ],
)
def test_each_header_field_round_trips_at_its_edges(field: str, value: Any) -> None:
    h = dataclasses.replace(HEADER, **{field: value})
    decoded = decode_packet(encode_header(h)).header
    assert decoded == h
    assert getattr(decoded, field) == value


@pytest.mark.parametrize("version", range(8))
@pytest.mark.parametrize("mode", list(Mode))
def test_any_version_and_mode_decode(version: int, mode: Mode) -> None:
    h = dataclasses.replace(HEADER, version=version, mode=mode)
    assert decode_packet(encode_header(h)).header == h


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("leap", 4),
        ("leap", -1),
        ("version", 8),
        ("mode", 8),
        ("stratum", 256),
        ("stratum", -1),
        ("poll", 128),
        ("precision", -129),
        ("root_delay", -1),
        ("root_delay", 2**32),
        ("root_dispersion", 2**32),
        ("reference_id", b"abc"),
        ("reference_id", b"abcde"),
        ("reference_ts", 2**64),
        ("transmit_ts", -1),
    ],
)
def test_encode_header_refuses_out_of_range_fields(field: str, value: Any) -> None:
    h = dataclasses.replace(HEADER, **{field: value})
    with pytest.raises(ValueError):
        encode_header(h)


def test_decode_accepts_bytearray_and_memoryview() -> None:
    data = header_bytes() + ef(0x1234, 32) + mac(7, 20)
    expected = decode_packet(data)
    assert decode_packet(bytearray(data)) == expected
    assert decode_packet(memoryview(data)) == expected
    assert type(expected.extensions[0].value) is bytes


# -- accepted trailers ------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_crypto_nak(version: int) -> None:
    packet = decode_packet(header_bytes(version) + bytes(4))
    assert packet.mac == CRYPTO_NAK
    assert packet.mac.is_crypto_nak
    assert packet.extensions == ()


@pytest.mark.parametrize("digest_len", [16, 20])
def test_v4_mac(digest_len: int) -> None:
    packet = decode_packet(header_bytes() + mac(0xDEADBEEF, digest_len))
    assert packet.mac == Mac(0xDEADBEEF, bytes(range(1, digest_len + 1)))
    assert not packet.mac.is_crypto_nak
    assert packet.extensions == ()


@pytest.mark.parametrize("digest_len", [16, 20, 24, 28, 32, 48, 64])
def test_v3_mac_digests_up_to_64(digest_len: int) -> None:
    packet = decode_packet(header_bytes(3) + mac(1, digest_len))
    assert packet.mac is not None
    assert (packet.mac.key_id, len(packet.mac.digest)) == (1, digest_len)


def test_single_extension_field_of_28_without_mac() -> None:
    packet = decode_packet(header_bytes() + ef(0x0104, 28))
    assert packet.extensions == (ExtensionField(0x0104, b"\xab" * 24),)
    assert packet.mac is None


def test_extension_field_of_16_followed_by_mac() -> None:
    packet = decode_packet(header_bytes() + ef(0x2005, 16) + mac(9, 16))
    assert packet.extensions == (ExtensionField(0x2005, b"\xab" * 12),)
    assert packet.mac == Mac(9, bytes(range(1, 17)))


def test_several_extension_fields_with_and_without_mac() -> None:
    body = ef(0x0104, 16, 1) + ef(0x0204, 20, 2) + ef(0xFFFF, 28, 3)
    no_mac = decode_packet(header_bytes() + body)
    assert [(e.field_type, len(e.value)) for e in no_mac.extensions] == [
        (0x0104, 12),
        (0x0204, 16),
        (0xFFFF, 24),
    ]
    assert no_mac.mac is None
    with_mac = decode_packet(header_bytes() + body + mac(3, 20))
    assert with_mac.extensions == no_mac.extensions
    assert with_mac.mac == Mac(3, bytes(range(1, 21)))


def test_nts_shaped_request() -> None:
    # RFC 8915 section 5: unique id, cookie, placeholder, authenticator.
    uid = struct.pack("!HH", ExtensionFieldType.UNIQUE_IDENTIFIER, 36) + bytes(range(32))
    cookie = struct.pack("!HH", ExtensionFieldType.NTS_COOKIE, 104) + b"\x11" * 100
    holder = struct.pack("!HH", ExtensionFieldType.NTS_COOKIE_PLACEHOLDER, 104) + bytes(100)
    auth = (
        struct.pack("!HHHH", ExtensionFieldType.NTS_AUTHENTICATOR, 40, 16, 16)
        + b"\x22" * 16
        + b"\x33" * 16
    )
    data = header_bytes() + uid + cookie + holder + auth
    packet = decode_packet(data)
    assert [e.field_type for e in packet.extensions] == [0x0104, 0x0204, 0x0304, 0x0404]
    assert packet.extensions[0].value == bytes(range(32))
    assert packet.mac is None
    assert encode_packet(packet) == data


def test_unknown_extension_type_and_padding_kept_verbatim() -> None:
    value = b"odd value\x00\x00\x00" + bytes(range(16))
    data = header_bytes() + struct.pack("!HH", 0xBEEF, 4 + len(value)) + value
    packet = decode_packet(data)
    assert packet.extensions == (ExtensionField(0xBEEF, value),)
    assert encode_packet(packet) == data


@pytest.mark.parametrize("version", [5, 6, 7])
def test_versions_above_four_parse_like_four(version: int) -> None:
    packet = decode_packet(header_bytes(version) + ef(0x0104, 32) + mac(1, 20))
    assert len(packet.extensions) == 1
    assert packet.mac is not None


# -- rejected trailers ----------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 12, 47])
def test_too_short(length: int) -> None:
    assert reason_of(header_bytes()[:length]) is DropReason.TOO_SHORT


@pytest.mark.parametrize("trailer_len", [1, 2, 3, 5, 8, 12, 16, 19, 21, 22, 23])
def test_v4_trailer_of_no_legal_mac_length(trailer_len: int) -> None:
    assert reason_of(header_bytes() + b"\x01" * trailer_len) is DropReason.BAD_MAC


def test_v4_four_octet_trailer_must_be_zero() -> None:
    assert reason_of(header_bytes() + b"\x00\x00\x00\x01") is DropReason.BAD_MAC


def test_extension_field_length_under_16() -> None:
    data = header_bytes() + struct.pack("!HH", 1, 12) + bytes(8) + mac(1, 20)
    assert reason_of(data) is DropReason.BAD_EXTENSION


def test_extension_field_length_zero_does_not_loop() -> None:
    assert reason_of(header_bytes() + bytes(40)) is DropReason.BAD_EXTENSION


def test_extension_field_length_not_a_multiple_of_4() -> None:
    data = header_bytes() + struct.pack("!HH", 1, 30) + bytes(26) + bytes(2)
    assert reason_of(data) is DropReason.BAD_EXTENSION


def test_extension_field_running_past_the_end() -> None:
    data = header_bytes() + struct.pack("!HH", 1, 64) + bytes(28)
    assert reason_of(data) is DropReason.BAD_EXTENSION


def test_last_extension_field_too_short_without_mac() -> None:
    # RFC 7822: with no MAC the last field must be >= 28 octets; a 16-octet
    # tail cannot be told from a MAC, and is not a legal one.
    data = header_bytes() + ef(0x0104, 28) + ef(0x0204, 16)
    assert reason_of(data) is DropReason.BAD_MAC


@pytest.mark.parametrize("tail_len", [20, 24])
def test_short_field_at_the_end_reads_as_a_mac(tail_len: int) -> None:
    # A 20 or 24 octet tail is a MAC by the RFC 7822 rule, whatever it holds.
    data = header_bytes() + ef(0x0104, 28) + ef(0x0204, tail_len)
    packet = decode_packet(data)
    assert len(packet.extensions) == 1
    assert packet.mac is not None and len(packet.mac.digest) == tail_len - 4


def test_crypto_nak_after_extension_field_is_refused() -> None:
    assert reason_of(header_bytes() + ef(0x0104, 28) + bytes(4)) is DropReason.BAD_MAC


def test_long_v4_mac_as_old_chrony_sent_is_refused() -> None:
    # chrony 2.x sent 4 + 32 octets of SHA-256 MAC with version 4.
    assert reason_of(header_bytes() + mac(1, 32)) is DropReason.BAD_EXTENSION


@pytest.mark.parametrize("trailer_len", [1, 3, 8, 12, 16, 19, 22, 70, 72, 100])
def test_v3_trailer_of_no_legal_mac_length(trailer_len: int) -> None:
    assert reason_of(header_bytes(3) + b"\x01" * trailer_len) is DropReason.BAD_MAC


def test_v3_never_parses_extension_fields() -> None:
    # A well-formed 28-octet field after a v3 header is a 24-octet digest MAC.
    packet = decode_packet(header_bytes(3) + ef(0x0104, 28))
    assert packet.extensions == ()
    assert packet.mac is not None and packet.mac.key_id == 0x0104_001C


# -- try_decode_packet ------------------------------------------------------------


def test_try_decode_returns_packet_or_reason() -> None:
    good = header_bytes()
    assert try_decode_packet(good) == decode_packet(good)
    assert try_decode_packet(b"") is DropReason.TOO_SHORT
    assert try_decode_packet(good + bytes(40)) is DropReason.BAD_EXTENSION
    assert try_decode_packet(good + b"\x01") is DropReason.BAD_MAC


def test_try_decode_maps_a_bug_to_internal(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: bytes) -> object:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(packet_module, "_decode_v4_trailer", broken)
    assert try_decode_packet(header_bytes() + mac(1, 20)) is DropReason.INTERNAL
    # A plain header does not reach the broken function and still decodes.
    assert isinstance(try_decode_packet(header_bytes()), NtpPacket)


# -- encode checks -----------------------------------------------------------------


def test_encode_packet_concatenates_fields_and_mac() -> None:
    p = NtpPacket(HEADER, (ExtensionField(0x0104, bytes(12)),), Mac(5, b"\x01" * 20))
    data = encode_packet(p)
    assert data == encode_header(HEADER) + b"\x01\x04\x00\x10" + bytes(12) + mac_bytes(5)
    assert decode_packet(data) == p


def mac_bytes(key_id: int) -> bytes:
    return struct.pack("!I", key_id) + b"\x01" * 20


def test_encode_crypto_nak() -> None:
    assert encode_packet(NtpPacket(HEADER, mac=CRYPTO_NAK)) == encode_header(HEADER) + bytes(4)


@pytest.mark.parametrize(
    "p",
    [
        # extension fields before NTPv4
        NtpPacket(HEADER_V3, (ExtensionField(1, bytes(24)),)),
        # last field shorter than 28 with no MAC
        NtpPacket(HEADER, (ExtensionField(1, bytes(20)),)),
        # field shorter than 16 even with a MAC
        NtpPacket(HEADER, (ExtensionField(1, bytes(8)),), Mac(1, bytes(16))),
        # value not padded to 4
        NtpPacket(HEADER, (ExtensionField(1, bytes(25)),)),
        # 16-bit length overflow
        NtpPacket(HEADER, (ExtensionField(1, bytes(0xFFFC)),)),
        # type out of range
        NtpPacket(HEADER, (ExtensionField(0x10000, bytes(24)),)),
        # crypto-NAK after a field
        NtpPacket(HEADER, (ExtensionField(1, bytes(24)),), CRYPTO_NAK),
        # NTPv4 MAC digest longer than 20
        NtpPacket(HEADER, mac=Mac(1, bytes(32))),
        NtpPacket(HEADER, mac=Mac(1, bytes(12))),
        # NTPv3 digests outside 16..64 or not whole words
        NtpPacket(HEADER_V3, mac=Mac(1, bytes(68))),
        NtpPacket(HEADER_V3, mac=Mac(1, bytes(18))),
        # a key id with no digest is not a crypto-NAK
        NtpPacket(HEADER, mac=Mac(1, b"")),
        NtpPacket(HEADER, mac=Mac(2**32, bytes(16))),
    ],
)
def test_encode_refuses_what_would_not_decode_back(p: NtpPacket) -> None:
    with pytest.raises(ValueError):
        encode_packet(p)


def test_encode_extension_field_alone() -> None:
    assert encode_extension_field(ExtensionField(0x0104, bytes(12))) == b"\x01\x04\x00\x10" + bytes(
        12
    )
    with pytest.raises(ValueError):
        encode_extension_field(ExtensionField(0x0104, bytes(12)), last_without_mac=True)


def test_largest_extension_field_round_trips() -> None:
    p = NtpPacket(HEADER, (ExtensionField(0x7777, bytes(0xFFFC - 4)),))
    assert decode_packet(encode_packet(p)) == p


def test_mac_length_constants_agree_with_rfc_7822() -> None:
    from simple_ntpd.wire import constants as c

    assert sorted(c.V4_MAC_TRAILER_LENS) == [20, 24]
    assert c.MAX_V4_MAC_LEN == 24
    assert c.MIN_LAST_EXTENSION_FIELD_LEN == c.MAX_V4_MAC_LEN + 4
