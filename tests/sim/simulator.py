"""A discrete-event simulator for the timekeeping core, in virtual time.

It drives the real :class:`simple_ntpd.client.system.TimekeepingSystem` (and
through it the real association, filter, selection and discipline) with real
NTP packets encoded and decoded by :mod:`simple_ntpd.wire`, the way chrony is
tested with clknetsim:

* **true time** is the simulator's event clock (integer nanoseconds on the
  Unix scale, with a leap second made explicit by :meth:`Simulator.truth_ns`);
* the **system clock** is a :class:`simple_ntpd.testing.DriftingClock` with a
  frequency error and random-walk wander, or a
  :class:`simple_ntpd.testing.FakeKernelClock` over it when the discipline
  steers the kernel;
* each **server** (:class:`SimServer`) keeps true time plus an offset and a
  frequency error, may step, announce and apply a leap second, lose packets,
  answer with a kiss-o'-death, or go silent; the **network** adds a fixed
  one-way delay, exponential queueing jitter and a fixed asymmetry.

Every random choice comes from one seeded generator, so a scenario is
reproducible.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from simple_ntpd.client.actions import (
    Publish,
    SaveDrift,
    SetClockFrequency,
    SetClockLeap,
    SetClockStatus,
    SourceDemobilized,
    SourceSend,
    SourceTimer,
    StepClock,
    SystemAction,
    SystemTimer,
    apply_clock_command,
)
from simple_ntpd.client.system import TimekeepingParams, TimekeepingSystem
from simple_ntpd.served_clock import ServedClockState
from simple_ntpd.testing import DriftingClock, FakeKernelClock, seeded_rng_for_testing
from simple_ntpd.timetypes import ntp64_from_unix_ns, ntp_short_from_seconds
from simple_ntpd.wire.constants import Leap, Mode
from simple_ntpd.wire.kod import make_kod
from simple_ntpd.wire.packet import NtpHeader, NtpPacket, decode_packet, encode_packet

NS = 1_000_000_000
MS = 1_000_000
US = 1_000


@dataclass
class SimServer:
    """A simulated upstream server and the network path to it."""

    address: str
    offset_s: float = 0.0
    freq_ppm: float = 0.0
    stratum: int = 1
    root_delay_s: float = 0.0
    root_dispersion_s: float = 0.0001
    base_delay_s: float = 0.001
    """One-way propagation delay, each direction."""
    jitter_s: float = 0.001
    """Mean of the exponential queueing delay added to each direction."""
    asymmetry_s: float = 0.0
    """Extra delay on the way to the server only."""
    loss: float = 0.0
    kod: bytes | None = None
    """Answer every request with this kiss code (from ``kod_from_ns`` on)."""
    kod_from_ns: int = 0
    kod_poll: int = 0
    down_from_ns: int | None = None
    """True time from which the server never answers."""
    steps: list[tuple[int, float]] = field(default_factory=list)
    """(true time, seconds) steps of the server's clock."""
    requests: list[int] = field(default_factory=list)
    """True times at which requests arrived (for poll checks)."""
    request_polls: list[int] = field(default_factory=list)


@dataclass
class Probe:
    true_ns: int
    error_ns: int
    """Served time minus true (Unix) time."""
    served_ns: int
    state: ServedClockState


