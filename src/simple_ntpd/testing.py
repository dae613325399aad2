"""Deterministic stand-ins for clocks and randomness, shipped for tests and the simulator.

This module owns the fakes that let the timekeeping core run under virtual
time: a settable :class:`FakeClock`, a free-running :class:`DriftingClock`
(an oscillator with a frequency error and random-walk wander, driven by the
simulator's true time), a :class:`FakeKernelClock` implementing
:class:`simple_ntpd.clock.SteerableClock` in memory, and a seeded byte source.

Nothing here touches a real clock: that is the point of the module. Names that
only make sense in tests say so (``..._for_testing``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

NS_PER_S = 1_000_000_000
_DAY_NS = 86_400 * NS_PER_S
# Linux adjtime(3) slews at most 500 ppm; the fake kernel does the same.
KERNEL_MAX_SLEW_PPM = 500.0


def seeded_rng_for_testing(seed: int) -> Callable[[int], bytes]:
    """Return an ``rng(n) -> n bytes`` that is reproducible for a seed. Never use in production."""
    gen = random.Random(seed)

    def rng(n: int) -> bytes:
        return gen.getrandbits(8 * n).to_bytes(n, "big") if n > 0 else b""

    return rng


class FakeClock:
    """A clock that reads whatever it was set to."""

    def __init__(self, now_ns: int = 0) -> None:
        self._now = now_ns

    def now_ns(self) -> int:
        return self._now

    def set(self, now_ns: int) -> None:
        self._now = now_ns

    def advance(self, delta_ns: int) -> None:
        self._now += delta_ns


class DriftingClock:
    """A free-running local oscillator, read on the Unix scale.

    Its reading is ``true + phase`` where the phase grows with a frequency
    error (positive runs fast) that wanders as a random walk. The simulator
    owns true time and calls :meth:`advance_to`; readers call :meth:`now_ns`.
    """

    def __init__(
        self,
        true_ns: int,
        *,
        phase_ns: float = 0.0,
        freq_ppm: float = 0.0,
        wander_ppm_per_sqrt_s: float = 0.0,
        seed: int = 0,
    ) -> None:
        self._true = true_ns
        self._phase = phase_ns
        self.freq_ppm = freq_ppm
        self._wander = wander_ppm_per_sqrt_s
        self._gen = random.Random(seed)

    @property
    def true_ns(self) -> int:
        return self._true

    def advance_to(self, true_ns: int) -> None:
        """Let true time run to ``true_ns`` (never backwards)."""
        dt_ns = true_ns - self._true
        if dt_ns < 0:
            raise ValueError("true time cannot go backwards")
        self._phase += self.freq_ppm * 1e-6 * dt_ns
        if self._wander and dt_ns:
            self.freq_ppm += self._gen.gauss(0.0, self._wander * math.sqrt(dt_ns / NS_PER_S))
        self._true = true_ns

    def now_ns(self) -> int:
        return self._true + round(self._phase)


class FakeKernelClock:
    """An in-memory :class:`simple_ntpd.clock.SteerableClock` over a free-running clock.

    Reading = underlying reading + adjustment, where the adjustment grows with
    the frequency set by :meth:`set_frequency`, includes steps, a pending slew
    worked off at 500 ppm like adjtime, and an armed leap second applied once
    at the next UTC midnight of this clock's own reading (as the Linux kernel
    does with ``STA_INS``/``STA_DEL``). Every command is recorded for tests.
    """

    def __init__(self, base: DriftingClock | FakeClock) -> None:
        self._base = base
        self._anchor = base.now_ns()
        self._adj = 0.0
        self._slew_left = 0.0
        self.frequency_ppm = 0.0
        self.steps: list[int] = []
        self.frequency_history: list[float] = []
        self.slews: list[int] = []
        self.leap = 0
        self._leap_at: int | None = None
        self.leaps_applied = 0
        self.synchronized = False
        self.max_error_s = 16.0
        self.est_error_s = 16.0

    def _adjustment_at(self, base_ns: int) -> tuple[float, float]:
        elapsed = base_ns - self._anchor
        adj = self._adj + self.frequency_ppm * 1e-6 * elapsed
        slewed = min(abs(self._slew_left), KERNEL_MAX_SLEW_PPM * 1e-6 * elapsed)
        slewed = math.copysign(slewed, self._slew_left)
        return adj + slewed, self._slew_left - slewed

    def _rebase(self) -> None:
        base_ns = self._base.now_ns()
        self._adj, self._slew_left = self._adjustment_at(base_ns)
        self._anchor = base_ns

    def now_ns(self) -> int:
        adj, _ = self._adjustment_at(self._base.now_ns())
        reading = self._base.now_ns() + round(adj)
        if self._leap_at is not None and reading >= self._leap_at:
            # The kernel inserts (or deletes) the second once, then disarms.
            delta = -NS_PER_S if self.leap == 1 else NS_PER_S
            self._rebase()
            self._adj += delta
            self._leap_at = None
            self.leap = 0
            self.leaps_applied += 1
            reading += delta
        return reading

    def set_frequency(self, ppm: float) -> None:
        self._rebase()
        self.frequency_ppm = ppm
        self.frequency_history.append(ppm)

    def slew(self, offset_ns: int) -> None:
        self._rebase()
        self._slew_left = float(offset_ns)
        self.slews.append(offset_ns)

    def step(self, delta_ns: int) -> None:
        self._rebase()
        self._adj += delta_ns
        self.steps.append(delta_ns)

    def set_leap(self, leap: int) -> None:
        self.leap = leap
        if leap in (1, 2):
            reading = self.now_ns()
            self._leap_at = (reading // _DAY_NS + 1) * _DAY_NS
        else:
            self._leap_at = None

    def set_sync_status(self, synchronized: bool, est_error_s: float, max_error_s: float) -> None:
        self.synchronized = synchronized
        self.est_error_s = est_error_s
        self.max_error_s = max_error_s
