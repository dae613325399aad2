"""The timekeeping system: sources to filter to selection to discipline to served clock.

This module owns the glue and the system state the server announces. The shell
drives one :class:`TimekeepingSystem`: it adds sources (already resolved IP
addresses), calls the ``handle_*`` methods with **system-scale** timestamps
(CLOCK_REALTIME, as the kernel stamps packets) and executes the returned
:mod:`.actions`. The system converts them to the served scale for the
associations, so offsets are measured against what clients are served.

Pipeline, per accepted sample of a source:

1. the raw offset ``y = served offset + correction`` (true time minus the
   free-running system clock, independent of our own steering) goes into the
   source's 8-stage clock filter (:mod:`.filter`);
2. selection (:mod:`.select`) over every usable source's filter estimate,
   carried to now, with its root distance as the interval half-width; the
   agreeing group must be a majority of the *usable* sources (all configured
   ones that are neither unreachable nor demobilized, also those not heard from
   yet) and at least ``min_sources``: one configured source is enough on its
   own, two that disagree give no time (as chrony);
3. clustering and combining (:mod:`.combine`) give the survivors, the system
   peer and the system jitter;
4. if the sample's source survived, the sample goes to the discipline
   (:mod:`.discipline`), which weights it by its delay relative to its
   source's minimum and by 1 / root distance: the fitted line is RFC 5905's
   weighted combination of the survivors spread over time, with the clock
   filter's minimum-delay principle as a soft weight rather than a hard
   choice. Each sample is used once, so the fit sees independent points;
   feeding only the filter's chosen samples (the RFC's rule) starves the fit
   while the frequency is still unknown at startup.

What the server then says (RFC 5905 sections 7.3 and 11.3): stratum = system
peer's + 1; refid = its IPv4 address, or the first four octets of the MD5 of
its IPv6 address; reference time = served time of the last update; root delay
= peer's root delay + its delay; root dispersion = peer's root dispersion +
filter dispersion + sqrt(peer jitter^2 + system jitter^2) + |last error|,
growing at PHI (15 ppm) from the update on.

States (:class:`SystemMode`): ``UNSYNCHRONIZED`` (leap 3, stratum 0) from start
until the first update; ``SYNCHRONIZED``; ``HOLDOVER`` when no majority is
left (the correction keeps running at the estimated frequency, root dispersion
grows); once root delay / 2 + root dispersion passes ``max_distance`` the
server falls back to ``LOCAL`` (configured stratum and refid, if
``reference_clock = "LOCAL"``) or back to ``UNSYNCHRONIZED``. With no upstream
sources configured, ``LOCAL`` is served from the start.

Leap seconds: the leap indicator is the vote of more than half of the
survivors. It is honoured only on the last day of a month (ITU-R TF.460;
servers fed by a leap file announce up to a month early). At the served
midnight the correction steps back one second (insert) or forward (delete):
23:59:59 is served twice, like the Linux kernel does; the filters and the fit
move with it, and samples taken within a second of the leap are discarded.
With ``discipline_system_clock`` the kernel performs the leap (``STA_INS``)
and the model follows one second later.
"""

from __future__ import annotations

import calendar
import hashlib
import ipaddress
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import Enum

from simple_ntpd.client.actions import (
    Demobilize,
    Publish,
    SampleReady,
    SaveDrift,
    Send,
    SetClockFrequency,
    SetClockLeap,
    SetClockStatus,
    SetTimer,
    SourceAction,
    SourceDemobilized,
    SourceSend,
    SourceTimer,
    StepClock,
    SystemAction,
    SystemTimer,
)
from simple_ntpd.client.association import DEFAULT_MAX_DISTANCE, Association
from simple_ntpd.client.combine import Survivor, choose_system_peer, cluster, combine
from simple_ntpd.client.discipline import (
    Correction,
    Discipline,
    DisciplineParams,
    DriftRecord,
    Outcome,
    serialize_drift,
)
from simple_ntpd.client.filter import ClockFilter, FilterEstimate, FilterSample
from simple_ntpd.client.poll import PGATE
from simple_ntpd.client.select import Candidate, intersect, majority
from simple_ntpd.served_clock import (
    LEAP_ADD_SECOND,
    LEAP_DEL_SECOND,
    LEAP_NONE,
    LEAP_UNSYNCHRONIZED,
    MAX_STRATUM,
    PHI,
    STRATUM_UNSPECIFIED,
    ServedClockState,
)

