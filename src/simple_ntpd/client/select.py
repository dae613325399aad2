"""Source selection: truechimers and falsetickers by intersection (RFC 5905 section 11.2.1).

This module owns the decision of which sources can be telling the truth. Each
candidate offers a correctness interval ``[offset - distance, offset + distance]``
(``distance`` is its root distance, RFC 5905 section 11.2): if the source is
correct, the true offset lies inside. Marzullo's algorithm, as RFC 5905 uses
it, looks for the smallest number of falsetickers ``f`` such that some point is
covered by at least ``n - f`` intervals; the intersection ``[low, high]`` runs
from the lowest to the highest such point. Candidates whose interval overlaps
it are truechimers, the rest falsetickers.

We follow chrony rather than the RFC's reference code in two places:

* the RFC also counts interval midpoints outside ``[low, high]`` and gives up
  on ``f`` when they exceed it; that rejects honest sources whose intervals
  are merely wide, so we leave it out (chrony does the same);
* the size of the agreeing group is checked against ``needed``, supplied by
  the caller: a majority of *all usable sources* (also those not yet heard
  from), not just of those with samples. So two configured sources that
  disagree give no time at all, as in chrony, and one slow-starting good
  source cannot be outvoted by a fast liar at startup.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Candidate:
    """A source offered to selection."""

    key: Hashable
    offset: float
    """Seconds, all candidates on the same scale and at the same instant."""
    distance: float
    """Root distance, the half-width of the correctness interval, seconds (> 0)."""

    @property
    def low(self) -> float:
        return self.offset - self.distance

    @property
    def high(self) -> float:
        return self.offset + self.distance


@dataclass(frozen=True, slots=True)
class Intersection:
    """The result of selection."""

    low: float
    high: float
    truechimers: tuple[Hashable, ...]
    falsetickers: tuple[Hashable, ...]


def majority(usable: int) -> int:
    """Smallest group that is a majority of ``usable`` sources (more than half)."""
    return usable // 2 + 1


def intersect(candidates: Sequence[Candidate], needed: int | None = None) -> Intersection | None:
    """Find the truechimers among ``candidates``.

    Args:
        candidates: the sources with a current estimate.
        needed: the fewest intervals that must share a point; defaults to a
            majority of the candidates. Values below 1 count as 1.

    Returns:
        The intersection and the split into truechimers and falsetickers, or
        None when no point is shared by ``needed`` intervals.
    """
    n = len(candidates)
    if n == 0:
        return None
    need = max(1, majority(n) if needed is None else needed)
    if need > n:
        return None
    # Edges sorted by value; at equal values a lower edge (-1) comes before an
    # upper edge (+1), so intervals that only touch still count as overlapping.
    edges = sorted([(c.low, -1) for c in candidates] + [(c.high, 1) for c in candidates])
    for allowed in range(0, n - need + 1):
        target = n - allowed
        low = high = None
        chime = 0
        for value, kind in edges:
            chime -= kind
            if chime >= target:
                low = value
                break
        chime = 0
        for value, kind in reversed(edges):
            chime += kind
            if chime >= target:
                high = value
                break
        if low is not None and high is not None and low <= high:
            true = tuple(c.key for c in candidates if c.high >= low and c.low <= high)
            false = tuple(c.key for c in candidates if not (c.high >= low and c.low <= high))
            if len(true) >= need:
                return Intersection(low, high, true, false)
    return None
