"""NTP time formats and their conversion to and from Unix nanoseconds.

This module owns the arithmetic between the two time scales the daemon uses:

* Unix time as an integer of nanoseconds since 1970-01-01T00:00:00Z (what the
  kernel gives us, and what :mod:`simple_ntpd.served_clock` works in), and
* the NTP wire formats of RFC 5905 section 6: the 64-bit timestamp (32 bits of
  seconds since 1900 modulo 2**32, 32 bits of fraction) and the 32-bit short
  format (16.16 unsigned seconds) used for root delay and root dispersion.

Conversions are exact integer arithmetic; floats appear only where the caller
asks for seconds as a float (short format, differences). Nothing here reads a
clock: the era of a wire timestamp is resolved against a ``pivot`` the caller
passes in (its idea of "now").

These functions are on the server's hot path (one or two calls per packet), so
they are plain functions over ints, not classes.
"""

from __future__ import annotations

import math

NTP_UNIX_EPOCH_OFFSET = 2_208_988_800
"""Seconds from the NTP prime epoch (1900-01-01, era 0) to the Unix epoch (1970-01-01)."""

NS_PER_SECOND = 1_000_000_000

# RFC 5905 section 6: a timestamp's seconds field is 32 bits, so one era is 2**32 s
# (about 136 years). Era 0 began in 1900, era 1 begins 2036-02-07T06:28:16Z.
ERA_SECONDS = 1 << 32
_ERA_NS = ERA_SECONDS * NS_PER_SECOND
_HALF_ERA_NS = _ERA_NS // 2
_OFFSET_NS = NTP_UNIX_EPOCH_OFFSET * NS_PER_SECOND
_FRAC_ONE = 1 << 32
_HALF_NS = NS_PER_SECOND // 2
_MASK64 = (1 << 64) - 1
_SIGN64 = 1 << 63

# RFC 5905 section 6: the short format is 16 bits of seconds and 16 of fraction.
NTP_SHORT_MAX = 0xFFFF_FFFF
_SHORT_ONE = 1 << 16


def ntp64_from_unix_ns(unix_ns: int) -> int:
    """Return the 64-bit wire timestamp for a Unix time in nanoseconds.

    The fraction is rounded to the nearest 2**-32 s. The era is dropped as on
    the wire (RFC 5905 section 6): 2036-02-07T06:28:16Z encodes as 0, and
    times before 1900 wrap into the previous era.

    Args:
        unix_ns: nanoseconds since 1970-01-01T00:00:00Z (may be negative).

    Returns:
        An int in ``[0, 2**64)``: seconds in the high 32 bits, fraction in the low 32.
    """
    # Scale to 2**-32 s units with round-half-up, then keep 64 bits (drops the era).
    return ((((unix_ns + _OFFSET_NS) << 32) + _HALF_NS) // NS_PER_SECOND) & _MASK64


def unix_ns_from_ntp64(value: int, pivot_unix_ns: int) -> int:
    """Return the Unix time in nanoseconds of a 64-bit wire timestamp.

    The wire carries no era, so the era is chosen to put the result within
    half an era (about 68 years) of ``pivot_unix_ns``, as RFC 5905 section 6
    recommends. The fraction is rounded to the nearest nanosecond, so a
    timestamp made by :func:`ntp64_from_unix_ns` converts back exactly.

    Args:
        value: the 64-bit timestamp, ``0 <= value < 2**64``.
        pivot_unix_ns: the caller's notion of now, nanoseconds since 1970.

    Returns:
        Nanoseconds since 1970-01-01T00:00:00Z.
    """
    ns_in_era = (value * NS_PER_SECOND + (1 << 31)) >> 32
    pivot_1900_ns = pivot_unix_ns + _OFFSET_NS
    era = (pivot_1900_ns - ns_in_era + _HALF_ERA_NS) // _ERA_NS
    return era * _ERA_NS + ns_in_era - _OFFSET_NS


def ntp64_era(unix_ns: int) -> int:
    """Return the NTP era number (RFC 5905 section 6) that contains a Unix time.

    Era 0 is 1900-01-01 to 2036-02-07T06:28:16Z; era -1 precedes it.
    """
    return (unix_ns + _OFFSET_NS) // _ERA_NS


def ntp_short_from_seconds(seconds: float) -> int:
    """Return the 32-bit short format (16.16 unsigned) for a duration in seconds.

    Rounds to the nearest 2**-16 s (exact ties to even) and saturates at 0 and ``0xFFFFFFFF``
    (65535.99998 s): negative durations become 0, too large ones the maximum.
    NaN becomes the maximum, since the short format carries root delay and
    dispersion, where an unknown error must read as the largest error.
    """
    if math.isnan(seconds):
        return NTP_SHORT_MAX
    if seconds <= 0.0:
        return 0
    if seconds >= NTP_SHORT_MAX / _SHORT_ONE:
        return NTP_SHORT_MAX
    return min(round(seconds * _SHORT_ONE), NTP_SHORT_MAX)


def seconds_from_ntp_short(value: int) -> float:
    """Return the seconds a 32-bit short-format value stands for."""
    return value / _SHORT_ONE


def ntp64_diff_seconds(a: int, b: int) -> float:
    """Return ``a - b`` in seconds for two 64-bit wire timestamps.

    The difference is taken modulo 2**64 and read as signed, so it is right
    whenever the two instants are less than half an era (about 68 years)
    apart, even across an era boundary (RFC 5905 section 6: timestamp
    differences are computed in 64-bit two's complement).
    """
    d = (a - b) & _MASK64
    if d & _SIGN64:
        d -= 1 << 64
    # int / int is correctly rounded in Python, so small differences are exact
    # to the nearest double.
    return d / _FRAC_ONE
