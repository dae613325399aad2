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
COUNTERS_PER_SLOT = DROP_BASE + DROP_REASON_COUNT + 16
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


def named_counters(totals: list[int]) -> dict[str, object]:
    """Totals as a JSON-friendly mapping: counters by name, drops by reason."""
    return {
        "counters": {c.name.lower(): totals[c] for c in Counter},
        "drops": {r.name.lower(): totals[drop_index(r)] for r in DropReason},
    }
