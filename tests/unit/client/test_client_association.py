"""The client state machine (simple_ntpd.client.association): RFC 5905 sections 8 and 13."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simple_ntpd.client.actions import (
    Demobilize,
    DemobilizeReason,
    SampleReady,
    Send,
    SetTimer,
    SourceAction,
)
from simple_ntpd.client.association import Association, RejectReason
from simple_ntpd.testing import seeded_rng_for_testing
from simple_ntpd.timetypes import ntp64_from_unix_ns, ntp_short_from_seconds
from simple_ntpd.wire.constants import Leap, Mode
from simple_ntpd.wire.kod import make_kod
from simple_ntpd.wire.packet import NtpHeader, NtpPacket, decode_packet, encode_packet

S = 1_000_000_000
MS = 1_000_000
T0 = 1_750_000_000 * S


def new(**kw: object) -> Association:
    return Association(rng=seeded_rng_for_testing(3), min_poll=6, max_poll=10, **kw)  # type: ignore[arg-type]


def poll(a: Association, now: int) -> NtpHeader:
    actions = a.handle_timer(now)
    sends = [x for x in actions if isinstance(x, Send)]
    assert len(sends) == 1
    return decode_packet(sends[0].data).header


def reply(request: NtpHeader, server_ns: int, **changes: object) -> bytes:
    h = NtpHeader(
        leap=Leap.NO_WARNING,
        version=4,
        mode=Mode.SERVER,
        stratum=1,
        poll=request.poll,
        precision=-20,
        root_delay=ntp_short_from_seconds(0.001),
        root_dispersion=ntp_short_from_seconds(0.002),
        reference_id=b"GPS\x00",
        reference_ts=ntp64_from_unix_ns(server_ns - 10 * S),
        origin_ts=request.transmit_ts,
        receive_ts=ntp64_from_unix_ns(server_ns),
        transmit_ts=ntp64_from_unix_ns(server_ns + 100_000),
    )
    return encode_packet(NtpPacket(dataclasses.replace(h, **changes)))  # type: ignore[arg-type]


def samples(actions: list[SourceAction]) -> list[SampleReady]:
    return [x for x in actions if isinstance(x, SampleReady)]


def test_request_is_a_v4_client_packet_with_a_random_transmit_timestamp() -> None:
    a = new()
    req = poll(a, T0)
    assert (req.mode, req.version, req.stratum, req.poll) == (Mode.CLIENT, 4, 0, 6)
    assert req.origin_ts == 0 and req.receive_ts == 0
    assert req.transmit_ts != ntp64_from_unix_ns(T0)
    req2 = poll(a, T0 + 2 * S)
    assert req2.transmit_ts != req.transmit_ts


def test_a_matching_reply_gives_offset_and_delay_per_rfc5905() -> None:
    a = new()
    req = poll(a, T0)
    # Server 25 ms ahead; 4 ms each way; 0.1 ms in the server.
    data = reply(req, T0 + 4 * MS + 25 * MS)
    out = samples(a.handle_packet(data, T0, T0 + 8 * MS + 100_000))
    assert len(out) == 1
    m = out[0].measurement
    assert m.offset == pytest.approx(0.025, abs=1e-8)
    assert m.delay == pytest.approx(0.008, abs=1e-8)
    assert m.root_delay == pytest.approx(0.001, abs=1e-4)
    assert m.stratum == 1 and m.reference_id == b"GPS\x00"
    assert a.poll.reach == 1


def test_replies_that_do_not_match_the_outstanding_request_are_dropped() -> None:
    a = new()
    req = poll(a, T0)
    bogus = dataclasses.replace(req, transmit_ts=req.transmit_ts ^ 1)
    assert a.handle_packet(reply(bogus, T0), T0, T0 + MS) == []
    good = reply(req, T0)
    assert samples(a.handle_packet(good, T0, T0 + MS))
    assert a.handle_packet(good, T0, T0 + 2 * MS) == []  # a duplicate finds nothing
    assert a.rejects[RejectReason.NOT_OUTSTANDING] == 2


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"mode": Mode.SYMMETRIC_PASSIVE}, RejectReason.NOT_SERVER_MODE),
        ({"leap": Leap.UNSYNCHRONIZED}, RejectReason.UNSYNCHRONIZED),
        ({"stratum": 16}, RejectReason.BAD_STRATUM),
        ({"stratum": 0, "reference_id": b"\x00\x00\x00\x00"}, RejectReason.BAD_STRATUM),
        ({"receive_ts": 0}, RejectReason.ZERO_TIMESTAMP),
        ({"transmit_ts": 0}, RejectReason.ZERO_TIMESTAMP),
        ({"version": 5}, RejectReason.BAD_VERSION),
        ({"root_dispersion": ntp_short_from_seconds(2.0)}, RejectReason.ROOT_DISTANCE),
    ],
)
def test_sanity_checks(changes: dict[str, object], reason: RejectReason) -> None:
    a = new()
    req = poll(a, T0)
    assert a.handle_packet(reply(req, T0, **changes), T0, T0 + MS) == []
    assert a.rejects == {reason: 1}


def test_garbage_is_counted_not_raised() -> None:
    a = new()
    poll(a, T0)
    assert a.handle_packet(b"\x00" * 10, T0, T0 + MS) == []
    assert a.rejects == {RejectReason.MALFORMED: 1}


def test_kod_rate_backs_off_and_reschedules() -> None:
    a = new()
    req = poll(a, T0)
    kod = encode_packet(NtpPacket(make_kod(req, b"RATE")))
    actions = a.handle_packet(kod, T0, T0 + MS)
    assert a.poll.poll == 7
    assert actions == [SetTimer(a.next_poll_ns or 0)]
    assert a.next_poll_ns is not None and a.next_poll_ns >= T0 + 120 * S


@pytest.mark.parametrize(
    ("code", "reason"),
    [(b"DENY", DemobilizeReason.KOD_DENY), (b"RSTR", DemobilizeReason.KOD_RSTR)],
)
def test_kod_deny_and_rstr_demobilize(code: bytes, reason: DemobilizeReason) -> None:
    a = new()
    req = poll(a, T0)
    kod = encode_packet(NtpPacket(make_kod(req, code)))
    assert a.handle_packet(kod, T0, T0 + MS) == [Demobilize(reason)]
    assert a.handle_timer(T0 + 100 * S) == []


def test_a_spoofed_kod_without_the_right_origin_is_ignored() -> None:
    a = new()
    req = poll(a, T0)
    forged = dataclasses.replace(req, transmit_ts=12345)
    assert a.handle_packet(encode_packet(NtpPacket(make_kod(forged, b"DENY"))), T0, T0) == []
    assert a.demobilized is None


def test_timer_before_due_only_rearms_and_eight_silent_polls_make_unreachable() -> None:
    a = new(iburst=False)
    poll(a, T0)
    due = a.next_poll_ns
    assert due is not None
    assert a.handle_timer(due - S) == [SetTimer(due)]
    now = due
    for _ in range(7):
        poll(a, now)
        assert a.next_poll_ns is not None
        now = a.next_poll_ns
    assert a.unreachable and a.poll.reach == 0


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_handle_packet_never_raises(data: bytes) -> None:
    a = new()
    poll(a, T0)
    out = a.handle_packet(data, T0, T0 + MS)
    assert all(isinstance(x, SampleReady | SetTimer | Demobilize) for x in out)
