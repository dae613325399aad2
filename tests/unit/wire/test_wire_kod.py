"""Unit tests for simple_ntpd.wire.kod: building and recognising kiss-o'-death headers."""

from __future__ import annotations

import dataclasses

import pytest

from simple_ntpd.wire.constants import KissCode, Leap, Mode
from simple_ntpd.wire.kod import kiss_code, make_kod
from simple_ntpd.wire.packet import NtpHeader, decode_packet, encode_header

REQUEST = NtpHeader(
    leap=Leap.UNSYNCHRONIZED,
    version=4,
    mode=Mode.CLIENT,
    stratum=0,
    poll=3,
    precision=-6,
    root_delay=0x0001_0000,
    root_dispersion=0x0001_0000,
    reference_id=bytes(4),
    reference_ts=0x1111_1111_1111_1111,
    origin_ts=0x2222_2222_2222_2222,
    receive_ts=0x3333_3333_3333_3333,
    transmit_ts=0xEEBD_6359_DBB0_7800,
)


def test_rate_kod_fields() -> None:
    kod = make_kod(REQUEST, KissCode.RATE)
    assert kod.leap is Leap.UNSYNCHRONIZED
    assert kod.version == 4
    assert kod.mode is Mode.SERVER
    assert kod.stratum == 0
    assert kod.poll == 3
    assert kod.reference_id == b"RATE"
    assert type(kod.reference_id) is bytes
    # The client matches the answer by its origin timestamp (RFC 5905 section 8).
    assert kod.origin_ts == REQUEST.transmit_ts
    # Nothing about our clock: receive and transmit echo the request, the rest is zero.
    assert kod.receive_ts == REQUEST.transmit_ts
    assert kod.transmit_ts == REQUEST.transmit_ts
    assert (kod.reference_ts, kod.root_delay, kod.root_dispersion, kod.precision) == (0, 0, 0, 0)


def test_kod_reveals_no_request_field_but_the_transmit_timestamp() -> None:
    other = dataclasses.replace(
        REQUEST, reference_ts=1, origin_ts=2, receive_ts=3, root_delay=9, precision=-30
    )
    assert make_kod(other, KissCode.RATE) == make_kod(REQUEST, KissCode.RATE)


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_version_is_echoed(version: int) -> None:
    request = dataclasses.replace(REQUEST, version=version)
    assert make_kod(request, KissCode.DENY).version == version


def test_version_and_poll_overrides() -> None:
    kod = make_kod(REQUEST, KissCode.RATE, version=3, poll=10)
    assert (kod.version, kod.poll) == (3, 10)


@pytest.mark.parametrize("code", list(KissCode))
def test_every_kiss_code_survives_the_wire(code: KissCode) -> None:
    kod = make_kod(REQUEST, code)
    decoded = decode_packet(encode_header(kod)).header
    assert decoded == kod
    assert kiss_code(decoded) == code.value


def test_plain_bytes_code_accepted() -> None:
    assert make_kod(REQUEST, b"XRAT").reference_id == b"XRAT"


@pytest.mark.parametrize("code", [b"", b"RAT", b"RATES", b"RA\x00E", b"RA\xffE", b"\tRAT"])
def test_bad_codes_refused(code: bytes) -> None:
    with pytest.raises(ValueError):
        make_kod(REQUEST, code)


def test_a_client_request_is_not_a_kiss() -> None:
    assert kiss_code(REQUEST) is None


def test_printable_refid_at_nonzero_stratum_is_not_a_kiss() -> None:
    gps = dataclasses.replace(REQUEST, mode=Mode.SERVER, stratum=1, reference_id=b"GPS\x00")
    assert kiss_code(gps) is None
    assert kiss_code(dataclasses.replace(gps, reference_id=b"PPS1")) is None


def test_stratum_zero_with_unprintable_refid_is_not_a_kiss() -> None:
    assert kiss_code(dataclasses.replace(REQUEST, reference_id=b"RAT\x00")) is None
    assert kiss_code(dataclasses.replace(REQUEST, reference_id=b"\x7fRAT")) is None


def test_unknown_printable_code_is_reported() -> None:
    h = dataclasses.replace(REQUEST, mode=Mode.SERVER, reference_id=b"XFOO")
    assert kiss_code(h) == b"XFOO"
