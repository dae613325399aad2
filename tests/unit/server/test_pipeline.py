"""The request pipeline: what is answered, how, and what is dropped."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from simple_ntpd.reasons import DropReason
from simple_ntpd.served_clock import (
    STATE_BUFFER_SIZE,
    SeqlockReader,
    SeqlockWriter,
    ServedClockState,
)
from simple_ntpd.server.pipeline import RequestPipeline, ntp64, short_format
from simple_ntpd.server.policy import SecurityPolicy
from simple_ntpd.stats import DROP_BASE, Counter

HDR = struct.Struct("!BBbbII4sQQQQ")
CLIENT = "192.0.2.10"  # a client source address (RFC 5737 documentation range)
T0 = 1_780_000_000 * 10**9  # 2026-05-28, system time in ns
SYNC = ServedClockState(
    leap=0,
    stratum=2,
    reference_id=b"\xc0\x00\x02\x01",
    reference_time_ns=T0 - 10**9,
    root_delay=0.010,
    root_dispersion=0.020,
    precision=-23,
    update_ns=T0,
)


class FakeClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def make(
    state: ServedClockState | None = SYNC,
    clock_at: int = T0 + 50_000,
    policy: SecurityPolicy | None = None,
):
    buf = bytearray(STATE_BUFFER_SIZE)
    writer = SeqlockWriter(memoryview(buf))
    if state is not None:
        writer.publish(state)
    clock = FakeClock(clock_at)
    return RequestPipeline(SeqlockReader(memoryview(buf)), clock, policy=policy), writer, clock


def request(
    version: int = 4, mode: int = 3, poll: int = 6, xmt: int = 0x1122334455667788, leap: int = 0
) -> bytes:
    return HDR.pack((leap << 6) | (version << 3) | mode, 0, poll, 0, 0, 0, b"\0" * 4, 0, 0, 0, xmt)


def fields(resp: bytes) -> dict[str, int | bytes]:
    (b0, stratum, poll, precision, rdelay, rdisp, refid, reft, org, rec, xmt) = HDR.unpack(resp)
    return dict(
        leap=b0 >> 6,
        version=(b0 >> 3) & 7,
        mode=b0 & 7,
        stratum=stratum,
        poll=poll,
        precision=precision,
        rdelay=rdelay,
        rdisp=rdisp,
        refid=refid,
        reft=reft,
        org=org,
        rec=rec,
        xmt=xmt,
    )


def test_v4_request_gets_a_full_server_response() -> None:
    p, _, _ = make()
    out = p.handle(request(), T0, CLIENT, 50000)
    assert isinstance(out, bytearray) and len(out) == 48
    f = fields(bytes(out))
    assert f["mode"] == 4 and f["version"] == 4 and f["leap"] == 0
    assert f["stratum"] == 2 and f["poll"] == 6 and f["precision"] == -23
    assert f["refid"] == b"\xc0\x00\x02\x01"
    assert f["org"] == 0x1122334455667788
    assert f["rec"] == ntp64(T0)
    assert f["xmt"] == ntp64(T0 + 50_000)
    assert f["reft"] == ntp64(T0 - 10**9)
    assert f["rdelay"] == short_format(0.010)
    assert f["rdisp"] == short_format(0.020)
    assert p.counts[Counter.RESPONDED] == 1 and p.counts[Counter.REQUEST_V4] == 1


def test_versions_1_to_4_are_echoed() -> None:
    p, _, _ = make()
    for v in (1, 2, 3, 4):
        f = fields(bytes(p.handle(request(version=v), T0, CLIENT, 50000)))  # type: ignore[arg-type]
        assert f["version"] == v and f["mode"] == 4
        assert p.counts[Counter.REQUEST_V1 + v - 1] == 1


def test_minimal_sntp_request_with_zero_fields_is_answered() -> None:
    p, _, _ = make()
    out = p.handle(HDR.pack(0x23, 0, 0, 0, 0, 0, b"\0" * 4, 0, 0, 0, 0), T0, CLIENT, 50000)
    assert isinstance(out, bytearray)
    f = fields(bytes(out))
    assert f["poll"] == 0 and f["org"] == 0 and f["mode"] == 4 and f["version"] == 4


def test_ntpv1_mode0_answered_unless_from_port_123() -> None:
    p, _, _ = make()
    out = p.handle(request(version=1, mode=0), T0, CLIENT, 40000)
    assert isinstance(out, bytearray) and fields(bytes(out))["mode"] == 4
    assert p.handle(request(version=1, mode=0), T0, CLIENT, 123) is DropReason.BAD_MODE
    assert p.handle(request(version=2, mode=0), T0, CLIENT, 40000) is DropReason.BAD_MODE


def test_only_client_requests_are_answered() -> None:
    p, _, _ = make()
    expect = {
        1: DropReason.BAD_MODE,
        2: DropReason.BAD_MODE,
        4: DropReason.BAD_MODE,
        5: DropReason.BAD_MODE,
        6: DropReason.MODE_CONTROL,
        7: DropReason.MODE_PRIVATE,
    }
    for mode, reason in expect.items():
        assert p.handle(request(mode=mode), T0, CLIENT, 50000) is reason
        assert p.counts[DROP_BASE + reason] >= 1
    assert p.counts[Counter.RESPONDED] == 0


def test_bad_versions_and_lengths_dropped_and_counted() -> None:
    p, _, _ = make()
    assert p.handle(request(version=0), T0, CLIENT, 50000) is DropReason.BAD_VERSION
    assert p.handle(request(version=5), T0, CLIENT, 50000) is DropReason.BAD_VERSION
    assert p.handle(request(version=7), T0, CLIENT, 50000) is DropReason.BAD_VERSION
    assert p.handle(b"", T0, CLIENT, 50000) is DropReason.TOO_SHORT
    assert p.handle(request()[:47], T0, CLIENT, 50000) is DropReason.TOO_SHORT
    assert p.handle(request() + b"\0" * 2100, T0, CLIENT, 50000) is DropReason.TOO_LONG
    assert p.counts[DROP_BASE + DropReason.BAD_VERSION] == 3
    assert p.counts[DROP_BASE + DropReason.TOO_SHORT] == 2
    assert p.counts[Counter.RECEIVED] == 6


def test_unsynchronized_server_says_leap3_stratum0() -> None:
    p, _, _ = make(state=None)
    f = fields(bytes(p.handle(request(), T0, CLIENT, 50000)))  # type: ignore[arg-type]
    assert f["leap"] == 3 and f["stratum"] == 0
    assert p.counts[Counter.UNSYNCHRONIZED_RESPONSES] == 1
    # a state that says leap 3 but some stratum is still served as stratum 0
    p2, _, _ = make(state=SYNC.with_changes(leap=3))
    assert fields(bytes(p2.handle(request(), T0, CLIENT, 50000)))["stratum"] == 0  # type: ignore[arg-type]


def test_republished_state_is_picked_up_immediately() -> None:
    p, writer, _ = make()
    assert fields(bytes(p.handle(request(), T0, CLIENT, 50000)))["stratum"] == 2  # type: ignore[arg-type]
    writer.publish(SYNC.with_changes(stratum=5, leap=1))
    f = fields(bytes(p.handle(request(), T0 + 1, CLIENT, 50000)))  # type: ignore[arg-type]
    assert f["stratum"] == 5 and f["leap"] == 1


def test_correction_applies_to_receive_and_transmit() -> None:
    st_ = SYNC.with_changes(offset_ns=250_000_000, freq=1e-5, t0_ns=T0)
    p, _, _ = make(st_, clock_at=T0 + 10**9)
    f = fields(bytes(p.handle(request(), T0, CLIENT, 50000)))  # type: ignore[arg-type]
    assert f["rec"] == ntp64(T0 + 250_000_000)
    assert f["xmt"] == ntp64(T0 + 10**9 + 250_000_000 + 10_000)


def test_root_dispersion_grows_with_age() -> None:
    p, _, _ = make()
    first = fields(bytes(p.handle(request(), T0, CLIENT, 50000)))["rdisp"]  # type: ignore[arg-type]
    later = fields(bytes(p.handle(request(), T0 + 100 * 10**9, CLIENT, 50000)))["rdisp"]  # type: ignore[arg-type]
    assert later == short_format(0.020 + 15e-6 * 100)
    assert later > first  # type: ignore[operator]


@settings(max_examples=500)
@given(data=st.binary(min_size=0, max_size=300), port=st.integers(0, 65535))
def test_any_bytes_never_raise_and_never_amplify(data: bytes, port: int) -> None:
    p, _, _ = make()
    out = p.handle(data, T0, CLIENT, port)
    if isinstance(out, DropReason):
        assert sum(p.counts[DROP_BASE:]) == 1
    else:
        assert len(out) <= len(data)
        assert (data[0] & 7) == 3 or ((data[0] & 7) == 0 and (data[0] >> 3) & 7 == 1)
        assert 1 <= (data[0] >> 3) & 7 <= 4


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_ntp64_is_seconds_and_truncated_fraction_of_the_era(unix_ns: int) -> None:
    # The oracle spelled out: seconds since 1900 modulo the era, fraction truncated.
    sec, ns = divmod(unix_ns, 10**9)
    expected = (((sec + 2_208_988_800) % 2**32) << 32) | (ns * 2**32 // 10**9)
    assert ntp64(unix_ns) == expected


def test_ntp64_at_the_2036_era_rollover() -> None:
    era1 = (2**32 - 2_208_988_800) * 10**9  # 2036-02-07T06:28:16Z, NTP seconds wrap to 0
    assert ntp64(era1) == 0
    assert ntp64(era1 - 1) >> 32 == 2**32 - 1
    assert ntp64(era1 + 500_000_000) == 2**31  # half a second into era 1
