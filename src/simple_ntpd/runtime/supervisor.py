"""The main process: owns sockets, workers, the served clock and signals.

It creates the shared region and the sockets, forks the data-plane workers,
publishes the served-clock state, and reacts to signals: SIGTERM/SIGINT stop,
SIGHUP reloads the configuration, SIGUSR1 reopens log files. A reload forks a
new generation of workers on the same sockets before stopping the old one,
so the port never stops answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from simple_ntpd.client.discipline import DriftRecord
from simple_ntpd.config.load import LoadedConfig
from simple_ntpd.config.schema import Config
from simple_ntpd.control import Handler
from simple_ntpd.runtime.control_socket import ControlServer
from simple_ntpd.runtime.precision import measure_precision
from simple_ntpd.runtime.reuseport_bpf import attach_source_steering
from simple_ntpd.runtime.shm import SharedRegion
from simple_ntpd.runtime.sockets import ListenSpec, listen_addresses, make_udp_socket
from simple_ntpd.runtime.sysclock import KernelClock, holds_cap_sys_time
from simple_ntpd.runtime.timekeeping import TimekeepingRunner
from simple_ntpd.runtime.worker import WorkerSpec, run_worker
from simple_ntpd.served_clock import (
    LEAP_UNSYNCHRONIZED,
    ServedClockState,
)
from simple_ntpd.server.pipeline import RequestPipeline
from simple_ntpd.server.policy import SecurityPolicy
from simple_ntpd.stats import COUNTERS_PER_SLOT, named_counters

log = logging.getLogger(__name__)

WORKER_CHECK_S = 1.0
STOP_GRACE_S = 2.0
RESTART_BURST = 5
RESTART_BACKOFF_S = 5.0


def listen_spec(cfg: Config) -> ListenSpec:
    net = cfg.network
    return ListenSpec(
        addresses=listen_addresses(net.listen_address, net.enable_ipv6),
        port=net.listen_port,
        interface=net.bind_interface,
        receive_buffer_size=net.receive_buffer_size,
        send_buffer_size=net.send_buffer_size,
        receive_buffer_configured="receive_buffer_size" in net.model_fields_set,
    )


def worker_count(cfg: Config) -> int:
    n = cfg.performance.worker_threads
    return n if n > 0 else (os.cpu_count() or 1)


def worker_cpus(cfg: Config, index: int) -> frozenset[int] | None:
    perf = cfg.performance
    if not perf.enable_thread_affinity:
        return None
    cpus = list(perf.cpu_affinity) or sorted(os.sched_getaffinity(0))
    return frozenset({cpus[index % len(cpus)]})


@dataclass
class Worker:
    pid: int
    index: int
    slot: int
    generation: int


@dataclass
class Supervisor:
    """Runs the daemon until stopped. ``reload_config`` is called on SIGHUP."""

    loaded: LoadedConfig
    reload_config: Callable[[], LoadedConfig] | None = None
    on_reload_logging: Callable[[LoadedConfig], None] | None = None
    on_reopen_logs: Callable[[], None] | None = None
    policy: SecurityPolicy = field(default_factory=SecurityPolicy)
    """ACL, rate limit and keys the workers inherit; rebuilt by ``make_policy`` on reload."""
    make_policy: Callable[[Config], SecurityPolicy] | None = None
    drop_privileges: Callable[[], object] | None = None
    """Called once the sockets and the control socket exist, before workers fork."""
    sockets: list[socket.socket] = field(default_factory=list)
    workers: dict[int, Worker] = field(default_factory=dict)
    precision: int = -20

    def __post_init__(self) -> None:
        self.region = SharedRegion()
        self.writer = self.region.writer()
        self._free_slots = list(range(self.region.slots - 1, -1, -1))
        self._retired = [0] * COUNTERS_PER_SLOT
        self._generation = 0
        self._stopping = False
        self._stop_event: asyncio.Event | None = None
        self._state = ServedClockState()
        self.ready_callbacks: list[Callable[[], None]] = []
        self._started = time.monotonic()
        self.timekeeping: TimekeepingRunner | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.control: ControlServer | None = None
        self._activated = False
        self._generation_size = 0
        self._recent_restarts: list[float] = []

    # -- served clock ----------------------------------------------------

    @property
    def state(self) -> ServedClockState:
        return self._state

    def publish(self, state: ServedClockState) -> None:
        self._state = state
        self.writer.publish(state)

    # -- counters ---------------------------------------------------------

    def totals(self) -> list[int]:
        """Counters summed over live workers and the ones that have exited."""
        total = list(self._retired)
        for w in self.workers.values():
            for i, v in enumerate(self.region.read_slot(w.slot)):
                total[i] += v
        return total

    # -- control -------------------------------------------------------------

    def control_handlers(self) -> dict[str, Handler]:
        return {
            "counters": lambda _args: named_counters(self.totals()),
            "status": lambda _args: self.status(),
            "sources": lambda _args: {
                "sources": [] if self.timekeeping is None else self.timekeeping.sources()
            },
            "tracking": lambda _args: {
                "tracking": {} if self.timekeeping is None else self.timekeeping.tracking()
            },
        }

    def status(self) -> dict[str, object]:
        st = self._state
        now = time.time_ns()
        return {
            "synchronized": st.synchronized,
            "leap": st.leap,
            "stratum": st.stratum,
            "reference_id": st.reference_id.hex(),
            "reference_time_ns": st.reference_time_ns,
            "root_delay": st.root_delay,
            "root_dispersion": st.root_dispersion_at(now),
            "precision": st.precision,
            "offset_ns": st.offset_ns,
            "frequency_ppm": st.freq * 1e6,
            "workers": sorted(w.pid for w in self.workers.values()),
            "generation": self._generation,
            "configuration": self.loaded.source,
            "uptime_s": time.monotonic() - self._started,
        }

    # -- sockets and workers ---------------------------------------------

    def bind(self) -> None:
        cfg = self.loaded.config
        spec = listen_spec(cfg)
        if not spec.addresses:
            raise OSError("no address to listen on (IPv6 address with enable_ipv6 = false?)")
        for _ in range(worker_count(cfg)):
            for address in spec.addresses:
                self.sockets.append(make_udp_socket(address, spec))
        self._steer_sources(len(spec.addresses))
        workers = worker_count(cfg)
        log.info(
            "listening on %s port %d (%d %s)",
            ", ".join(spec.addresses),
            spec.port,
            workers,
            "worker" if workers == 1 else "workers",
        )

    def _steer_sources(self, n_addresses: int) -> None:
        """Send every client to one worker, so that its rate limit is exact across workers.

        Socket i of each address group belongs to worker i and joined the
        reuseport group i-th. Only with rate limiting on: otherwise the
        kernel's 4-tuple hash spreads one busy client over all workers.
        If the kernel refuses, each worker enforces the full limit on what it
        sees (a client spread over N workers gets up to N times the rate).
        """
        params = self.policy.rate_limit
        if params is None or not params.enabled:
            return
        for first in range(n_addresses):
            group = self.sockets[first::n_addresses]
            if len(group) < 2:
                continue
            try:
                attach_source_steering(group[0], len(group), params.ipv4_prefix, params.ipv6_prefix)
            except OSError as exc:
                log.warning(
                    "cannot steer clients to workers (%s): each of the %d workers "
                    "enforces the rate limit on its own",
                    exc,
                    len(group),
                )

    def adopt_sockets(self, sockets: list[socket.socket]) -> None:
        """Use sockets passed in by systemd socket activation (shared by all workers)."""
        self.sockets = sockets
        self._activated = True

    def _sockets_for(self, index: int, count: int) -> list[socket.socket]:
        if self._activated:
            return list(self.sockets)
        per = len(self.sockets) // count
        return self.sockets[index * per : (index + 1) * per]

    def spawn_generation(self) -> None:
        cfg = self.loaded.config
        self._generation += 1
        count = worker_count(cfg)
        if not self._activated:
            count = min(count, self._bound_workers())
        self._generation_size = count
        for index in range(count):
            self._spawn(index, count)

    def _bound_workers(self) -> int:
        spec = listen_spec(self.loaded.config)
        return max(1, len(self.sockets) // max(1, len(spec.addresses)))

    def _spawn(self, index: int, count: int, slot: int | None = None) -> None:
        cfg = self.loaded.config
        if slot is None:
            slot = self._free_slots.pop()
            self.region.clear_slot(slot)
        spec = WorkerSpec(
            index=index,
            slot=slot,
            sockets=self._sockets_for(index, count),
            max_packet_size=cfg.performance.max_packet_size,
            cpus=worker_cpus(cfg, index),
            parent_pid=os.getpid(),
            policy=self.policy,
        )
        pid = os.fork()
        if pid == 0:  # child
            status = 1
            try:
                signal.set_wakeup_fd(-1)
                status = run_worker(spec, self.region, RequestPipeline)
            except BaseException:
                log.exception("worker %d crashed", index)
            finally:
                os._exit(status)
        self.workers[pid] = Worker(pid=pid, index=index, slot=slot, generation=self._generation)
        log.debug("worker %d started (pid %d, slot %d)", index, pid, slot)

    def reap(self) -> None:
        """Collect exited workers; restart those that died unasked."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            w = self.workers.pop(pid, None)
            if w is None:
                continue
            if self._stopping or w.generation != self._generation:
                self._retire(w.slot)
                continue
            log.error(
                "worker %d (pid %d) exited unexpectedly (status %d); restarting",
                w.index,
                pid,
                status,
            )
            self._restart(w)

    def _restart(self, w: Worker) -> None:
        """Replace a worker that died, on its sockets and its counter slot.

        A worker that keeps dying (more than RESTART_BURST times a minute) is
        restarted after RESTART_BACKOFF_S instead of at once, so a fault at
        start-up cannot turn the main process into a fork loop.
        """
        now = time.monotonic()
        self._recent_restarts = [t for t in self._recent_restarts if now - t < 60.0]
        self._recent_restarts.append(now)
        generation = self._generation

        def spawn() -> None:
            if not self._stopping and generation == self._generation:
                # Keep its slot: the new worker continues its counts.
                self._spawn(w.index, self._generation_size, slot=w.slot)
            else:
                self._retire(w.slot)

        if len(self._recent_restarts) > RESTART_BURST:
            log.error("workers keep exiting; next restart in %g s", RESTART_BACKOFF_S)
            asyncio.get_running_loop().call_later(RESTART_BACKOFF_S, spawn)
        else:
            spawn()

    def _retire(self, slot: int) -> None:
        for i, v in enumerate(self.region.read_slot(slot)):
            self._retired[i] += v
        self.region.clear_slot(slot)
        self._free_slots.append(slot)

    def _signal_generation(self, generation: int | None, sig: int) -> None:
        for w in list(self.workers.values()):
            if generation is None or w.generation == generation:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.pid, sig)

    # -- lifecycle --------------------------------------------------------

    def request_stop(self) -> None:
        if self._stop_event is not None:
            self._stop_event.set()

    def reload(self) -> None:
        if self.reload_config is None:
            return
        try:
            new = self.reload_config()
            if self.make_policy is not None:
                self.policy = self.make_policy(new.config)
        except Exception as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            return
        old_cfg = self.loaded.config
        changed = [
            key
            for key, before, after in (
                ("network", listen_spec(old_cfg), listen_spec(new.config)),
                ("performance.worker_threads", worker_count(old_cfg), worker_count(new.config)),
            )
            if before != after
        ]
        if changed and not self._activated:
            log.warning("reload: %s changed; takes effect at restart", ", ".join(changed))
        self.loaded = new
        if self.on_reload_logging is not None:
            self.on_reload_logging(new)
        self._reload_timekeeping(old_cfg, new.config)
        old_generation = self._generation
        self.spawn_generation()
        self._signal_generation(old_generation, signal.SIGTERM)
        log.info("configuration reloaded from %s", new.source)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        loop.add_signal_handler(signal.SIGCHLD, self.reap)
        if self.on_reopen_logs is not None:
            loop.add_signal_handler(signal.SIGUSR1, self.on_reopen_logs)
        self.precision = measure_precision()
        await self._start_timekeeping(self.loaded.config)
        if not self.sockets:
            self.bind()
        # The control socket is created before privileges are dropped: its
        # directory (e.g. /run) may be writable by root only.
        control_path = self.loaded.config.monitoring.control_socket
        if control_path:
            self.control = ControlServer(control_path, self.control_handlers())
            await self.control.start()
        if self.drop_privileges is not None:
            self.drop_privileges()
        self.spawn_generation()
        for cb in self.ready_callbacks:
            cb()
        log.info(
            "serving %s at stratum %d (precision 2^%d)",
            "unsynchronized time"
            if self._state.leap == LEAP_UNSYNCHRONIZED
            else f"the local clock as {self.loaded.config.ntp_server.reference_id!r}",
            self._state.stratum,
            self.precision,
        )
        tick = loop.create_task(self._ticker())
        try:
            await self._stop_event.wait()
        finally:
            tick.cancel()
            self._stopping = True
            if self.timekeeping is not None:
                await self.timekeeping.stop()
            if self.control is not None:
                await self.control.close()
            await self._stop_workers()
            for s in self.sockets:
                s.close()
            log.info("stopped")

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(WORKER_CHECK_S)
            self.reap()

    # -- timekeeping ------------------------------------------------------------

    async def _start_timekeeping(self, cfg: Config, drift: DriftRecord | None = None) -> None:
        kernel = None
        if cfg.ntp_server.discipline_system_clock:
            if not holds_cap_sys_time():
                raise OSError("discipline_system_clock = true needs CAP_SYS_TIME")
            kernel = KernelClock(max_ppm=float(cfg.ntp_server.max_drift))
        self.timekeeping = TimekeepingRunner(
            cfg, self.precision, self.publish, kernel_clock=kernel, drift=drift
        )
        await self.timekeeping.start()

    def _reload_timekeeping(self, old: Config, new: Config) -> None:
        """Restart timekeeping if its settings changed; the frequency estimate carries over."""
        if old.ntp_server == new.ntp_server:
            return
        runner = self.timekeeping
        drift = (
            runner.system.discipline.drift_record()
            if runner is not None and runner.system.discipline.synchronized
            else None
        )

        async def restart() -> None:
            if runner is not None:
                await runner.stop()
            try:
                await self._start_timekeeping(new, drift)
            except OSError as exc:
                log.error("reload: timekeeping not restarted: %s", exc)

        self._background.add(asyncio.get_running_loop().create_task(restart()))

    async def _stop_workers(self) -> None:
        self._signal_generation(None, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while self.workers and time.monotonic() < deadline:
            self.reap()
            await asyncio.sleep(0.02)
        if self.workers:
            self._signal_generation(None, signal.SIGKILL)
            while self.workers and time.monotonic() < deadline + 1.0:
                self.reap()
                await asyncio.sleep(0.02)
