"""The clock filter (simple_ntpd.client.filter): RFC 5905 section 10 with spike handling."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simple_ntpd.client.filter import FILTER_STAGES, ClockFilter, FilterSample
from simple_ntpd.served_clock import PHI

S = 1_000_000_000


def sample(t: float, offset: float, delay: float, disp: float = 1e-6) -> FilterSample:
    return FilterSample(int(t * S), offset, delay, disp)


def test_the_minimum_delay_sample_is_chosen() -> None:
    f = ClockFilter()
    for i, (off, delay) in enumerate([(0.003, 0.010), (0.001, 0.002), (0.004, 0.012)]):
        assert f.add(sample(i * 16, off, delay), slope=0.0)
    est = f.estimate(48 * S, slope=0.0)
    assert est is not None
    assert est.offset == 0.001 and est.delay == 0.002
    assert est.time_ns == 16 * S
    assert est.count == 3


def test_dispersion_is_weighted_by_delay_rank_and_aged_with_phi() -> None:
    f = ClockFilter()
    f.add(sample(0, 0.0, 0.001, 0.001), 0.0)
    f.add(sample(10, 0.0, 0.002, 0.002), 0.0)
    est = f.estimate(20 * S, 0.0)
    assert est is not None
    expected = (0.001 + PHI * 20) / 2 + (0.002 + PHI * 10) / 4
    assert est.dispersion == pytest.approx(expected)


def test_jitter_is_rms_difference_to_the_chosen_offset() -> None:
    f = ClockFilter()
    f.add(sample(0, 0.000, 0.001), 0.0)
    f.add(sample(1, 0.003, 0.002), 0.0)
    f.add(sample(2, -0.004, 0.003), 0.0)
    est = f.estimate(2 * S, 0.0)
    assert est is not None
    assert est.jitter == pytest.approx(math.sqrt((0.003**2 + 0.004**2) / 2))


def test_offsets_are_carried_along_the_slope() -> None:
    f = ClockFilter()
    # A clock drifting at -100 ppm: offsets fall 100 us per second.
    for i in range(4):
        f.add(sample(i * 10, -100e-6 * i * 10, 0.001 + i * 1e-4), slope=-100e-6)
    est = f.estimate(30 * S, slope=-100e-6)
    assert est is not None
    assert est.time_ns == 0
    assert est.offset_at(30 * S, -100e-6) == pytest.approx(-0.003)
    assert est.jitter < 1e-9 + 2.0**-20


def test_keeps_only_eight_stages() -> None:
    f = ClockFilter()
    for i in range(20):
        f.add(sample(i, 0.0, 0.001 + i * 1e-6), 0.0)
    assert len(f) == FILTER_STAGES


def test_a_lone_spike_is_held_back_and_a_confirmed_jump_replaces_the_history() -> None:
    f = ClockFilter(jump_threshold=0.1)
    for i in range(5):
        f.add(sample(i, 0.0, 0.001), 0.0)
    assert not f.add(sample(5, 2.0, 0.0005), 0.0)  # spike: not used
    assert f.add(sample(6, 0.0, 0.001), 0.0)
    est = f.estimate(6 * S, 0.0)
    assert est is not None and est.offset == 0.0
    assert not f.add(sample(7, 2.0, 0.001), 0.0)
    assert not f.add(sample(8, 2.0001, 0.001), 0.0)
    assert f.add(sample(9, 1.9999, 0.001), 0.0)  # third in a row: the source really jumped
    est = f.estimate(9 * S, 0.0)
    assert est is not None and abs(est.offset - 2.0) < 0.001
    assert len(f) == 3


def test_shift_moves_every_sample() -> None:
    f = ClockFilter()
    f.add(sample(0, 0.5, 0.001), 0.0)
    f.shift(-1.0)
    est = f.estimate(0, 0.0)
    assert est is not None and est.offset == -0.5
    assert f.last_sample is not None and f.last_sample.offset == -0.5


@given(
    st.lists(
        st.tuples(st.floats(-1.0, 1.0), st.floats(1e-5, 1.0), st.floats(0.0, 0.1)),
        min_size=1,
        max_size=20,
    )
)
def test_estimate_is_always_the_least_delay_sample_held(
    items: list[tuple[float, float, float]],
) -> None:
    f = ClockFilter(jump_threshold=10.0)
    for i, (off, delay, disp) in enumerate(items):
        f.add(sample(i, off, delay, disp), 0.0)
    est = f.estimate(len(items) * S, 0.0)
    assert est is not None
    held = items[-FILTER_STAGES:]
    assert est.delay == min(d for _, d, _ in held)
    assert est.dispersion >= 0 and est.jitter >= 0
