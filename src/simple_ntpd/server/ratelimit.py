"""Per-client rate limiting with kiss-o'-death, in a fixed-size table.

This module owns the rate decision for one source address at one instant:
:data:`PASS` (answer), :data:`DROP` (say nothing) or :data:`KOD` (answer with
a RATE kiss-o'-death, RFC 5905 section 7.4). It owns the client table and its
memory bound. It does not build packets, read clocks or count outcomes: ``now``
(monotonic seconds) comes in as an argument and the pipeline counts.

Semantics (docs/security.md has the operator's version):

* Each client has a token bucket of depth ``rate_limit_burst`` that refills at
  ``max_queries_per_minute / 60`` tokens per second. A request that finds a
  token is answered and takes it; a request that finds none is *limited* and
  takes nothing, so a client sending faster than the limit is still answered
  at the limit. The bucket is stored as one float, the time at which it will
  be full again (the "theoretical arrival time" of the generic cell rate
  algorithm), so it needs no periodic refill.
* Of a client's limited requests, one in ``2 ** kod_leak_log2`` gets a KoD
  RATE and the rest are dropped (chrony's ``leak``), so a flood spoofing a
  victim's address is reflected at most at that fraction and never amplified.
  ``kod_leak_log2 = None`` drops all limited requests.
* ``trusted_networks`` are never limited and never enter the table.
* Clients are aggregated by prefix: /32 and /128 by default, optionally /24
  and /64 (or any length), so a network counts as one client.
* New clients enter the table at most ``max_new_clients_per_second`` per second
  (the config's ``max_connections_per_second``; a bucket of one second's worth).
  A request from an unknown client when no admission token is left is dropped:
  a flood from random spoofed sources can then replace at most that many
  entries per second and cannot flush the clients already known, whose
  requests never need an admission token, whatever their rate.
* ``rate_limit_window`` is how long a returning client's record is protected
  from eviction beyond its last activity, relative to one-shot clients.

Table layout, and why: the table must hold 1,000,000 clients in 64 MB, which
rules out a dict of Python objects (over 150 bytes per entry). It is open
addressing in three flat arrays: a 64-bit fingerprint (``array('q')``), the
bucket's full-again time (``array('d')``) and a request counter
(``array('I')``): 20 bytes per slot. Slots come in buckets of
:data:`BUCKET_SLOTS`; a client lives in the bucket its fingerprint selects, and
when the bucket is full the new client evicts the entry with the oldest
activity, one-shot entries first. The fingerprint is Python's ``hash()`` of
the address *string*, which is SipHash keyed per process at random
(PEP 456), so an attacker can neither aim floods at one bucket nor forge a
known client's fingerprint; ``hash()`` of an int would not be keyed. Two live
clients share a record only if their 64-bit fingerprints are equal (about
n**2 / 2**65 for n clients: 3e-8 at one million). Lookup is one ``hash()``,
one compare at the home slot, and otherwise a C-level ``array.index`` over the
bucket, because a Python loop over 16 slots costs more than the whole budget.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

from simple_ntpd.server.acl import AccessList, parse_address

__all__ = [
    "BUCKET_SLOTS",
    "DROP",
    "KOD",
    "PASS",
    "RateLimitParams",
    "RateLimiter",
    "table_slots",
]

PASS = 0
"""Answer the request."""
DROP = 1
"""Do not answer (counted as ``DropReason.RATE_LIMITED``)."""
KOD = 2
"""Answer with a kiss-o'-death, kiss code RATE (RFC 5905 section 7.4)."""

BUCKET_SLOTS = 16
"""Slots per bucket: the probe length. 16 keeps overflow rare at 1.25x headroom."""
_HEADROOM = 1.25
# Bytes per slot: fingerprint (8) + full-again time (8) + request counter (4).
SLOT_BYTES = 20
_U32 = 0xFFFFFFFF
_SLOT_MASK = BUCKET_SLOTS - 1


def table_slots(max_clients: int) -> int:
    """Slots allocated for ``max_clients``: a power of two, at least 1.25x, at least one bucket."""
    want = max(int(max_clients * _HEADROOM), BUCKET_SLOTS)
    return 1 << (want - 1).bit_length()


