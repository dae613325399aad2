"""Counter layout shared by the data-plane workers and the main process.

Each worker adds to plain unsigned 64-bit counters in its own slot of a shared
buffer; nobody else writes that slot, so no lock is needed. The main process
sums the slots when it reports (Prometheus scrape, statistics export). The
indices are append-only.
"""

from __future__ import annotations

from enum import IntEnum

from simple_ntpd.reasons import DROP_REASON_COUNT, DropReason


class Counter(IntEnum):
    RECEIVED = 0
    """Datagrams received."""
    RESPONDED = 1
    """Responses sent (kiss-o'-death included)."""
    REQUEST_V1 = 2
    REQUEST_V2 = 3
    REQUEST_V3 = 4
    REQUEST_V4 = 5
    """Answerable client requests by NTP version (index = 1 + version)."""
    KOD_RATE = 6
    KOD_DENY = 7
    KOD_RSTR = 8
    KOD_NTSN = 9
    CRYPTO_NAK = 10
    AUTHENTICATED = 11
    """Responses carrying a MAC."""
    RECEIVED_BYTES = 12
    SENT_BYTES = 13
    UNSYNCHRONIZED_RESPONSES = 14
    """Responses sent with leap 3 (no usable reference)."""


DROP_BASE = 32
"""Index of the first drop counter; drop counter for reason r is DROP_BASE + r."""
DROP_ROOM = 32
"""Indices reserved for drop reasons (DropReason may grow up to this many)."""
assert DROP_REASON_COUNT <= DROP_ROOM

LATENCY_BOUNDS_NS: tuple[int, ...] = (
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
)
"""Upper bounds (ns, inclusive) of the request processing time buckets: tens of
microseconds is where a healthy server answers, milliseconds is trouble."""
LATENCY_BASE = DROP_BASE + DROP_ROOM
"""Index of the first processing-time bucket; bucket i counts responses whose
time from kernel receive timestamp to transmit timestamp is at most
``LATENCY_BOUNDS_NS[i]`` (and above the previous bound); the last, index
``LATENCY_BASE + len(LATENCY_BOUNDS_NS)``, is +Inf."""
LATENCY_BUCKETS = len(LATENCY_BOUNDS_NS) + 1
LATENCY_SUM_NS = LATENCY_BASE + LATENCY_BUCKETS
"""Sum of the measured processing times, ns (negative ones, after a clock step, count as 0)."""
COUNTERS_PER_SLOT = LATENCY_SUM_NS + 1 + 15
SLOT_BYTES = COUNTERS_PER_SLOT * 8


def drop_index(reason: DropReason) -> int:
    return DROP_BASE + int(reason)


def sum_slots(values: list[list[int]]) -> list[int]:
    """Element-wise sum of per-worker counter slots."""
    total = [0] * COUNTERS_PER_SLOT
    for slot in values:
        for i, v in enumerate(slot):
            total[i] += v
    return total


def latency_counts(totals: list[int]) -> tuple[list[int], int]:
    """(per-bucket counts, not cumulative, +Inf last; sum in ns) from counter totals."""
    return totals[LATENCY_BASE : LATENCY_BASE + LATENCY_BUCKETS], totals[LATENCY_SUM_NS]


def named_counters(totals: list[int]) -> dict[str, object]:
    """Totals as a JSON-friendly mapping: counters by name, drops by reason."""
    return {
        "counters": {c.name.lower(): totals[c] for c in Counter},
        "drops": {r.name.lower(): totals[drop_index(r)] for r in DropReason},
    }
