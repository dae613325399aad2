"""The shipped fakes (simple_ntpd.testing) and the clock protocols (simple_ntpd.clock)."""

from __future__ import annotations

import calendar

import pytest

from simple_ntpd.client.actions import (
    SetClockFrequency,
    SetClockLeap,
    SetClockStatus,
    StepClock,
    apply_clock_command,
)
from simple_ntpd.clock import Clock, SteerableClock
from simple_ntpd.testing import (
    DriftingClock,
    FakeClock,
    FakeKernelClock,
    seeded_rng_for_testing,
)

S = 1_000_000_000


def test_protocols_are_implemented() -> None:
    assert isinstance(FakeClock(), Clock)
    assert isinstance(FakeKernelClock(FakeClock()), SteerableClock)
    assert not isinstance(FakeClock(), SteerableClock)


def test_seeded_rng_is_reproducible() -> None:
    assert seeded_rng_for_testing(4)(8) == seeded_rng_for_testing(4)(8)
    assert len(seeded_rng_for_testing(4)(3)) == 3
    assert seeded_rng_for_testing(4)(0) == b""


def test_drifting_clock_gains_its_frequency_error() -> None:
    c = DriftingClock(0, freq_ppm=100.0)
    c.advance_to(1000 * S)
    assert c.now_ns() == 1000 * S + 100_000_000
    with pytest.raises(ValueError):
        c.advance_to(0)


def test_fake_kernel_frequency_step_and_slew() -> None:
    base = FakeClock(1000 * S)
    k = FakeKernelClock(base)
    apply_clock_command(k, SetClockFrequency(-50.0))
    base.advance(100 * S)
    assert k.now_ns() == 1100 * S - 5_000_000
    apply_clock_command(k, StepClock(2 * S))
    assert k.now_ns() == 1102 * S - 5_000_000
    k.slew(1_000_000)  # 1 ms at 500 ppm takes 2 s
    base.advance(1 * S)
    assert k.now_ns() == pytest.approx(1103 * S - 5_050_000 + 500_000, abs=10)
    base.advance(10 * S)
    assert k.now_ns() == pytest.approx(1113 * S - 5_550_000 + 1_000_000, abs=10)
    assert k.steps == [2 * S] and k.frequency_history == [-50.0]


def test_fake_kernel_inserts_an_armed_leap_second_once() -> None:
    midnight = calendar.timegm((2016, 12, 31, 0, 0, 0)) * S + 86_400 * S
    base = FakeClock(midnight - 10 * S)
    k = FakeKernelClock(base)
    apply_clock_command(k, SetClockLeap(1))
    base.advance(9 * S)
    assert k.now_ns() == midnight - S
    base.advance(S)
    assert k.now_ns() == midnight - S  # 23:59:59 again
    base.advance(S)
    assert k.now_ns() == midnight
    assert k.leaps_applied == 1 and k.leap == 0
    apply_clock_command(k, SetClockStatus(True, 1e-4, 1e-3))
    assert k.synchronized and k.max_error_s == 1e-3