class Simulator:
    def __init__(
        self,
        servers: list[SimServer],
        *,
        params: TimekeepingParams,
        seed: int,
        start_ns: int = 1_750_000_000 * NS,
        local_phase_s: float = 0.0,
        local_freq_ppm: float = 0.0,
        wander_ppm_per_sqrt_s: float = 0.0,
        leap_at_ns: int | None = None,
        leap_announce_from_ns: int | None = None,
        probe_interval_ns: int = NS,
    ) -> None:
        self.servers = servers
        self.params = params
        self.rand = random.Random(seed)
        self.start_ns = start_ns
        self.now = start_ns
        self.leap_at_ns = leap_at_ns
        self.leap_announce_from_ns = leap_announce_from_ns
        self.local = DriftingClock(
            start_ns,
            phase_ns=local_phase_s * NS,
            freq_ppm=local_freq_ppm,
            wander_ppm_per_sqrt_s=wander_ppm_per_sqrt_s,
            seed=seed + 1,
        )
        self.kernel = FakeKernelClock(self.local) if params.discipline_system_clock else None
        self.system = TimekeepingSystem(params, rng=seeded_rng_for_testing(seed + 2))
        self._events: list[tuple[int, int, str, tuple[object, ...]]] = []
        self._seq = 0
        self._timer_gen: dict[object, int] = {}
        self.source_server: dict[int, SimServer] = {}
        self.published: list[tuple[int, ServedClockState]] = []
        self.state = ServedClockState()
        self.probes: list[Probe] = []
        self.probe_interval_ns = probe_interval_ns
        self.demobilized: dict[int, object] = {}
        self.drift_saves: list[str] = []
        self.on_probe: Callable[[Simulator], None] | None = None

    # --- clocks -------------------------------------------------------------------------------

    def system_ns(self) -> int:
        return self.kernel.now_ns() if self.kernel is not None else self.local.now_ns()

    def truth_ns(self, true_ns: int) -> int:
        """Unix time at event time ``true_ns``: the inserted leap second repeats 23:59:59."""
        if self.leap_at_ns is not None and true_ns >= self.leap_at_ns:
            return true_ns - NS
        return true_ns

    def served_now(self) -> int:
        return self.state.served_ns(self.system_ns())

    def server_time(self, srv: SimServer, true_ns: int) -> int:
        t = self.truth_ns(true_ns)
        t += int(srv.offset_s * NS + srv.freq_ppm * 1e-6 * (true_ns - self.start_ns))
        for at, delta in srv.steps:
            if true_ns >= at:
                t += int(delta * NS)
        return t

    # --- event queue --------------------------------------------------------------------------

    def _push(self, at: int, kind: str, *args: object) -> None:
        self._seq += 1
        heapq.heappush(self._events, (at, self._seq, kind, args))

    def _true_for_system(self, system_ns: int) -> int:
        # The system clock runs at its own rate (plus the fake kernel's correction).
        rate = 1 + self.local.freq_ppm * 1e-6
        if self.kernel is not None:
            rate *= 1 + self.kernel.frequency_ppm * 1e-6
        return self.now + max(0, round((system_ns - self.system_ns()) / rate))

    def _arm(self, key: object, system_ns: int) -> None:
        gen = self._timer_gen.get(key, 0) + 1
        self._timer_gen[key] = gen
        self._push(self._true_for_system(system_ns), "timer", key, gen, system_ns)

    # --- running ------------------------------------------------------------------------------

    def start(self) -> None:
        self._execute(self.system.start(self.system_ns()))
        for srv in self.servers:
            sid, actions = self.system.add_source(srv.address, self.system_ns())
            self.source_server[sid] = srv
            self._execute(actions)
        self._push(self.now, "probe")

    def run_until(self, true_ns: int) -> None:
        while self._events and self._events[0][0] <= true_ns:
            at, _, kind, args = heapq.heappop(self._events)
            self._advance(at)
            if kind == "timer":
                key, gen, target = args
                if self._timer_gen.get(key) != gen:
                    continue
                now_sys = self.system_ns()
                assert isinstance(target, int)
                if now_sys < target:  # the clock ran slow against our estimate: wait on
                    self._push(self.now + (target - now_sys) + 1, "timer", key, gen, target)
                    continue
                if key == "system":
                    self._execute(self.system.handle_timer(now_sys))
                else:
                    assert isinstance(key, int)
                    self._execute(self.system.handle_source_timer(key, now_sys))
            elif kind == "reply":
                sid, data, send_sys = args
                assert isinstance(sid, int) and isinstance(data, bytes)
                assert isinstance(send_sys, int)
                self._execute(
                    self.system.handle_source_packet(sid, data, send_sys, self.system_ns())
                )
            elif kind == "probe":
                self._probe()
                self._push(self.now + self.probe_interval_ns, "probe")
        self._advance(true_ns)

    def _advance(self, true_ns: int) -> None:
        if true_ns > self.now:
            self.now = true_ns
            self.local.advance_to(true_ns)

    def _probe(self) -> None:
        served = self.served_now()
        self.probes.append(Probe(self.now, served - self.truth_ns(self.now), served, self.state))
        if self.on_probe is not None:
            self.on_probe(self)

    # --- actions ------------------------------------------------------------------------------

    def _execute(self, actions: list[SystemAction]) -> None:
        for action in actions:
            match action:
                case SourceSend(sid, data):
                    self._send(sid, data)
                case SourceTimer(sid, at_ns):
                    self._arm(sid, at_ns)
                case SystemTimer(at_ns):
                    self._arm("system", at_ns)
                case Publish(state):
                    self.state = state
                    self.published.append((self.now, state))
                case SourceDemobilized(sid, reason):
                    self.demobilized[sid] = reason
                case SaveDrift(text):
                    self.drift_saves.append(text)
                case SetClockFrequency() | StepClock() | SetClockLeap() | SetClockStatus():
                    assert self.kernel is not None, "clock command without the kernel path"
                    apply_clock_command(self.kernel, action)

    def _send(self, sid: int, data: bytes) -> None:
        srv = self.source_server[sid]
        send_sys = self.system_ns()
        if srv.down_from_ns is not None and self.now >= srv.down_from_ns:
            return
        if self.rand.random() < srv.loss:
            return
        out = srv.base_delay_s + srv.asymmetry_s + self.rand.expovariate(1 / srv.jitter_s)
        arrive = self.now + int(out * NS)
        request = decode_packet(data).header
        srv.requests.append(arrive)
        srv.request_polls.append(request.poll)
        process = 20 * US
        if srv.kod is not None and arrive >= srv.kod_from_ns:
            header = make_kod(request, srv.kod, poll=max(request.poll, srv.kod_poll))
        else:
            leap = Leap.NO_WARNING
            if (
                self.leap_at_ns is not None
                and self.leap_announce_from_ns is not None
                and self.leap_announce_from_ns <= arrive < self.leap_at_ns
            ):
                leap = Leap.ADD_SECOND
            rx = self.server_time(srv, arrive)
            header = NtpHeader(
                leap=leap,
                version=request.version,
                mode=Mode.SERVER,
                stratum=srv.stratum,
                poll=request.poll,
                precision=-24,
                root_delay=ntp_short_from_seconds(srv.root_delay_s),
                root_dispersion=ntp_short_from_seconds(srv.root_dispersion_s),
                reference_id=b"GPS\x00",
                reference_ts=ntp64_from_unix_ns(rx - 8 * NS),
                origin_ts=request.transmit_ts,
                receive_ts=ntp64_from_unix_ns(rx),
                transmit_ts=ntp64_from_unix_ns(self.server_time(srv, arrive + process)),
            )
        if self.rand.random() < srv.loss:
            return
        back = srv.base_delay_s + self.rand.expovariate(1 / srv.jitter_s)
        reply_at = arrive + process + int(back * NS)
        self._push(reply_at, "reply", sid, encode_packet(NtpPacket(header)), send_sys)

    # --- helpers for scenarios ----------------------------------------------------------------

    def probes_between(self, start_ns: int, end_ns: int) -> list[Probe]:
        return [p for p in self.probes if start_ns <= p.true_ns <= end_ns]