@dataclass(frozen=True, slots=True)
class RateLimitParams:
    """Rate-limit configuration (the ``[security]``/``[network]`` keys named per field)."""

    enabled: bool = True
    """``enable_rate_limiting``."""
    max_queries_per_minute: float = 1000.0
    """``max_queries_per_minute``: the sustained answered rate per client."""
    burst: int = 100
    """``rate_limit_burst``: bucket depth, requests a quiet client may send back to back."""
    window: float = 60.0
    """``rate_limit_window``: seconds a returning client's record is protected from eviction."""
    trusted_networks: Sequence[str] = field(default_factory=tuple)
    """``trusted_networks``: CIDRs never limited."""
    ipv4_prefix: int = 32
    """Aggregation prefix for IPv4 clients (32 = per address, 24 = per /24)."""
    ipv6_prefix: int = 128
    """Aggregation prefix for IPv6 clients (128 = per address, 64 = per /64)."""
    kod_leak_log2: int | None = 1
    """One in ``2**kod_leak_log2`` limited requests gets a KoD RATE; ``None``: never."""
    max_new_clients_per_second: float = 1000.0
    """``max_connections_per_second``: admission rate of new clients; 0 = unbounded."""
    max_clients: int = 10000
    """``max_clients``: clients the table is sized to hold."""

    def __post_init__(self) -> None:
        if self.max_queries_per_minute <= 0:
            raise ValueError("max_queries_per_minute must be positive")
        if self.burst < 1:
            raise ValueError("rate_limit_burst must be at least 1")
        if self.window < 0:
            raise ValueError("rate_limit_window must not be negative")
        if not 0 <= self.ipv4_prefix <= 32 or not 0 <= self.ipv6_prefix <= 128:
            raise ValueError("aggregation prefix out of range")
        if self.kod_leak_log2 is not None and not 0 <= self.kod_leak_log2 <= 16:
            raise ValueError("kod_leak_log2 must be within 0..16")
        if self.max_new_clients_per_second < 0:
            raise ValueError("max_new_clients_per_second must not be negative")
        if self.max_clients < 1:
            raise ValueError("max_clients must be at least 1")


