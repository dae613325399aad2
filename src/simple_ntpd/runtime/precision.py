"""Measure the precision of the system clock as read by this process."""

from __future__ import annotations

import math
import time


def measure_precision(samples: int = 2000) -> int:
    """log2 of the clock's read granularity in seconds, as ntpd and chrony report it.

    The smallest positive difference between consecutive reads bounds both the
    resolution and the cost of reading; RFC 5905 section 7.3 calls its log2
    the precision. Clamped to [-30, -6].
    """
    best = 1_000_000_000
    read = time.clock_gettime_ns
    clk = time.CLOCK_REALTIME
    prev = read(clk)
    for _ in range(samples):
        now = read(clk)
        d = now - prev
        if 0 < d < best:
            best = d
        prev = now
    return max(-30, min(-6, math.ceil(math.log2(best * 1e-9))))
