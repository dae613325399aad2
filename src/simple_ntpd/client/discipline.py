"""Discipline of the served clock: from measured offsets to a correction.

This module owns how the served clock is steered. It works on the *raw*
offset ``y(t) = true time - free-running system clock``, which the system
module reconstructs from each measurement (see :mod:`.system`). Because ``y``
does not depend on our own corrections, the estimate is open-loop, as in
chrony:

1. **Estimate** (chrony-like, not RFC 5905's PLL/FLL): a weighted
   least-squares line ``y = a + b t`` through recent samples, each weighted
   by its delay relative to its source's best and by 1 / root distance
   (:func:`_weights`). ``b`` is the frequency error of the
   system clock, ``a + b now`` the offset to serve now. Only the newest
   :data:`MAX_POINTS` are kept, and a runs test on the residuals drops the
   oldest quarter while too few sign changes show the line no longer fits
   (the oscillator wandered). Until there are :data:`MIN_FIT_POINTS` points
   spanning :data:`MIN_FIT_SPAN_S` seconds, ``b`` keeps its previous value
   (initially the drift file's). An update more than ``step_threshold`` away
   from the line means the reference itself jumped: the history is dropped
   and the line restarts from the new point, keeping ``b``.
2. **Steer** the correction ``c(t) = offset + freq (t - t0)`` (served = system
   + c) towards the estimate, continuously:

   * **Step rule** (like chrony's ``makestep threshold limit``): during the
     first ``step_limit`` updates, an error above ``step_threshold`` is
     stepped. A backward step is allowed only on the very first update,
     before anything was served as synchronized; later the served time never
     goes backwards (except for an inserted leap second, see :mod:`.system`).
   * Otherwise the error is **slewed**: the correction runs at ``b`` plus the
     error spread over ``max(|error| / headroom, MIN_SLEW_S)`` seconds, where
     headroom is ``max_drift - |b|``; the total frequency never exceeds
     ``max_drift`` ppm, so served time keeps running forward at a rate within
     ``max_drift`` of the system clock. When the slew ends the correction
     runs at ``b`` alone (the caller gets the end time for a timer).
   * **Panic**: after the first update, an error above ``panic_threshold``
     is refused (the update is not used).

The drift file stores ``b`` (in ppm, the frequency the correction runs at)
and its standard error, as two numbers on one line like chrony's.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from enum import Enum

from simple_ntpd.errors import SimpleNtpdError

NS_PER_S = 1_000_000_000
MAX_POINTS = 64
MIN_FIT_POINTS = 4
MIN_FIT_SPAN_S = 8.0
MIN_SLEW_S = 8.0
# Error floor of one sample in the fit, seconds (see _weights). Tuned in the simulator with
# 1 ms queueing jitter: a small floor lets a few lucky low-delay samples of the first seconds
# dominate, and the slope then has no lever arm; 300 us keeps later samples in play.
SAMPLE_ERROR_FLOOR = 300e-6
# Runs test: a window of this many points or fewer is never trimmed.
MIN_RUNS_WINDOW = 8


class DriftFileError(SimpleNtpdError):
    """The drift file's text is not two finite numbers."""


@dataclass(frozen=True, slots=True)
class DriftRecord:
    """What the drift file holds."""

    frequency_ppm: float
    skew_ppm: float = 0.0


def serialize_drift(record: DriftRecord) -> str:
    """Text of a drift file: frequency and its standard error in ppm (chrony's layout)."""
    return f"{record.frequency_ppm:.6f} {record.skew_ppm:.6f}\n"


def parse_drift(text: str) -> DriftRecord:
    """Parse a drift file written by :func:`serialize_drift` (or chrony's).

    Raises:
        DriftFileError: not one or two finite numbers.
    """
    fields = text.split()
    if not 1 <= len(fields) <= 2:
        raise DriftFileError("expected 'frequency_ppm [skew_ppm]'")
    try:
        values = [float(f) for f in fields]
    except ValueError as exc:
        raise DriftFileError(f"not a number: {exc}") from None
    if not all(math.isfinite(v) for v in values):
        raise DriftFileError("not a finite number")
    return DriftRecord(values[0], abs(values[1]) if len(values) == 2 else 0.0)


@dataclass(frozen=True, slots=True)
class DisciplineParams:
    step_threshold: float = 0.1
    """Seconds; errors above it may be stepped during the first ``step_limit`` updates."""
    step_limit: int = 3
    """Number of first updates during which stepping is allowed (0: never step)."""
    panic_threshold: float = 1000.0
    """Seconds; after the first update, larger errors are refused."""
    max_drift_ppm: float = 500.0
    """Largest frequency of the correction, ppm (both signs)."""


