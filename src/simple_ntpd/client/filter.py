"""The clock filter of one source (RFC 5905 section 10).

This module owns the choice of *which* recent sample of a source to believe.
It keeps the last :data:`FILTER_STAGES` samples; the estimate is the sample of
minimum delay (the one least disturbed by queueing), its dispersion the
delay-sorted, exponentially weighted sum of the stage dispersions, each grown
by PHI per second of age, and its jitter the RMS difference between the other
samples' offsets and the chosen one.

Differences from the RFC, and why:

* Offsets live on whatever scale the caller uses (the system module uses the
  free-running system clock, see :mod:`simple_ntpd.client.system`). Samples of
  different ages are compared after projecting them along ``slope`` (the
  caller's estimate of how fast offsets on that scale drift), instead of
  assuming the disciplined clock did not move in between.
* Empty stages are not padded with MAXDISP: a source with one sample is
  usable at once, because selection already demands agreement between
  sources (see :mod:`simple_ntpd.client.select`), and that is what makes a
  fresh daemon synchronize within seconds.
* A time jump of the source (a sample more than ``jump_threshold`` away from
  the estimate) is held back until :data:`JUMP_CONFIRM` consecutive samples
  agree on it; then the old samples are dropped, since they describe a time
  the source no longer keeps. A lone spike is thus ignored (RFC 5905's
  popcorn spike suppressor), and a real step is followed within three polls.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from simple_ntpd.served_clock import PHI

# RFC 5905 section 10: the filter has 8 stages.
FILTER_STAGES = 8
JUMP_CONFIRM = 3
NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class FilterSample:
    """One measurement as the filter stores it."""

    time_ns: int
    offset: float
    delay: float
    dispersion: float


@dataclass(frozen=True, slots=True)
class FilterEstimate:
    """The filter's output: the chosen sample and the statistics of the stages."""

    time_ns: int
    """Time of the chosen (minimum-delay) sample."""
    offset: float
    """Its offset, at ``time_ns``, seconds."""
    delay: float
    dispersion: float
    """Weighted stage dispersion at the time of the query (RFC 5905 section 10)."""
    jitter: float
    """RMS offset difference between the stages and the chosen sample (RFC 5905 section 10)."""
    count: int
    """Number of samples held."""

    def offset_at(self, t_ns: int, slope: float) -> float:
        """The chosen offset carried along ``slope`` to ``t_ns``."""
        return self.offset + slope * (t_ns - self.time_ns) / NS_PER_S


class ClockFilter:
    """The 8-stage minimum-delay filter of one source."""

    def __init__(self, jump_threshold: float = 0.1, precision: float = 2.0**-20) -> None:
        self._stages: deque[FilterSample] = deque(maxlen=FILTER_STAGES)
        self._pending: list[FilterSample] = []
        self._jump_threshold = jump_threshold
        self._precision = precision
        self.last_sample: FilterSample | None = None

    def __len__(self) -> int:
        return len(self._stages)

    def clear(self) -> None:
        self._stages.clear()
        self._pending.clear()

    def add(self, sample: FilterSample, slope: float) -> bool:
        """Add a sample; returns False if it was held back as a possible spike or jump."""
        self.last_sample = sample
        current = self.estimate(sample.time_ns, slope)
        if current is not None:
            expected = current.offset_at(sample.time_ns, slope)
            if abs(sample.offset - expected) > self._jump_threshold:
                return self._hold(sample, slope)
        self._pending.clear()
        self._stages.append(sample)
        return True

    def _hold(self, sample: FilterSample, slope: float) -> bool:
        if self._pending:
            first = self._pending[0]
            drift = slope * (sample.time_ns - first.time_ns) / NS_PER_S
            if abs(sample.offset - first.offset - drift) > self._jump_threshold:
                self._pending.clear()
        self._pending.append(sample)
        if len(self._pending) >= JUMP_CONFIRM:
            self._stages.clear()
            self._stages.extend(self._pending)
            self._pending.clear()
            return True
        return False

    def shift(self, delta: float) -> None:
        """Move every stored offset by ``delta`` seconds (the scale itself moved, e.g. a leap)."""

        def moved(s: FilterSample) -> FilterSample:
            return FilterSample(s.time_ns, s.offset + delta, s.delay, s.dispersion)

        self._stages = deque(map(moved, self._stages), maxlen=FILTER_STAGES)
        self._pending = [moved(s) for s in self._pending]
        if self.last_sample is not None:
            self.last_sample = moved(self.last_sample)

    def estimate(self, now_ns: int, slope: float) -> FilterEstimate | None:
        """The filter output at ``now_ns`` (RFC 5905 section 10), or None when empty."""
        if not self._stages:
            return None
        ordered = sorted(self._stages, key=lambda s: (s.delay, -s.time_ns))
        best = ordered[0]
        dispersion = 0.0
        for i, s in enumerate(ordered):
            aged = s.dispersion + PHI * max(0, now_ns - s.time_ns) / NS_PER_S
            dispersion += aged / (2 ** (i + 1))
        if len(ordered) > 1:
            total = 0.0
            for s in ordered[1:]:
                carried = s.offset + slope * (best.time_ns - s.time_ns) / NS_PER_S
                total += (carried - best.offset) ** 2
            jitter = math.sqrt(total / (len(ordered) - 1))
        else:
            jitter = 0.0
        return FilterEstimate(
            time_ns=best.time_ns,
            offset=best.offset,
            delay=best.delay,
            dispersion=dispersion,
            jitter=max(jitter, self._precision),
            count=len(ordered),
        )
