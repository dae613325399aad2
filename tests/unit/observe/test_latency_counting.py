"""The request processing-time histogram the pipeline keeps in its counters.

The pipeline adds one bucket count and the duration (transmit clock read minus
kernel receive timestamp) per response; the collector turns the summed
counters into ``ntp_request_duration_seconds``.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from simple_ntpd.observe.prometheus import (
    REQUEST_DURATION_BOUNDS,
    NtpCollector,
    duration_bucket,
    latency_from_totals,
)
from simple_ntpd.served_clock import (
    STATE_BUFFER_SIZE,
    SeqlockReader,
    SeqlockWriter,
    ServedClockState,
)
from simple_ntpd.server.pipeline import RequestPipeline
from simple_ntpd.stats import (
    COUNTERS_PER_SLOT,
    DROP_BASE,
    DROP_ROOM,
    LATENCY_BASE,
    LATENCY_BOUNDS_NS,
    LATENCY_BUCKETS,
    LATENCY_SUM_NS,
    latency_counts,
)

T0 = 1_780_000_000 * 10**9
SYNC = ServedClockState(
    leap=0, stratum=2, reference_id=b"TEST", reference_time_ns=T0, precision=-20, update_ns=T0
)
CLIENT = "192.0.2.10"
REQUEST = struct.pack("!B39xQ", 0x23, 0x1122334455667788)


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def pipeline(clock: Clock) -> RequestPipeline:
    buf = bytearray(STATE_BUFFER_SIZE)
    SeqlockWriter(memoryview(buf)).publish(SYNC)
    return RequestPipeline(SeqlockReader(memoryview(buf)), clock)


def test_layout_is_after_the_drop_room_and_inside_the_slot() -> None:
    assert LATENCY_BASE == DROP_BASE + DROP_ROOM
    assert len(LATENCY_BOUNDS_NS) + 1 == LATENCY_BUCKETS
    assert LATENCY_SUM_NS == LATENCY_BASE + LATENCY_BUCKETS
    assert LATENCY_SUM_NS < COUNTERS_PER_SLOT
    assert list(LATENCY_BOUNDS_NS) == sorted(set(LATENCY_BOUNDS_NS))
    assert [round(b * 1e9) for b in REQUEST_DURATION_BOUNDS] == list(LATENCY_BOUNDS_NS)


def test_each_response_lands_in_its_bucket_and_the_sum() -> None:
    clock = Clock(T0)
    p = pipeline(clock)
    durations = [3_000, 10_000, 10_001, 240_000, 9_000_000, 50_000_000]
    for d in durations:
        clock.now = T0 + d
        out = p.handle(REQUEST, T0, CLIENT, 40000)
        assert isinstance(out, bytearray | bytes)
    buckets, total = latency_counts(p.counts)
    assert total == sum(durations)
    expected = [0] * LATENCY_BUCKETS
    for d in durations:
        expected[duration_bucket(d)] += 1
    assert buckets == expected
    # 10 us is inclusive (le="1e-05"), 10.001 us is not.
    assert buckets[0] == 2 and buckets[1] == 1
    assert buckets[-1] == 1  # 50 ms: +Inf


def test_drops_are_not_timed() -> None:
    clock = Clock(T0 + 5_000)
    p = pipeline(clock)
    p.handle(b"\x23" + bytes(10), T0, CLIENT, 40000)  # too short
    assert latency_counts(p.counts) == ([0] * LATENCY_BUCKETS, 0)


def test_clock_step_backwards_counts_in_first_bucket_without_a_negative_sum() -> None:
    clock = Clock(T0 - 1_000_000)
    p = pipeline(clock)
    p.handle(REQUEST, T0, CLIENT, 40000)
    buckets, total = latency_counts(p.counts)
    assert buckets[0] == 1 and total == 0


@given(st.lists(st.integers(min_value=0, max_value=10**9), max_size=30))
def test_histogram_count_equals_responses(durations: list[int]) -> None:
    clock = Clock(T0)
    p = pipeline(clock)
    for d in durations:
        clock.now = T0 + d
        p.handle(REQUEST, T0, CLIENT, 40000)
    bounds, cumulative, seconds = latency_from_totals(p.counts)
    assert list(bounds) == list(REQUEST_DURATION_BOUNDS)
    assert cumulative[-1] == len(durations) == p.counts[1]
    assert seconds == pytest.approx(sum(durations) * 1e-9, rel=1e-12, abs=1e-15)


def test_collector_exposes_the_histogram_from_the_counters() -> None:
    clock = Clock(T0 + 30_000)
    p = pipeline(clock)
    for _ in range(3):
        p.handle(REQUEST, T0, CLIENT, 40000)
    registry = CollectorRegistry()
    counts = list(p.counts)
    registry.register(
        NtpCollector(
            counters=lambda: counts,
            served_state=lambda: SYNC,
            latency_histogram=lambda: latency_from_totals(counts),
        )
    )
    text = generate_latest(registry).decode()
    assert 'ntp_request_duration_seconds_bucket{le="2.5e-05"} 0.0' in text
    assert 'ntp_request_duration_seconds_bucket{le="5e-05"} 3.0' in text
    assert 'ntp_request_duration_seconds_bucket{le="+Inf"} 3.0' in text
    assert "ntp_request_duration_seconds_count 3.0" in text
    assert "ntp_request_duration_seconds_sum 9e-05" in text
