"""Service integration of the main process: HTTP listener, health, systemd, statistics.

:meth:`Observability.attach` hooks one instance onto the
:class:`~simple_ntpd.runtime.supervisor.Supervisor` before it runs:

* socket activation: sockets systemd passed (``LISTEN_FDS``) are adopted, with
  kernel receive timestamps and packet info enabled, and shared by every worker;
* once the supervisor has bound its sockets, published the first served-clock
  state and forked the workers (its ready callbacks), it starts the management
  HTTP listener (``/metrics``, ``/health``, ``/status``), the periodic tasks
  (self-check, performance summary lines, statistics export, systemd watchdog
  and STATUS= updates), and sends READY=1;
* it takes over SIGHUP (RELOADING=1, the supervisor's reload, new settings
  applied here, READY=1) and SIGTERM/SIGINT (STOPPING=1, ``drain_timeout``
  seconds of serving while /health says "draining", then the supervisor stops).

Everything here runs on the supervisor's asyncio loop, so it reads the
supervisor's state without locks. Counters are summed from the workers' shared
memory only when someone asks (a scrape, an export, a summary line).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from simple_ntpd.config.schema import Config
from simple_ntpd.daemon import systemd
from simple_ntpd.daemon.logging_setup import rotate_logs_if_needed
from simple_ntpd.observe.health import MAXDIST, health
from simple_ntpd.observe.kernel_udp import socket_drops
from simple_ntpd.observe.prometheus import NtpCollector, latency_from_totals
from simple_ntpd.observe.selfcheck import SelfCheckResult, judge_reply, self_check_request
from simple_ntpd.observe.stats_export import (
    performance_summary,
    stats_record,
    summary_fields,
    summary_message,
)
from simple_ntpd.runtime.http_server import (
    HttpServer,
    build_registry,
    standard_routes,
    start_http_server,
)
from simple_ntpd.runtime.sockets import enable_rx_options, socket_is_wildcard
from simple_ntpd.runtime.stats_writer import StatsWriter
from simple_ntpd.runtime.supervisor import Supervisor
from simple_ntpd.stats import Counter, named_counters

log = logging.getLogger(__name__)
perf_log = logging.getLogger("simple_ntpd.performance")

LOG_ROTATION_CHECK_S = 1.0
"""How often the size of rotated log files is checked (one stat per file)."""
PROC_NET_UDP = ("/proc/net/udp", "/proc/net/udp6")
"""Where the kernel lists UDP sockets with their drop counts (this network namespace's)."""
STATUS_INTERVAL_S = 10.0
"""How often STATUS= is refreshed for ``systemctl status`` (only under systemd)."""


def _as_mapping(item: object) -> Mapping[str, object]:
    if isinstance(item, Mapping):
        return item
    to_dict = getattr(item, "to_dict", None)
    if callable(to_dict):
        result = to_dict()
        if isinstance(result, Mapping):
            return result
    return {}


class Observability:
    """The main-process services around a :class:`Supervisor` (see the module docstring)."""

    def __init__(
        self,
        sup: Supervisor,
        *,
        now_ns: Callable[[], int] = time.time_ns,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.sup = sup
        self._now_ns = now_ns
        self._rng = rng
        self.http: HttpServer | None = None
        self._http_key: tuple[str, int, bool] | None = None
        self.self_check: SelfCheckResult | None = None
        self.draining = False
        self._stopping = False
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._status_sample: tuple[float, int] | None = None
        self._rate = 0.0
        self._registry = build_registry(
            NtpCollector(
                counters=sup.totals,
                served_state=lambda: sup.state,
                sources=self.sources,
                labels=sup.loaded.labels,
                latency_histogram=lambda: latency_from_totals(sup.totals()),
                now_ns=now_ns,
                socket_drops=self.kernel_socket_drops,
            )
        )

    def kernel_socket_drops(self) -> int:
        """Datagrams the kernel dropped on the NTP sockets (``/proc/net/udp{,6}``, by inode)."""
        inodes = {os.fstat(s.fileno()).st_ino for s in self.sup.sockets if s.fileno() >= 0}
        texts: list[str] = []
        for path in PROC_NET_UDP:
            try:
                texts.append(Path(path).read_text())
            except FileNotFoundError:  # no IPv6 in this kernel: no udp6 table
                continue
        if not texts:
            raise OSError(f"none of {', '.join(PROC_NET_UDP)} can be read")
        return socket_drops(texts, inodes)

    # -- wiring -------------------------------------------------------------

    @classmethod
    def attach(cls, sup: Supervisor) -> Observability:
        """Adopt activated sockets now; start everything else when the supervisor is ready."""
        obs = cls(sup)
        obs.adopt_activated_sockets()
        sup.ready_callbacks.append(obs.on_ready)
        return obs

    def adopt_activated_sockets(self) -> int:
        """Adopt the UDP sockets systemd passed (``LISTEN_FDS``); how many were adopted."""
        try:
            passed = systemd.listen_fds_with_names()
        except systemd.SystemdError as exc:
            raise OSError(f"socket activation: {exc}") from exc
        adopted: list[socket.socket] = []
        for name, sock in passed:
            if sock.type != socket.SOCK_DGRAM or sock.family not in (
                socket.AF_INET,
                socket.AF_INET6,
            ):
                log.warning("socket activation: ignoring %s socket %r (not UDP)", sock.type, name)
                sock.close()
                continue
            # systemd's Timestamping=ns sets SO_TIMESTAMPNS, but packet info is
            # ours to ask for: set both so a unit without them still works.
            enable_rx_options(sock, wildcard=socket_is_wildcard(sock))
            sock.setblocking(False)
            adopted.append(sock)
        if adopted:
            self.sup.adopt_sockets(adopted)
            log.info(
                "socket activation: serving on %s (shared by all workers)",
                ", ".join(f"{s.getsockname()[0]} port {s.getsockname()[1]}" for s in adopted),
            )
        return len(adopted)

    def on_ready(self) -> None:
        """Ready callback of the supervisor (runs on its loop, workers running)."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.on_sighup)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.on_stop_signal)
        self._spawn("start", self._start())

    def _spawn(self, name: str, coro: Any) -> None:
        old = self._tasks.get(name)
        if old is not None and not old.done():
            old.cancel()
        self._tasks[name] = asyncio.get_running_loop().create_task(coro, name=name)

    async def _start(self) -> None:
        await self._apply_http(self.config)
        self._spawn("self-check", self._self_check_loop())
        self._spawn("periodic", self._periodic_loop())
        self._spawn("log-rotation", self._rotation_loop())
        interval = self._watchdog_interval()
        if interval is not None:
            self._spawn("watchdog", self._watchdog_loop(interval / 2))
        if os.environ.get("NOTIFY_SOCKET"):
            self._spawn("status", self._status_loop())
        systemd.ready(self.status_line())

    @property
    def config(self) -> Config:
        return self.sup.loaded.config

    # -- what the listener serves -------------------------------------------

    def sources(self) -> list[Mapping[str, object]]:
        """Per-source snapshots from the timekeeping work, as mappings; [] without upstreams.

        Uses the supervisor's ``sources_snapshot()`` when it has one, else its
        ``timekeeping.sources()``.
        """
        snapshot = getattr(self.sup, "sources_snapshot", None)
        items: Sequence[object]
        if callable(snapshot):
            items = snapshot()
        else:
            runner = getattr(self.sup, "timekeeping", None)
            produce = getattr(runner, "sources", None)
            items = produce() if callable(produce) else []
        return [m for m in (_as_mapping(i) for i in items) if m]

    def health(self) -> tuple[int, dict[str, Any]]:
        cfg = self.config
        result = self.self_check if cfg.monitoring.enable_health_check else None
        code, body = health(
            self.sup.state,
            self._now_ns(),
            maintenance=cfg.maintenance.maintenance_mode,
            self_check_ok=None if result is None else result.ok,
            # ntp_server.max_distance when the schema has it: the selection limit.
            max_root_distance=float(getattr(cfg.ntp_server, "max_distance", MAXDIST)),
            draining=self.draining,
        )
        if result is not None:
            body["self_check_detail"] = result.detail
        return code, body

    def status(self) -> dict[str, Any]:
        doc: dict[str, Any] = dict(self.sup.status())
        doc.update(named_counters(self.sup.totals()))
        try:
            doc["socket_drops"] = self.kernel_socket_drops()
        except OSError:  # no /proc: unknown, not zero
            doc["socket_drops"] = None
        doc["sources"] = self.sources()
        code, verdict = self.health()
        doc["health"] = {"http_status": code, **verdict}
        return doc

    def status_line(self) -> str:
        """One line for systemd's STATUS=."""
        st = self.sup.state
        if self.draining:
            head = "draining"
        elif st.synchronized:
            head = f"serving synchronized time at stratum {st.stratum}"
        else:
            head = "serving unsynchronized time (no usable reference)"
        parts = [head, f"{self._rate:.0f} responses/s", f"{len(self.sup.workers)} workers"]
        if self.config.maintenance.maintenance_mode:
            parts.append("maintenance mode")
        return ", ".join(parts)

    # -- HTTP listener ----------------------------------------------------------

    async def _apply_http(self, cfg: Config) -> None:
        mon = cfg.monitoring
        wanted = mon.enable_metrics or mon.enable_health_check
        key = (str(mon.metrics_address), mon.metrics_port, mon.enable_metrics) if wanted else None
        if key == self._http_key:
            return
        if self.http is not None:
            await self.http.stop()
            self.http = None
            self._http_key = None
        if key is None:
            return
        routes = standard_routes(
            registry=self._registry if mon.enable_metrics else None,
            health=self.health,
            status=self.status,
        )
        try:
            self.http = await start_http_server(key[0], key[1], routes)
        except OSError as exc:
            # Time service first: the NTP port keeps answering; a load balancer
            # probing /health takes the node out, which is the safe side.
            log.error("cannot listen for metrics/health on %s port %d: %s", key[0], key[1], exc)
            return
        self._http_key = key
        log.info(
            "management HTTP listener on %s port %d (%s)",
            key[0],
            self.http.port,
            ", ".join(sorted(routes)),
        )

    # -- signals ----------------------------------------------------------------

    def on_sighup(self) -> None:
        systemd.reloading()
        before = self.config.maintenance.maintenance_mode
        try:
            self.sup.reload()
        finally:
            after = self.config.maintenance.maintenance_mode
            if after != before:
                log.warning("maintenance mode %s", "on: /health answers 503" if after else "off")
            self._spawn("reconfigure", self._reconfigure())

    async def _reconfigure(self) -> None:
        await self._apply_http(self.config)
        systemd.ready(self.status_line())

    def on_stop_signal(self) -> None:
        if self._stopping or self.draining:
            log.info("second stop signal: stopping now")
            self._spawn("shutdown", self._shutdown())
            return
        systemd.stopping()
        drain = self.config.maintenance.drain_timeout
        if drain > 0:
            self.draining = True
            log.info("draining: serving %g s more while /health answers 503", drain)
            systemd.status(self.status_line())
            self._spawn("drain", self._drain(drain))
        else:
            self._spawn("shutdown", self._shutdown())

    async def _drain(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self._shutdown()

    async def _shutdown(self) -> None:
        self._stopping = True
        await self.stop()
        self.sup.request_stop()

    async def stop(self) -> None:
        """Stop the listener and the periodic tasks (not the task calling this)."""
        current = asyncio.current_task()
        tasks = [t for t in self._tasks.values() if t is not current and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.http is not None:
            await self.http.stop()
            self.http = None

    # -- periodic tasks -----------------------------------------------------------

    def _watchdog_interval(self) -> float | None:
        try:
            return systemd.watchdog_interval()
        except systemd.SystemdError as exc:
            log.warning("watchdog disabled: %s", exc)
            return None

    async def _watchdog_loop(self, period: float) -> None:
        while True:
            systemd.watchdog()
            await asyncio.sleep(period)

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(STATUS_INTERVAL_S)
            self._update_rate()
            systemd.status(self.status_line())

    def _update_rate(self) -> None:
        now = time.monotonic()
        responded = self.sup.totals()[Counter.RESPONDED]
        if self._status_sample is not None:
            then, before = self._status_sample
            if now > then:
                self._rate = max(0, responded - before) / (now - then)
        self._status_sample = (now, responded)

    def self_check_target(self) -> tuple[int, tuple[Any, ...]] | None:
        """(family, address) of our own first NTP socket; loopback for a wildcard."""
        for sock in self.sup.sockets:
            with contextlib.suppress(OSError):
                name = sock.getsockname()
                host = name[0]
                if sock.family == socket.AF_INET6:
                    host = "::1" if host in ("::", "::0") else host
                    return sock.family, (host, name[1], 0, name[3] if len(name) > 3 else 0)
                return sock.family, ("127.0.0.1" if host == "0.0.0.0" else host, name[1])
        return None

    async def run_self_check(self, timeout: float) -> SelfCheckResult:
        """Send one query to our own socket and judge the reply."""
        target = self.self_check_target()
        if target is None:
            return SelfCheckResult(False, "no NTP socket")
        family, address = target
        loop = asyncio.get_running_loop()
        request = self_check_request(self._rng(8))
        reply: bytes | None = None
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            try:
                sock.connect(address)
                await loop.sock_sendall(sock, request)
                deadline = loop.time() + timeout
                # Bounded: stray datagrams (an old reply) are skipped until the deadline.
                for _ in range(16):
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    data = await asyncio.wait_for(loop.sock_recv(sock, 2048), remaining)
                    if len(data) >= 32 and data[24:32] == request[40:48]:
                        reply = data
                        break
            except TimeoutError:
                reply = None
            except OSError as exc:
                return SelfCheckResult(False, f"query failed: {exc.strerror or exc}")
        now = self._now_ns()
        return judge_reply(request, reply, expected_ns=self.sup.state.served_ns(now))

    async def _self_check_loop(self) -> None:
        while True:
            mon = self.config.monitoring
            if mon.enable_health_check:
                result = await self.run_self_check(mon.health_check_timeout)
                previous = self.self_check
                self.self_check = result
                if not result.ok and (previous is None or previous.ok):
                    log.warning("health self-check failed: %s", result.detail)
                elif result.ok and previous is not None and not previous.ok:
                    log.info("health self-check ok again")
            else:
                self.self_check = None
            # At least 0.1 s: an interval of 0 must not turn into a busy loop.
            await asyncio.sleep(
                max(0.1, mon.health_check_interval) if mon.enable_health_check else 1.0
            )

    async def _rotation_loop(self) -> None:
        """Size rotation of log files the workers write to (see rotate_logs_if_needed)."""
        while True:
            await asyncio.sleep(LOG_ROTATION_CHECK_S)
            rotate_logs_if_needed()

    async def _periodic_loop(self) -> None:
        """Statistics export and performance lines, every ``stats_export_interval`` s."""
        last_totals = self.sup.totals()
        last_time = time.monotonic()
        writer: StatsWriter | None = None
        last_prune = 0.0
        while True:
            await asyncio.sleep(self.config.monitoring.stats_export_interval)
            cfg = self.config
            totals = self.sup.totals()
            now_mono = time.monotonic()
            if cfg.logging.log_performance_metrics:
                summary = performance_summary(last_totals, totals, now_mono - last_time)
                perf_log.info(summary_message(summary), extra={"fields": summary_fields(summary)})
            last_totals, last_time = totals, now_mono
            mon = cfg.monitoring
            if not mon.enable_statistics:
                continue
            if (
                writer is None
                or writer.directory != Path(mon.stats_directory)
                or writer.fmt != mon.stats_export_format
            ):
                writer = StatsWriter(
                    mon.stats_directory, mon.stats_export_format, mon.stats_retention_days
                )
            writer.retention_days = mon.stats_retention_days
            now = self._now_ns()
            record = stats_record(
                now_ns=now,
                totals=totals,
                state=self.sup.state,
                sources=self.sources(),
                labels=self.sup.loaded.labels,
            )
            writer.write(record, now)
            if now_mono - last_prune >= 3600 or last_prune == 0.0:
                last_prune = now_mono
                writer.prune(now)
