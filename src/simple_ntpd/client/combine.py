"""Clustering and combining of the truechimers (RFC 5905 sections 11.2.2 and 11.2.3).

This module owns the step from "these sources may be right" to one offset:

* :func:`cluster` prunes outliers: while more than :data:`MIN_CLUSTER`
  survivors remain, it removes the one with the largest *selection jitter*
  (RMS distance of its offset to the others') as long as that exceeds the
  smallest *peer jitter* among them (RFC 5905 section 11.2.2);
* :func:`combine` averages the survivors' offsets weighted by the inverse of
  their root distance and reports the system jitter (RFC 5905 section 11.2.3);
* :func:`choose_system_peer`: a ``prefer`` survivor, else the current system
  peer if it survived (no needless clock hopping), else the survivor of lowest
  stratum and then root distance.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

# RFC 5905 section 11.2.2: NMIN, the fewest survivors clustering keeps.
MIN_CLUSTER = 3


@dataclass(frozen=True, slots=True)
class Survivor:
    """A truechimer as clustering and combining see it."""

    key: Hashable
    offset: float
    distance: float
    """Root distance, seconds (> 0)."""
    jitter: float
    """Peer jitter, seconds."""
    stratum: int
    prefer: bool = False


@dataclass(frozen=True, slots=True)
class Combined:
    offset: float
    """Weighted offset of the survivors, seconds."""
    jitter: float
    """System jitter: weighted RMS of the survivors' offsets around the system peer's."""


def _selection_jitter(i: int, survivors: Sequence[Survivor]) -> float:
    if len(survivors) < 2:
        return 0.0
    own = survivors[i].offset
    total = sum((s.offset - own) ** 2 for j, s in enumerate(survivors) if j != i)
    return math.sqrt(total / (len(survivors) - 1))


def cluster(survivors: Sequence[Survivor]) -> tuple[list[Survivor], list[Survivor]]:
    """Split ``survivors`` into (kept, pruned) by RFC 5905 section 11.2.2."""
    kept = list(survivors)
    pruned: list[Survivor] = []
    while len(kept) > MIN_CLUSTER:
        jitters = [_selection_jitter(i, kept) for i in range(len(kept))]
        worst = max(range(len(kept)), key=lambda i: (jitters[i], kept[i].distance))
        least_peer_jitter = min(s.jitter for s in kept)
        if jitters[worst] <= least_peer_jitter:
            break
        pruned.append(kept.pop(worst))
    return kept, pruned


def choose_system_peer(survivors: Sequence[Survivor], current: Hashable | None) -> Survivor:
    """Pick the source whose stratum, refid and root values the server passes on."""
    if not survivors:
        raise ValueError("no survivors")
    preferred = [s for s in survivors if s.prefer]
    if preferred:
        return min(preferred, key=lambda s: (s.stratum, s.distance))
    for s in survivors:
        if s.key == current:
            return s
    return min(survivors, key=lambda s: (s.stratum, s.distance))


def combine(survivors: Sequence[Survivor], system_peer: Survivor) -> Combined:
    """Weighted average of the survivors (RFC 5905 section 11.2.3)."""
    if not survivors:
        raise ValueError("no survivors")
    weights = [1.0 / max(s.distance, 1e-9) for s in survivors]
    total = sum(weights)
    offset = sum(w * s.offset for w, s in zip(weights, survivors, strict=True)) / total
    spread = sum(
        w * (s.offset - system_peer.offset) ** 2 for w, s in zip(weights, survivors, strict=True)
    )
    return Combined(offset=offset, jitter=math.sqrt(spread / total))
