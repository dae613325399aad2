"""Property tests for the wire codec (hypothesis).

* Any valid packet round-trips: decode(encode(p)) == p.
* No input makes the decoder raise anything but WireFormatError, and
  try_decode_packet never raises and never reports INTERNAL: arbitrary bytes,
  valid headers with arbitrary trailers, and mutations of valid packets
  (truncation, bit flips, overwritten extension field lengths).
* Every datagram the decoder accepts re-encodes to exactly the same bytes, so
  nothing a peer sent is lost or normalised away.
"""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from simple_ntpd.errors import WireFormatError
from simple_ntpd.reasons import DropReason
from simple_ntpd.wire.constants import Leap, Mode
from simple_ntpd.wire.kod import kiss_code, make_kod
from simple_ntpd.wire.packet import (
    CRYPTO_NAK,
    ExtensionField,
    Mac,
    NtpHeader,
    NtpPacket,
    decode_packet,
    encode_header,
    encode_packet,
    try_decode_packet,
)

u32 = st.integers(min_value=0, max_value=2**32 - 1)
u64 = st.integers(min_value=0, max_value=2**64 - 1)
s8 = st.integers(min_value=-128, max_value=127)


def headers(versions: st.SearchStrategy[int] | None = None) -> st.SearchStrategy[NtpHeader]:
    return st.builds(
        NtpHeader,
        leap=st.sampled_from(Leap),
        version=versions if versions is not None else st.integers(0, 7),
        mode=st.sampled_from(Mode),
        stratum=st.integers(0, 255),
        poll=s8,
        precision=s8,
        root_delay=u32,
        root_dispersion=u32,
        reference_id=st.binary(min_size=4, max_size=4),
        reference_ts=u64,
        origin_ts=u64,
        receive_ts=u64,
        transmit_ts=u64,
    )


def field_values(min_words: int) -> st.SearchStrategy[bytes]:
    # Whole words, from the RFC 7822 minimum up to a size that keeps tests fast.
    return st.integers(min_words, 40).flatmap(lambda w: st.binary(min_size=4 * w, max_size=4 * w))


@st.composite
def packets(draw: st.DrawFn) -> NtpPacket:
    header = draw(headers())
    if header.version < 4:
        mac = draw(
            st.one_of(
                st.none(),
                st.just(CRYPTO_NAK),
                st.builds(
                    Mac,
                    u32,
                    st.integers(4, 16).flatmap(lambda w: st.binary(min_size=4 * w, max_size=4 * w)),
                ),
            )
        )
        return NtpPacket(header, (), mac)
    n_fields = draw(st.integers(0, 4))
    mac_strategy = st.one_of(
        st.none(),
        st.builds(
            Mac, u32, st.sampled_from([16, 20]).flatmap(lambda n: st.binary(min_size=n, max_size=n))
        ),
    )
    if n_fields == 0:
        mac_strategy = st.one_of(mac_strategy, st.just(CRYPTO_NAK))
    mac = draw(mac_strategy)
    fields = []
    for i in range(n_fields):
        last_without_mac = i == n_fields - 1 and mac is None
        # value length + 4-octet field header: >= 28 for a last field with no MAC, else >= 16.
        value = draw(field_values(6 if last_without_mac else 3))
        fields.append(ExtensionField(draw(st.integers(0, 0xFFFF)), value))
    return NtpPacket(header, tuple(fields), mac)


def assert_decodes_cleanly(data: bytes) -> None:
    """The decoder's whole contract for one input."""
    try:
        packet = decode_packet(data)
    except WireFormatError as exc:
        assert exc.reason in (DropReason.TOO_SHORT, DropReason.BAD_EXTENSION, DropReason.BAD_MAC)
        assert try_decode_packet(data) is exc.reason
        return
    # Accepted: nothing may be lost, so it encodes back to the very same bytes.
    assert encode_packet(packet) == bytes(data)
    assert try_decode_packet(data) == packet


@given(packets())
def test_decode_of_encode_is_identity(p: NtpPacket) -> None:
    data = encode_packet(p)
    assert decode_packet(data) == p
    assert try_decode_packet(data) == p
    assert encode_packet(decode_packet(data)) == data


@given(headers())
def test_header_round_trip(h: NtpHeader) -> None:
    data = encode_header(h)
    assert len(data) == 48
    assert decode_packet(data).header == h


@settings(max_examples=300)
@given(st.binary(min_size=0, max_size=1200))
@example(b"")
@example(bytes(47))
@example(bytes(48))
@example(bytes(52))
@example(bytes(1200))
def test_arbitrary_bytes(data: bytes) -> None:
    assert_decodes_cleanly(data)


@settings(max_examples=300)
@given(headers(), st.binary(min_size=0, max_size=300))
def test_valid_header_with_arbitrary_trailer(h: NtpHeader, trailer: bytes) -> None:
    assert_decodes_cleanly(encode_header(h) + trailer)


@given(packets(), st.data())
def test_truncated_packets(p: NtpPacket, data: st.DataObject) -> None:
    raw = encode_packet(p)
    cut = data.draw(st.integers(0, len(raw)))
    assert_decodes_cleanly(raw[:cut])


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(packets(), st.data())
def test_bit_flips(p: NtpPacket, data: st.DataObject) -> None:
    raw = bytearray(encode_packet(p))
    for _ in range(data.draw(st.integers(1, 8))):
        bit = data.draw(st.integers(0, len(raw) * 8 - 1))
        raw[bit // 8] ^= 1 << (bit % 8)
    assert_decodes_cleanly(bytes(raw))


@given(packets().filter(lambda p: len(p.extensions) > 0), st.data())
def test_overwritten_extension_field_lengths(p: NtpPacket, data: st.DataObject) -> None:
    raw = bytearray(encode_packet(p))
    index = data.draw(st.integers(0, len(p.extensions) - 1))
    offset = 48 + sum(4 + len(f.value) for f in p.extensions[:index])
    new_len = data.draw(st.integers(0, 0xFFFF))
    struct.pack_into("!H", raw, offset + 2, new_len)
    assert_decodes_cleanly(bytes(raw))


@given(packets(), st.binary(min_size=1, max_size=64))
def test_appended_garbage(p: NtpPacket, garbage: bytes) -> None:
    assert_decodes_cleanly(encode_packet(p) + garbage)


@given(headers(), st.sampled_from([b"RATE", b"DENY", b"RSTR", b"NTSN"]))
def test_kod_matches_any_request_and_is_recognised(h: NtpHeader, code: bytes) -> None:
    kod = decode_packet(encode_header(make_kod(h, code))).header
    assert kiss_code(kod) == code
    assert kod.origin_ts == h.transmit_ts
    assert kod.version == h.version


@given(
    packets().filter(lambda p: len(p.extensions) > 0 and p.mac is None),
    st.integers(1, 3),
)
def test_unpadded_last_field_is_refused_even_with_room(p: NtpPacket, extra: int) -> None:
    # Lengthen the last field by 1-3 octets and supply those octets: only the
    # multiple-of-4 rule (RFC 7822 section 3) stands between this and acceptance.
    raw = bytearray(encode_packet(p) + bytes(extra))
    offset = 48 + sum(4 + len(f.value) for f in p.extensions[:-1])
    struct.pack_into("!H", raw, offset + 2, 4 + len(p.extensions[-1].value) + extra)
    assert try_decode_packet(bytes(raw)) is DropReason.BAD_EXTENSION
