"""Unit and property tests for simple_ntpd.timetypes: eras, rounding, short format."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simple_ntpd.timetypes import (
    ERA_SECONDS,
    NTP_SHORT_MAX,
    NTP_UNIX_EPOCH_OFFSET,
    ntp64_diff_seconds,
    ntp64_era,
    ntp64_from_unix_ns,
    ntp_short_from_seconds,
    seconds_from_ntp_short,
    unix_ns_from_ntp64,
)

NS = 1_000_000_000
# 2036-02-07T06:28:16Z: the first second of NTP era 1.
ERA1_UNIX_S = ERA_SECONDS - NTP_UNIX_EPOCH_OFFSET
# Half an era, the widest distance from the pivot that resolves unambiguously.
HALF_ERA_NS = ERA_SECONDS // 2 * NS


def unix_ns(year: int, month: int = 1, day: int = 1, hour: int = 0, minute: int = 0) -> int:
    """Unix nanoseconds of a UTC calendar instant, computed by the stdlib, not by us."""
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    delta = dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC) - epoch
    return (delta.days * 86_400 + delta.seconds) * NS


def test_epoch_offset_matches_the_calendar() -> None:
    assert unix_ns(1900) == -NTP_UNIX_EPOCH_OFFSET * NS


def test_era_one_starts_2036_02_07_06_28_16() -> None:
    start = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=ERA1_UNIX_S)
    assert start == dt.datetime(2036, 2, 7, 6, 28, 16, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (unix_ns(1900), 0),
        (unix_ns(1970), NTP_UNIX_EPOCH_OFFSET << 32),
        (0, NTP_UNIX_EPOCH_OFFSET << 32),
        # Half a second is exactly 2**31 in the fraction.
        (NS // 2, (NTP_UNIX_EPOCH_OFFSET << 32) | 0x8000_0000),
        (ERA1_UNIX_S * NS, 0),
        (ERA1_UNIX_S * NS - NS, 0xFFFF_FFFF << 32),
        (ERA1_UNIX_S * NS + NS, 1 << 32),
    ],
)
def test_ntp64_from_unix_ns_known_values(when: int, expected: int) -> None:
    assert ntp64_from_unix_ns(when) == expected


def test_ntp64_fraction_rounds_to_nearest() -> None:
    # 1 ns = 4.294967296 units of 2**-32 s: rounds to 4.
    assert ntp64_from_unix_ns(1) & 0xFFFF_FFFF == 4
    # 3 ns = 12.88 units: rounds to 13.
    assert ntp64_from_unix_ns(3) & 0xFFFF_FFFF == 13


def test_rollover_one_ns_each_side() -> None:
    rollover = ERA1_UNIX_S * NS
    before = ntp64_from_unix_ns(rollover - 1)
    at = ntp64_from_unix_ns(rollover)
    after = ntp64_from_unix_ns(rollover + 1)
    assert before >> 32 == 0xFFFF_FFFF
    assert (1 << 32) - (before & 0xFFFF_FFFF) == 4  # 1 ns short of the next second
    assert at == 0
    assert after == 4
    pivot = unix_ns(2036)
    assert unix_ns_from_ntp64(before, pivot) == rollover - 1
    assert unix_ns_from_ntp64(at, pivot) == rollover
    assert unix_ns_from_ntp64(after, pivot) == rollover + 1
    # 2 ns is 8 units of 2**-32 s once each side is rounded.
    assert ntp64_diff_seconds(after, before) == 8 / 2**32


@pytest.mark.parametrize(
    ("when", "era"),
    [
        (unix_ns(1899, 12, 31), -1),
        (unix_ns(1900), 0),
        (unix_ns(1970), 0),
        (ERA1_UNIX_S * NS - 1, 0),
        (ERA1_UNIX_S * NS, 1),
        (unix_ns(2104), 1),
        (unix_ns(2173), 2),
    ],
)
def test_era_numbers(when: int, era: int) -> None:
    assert ntp64_era(when) == era


@pytest.mark.parametrize(
    "when",
    [
        unix_ns(1900),
        unix_ns(1970),
        unix_ns(2024, 6, 30, 23, 59),
        ERA1_UNIX_S * NS - 1,
        ERA1_UNIX_S * NS,
        ERA1_UNIX_S * NS + 1,
        unix_ns(2104),
        unix_ns(1850),  # era -1
        unix_ns(2200),  # era 2
    ],
)
def test_round_trip_at_era_edges_with_pivot_at_the_value(when: int) -> None:
    assert unix_ns_from_ntp64(ntp64_from_unix_ns(when), when) == when


def test_era_is_chosen_by_the_pivot() -> None:
    value = ntp64_from_unix_ns(unix_ns(2000))  # seconds field fits both era 0 and era 1
    assert unix_ns_from_ntp64(value, unix_ns(2000)) == unix_ns(2000)
    assert unix_ns_from_ntp64(value, unix_ns(2130)) == unix_ns(2000) + ERA_SECONDS * NS
    assert unix_ns_from_ntp64(value, unix_ns(1880)) == unix_ns(2000) - ERA_SECONDS * NS


def test_2104_resolves_into_era_one_from_a_2100_pivot() -> None:
    when = unix_ns(2104)
    value = ntp64_from_unix_ns(when)
    # The wire value alone would read as 1968 in era 0.
    assert value >> 32 == (when // NS + NTP_UNIX_EPOCH_OFFSET) - ERA_SECONDS
    assert unix_ns_from_ntp64(value, unix_ns(2100)) == when


# Property: for any time t and any pivot within +-68 years (less a margin for the
# fraction's rounding), conversion there and back is exact, across eras -1..2.
_T_RANGE = st.integers(min_value=unix_ns(1800), max_value=unix_ns(2300))
_OFFSET = st.integers(min_value=-(HALF_ERA_NS - NS), max_value=HALF_ERA_NS - NS)


@given(t=_T_RANGE, offset=_OFFSET)
def test_round_trip_within_half_an_era_of_the_pivot(t: int, offset: int) -> None:
    assert unix_ns_from_ntp64(ntp64_from_unix_ns(t), t + offset) == t


@given(era=st.integers(min_value=-1, max_value=2), ns_in_era=st.integers(0, ERA_SECONDS * NS - 1))
def test_round_trip_in_each_era(era: int, ns_in_era: int) -> None:
    t = era * ERA_SECONDS * NS + ns_in_era - NTP_UNIX_EPOCH_OFFSET * NS
    assert ntp64_era(t) == era
    assert unix_ns_from_ntp64(ntp64_from_unix_ns(t), t) == t


@given(t=_T_RANGE)
def test_wire_value_is_64_bit(t: int) -> None:
    assert 0 <= ntp64_from_unix_ns(t) < 1 << 64


@given(
    a=_T_RANGE,
    delta=st.integers(min_value=-(HALF_ERA_NS - NS), max_value=HALF_ERA_NS - NS),
)
def test_diff_is_signed_and_era_independent(a: int, delta: int) -> None:
    x = ntp64_from_unix_ns(a + delta)
    y = ntp64_from_unix_ns(a)
    # Each conversion rounds by at most 2**-33 s; the float result and delta / NS each round
    # to the nearest double, which far from zero is coarser than that (1 ulp ~ 2e-16 relative).
    assert ntp64_diff_seconds(x, y) == pytest.approx(delta / NS, abs=2**-31, rel=1e-15)


def test_diff_small_values_are_exact() -> None:
    assert ntp64_diff_seconds(1 << 32, 0) == 1.0
    assert ntp64_diff_seconds(0, 1 << 32) == -1.0
    assert ntp64_diff_seconds(0, (1 << 64) - (1 << 31)) == 0.5  # across the 2**64 wrap
    assert ntp64_diff_seconds(5, 5) == 0.0


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.0, 0),
        (1.0, 0x0001_0000),
        (1.5, 0x0001_8000),
        (2**-16, 1),
        (2**-17 * 1.01, 1),  # rounds to nearest
        (2**-17 * 0.99, 0),
        (-0.5, 0),
        (-math.inf, 0),
        (65535.0, 0xFFFF_0000),
        (65536.0, NTP_SHORT_MAX),
        (1e9, NTP_SHORT_MAX),
        (math.inf, NTP_SHORT_MAX),
        (math.nan, NTP_SHORT_MAX),
    ],
)
def test_short_format(seconds: float, expected: int) -> None:
    assert ntp_short_from_seconds(seconds) == expected


def test_short_format_just_below_the_top_saturates_not_overflows() -> None:
    assert ntp_short_from_seconds(NTP_SHORT_MAX / 65536 - 2**-20) == NTP_SHORT_MAX


@given(st.integers(min_value=0, max_value=NTP_SHORT_MAX))
def test_short_format_round_trip(value: int) -> None:
    assert ntp_short_from_seconds(seconds_from_ntp_short(value)) == value


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_short_format_always_in_range(seconds: float) -> None:
    assert 0 <= ntp_short_from_seconds(seconds) <= NTP_SHORT_MAX