NS_PER_S = 1_000_000_000
DAY_NS = 86_400 * NS_PER_S
_ZERO_REFID = b"\x00\x00\x00\x00"


@dataclass(frozen=True, slots=True)
class TimekeepingParams:
    """The timekeeping settings, independent of the configuration schema (the shell maps them)."""

    min_poll: int = 6
    max_poll: int = 10
    max_drift_ppm: float = 500.0
    stratum: int = 10
    """Stratum served in LOCAL mode (no upstreams, or the fallback)."""
    local_reference: bool = True
    """``reference_clock = "LOCAL"``: fall back to the local clock instead of leap 3."""
    reference_id: bytes = b"LOCL"
    step_threshold: float = 0.1
    step_limit: int = 3
    panic_threshold: float = 1000.0
    min_sources: int = 1
    max_distance: float = DEFAULT_MAX_DISTANCE
    """Root distance limit for a source to be selectable, and for holdover to last."""
    max_holdover: float = 0.0
    """Longest holdover in seconds before the fallback (like ntpd's ``orphanwait``);
    0 = hold over until the root distance passes ``max_distance``."""
    sync_interval: float = 60.0
    """Longest time between publications of the served state (reference time refresh,
    holdover checks)."""
    discipline_system_clock: bool = False
    precision: int = -20
    drift_save_interval: float = 3600.0


class SystemMode(Enum):
    UNSYNCHRONIZED = "unsynchronized"
    SYNCHRONIZED = "synchronized"
    HOLDOVER = "holdover"
    LOCAL = "local"


class SourceState(Enum):
    """A source's part in the last selection (like chronyc's ``*+-x?~`` column)."""

    SELECTED = "selected"
    """The system peer: its stratum, refid and root values are served."""
    COMBINED = "combined"
    """A survivor combined into the time."""
    OUTLIER = "outlier"
    """A truechimer pruned by clustering."""
    FALSETICKER = "falseticker"
    UNCONFIRMED = "unconfirmed"
    """Has samples, but not enough sources agree (no majority)."""
    UNSELECTABLE = "unselectable"
    """Root distance too large."""
    NO_DATA = "no-data"
    UNREACHABLE = "unreachable"
    NOSELECT = "noselect"
    DEMOBILIZED = "demobilized"


def reference_id_for(address: str) -> bytes:
    """RFC 5905 section 7.3: the IPv4 address, or the first 4 octets of the MD5 of the IPv6 one."""
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return ip.packed
    return hashlib.md5(ip.packed, usedforsecurity=False).digest()[:4]


@dataclass(frozen=True, slots=True)
class SourceSnapshot:
    """One source as ``simple-ntpd sources`` shows it."""

    source_id: int
    address: str
    port: int
    state: SourceState
    stratum: int
    poll: int
    reach: int
    last_offset: float | None
    """Served-scale offset of the last sample, seconds."""
    offset: float | None
    """Filtered offset, served scale, now, seconds."""
    delay: float | None
    jitter: float | None
    root_distance: float | None
    reference_id: bytes
    prefer: bool
    last_sample_age: float | None

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["state"] = self.state.value
        d["reference_id"] = self.reference_id.hex()
        return d


@dataclass(frozen=True, slots=True)
class TrackingSnapshot:
    """The system as ``simple-ntpd tracking`` shows it."""

    mode: SystemMode
    leap: int
    stratum: int
    reference_id: bytes
    reference_address: str | None
    reference_time_ns: int
    offset: float
    """Last combined offset of true time against served time, seconds."""
    frequency_ppm: float
    """Frequency error of the system clock being corrected, ppm (positive: served runs faster)."""
    skew_ppm: float
    root_delay: float
    root_dispersion: float
    """Now, grown since the update."""
    system_jitter: float
    last_update_age: float | None
    steps: int
    updates: int

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["mode"] = self.mode.value
        d["reference_id"] = self.reference_id.hex()
        return d