class RateLimiter:
    """The client table and the per-request decision. One per worker process.

    Not thread-safe: each data-plane worker owns its limiter (source addresses
    are steered to one worker, see ``runtime/reuseport_bpf.py``).
    """

    __slots__ = (
        "_admit_at",
        "_admit_burst",
        "_admit_interval",
        "_aggregate",
        "_bucket_mask",
        "_counts",
        "_enabled",
        "_fps",
        "_interval",
        "_kod_mask",
        "_protect",
        "_slot_mask",
        "_tats",
        "_tau",
        "_trusted",
        "_trusted_decided",
        "_v4_by_24",
        "_v4_mask",
        "_v6_mask",
        "params",
        "slots",
    )

    def __init__(self, params: RateLimitParams) -> None:
        self.params = params
        self._enabled = params.enabled
        # GCRA: interval between answers at the sustained rate, and the bucket
        # depth expressed as time (burst * interval).
        self._interval = 60.0 / params.max_queries_per_minute
        # A millionth of an interval of slack, so that float rounding of
        # repeated additions never costs a client the last token of a burst.
        self._tau = params.burst * self._interval + self._interval * 1e-6
        self._protect = params.window
        self._kod_mask = -1 if params.kod_leak_log2 is None else (1 << params.kod_leak_log2) - 1
        self._trusted = (
            AccessList.from_cidrs(params.trusted_networks, ()) if params.trusted_networks else None
        )
        self._trusted_decided = self._trusted.decided if self._trusted is not None else {}
        self._aggregate = params.ipv4_prefix != 32 or params.ipv6_prefix != 128
        self._v4_mask = 0xFFFFFFFF ^ ((1 << (32 - params.ipv4_prefix)) - 1)
        self._v4_by_24 = params.ipv4_prefix == 24
        self._v6_mask = ((1 << 128) - 1) ^ ((1 << (128 - params.ipv6_prefix)) - 1)
        rate = params.max_new_clients_per_second
        self._admit_interval = 1.0 / rate if rate > 0 else 0.0
        # One second's worth of admissions, and at least one.
        self._admit_burst = max(1.0, self._admit_interval) + self._admit_interval * 1e-6
        self._admit_at = float("-inf")
        self.slots = table_slots(params.max_clients)
        self._bucket_mask = (self.slots // BUCKET_SLOTS - 1) * BUCKET_SLOTS
        self._slot_mask = self.slots - 1
        # Sequence repetition allocates each array once, with no temporary.
        self._fps = array("q", [0]) * self.slots
        self._tats = array("d", [0.0]) * self.slots
        self._counts = array("I", [0]) * self.slots

    @property
    def table_bytes(self) -> int:
        """Bytes held by the table arrays (the bound the tests check)."""
        return sum(a.buffer_info()[1] * a.itemsize for a in (self._fps, self._tats, self._counts))

    def _key(self, addr: str) -> str:
        """The aggregation key: a canonical string, so that ``hash()`` stays keyed."""
        if "%" in addr:
            addr = addr.partition("%")[0]
        if not self._aggregate:
            if addr.startswith("::ffff:") and "." in addr:
                return addr[7:]
            return addr
        if self._v4_by_24 and ":" not in addr:
            # The common /24 aggregation without a parse: kernel strings are
            # canonical dotted quads, so the text before the last dot is the /24.
            return addr[: addr.rindex(".")]
        family, value = parse_address(addr)
        if family == 4:
            if self._v4_by_24:
                # Same key as the fast path above for an IPv4-mapped source.
                return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}"
            return f"4/{value & self._v4_mask:x}"
        return f"6/{value & self._v6_mask:x}"

    def check(self, addr: str, now: float) -> int:
        """Decide for one request from ``addr`` at monotonic time ``now`` (seconds).

        Returns :data:`PASS`, :data:`DROP` or :data:`KOD`. Never raises for a
        malformed address: such a request is dropped.
        """
        if not self._enabled:
            return PASS
        trusted = self._trusted
        if trusted is not None:
            # A known client's decision without a call (AccessList.decided).
            is_trusted = self._trusted_decided.get(addr)
            if is_trusted is None:
                is_trusted = trusted.permits(addr)
            if is_trusted:
                return PASS
        # Fast path: an unaggregated plain address string is its own key.
        # "%" (scope) and a leading ":" (IPv4-mapped or "::" forms) go the
        # slow way; a plain IPv4 string never starts with ":".
        if self._aggregate or "%" in addr or addr[:1] == ":":
            try:
                addr = self._key(addr)
            except ValueError:
                return DROP
        fp = hash(addr) or 1  # 0 marks an empty slot
        fps = self._fps
        # The low bits choose the bucket and the home slot inside it (both
        # random: the fingerprint is keyed SipHash), so most clients are found
        # by one compare rather than a bucket scan; one mask is one operation
        # on a three-digit int where two masks, a shift and an or were four.
        slot = fp & self._slot_mask
        if fps[slot] != fp:
            base = slot & ~_SLOT_MASK
            try:
                slot = fps.index(fp, base, base + BUCKET_SLOTS)
            except ValueError:
                return self._admit(fp, slot, now)
        counts = self._counts
        count = (counts[slot] + 1) & _U32
        counts[slot] = count
        tats = self._tats
        tat = tats[slot]
        if tat < now:
            tat = now
        tat += self._interval
        if tat - now <= self._tau:
            tats[slot] = tat
            return PASS
        # Limited: the bucket is untouched, so the client keeps being answered
        # at exactly the sustained rate however fast it sends.
        kod_mask = self._kod_mask
        if kod_mask >= 0 and count & kod_mask == 0:
            return KOD
        return DROP

    def _admit(self, fp: int, home: int, now: float) -> int:
        """First request of a client not in the table: admit it if the admission bucket allows."""
        interval = self._admit_interval
        if interval:
            # Admission bucket as GCRA too: depth one second, one token per interval.
            at = self._admit_at
            if at < now:
                at = now
            at += interval
            if at - now > self._admit_burst:
                return DROP
            self._admit_at = at
        fps = self._fps
        tats = self._tats
        counts = self._counts
        base = home & ~_SLOT_MASK
        if fps[home] == 0:
            slot = home
        else:
            try:
                slot = fps.index(0, base, base + BUCKET_SLOTS)
            except ValueError:
                slot = self._victim(base)
        fps[slot] = fp
        tats[slot] = now + self._interval
        counts[slot] = 1
        # A new client always has a full bucket, so its first request passes
        # (burst >= 1 is enforced by RateLimitParams).
        return PASS

    def _victim(self, base: int) -> int:
        """The slot to reuse in a full bucket: oldest activity, one-shot entries first."""
        tats = self._tats
        counts = self._counts
        protect = self._protect
        best = base
        best_score = float("inf")
        for slot in range(base, base + BUCKET_SLOTS):
            score = tats[slot]
            if counts[slot] != 1:
                score += protect
            if score < best_score:
                best, best_score = slot, score
        return best

    def tracked(self) -> int:
        """Number of clients in the table (a full scan; for tests and statistics)."""
        return self.slots - self._fps.count(0)

    def knows(self, addr: str) -> bool:
        """Whether ``addr``'s aggregate has a record (for tests and diagnostics)."""
        fp = hash(self._key(addr)) or 1
        base = fp & self._bucket_mask
        return fp in self._fps[base : base + BUCKET_SLOTS]