@dataclass(frozen=True, slots=True)
class Correction:
    """served(t) = t + offset_ns + freq (t - t0_ns), as in ServedClockState."""

    offset_ns: int = 0
    freq: float = 0.0
    t0_ns: int = 0

    def value_ns(self, t_ns: int) -> int:
        return self.offset_ns + int(self.freq * (t_ns - self.t0_ns))


class Outcome(Enum):
    STEPPED = "stepped"
    SLEWED = "slewed"
    REFUSED_PANIC = "refused-panic"


@dataclass(frozen=True, slots=True)
class UpdateResult:
    outcome: Outcome
    error: float
    """Served-time error the update found (estimate minus correction), seconds."""
    step_ns: int = 0
    slew_end_ns: int | None = None


@dataclass(frozen=True, slots=True)
class _Point:
    t_ns: int
    y: float
    delay: float = 0.0
    group: int = 0
    distance: float = 1.0


class Discipline:
    """Estimates the system clock's offset and frequency and steers the correction."""

    def __init__(self, params: DisciplineParams, drift: DriftRecord | None = None) -> None:
        self.params = params
        limit = params.max_drift_ppm * 1e-6
        self._limit = limit
        self.freq = 0.0 if drift is None else max(-limit, min(limit, drift.frequency_ppm * 1e-6))
        """Estimated frequency the correction must run at (``b``), dimensionless."""
        self.skew = 0.0 if drift is None else drift.skew_ppm * 1e-6
        self.correction = Correction(0, self.freq, 0)
        self.updates = 0
        self.steps = 0
        self.slew_end_ns: int | None = None
        self._points: list[_Point] = []
        self._a = 0.0
        self._t_ref = 0

    @property
    def synchronized(self) -> bool:
        return self.updates > 0

    def start(self, now_ns: int) -> None:
        """Anchor the correction at ``now_ns`` (offset 0, the restored frequency)."""
        self.correction = Correction(0, self.freq, now_ns)

    def predict(self, t_ns: int) -> float | None:
        """Estimated raw offset at ``t_ns``, or None before any update."""
        if not self._points:
            return None
        return self._a + self.freq * (t_ns - self._t_ref) / NS_PER_S

    def drift_record(self) -> DriftRecord:
        return DriftRecord(self.freq * 1e6, self.skew * 1e6)

    def update(
        self,
        y: float,
        sample_ns: int,
        now_ns: int,
        *,
        delay: float = 0.0,
        group: int = 0,
        distance: float = 1.0,
    ) -> UpdateResult:
        """Take a new raw offset.

        Args:
            y: true time minus system time at ``sample_ns``, seconds.
            sample_ns: system time the measurement refers to.
            now_ns: system time now (the correction changes from here on).
            delay: round-trip delay of the measurement, seconds.
            group: the source it came from (delays are compared within a source).
            distance: the source's root distance, seconds (RFC 5905 weight 1 / distance).
        """
        p = self.params
        at_sample = self.correction.value_ns(sample_ns) / NS_PER_S
        # panic_threshold 0 means no limit (the configuration's documented meaning).
        if self.synchronized and p.panic_threshold > 0 and abs(y - at_sample) > p.panic_threshold:
            return UpdateResult(Outcome.REFUSED_PANIC, y - at_sample)
        predicted = self.predict(sample_ns)
        if predicted is not None and abs(y - predicted) > p.step_threshold:
            self._points.clear()  # the reference jumped: the old line no longer applies
        point = _Point(sample_ns, y, delay, group, distance)
        bisect.insort(self._points, point, key=lambda q: q.t_ns)
        if len(self._points) > MAX_POINTS:
            del self._points[0]
        self._fit()
        target = self.predict(now_ns)
        assert target is not None
        error = target - self.correction.value_ns(now_ns) / NS_PER_S
        first = not self.synchronized
        self.updates += 1
        # step_limit -1: steps allowed at any update (chrony's makestep with limit -1).
        may_step = p.step_limit < 0 or self.updates <= p.step_limit
        if may_step and abs(error) > p.step_threshold and (error > 0 or first):
            step_ns = round(error * NS_PER_S)
            self.correction = Correction(
                self.correction.value_ns(now_ns) + step_ns, self.freq, now_ns
            )
            self.steps += 1
            self.slew_end_ns = None
            return UpdateResult(Outcome.STEPPED, error, step_ns=step_ns)
        return self._slew(error, now_ns)

    def _slew(self, error: float, now_ns: int) -> UpdateResult:
        headroom = max(self._limit - abs(self.freq), 1e-9)
        duration = max(abs(error) / headroom, MIN_SLEW_S)
        freq = max(-self._limit, min(self._limit, self.freq + error / duration))
        self.correction = Correction(self.correction.value_ns(now_ns), freq, now_ns)
        self.slew_end_ns = now_ns + int(duration * NS_PER_S)
        return UpdateResult(Outcome.SLEWED, error, slew_end_ns=self.slew_end_ns)

    def end_slew(self, now_ns: int) -> None:
        """The slew time is over: run at the estimated frequency alone."""
        self.correction = Correction(self.correction.value_ns(now_ns), self.freq, now_ns)
        self.slew_end_ns = None

    def shift(self, delta_s: float, now_ns: int) -> None:
        """The true time scale moved by ``delta_s`` (a leap second): move everything with it."""
        delta_ns = round(delta_s * NS_PER_S)
        self.correction = Correction(
            self.correction.value_ns(now_ns) + delta_ns, self.correction.freq, now_ns
        )
        self._points = [
            _Point(q.t_ns, q.y + delta_s, q.delay, q.group, q.distance) for q in self._points
        ]
        self._a += delta_s

    # --- estimation ---------------------------------------------------------------------------

    def _fit(self) -> None:
        while True:
            pts = self._points
            t_ref = pts[-1].t_ns
            xs = [(q.t_ns - t_ref) / NS_PER_S for q in pts]
            ys = [q.y for q in pts]
            ws = _weights(pts)
            n = len(pts)
            sw = sum(ws)
            mx = sum(w * x for w, x in zip(ws, xs, strict=True)) / sw
            my = sum(w * y for w, y in zip(ws, ys, strict=True)) / sw
            if n >= MIN_FIT_POINTS and xs[-1] - xs[0] >= MIN_FIT_SPAN_S:
                sxx = sum(w * (x - mx) ** 2 for w, x in zip(ws, xs, strict=True))
                sxy = sum(w * (x - mx) * (y - my) for w, x, y in zip(ws, xs, ys, strict=True))
                b = sxy / sxx
                resid = [y - (my + b * (x - mx)) for x, y in zip(xs, ys, strict=True)]
                if n > MIN_RUNS_WINDOW and _too_few_runs(resid):
                    del self._points[: n // 4]
                    continue
                var = sum(w * r * r for w, r in zip(ws, resid, strict=True)) / sw
                self.skew = math.sqrt(var * n / max(1, n - 2) / (sxx / sw * n))
                self.freq = max(-self._limit, min(self._limit, b))
            # The line goes through the weighted centroid with slope freq.
            self._a = my - self.freq * mx
            self._t_ref = t_ref
            return


def _weights(points: list[_Point]) -> list[float]:
    """Fit weights: 1 / (error bound^2 * root distance).

    A sample's error bound is half its delay above the smallest delay of its
    source within the window (queueing is what makes an offset wrong; the
    minimum-delay principle of RFC 5905 section 10, applied as a weight), plus
    :data:`SAMPLE_ERROR_FLOOR` for what delay cannot show (asymmetry). The
    minimum is taken over the window at fit time, so an early sample that was
    merely the first is not trusted forever.
    """
    least: dict[int, float] = {}
    for q in points:
        if q.delay < least.get(q.group, math.inf):
            least[q.group] = q.delay
    out = []
    for q in points:
        bound = (q.delay - least[q.group]) / 2 + SAMPLE_ERROR_FLOOR
        out.append(1.0 / (bound * bound * max(q.distance, 1e-9)))
    return out


def _too_few_runs(resid: list[float]) -> bool:
    """Wald-Wolfowitz runs test: True when the signs change too rarely to be noise."""
    signs = [r >= 0 for r in resid]
    n1 = sum(signs)
    n2 = len(signs) - n1
    if n1 == 0 or n2 == 0:
        return True
    runs = 1 + sum(1 for i in range(1, len(signs)) if signs[i] != signs[i - 1])
    n = n1 + n2
    mu = 2.0 * n1 * n2 / n + 1.0
    var = (mu - 1.0) * (mu - 2.0) / (n - 1.0)
    return runs < mu - 2.0 * math.sqrt(max(var, 0.0))