@dataclass(slots=True)
class _Source:
    source_id: int
    address: str
    port: int
    prefer: bool
    noselect: bool
    assoc: Association
    filter: ClockFilter
    reference_id: bytes
    last_used_ns: int = -1
    root_delay: float = 0.0
    root_dispersion: float = 0.0
    stratum: int = 0
    leap: int = LEAP_NONE
    last_offset: float | None = None
    last_sample_ns: int | None = None
    state: SourceState = SourceState.NO_DATA
    falseticker_streak: int = 0


@dataclass(slots=True)
class _Selection:
    kept: list[Survivor] = field(default_factory=list)
    peer: Survivor | None = None
    offset: float = 0.0
    jitter: float = 0.0


class TimekeepingSystem:
    """The whole timekeeping core. One per daemon; driven by the shell."""

    def __init__(
        self,
        params: TimekeepingParams,
        *,
        rng: Callable[[int], bytes],
        drift: DriftRecord | None = None,
    ) -> None:
        self.params = params
        self._rng = rng
        self.discipline = Discipline(
            DisciplineParams(
                step_threshold=params.step_threshold,
                step_limit=params.step_limit,
                panic_threshold=params.panic_threshold,
                max_drift_ppm=params.max_drift_ppm,
            ),
            drift,
        )
        self._sources: dict[int, _Source] = {}
        self._next_id = 1
        self.mode = SystemMode.UNSYNCHRONIZED
        self._selection = _Selection()
        self._peer_id: int | None = None
        self._state = ServedClockState(precision=params.precision)
        self._update_ns: int | None = None
        self._root_delay = 0.0
        self._root_disp = 0.0
        self._last_error = 0.0
        self._leap_pending = LEAP_NONE
        self._leap_midnight_ns: int | None = None
        self._leap_applied_midnights: set[int] = set()
        self._leap_window: tuple[int, int] | None = None
        self._last_drift_save_ns: int | None = None
        self._started = False
        self._kernel_freq_ppm: float | None = None
        self._kernel_leap = LEAP_NONE
        self._pending_steps: list[SystemAction] = []
        self._local_ref_ns = 0
        self._holdover_ns = 0
        self.leaps_applied = 0
        self.rejected_panic = 0

    # --- time scales ---------------------------------------------------------------------------

    @property
    def correction(self) -> Correction:
        """The discipline's correction (applied to the kernel with ``discipline_system_clock``)."""
        return self.discipline.correction

    def _published_correction_ns(self, system_ns: int) -> int:
        if self.params.discipline_system_clock:
            return 0
        return self.discipline.correction.value_ns(system_ns)

    def served_ns(self, system_ns: int) -> int:
        """Served time for a system-clock reading, as the data plane computes it."""
        return system_ns + self._published_correction_ns(system_ns)

    def _slope(self) -> float:
        return self.discipline.freq

    # --- source management --------------------------------------------------------------------

    def start(self, now_ns: int, *, upstreams_configured: bool = True) -> list[SystemAction]:
        """Begin: anchor the correction and publish the initial state.

        Args:
            upstreams_configured: False when ``upstream_servers`` is empty; then a
                ``LOCAL`` reference is served at once. With upstreams, the server says
                leap 3 until the first synchronization (sources may be added later,
                once their names resolve).
        """
        self._started = True
        self.discipline.start(now_ns)
        actions: list[SystemAction] = []
        if self.params.discipline_system_clock:
            actions.extend(self._kernel_sync(now_ns, force=True))
        if not upstreams_configured and self.params.local_reference:
            self.mode = SystemMode.LOCAL
            self._local_ref_ns = now_ns
        actions.append(Publish(self._build_state(now_ns)))
        actions.append(SystemTimer(self._next_deadline(now_ns)))
        return actions

    def add_source(
        self,
        address: str,
        now_ns: int,
        *,
        port: int = 123,
        prefer: bool = False,
        noselect: bool = False,
        iburst: bool = True,
        min_poll: int | None = None,
        max_poll: int | None = None,
    ) -> tuple[int, list[SystemAction]]:
        """Add an upstream server (an IP address literal) and start polling it.

        Returns:
            The new source id and the first actions (its first request and timer).
        """
        sid = self._next_id
        self._next_id += 1
        lo = self.params.min_poll if min_poll is None else min_poll
        hi = self.params.max_poll if max_poll is None else max_poll
        assoc = Association(
            rng=self._rng,
            min_poll=lo,
            max_poll=max(lo, hi),
            iburst=iburst,
            max_distance=self.params.max_distance,
            precision=self.params.precision,
        )
        src = _Source(
            source_id=sid,
            address=address,
            port=port,
            prefer=prefer,
            noselect=noselect,
            assoc=assoc,
            filter=ClockFilter(
                jump_threshold=self.params.step_threshold, precision=2.0**self.params.precision
            ),
            reference_id=reference_id_for(address),
        )
        self._sources[sid] = src
        return sid, self.handle_source_timer(sid, now_ns)

    def remove_source(self, source_id: int, now_ns: int) -> list[SystemAction]:
        """Forget a source (pool replacement, reconfiguration)."""
        self._sources.pop(source_id, None)
        if self._peer_id == source_id:
            self._peer_id = None
        self._run_selection(now_ns)
        return self._finish(now_ns, [])

    def source_ids(self) -> list[int]:
        return list(self._sources)

    def sources_to_replace(self) -> list[int]:
        """Sources a pool should replace: unreachable, demobilized, or long falsetickers."""
        out = []
        for s in self._sources.values():
            if s.assoc.demobilized or s.assoc.unreachable or s.falseticker_streak >= 16:
                out.append(s.source_id)
        return out

    # --- events -------------------------------------------------------------------------------

    def handle_source_timer(self, source_id: int, now_ns: int) -> list[SystemAction]:
        """A source's timer came due (``now_ns`` on the system scale)."""
        src = self._sources.get(source_id)
        if src is None:
            return []
        served_now = self.served_ns(now_ns)
        out = self._translate(src, src.assoc.handle_timer(served_now), now_ns, served_now)
        if src.assoc.unreachable and src.state is not SourceState.UNREACHABLE:
            # A source that fell silent no longer counts towards the majority.
            self._run_selection(now_ns)
            return self._finish(now_ns, out)
        return out

    def handle_source_packet(
        self, source_id: int, data: bytes, send_ns: int, recv_ns: int
    ) -> list[SystemAction]:
        """A datagram arrived on a source's socket.

        Args:
            send_ns: system time our outstanding request was sent (kernel TX timestamp
                or the clock read just before sending).
            recv_ns: system time the datagram arrived (kernel RX timestamp); also "now".
        """
        src = self._sources.get(source_id)
        if src is None:
            return []
        served_send = self.served_ns(send_ns)
        served_recv = self.served_ns(recv_ns)
        actions = src.assoc.handle_packet(data, served_send, served_recv)
        out: list[SystemAction] = []
        for action in actions:
            if isinstance(action, SampleReady):
                self._take_sample(src, action, send_ns, recv_ns)
            else:
                out.extend(self._translate(src, [action], recv_ns, served_recv))
        return self._finish(recv_ns, out)

    def handle_timer(self, now_ns: int) -> list[SystemAction]:
        """The system timer came due: slew end, leap second, holdover limit, refresh."""
        out: list[SystemAction] = []
        d = self.discipline
        if d.slew_end_ns is not None and now_ns >= d.slew_end_ns:
            d.end_slew(now_ns)
        self._maybe_apply_leap(now_ns)
        synced = self.mode in (SystemMode.SYNCHRONIZED, SystemMode.HOLDOVER)
        if synced and (
            self._root_distance_at(now_ns) > self.params.max_distance
            or self._holdover_expired(now_ns)
        ):
            # Holdover is over: the error bound passed the limit.
            self.mode = (
                SystemMode.LOCAL if self.params.local_reference else SystemMode.UNSYNCHRONIZED
            )
            self._local_ref_ns = now_ns
            self._peer_id = None
            self._set_leap(LEAP_NONE)
        if self.mode is SystemMode.LOCAL:
            self._local_ref_ns = now_ns  # the local clock is its own reference: refresh
        return self._finish(now_ns, out)

    # --- internals ----------------------------------------------------------------------------

    def _translate(
        self, src: _Source, actions: list[SourceAction], now_ns: int, served_now: int
    ) -> list[SystemAction]:
        out: list[SystemAction] = []
        for action in actions:
            match action:
                case Send(data):
                    out.append(SourceSend(src.source_id, data))
                case SetTimer(at_ns):
                    # Timers were computed on the served scale; move them to the system scale.
                    out.append(SourceTimer(src.source_id, at_ns - served_now + now_ns))
                case Demobilize(reason):
                    out.append(SourceDemobilized(src.source_id, reason))
                case SampleReady():
                    pass
        return out

    def _take_sample(self, src: _Source, action: SampleReady, send_ns: int, recv_ns: int) -> None:
        m = action.measurement
        if self._leap_window is not None:
            lo, hi = self._leap_window
            if lo <= recv_ns and send_ns <= hi:
                return  # measured across a leap second: the two halves disagree by 1 s
        c = self.discipline.correction
        y = m.offset + (c.value_ns(send_ns) + c.value_ns(recv_ns)) / 2 / NS_PER_S
        slope = self._slope()
        previous = src.filter.estimate(recv_ns, slope)
        accepted = src.filter.add(FilterSample(recv_ns, y, m.delay, m.dispersion), slope)
        if previous is not None:
            expected = previous.offset_at(recv_ns, slope)
            src.assoc.note_sample_quality(abs(y - expected) < PGATE * previous.jitter)
        src.root_delay = m.root_delay
        src.root_dispersion = m.root_dispersion
        src.stratum = m.stratum
        src.leap = m.leap
        src.last_offset = y - c.value_ns(recv_ns) / NS_PER_S
        src.last_sample_ns = recv_ns
        self._run_selection(recv_ns)
        peer = self._selection.peer
        if peer is None:
            return
        kept = {s.key: s for s in self._selection.kept}
        if src.source_id not in kept:
            return
        est = src.filter.estimate(recv_ns, slope)
        if est is None or not accepted:
            return  # held back by the filter as a spike or an unconfirmed jump
        self._clock_update(src, y, m.delay, kept[src.source_id].distance, recv_ns)

    def _distance(self, src: _Source, est: FilterEstimate) -> float:
        # RFC 5905 section 11.2: root distance (the aging PHI term is in the dispersion).
        return max(
            (src.root_delay + est.delay) / 2 + src.root_dispersion + est.dispersion + est.jitter,
            1e-6,
        )

    def _usable(self, src: _Source) -> bool:
        return not (src.noselect or src.assoc.demobilized or src.assoc.unreachable)

    def _run_selection(self, now_ns: int) -> None:
        slope = self._slope()
        candidates: list[Candidate] = []
        info: dict[int, tuple[FilterEstimate, float, float]] = {}
        usable = 0
        for src in self._sources.values():
            if src.assoc.demobilized:
                src.state = SourceState.DEMOBILIZED
                continue
            if src.assoc.unreachable:
                src.state = SourceState.UNREACHABLE
                continue
            if src.noselect:
                src.state = SourceState.NOSELECT
                continue
            usable += 1
            est = src.filter.estimate(now_ns, slope)
            if est is None:
                src.state = SourceState.NO_DATA
                continue
            dist = self._distance(src, est)
            if dist > self.params.max_distance or not 1 <= src.stratum < MAX_STRATUM:
                src.state = SourceState.UNSELECTABLE
                continue
            offset = est.offset_at(now_ns, slope)
            info[src.source_id] = (est, offset, dist)
            candidates.append(Candidate(src.source_id, offset, dist))
        needed = max(self.params.min_sources, majority(usable))
        result = intersect(candidates, needed) if candidates else None
        if result is None:
            for sid in info:
                self._sources[sid].state = SourceState.UNCONFIRMED
            self._selection = _Selection()
            if self.mode is SystemMode.SYNCHRONIZED:
                self.mode = SystemMode.HOLDOVER
                self._holdover_ns = now_ns
            return
        for key in result.falsetickers:
            assert isinstance(key, int)
            self._sources[key].state = SourceState.FALSETICKER
            self._sources[key].falseticker_streak += 1
        survivors = []
        for key in result.truechimers:
            assert isinstance(key, int)
            sid = key
            src = self._sources[sid]
            src.falseticker_streak = 0
            est, offset, dist = info[sid]
            survivors.append(Survivor(sid, offset, dist, est.jitter, src.stratum, src.prefer))
        kept, pruned = cluster(survivors)
        for s in pruned:
            assert isinstance(s.key, int)
            self._sources[s.key].state = SourceState.OUTLIER
        peer = choose_system_peer(kept, self._peer_id)
        combined = combine(kept, peer)
        for s in kept:
            assert isinstance(s.key, int)
            self._sources[s.key].state = (
                SourceState.SELECTED if s.key == peer.key else SourceState.COMBINED
            )
        self._selection = _Selection(kept, peer, combined.offset, combined.jitter)

    def _clock_update(
        self, src: _Source, y: float, delay: float, distance: float, now_ns: int
    ) -> None:
        result = self.discipline.update(
            y, now_ns, now_ns, delay=delay, group=src.source_id, distance=distance
        )
        if result.outcome is Outcome.REFUSED_PANIC:
            self.rejected_panic += 1
            return
        if result.outcome is Outcome.STEPPED and self.params.discipline_system_clock:
            self._pending_steps.append(StepClock(result.step_ns))
        sel = self._selection
        peer = sel.peer
        assert peer is not None and isinstance(peer.key, int)
        self._peer_id = peer.key
        peer_src = self._sources[peer.key]
        peer_est = peer_src.filter.estimate(now_ns, self._slope())
        assert peer_est is not None
        self.mode = SystemMode.SYNCHRONIZED
        self._update_ns = now_ns
        self._last_error = result.error
        self._root_delay = peer_src.root_delay + peer_est.delay
        self._root_disp = (
            peer_src.root_dispersion
            + peer_est.dispersion
            + math.sqrt(peer_est.jitter**2 + sel.jitter**2)
            + abs(result.error if result.outcome is Outcome.SLEWED else 0.0)
        )
        self._vote_leap(now_ns)

    def _root_distance_at(self, now_ns: int) -> float:
        if self._update_ns is None:
            return math.inf
        age = max(0, now_ns - self._update_ns) / NS_PER_S
        return self._root_delay / 2 + self._root_disp + PHI * age

    # --- leap seconds -------------------------------------------------------------------------

    def _vote_leap(self, now_ns: int) -> None:
        kept = self._selection.kept
        votes = [self._sources[s.key].leap for s in kept if isinstance(s.key, int)]
        leap = LEAP_NONE
        for kind in (LEAP_ADD_SECOND, LEAP_DEL_SECOND):
            if votes.count(kind) * 2 > len(votes):
                leap = kind
        served = self.served_ns(now_ns)
        midnight = (served // DAY_NS + 1) * DAY_NS
        if leap != LEAP_NONE and not _last_day_of_month(served):
            leap = LEAP_NONE
        if midnight in self._leap_applied_midnights:
            leap = LEAP_NONE
        self._set_leap(leap, midnight)

    def _set_leap(self, leap: int, midnight: int | None = None) -> None:
        self._leap_pending = leap
        self._leap_midnight_ns = midnight if leap != LEAP_NONE else None

    def _leap_system_ns(self) -> int | None:
        """System time at which the served clock reaches the pending leap's midnight."""
        m = self._leap_midnight_ns
        if m is None:
            return None
        if self.params.discipline_system_clock:
            return m
        t = m
        for _ in range(3):
            t = m - self.discipline.correction.value_ns(t)
        return t

    def _maybe_apply_leap(self, now_ns: int) -> None:
        m = self._leap_midnight_ns
        at = self._leap_system_ns()
        if m is None or at is None:
            return
        kernel = self.params.discipline_system_clock
        # The kernel inserts the second itself when its reading reaches midnight; its reading
        # passes midnight + 1 s only afterwards, which is when the model follows.
        due = now_ns >= m + NS_PER_S if kernel else self.served_ns(now_ns) >= m
        if not due:
            return
        delta = -1.0 if self._leap_pending == LEAP_ADD_SECOND else 1.0
        self.discipline.shift(delta, now_ns)
        for src in self._sources.values():
            src.filter.shift(delta)
            src.last_used_ns = max(src.last_used_ns, now_ns)
        self._leap_applied_midnights.add(m)
        self._leap_window = (at - NS_PER_S, at + 2 * NS_PER_S)
        self.leaps_applied += 1
        self._set_leap(LEAP_NONE)

    # --- publication --------------------------------------------------------------------------

    def _build_state(self, now_ns: int) -> ServedClockState:
        c = self.discipline.correction
        if self.params.discipline_system_clock:
            c = Correction(0, 0.0, now_ns)
        leap, stratum, refid, reftime = LEAP_UNSYNCHRONIZED, STRATUM_UNSPECIFIED, _ZERO_REFID, 0
        root_delay = root_disp = 0.0
        peer = self._sources.get(self._peer_id) if self._peer_id is not None else None
        synced = self.mode in (SystemMode.SYNCHRONIZED, SystemMode.HOLDOVER)
        if synced and peer is not None and self._update_ns is not None:
            if peer.stratum + 1 <= MAX_STRATUM:
                age = max(0, now_ns - self._update_ns) / NS_PER_S
                leap, stratum, refid = self._leap_pending, peer.stratum + 1, peer.reference_id
                reftime = self.served_ns(self._update_ns)
                root_delay, root_disp = self._root_delay, self._root_disp + PHI * age
        elif self.mode is SystemMode.LOCAL:
            leap, stratum, refid = LEAP_NONE, self.params.stratum, self.params.reference_id
            reftime = self.served_ns(self._local_ref_ns)
        return ServedClockState(
            leap=leap,
            stratum=stratum,
            reference_id=refid,
            reference_time_ns=reftime,
            root_delay=root_delay,
            root_dispersion=root_disp,
            dispersion_rate=PHI,
            precision=self.params.precision,
            offset_ns=c.offset_ns,
            freq=c.freq,
            t0_ns=c.t0_ns,
            update_ns=now_ns,
        )

    def _holdover_expired(self, now_ns: int) -> bool:
        limit = self.params.max_holdover
        return (
            limit > 0
            and self.mode is SystemMode.HOLDOVER
            and now_ns - self._holdover_ns >= int(limit * NS_PER_S)
        )

    def _next_deadline(self, now_ns: int) -> int:
        deadline = now_ns + int(self.params.sync_interval * NS_PER_S)
        d = self.discipline
        if d.slew_end_ns is not None:
            deadline = min(deadline, max(d.slew_end_ns, now_ns))
        leap_at = self._leap_system_ns()
        if leap_at is not None:
            if self.params.discipline_system_clock:
                leap_at += NS_PER_S
            deadline = min(deadline, max(leap_at, now_ns))
        if self.mode in (SystemMode.SYNCHRONIZED, SystemMode.HOLDOVER) and self._update_ns:
            room = self.params.max_distance - self._root_distance_at(now_ns)
            fallback = now_ns + int(max(room, 0.0) / PHI * NS_PER_S) + 1
            deadline = min(deadline, fallback)
        if self.mode is SystemMode.HOLDOVER and self.params.max_holdover > 0:
            end = self._holdover_ns + int(self.params.max_holdover * NS_PER_S)
            deadline = min(deadline, max(end, now_ns))
        return deadline

    def _kernel_sync(self, now_ns: int, force: bool = False) -> list[SystemAction]:
        out: list[SystemAction] = []
        c = self.discipline.correction
        ppm = c.freq * 1e6
        if force or ppm != self._kernel_freq_ppm:
            out.append(SetClockFrequency(ppm))
            self._kernel_freq_ppm = ppm
        if self._leap_pending != self._kernel_leap:
            out.append(SetClockLeap(self._leap_pending))
            self._kernel_leap = self._leap_pending
        return out

    def _finish(self, now_ns: int, out: list[SystemAction]) -> list[SystemAction]:
        """Append what follows from the new state: clock commands, publication, timer."""
        if self.params.discipline_system_clock:
            out.extend(self._pending_steps)
            self._pending_steps.clear()
            out.extend(self._kernel_sync(now_ns))
        state = self._build_state(now_ns)
        if _differs(state, self._state):
            self._state = state
            out.append(Publish(state))
            if self.params.discipline_system_clock:
                synced = state.leap != LEAP_UNSYNCHRONIZED
                dist = self._root_distance_at(now_ns)
                out.append(SetClockStatus(synced, abs(self._last_error), min(dist, 16.0)))
        if self.discipline.updates and (
            self._last_drift_save_ns is None
            or now_ns - self._last_drift_save_ns >= self.params.drift_save_interval * NS_PER_S
        ):
            if self._last_drift_save_ns is not None:
                out.append(SaveDrift(serialize_drift(self.discipline.drift_record())))
            self._last_drift_save_ns = now_ns
        out.append(SystemTimer(self._next_deadline(now_ns)))
        return out

    # --- observation --------------------------------------------------------------------------

    @property
    def state(self) -> ServedClockState:
        """The last published state."""
        return self._state

    def sources_snapshot(self, now_ns: int) -> list[SourceSnapshot]:
        slope = self._slope()
        c_now = self.discipline.correction.value_ns(now_ns) / NS_PER_S
        out = []
        for src in self._sources.values():
            est = src.filter.estimate(now_ns, slope)
            out.append(
                SourceSnapshot(
                    source_id=src.source_id,
                    address=src.address,
                    port=src.port,
                    state=src.state,
                    stratum=src.stratum,
                    poll=src.assoc.poll.poll,
                    reach=src.assoc.poll.reach,
                    last_offset=src.last_offset,
                    offset=None if est is None else est.offset_at(now_ns, slope) - c_now,
                    delay=None if est is None else est.delay,
                    jitter=None if est is None else est.jitter,
                    root_distance=None if est is None else self._distance(src, est),
                    reference_id=src.assoc.last_reference_id,
                    prefer=src.prefer,
                    last_sample_age=None
                    if src.last_sample_ns is None
                    else (now_ns - src.last_sample_ns) / NS_PER_S,
                )
            )
        return out

    def tracking_snapshot(self, now_ns: int) -> TrackingSnapshot:
        state = self._build_state(now_ns)
        c_now = self.discipline.correction.value_ns(now_ns) / NS_PER_S
        predicted = self.discipline.predict(now_ns)
        peer = self._sources.get(self._peer_id) if self._peer_id is not None else None
        return TrackingSnapshot(
            mode=self.mode,
            leap=state.leap,
            stratum=state.stratum,
            reference_id=state.reference_id,
            reference_address=None if peer is None else peer.address,
            reference_time_ns=state.reference_time_ns,
            offset=0.0 if predicted is None else predicted - c_now,
            frequency_ppm=self.discipline.freq * 1e6,
            skew_ppm=self.discipline.skew * 1e6,
            root_delay=state.root_delay,
            root_dispersion=state.root_dispersion_at(now_ns),
            system_jitter=self._selection.jitter,
            last_update_age=None
            if self._update_ns is None
            else (now_ns - self._update_ns) / NS_PER_S,
            steps=self.discipline.steps,
            updates=self.discipline.updates,
        )


def _differs(a: ServedClockState, b: ServedClockState) -> bool:
    """True if ``a`` says something ``b`` does not (ignoring the publication time)."""
    return (
        a.with_changes(update_ns=0, root_dispersion=0.0)
        != b.with_changes(update_ns=0, root_dispersion=0.0)
        or abs(a.root_dispersion_at(a.update_ns) - b.root_dispersion_at(a.update_ns)) > 1e-9
    )


def _last_day_of_month(unix_ns: int) -> bool:
    days = unix_ns // DAY_NS
    year, month, day = _civil_from_days(days)
    return day == calendar.monthrange(year, month)[1]


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """Gregorian (year, month, day) of a day number since 1970-01-01 (H. Hinnant's algorithm)."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d
