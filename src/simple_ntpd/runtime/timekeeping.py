"""The shell around :class:`simple_ntpd.client.system.TimekeepingSystem`.

It owns what the pure core may not touch: one UDP socket per upstream source
(a fresh random source port each, connected to the server so the kernel drops
datagrams from anyone else), kernel receive timestamps, asyncio timers, DNS
resolution of names and pools (re-resolved periodically, replacing sources that
stay unreachable or are rejected), the drift file, and, only with
``discipline_system_clock``, the kernel clock. Everything it learns goes in as
``handle_*`` calls; everything it does comes out of the core as actions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

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
from simple_ntpd.client.discipline import DriftFileError, DriftRecord, parse_drift
from simple_ntpd.client.system import SystemMode, TimekeepingParams, TimekeepingSystem
from simple_ntpd.client.upstream import InvalidUpstreamEntry, UpstreamSpec, parse_upstream_entry
from simple_ntpd.clock import SteerableClock
from simple_ntpd.config.schema import Config
from simple_ntpd.errors import ConfigError
from simple_ntpd.runtime.sockets import SO_TIMESTAMPNS
from simple_ntpd.served_clock import ServedClockState

log = logging.getLogger(__name__)
sync_log = logging.getLogger("simple_ntpd.sync")

NS = 1_000_000_000
RESOLVE_RETRY_S = 30.0
RERESOLVE_S = 3600.0
REPLACE_CHECK_S = 64.0
RESOLVER_TICK_S = 5.0
AVOID_REPLACED_S = 3600.0
_TIMESPEC = struct.Struct("@qq")
_ANC = socket.CMSG_SPACE(16)


def timekeeping_params(cfg: Config, precision: int = -20) -> TimekeepingParams:
    srv = cfg.ntp_server
    return TimekeepingParams(
        min_poll=srv.min_poll,
        max_poll=srv.max_poll,
        max_drift_ppm=float(srv.max_drift),
        stratum=srv.stratum,
        local_reference=srv.reference_clock.upper() == "LOCAL",
        reference_id=srv.reference_id.encode("ascii")[:4].ljust(4, b"\0"),
        step_threshold=srv.step_threshold,
        step_limit=srv.step_limit,
        panic_threshold=srv.panic_threshold,
        min_sources=srv.min_sources,
        max_distance=srv.max_distance,
        max_holdover=srv.max_holdover,
        sync_interval=float(srv.sync_interval),
        discipline_system_clock=srv.discipline_system_clock,
        precision=precision,
    )


def upstream_specs(cfg: Config) -> list[UpstreamSpec]:
    """Parse ``upstream_servers``; a bad entry is a configuration error naming it."""
    specs = []
    for i, entry in enumerate(cfg.ntp_server.upstream_servers):
        try:
            spec = parse_upstream_entry(entry)
        except InvalidUpstreamEntry as exc:
            raise ConfigError(f"[ntp_server] upstream_servers[{i}]: {exc}") from None
        if spec.is_pool and "maxsources" not in entry.lower():
            spec = replace(spec, max_sources=cfg.ntp_server.max_sources)
        specs.append(spec)
    return specs


@dataclass
class _Live:
    """A source the core knows: its socket, timer and where it came from."""

    spec: UpstreamSpec
    address: str
    sock: socket.socket
    timer: asyncio.TimerHandle | None = None
    send_ns: int = 0


@dataclass
class _Name:
    """A configured entry and the source ids it currently contributes."""

    spec: UpstreamSpec
    source_ids: list[int] = field(default_factory=list)
    next_resolve: float = 0.0
    replaced: dict[str, float] = field(default_factory=dict)
    """Addresses dropped as unreachable or rejected, and when: not taken again for a while."""


class TimekeepingRunner:
    def __init__(
        self,
        cfg: Config,
        precision: int,
        publish: Callable[[ServedClockState], None],
        *,
        kernel_clock: SteerableClock | None = None,
        drift: DriftRecord | None = None,
    ) -> None:
        self.cfg = cfg
        self.params = timekeeping_params(cfg, precision)
        self.specs = upstream_specs(cfg)
        self._publish = publish
        self._kernel = kernel_clock
        self.drift_path = cfg.ntp_server.drift_file or None
        if drift is None and self.drift_path:
            drift = read_drift(self.drift_path)
        self.system = TimekeepingSystem(self.params, rng=secrets.token_bytes, drift=drift)
        self._live: dict[int, _Live] = {}
        self._names = [_Name(spec) for spec in self.specs]
        self._system_timer: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._mode = SystemMode.UNSYNCHRONIZED
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._run(self.system.start(time.time_ns(), upstreams_configured=bool(self.specs)))
        for name in self._names:
            if name.spec.is_address:
                self._add(name, name.spec.host)
        if any(not n.spec.is_address for n in self._names):
            self._tasks.append(asyncio.create_task(self._resolver()))
        if self.specs:
            self._tasks.append(asyncio.create_task(self._replacer()))
            log.info("synchronizing to %d upstream entries", len(self.specs))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()
        if self._system_timer is not None:
            self._system_timer.cancel()
        for sid in list(self._live):
            self._close(sid)
        self._save_drift_now()

    # -- sources ------------------------------------------------------------------------

    def _add(self, name: _Name, address: str) -> None:
        spec = name.spec
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            # Port 0: the kernel picks a random ephemeral source port per association.
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
            sock.connect((address, spec.port))
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            log.warning("upstream %s (%s): cannot open a socket: %s", spec.host, address, exc)
            return
        sid, actions = self.system.add_source(
            address,
            time.time_ns(),
            port=spec.port,
            prefer=spec.prefer,
            noselect=spec.noselect,
            iburst=spec.iburst,
            min_poll=spec.min_poll,
            max_poll=spec.max_poll,
        )
        self._live[sid] = _Live(spec=spec, address=address, sock=sock)
        name.source_ids.append(sid)
        assert self._loop is not None
        self._loop.add_reader(sock.fileno(), self._readable, sid)
        log.info("upstream %s: polling %s port %d (source %d)", spec.host, address, spec.port, sid)
        self._run(actions)

    def _close(self, sid: int) -> None:
        live = self._live.pop(sid, None)
        if live is None:
            return
        if live.timer is not None:
            live.timer.cancel()
        if self._loop is not None:
            self._loop.remove_reader(live.sock.fileno())
        live.sock.close()
        for name in self._names:
            if sid in name.source_ids:
                name.source_ids.remove(sid)

    def _readable(self, sid: int) -> None:
        live = self._live.get(sid)
        if live is None:
            return
        for _ in range(16):
            try:
                data, anc, _flags, _addr = live.sock.recvmsg(2048, _ANC)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP port unreachable and the like
                log.debug("upstream %s: %s", live.address, exc)
                continue
            recv_ns = 0
            for level, ctype, cdata in anc:
                if level == socket.SOL_SOCKET and ctype == SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack(cdata[:16])
                    recv_ns = sec * NS + nsec
            if not recv_ns:
                recv_ns = time.time_ns()
            self._run(self.system.handle_source_packet(sid, data, live.send_ns, recv_ns))

    def _source_timer(self, sid: int) -> None:
        live = self._live.get(sid)
        if live is not None:
            live.timer = None
            self._run(self.system.handle_source_timer(sid, time.time_ns()))

    def _system_timer_due(self) -> None:
        self._system_timer = None
        self._run(self.system.handle_timer(time.time_ns()))

    def _later(self, at_ns: int, cb: Callable[..., None], *args: object) -> asyncio.TimerHandle:
        assert self._loop is not None
        delay = max(0.0, (at_ns - time.time_ns()) / NS)
        return self._loop.call_later(delay, cb, *args)

    # -- actions ------------------------------------------------------------------------

    def _run(self, actions: list[SystemAction]) -> None:
        for action in actions:
            match action:
                case SourceSend(sid, data):
                    live = self._live.get(sid)
                    if live is None:
                        continue
                    live.send_ns = time.time_ns()
                    try:
                        live.sock.send(data)
                    except OSError as exc:
                        log.debug("upstream %s: send: %s", live.address, exc)
                case SourceTimer(sid, at_ns):
                    live = self._live.get(sid)
                    if live is None:
                        continue
                    if live.timer is not None:
                        live.timer.cancel()
                    live.timer = self._later(at_ns, self._source_timer, sid)
                case SourceDemobilized(sid, reason):
                    live = self._live.get(sid)
                    where = live.address if live else sid
                    sync_log.warning("upstream %s demobilized: %s", where, reason.value)
                    self._close(sid)
                case SystemTimer(at_ns):
                    if self._system_timer is not None:
                        self._system_timer.cancel()
                    self._system_timer = self._later(at_ns, self._system_timer_due)
                case Publish(state):
                    self._publish(state)
                case SaveDrift(text):
                    self._write_drift(text)
                case SetClockFrequency() | StepClock() | SetClockLeap() | SetClockStatus():
                    if self._kernel is not None:
                        try:
                            apply_clock_command(self._kernel, action)
                        except OSError as exc:
                            log.error("kernel clock: %s failed: %s", type(action).__name__, exc)
        self._note_mode()

    def _note_mode(self) -> None:
        mode = self.system.mode
        if mode is not self._mode:
            t = self.system.tracking_snapshot(time.time_ns())
            sync_log.info(
                "timekeeping %s -> %s (stratum %d, reference %s)",
                self._mode.value,
                mode.value,
                t.stratum,
                t.reference_address or t.reference_id.hex(),
            )
            self._mode = mode

    # -- names, pools, replacement ------------------------------------------------------

    async def _resolver(self) -> None:
        assert self._loop is not None
        while True:
            now = time.monotonic()
            for name in self._names:
                if name.spec.is_address or now < name.next_resolve:
                    continue
                await self._resolve(name)
            await asyncio.sleep(RESOLVER_TICK_S)

    async def _resolve(self, name: _Name) -> None:
        assert self._loop is not None
        spec = name.spec
        want = spec.max_sources - len(name.source_ids)
        if want <= 0:
            name.next_resolve = time.monotonic() + RERESOLVE_S
            return
        try:
            infos = await self._loop.getaddrinfo(spec.host, spec.port, type=socket.SOCK_DGRAM)
        except (OSError, UnicodeError) as exc:
            log.warning(
                "upstream %s: cannot resolve: %s (retry in %g s)", spec.host, exc, RESOLVE_RETRY_S
            )
            name.next_resolve = time.monotonic() + RESOLVE_RETRY_S
            return
        in_use = {live.address for live in self._live.values()}
        now = time.monotonic()
        name.replaced = {a: t for a, t in name.replaced.items() if now - t < AVOID_REPLACED_S}
        candidates = [str(info[4][0]) for info in infos]
        candidates = list(dict.fromkeys(a for a in candidates if a not in in_use))
        # Prefer addresses that were not just dropped; take those again only if nothing
        # else is offered (a name with one address keeps being tried).
        fresh = [a for a in candidates if a not in name.replaced]
        added = 0
        for address in (fresh or candidates)[:want]:
            self._add(name, address)
            added += 1
        name.next_resolve = time.monotonic() + (RERESOLVE_S if added else RESOLVE_RETRY_S)

    async def _replacer(self) -> None:
        """Replace sources that stay unreachable or rejected, from their names or pools."""
        while True:
            await asyncio.sleep(REPLACE_CHECK_S)
            for sid in self.system.sources_to_replace():
                live = self._live.get(sid)
                if live is None or live.spec.is_address:
                    continue  # an address literal has no alternative: keep polling it
                log.info("upstream %s: replacing %s", live.spec.host, live.address)
                self._run(self.system.remove_source(sid, time.time_ns()))
                self._close(sid)
                for name in self._names:
                    if name.spec is live.spec:
                        name.replaced[live.address] = time.monotonic()
                        name.next_resolve = 0.0

    # -- drift file ---------------------------------------------------------------------

    def _write_drift(self, text: str) -> None:
        if not self.drift_path:
            return
        tmp = f"{self.drift_path}.tmp"
        try:
            Path(self.drift_path).parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, self.drift_path)
        except OSError as exc:
            log.warning("drift file %s: %s", self.drift_path, exc)

    def _save_drift_now(self) -> None:
        from simple_ntpd.client.discipline import serialize_drift

        if self.drift_path and self.system.discipline.synchronized:
            self._write_drift(serialize_drift(self.system.discipline.drift_record()))

    # -- observation --------------------------------------------------------------------

    def sources(self) -> list[dict[str, object]]:
        return [s.to_dict() for s in self.system.sources_snapshot(time.time_ns())]

    def tracking(self) -> dict[str, object]:
        return self.system.tracking_snapshot(time.time_ns()).to_dict()


def read_drift(path: str) -> DriftRecord | None:
    try:
        return parse_drift(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, DriftFileError) as exc:
        log.warning("drift file %s ignored: %s", path, exc)
        return None
