"""Observability of the running daemon: metrics, health, systemd, logs, statistics.

Every test starts the real daemon (``python -m simple_ntpd.daemon.cli``) on
loopback ports of its own and talks to it as Prometheus, a load balancer,
systemd and an operator would. Every loop is bounded in count and time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.helpers import (
    DAEMON,
    Daemon,
    free_udp_port,
    running_daemon,
    sntp_query,
    write_config,
)
from tests.unit.observe.test_deployment_assets import METRIC_NAME, dashboard_exprs, rule_exprs

pytestmark = pytest.mark.integration


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(
    port: int,
    http_port: int,
    *,
    reference_clock: str = "LOCAL",
    monitoring: str = "",
    logging: str = 'output = "console"',
    maintenance: str = "",
    workers: int = 2,
) -> str:
    return f"""
[network]
listen_address = "127.0.0.1"
listen_port = {port}
enable_ipv6 = false

[ntp_server]
stratum = 3
reference_clock = "{reference_clock}"
reference_id = "OBSV"

[performance]
worker_threads = {workers}

[logging]
level = "INFO"
{logging}

[monitoring]
enable_metrics = true
metrics_address = "127.0.0.1"
metrics_port = {http_port}
control_socket = ""
{monitoring}

[maintenance]
{maintenance}

[security]
user = "root"
group = "root"
"""


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as e:
        return int(e.code), bytes(e.read())


def wait_for(pred: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def http_up(http_port: int) -> bool:
    try:
        return get(f"http://127.0.0.1:{http_port}/health", timeout=1.0)[0] in (200, 503)
    except OSError:
        return False


def health(http_port: int) -> tuple[int, dict[str, object]]:
    code, body = get(f"http://127.0.0.1:{http_port}/health")
    return code, json.loads(body)


def scrape(http_port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    code, body = get(f"http://127.0.0.1:{http_port}/metrics")
    assert code == 200
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@contextlib.contextmanager
def daemon_with_http(
    tmp_path: Path, text_for: Callable[[int, int], str], **kw: object
) -> Iterator[tuple[Daemon, int]]:
    port, http_port = free_udp_port(), free_tcp_port()
    with running_daemon(tmp_path, text_for(port, http_port), port, **kw) as d:  # type: ignore[arg-type]
        assert wait_for(lambda: http_up(http_port)), d.log()
        yield d, http_port


def request(version: int = 4, mode: int = 3, xmt: int = 1) -> bytes:
    return struct.pack("!B39xQ", (version << 3) | mode, xmt)


# -- metrics -------------------------------------------------------------------------


def test_scrape_under_load_counts_exactly_what_was_sent(tmp_path: Path) -> None:
    with daemon_with_http(tmp_path, config) as (d, http_port):
        # Workers flush their counters within 50 ms of going idle: let the
        # readiness probe's request land before taking the baseline.
        time.sleep(0.3)
        before = scrape(http_port)
        valid, v3, short, bad_version, control, private = 400, 50, 60, 30, 20, 10
        answered = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2.0)
            target = ("127.0.0.1", d.port)
            for i in range(valid):
                s.sendto(request(xmt=i + 1), target)
                data, _ = s.recvfrom(100)  # one at a time: nothing lost in buffers
                answered += data[24:32] == struct.pack("!Q", i + 1)
            for i in range(v3):
                s.sendto(request(version=3, xmt=10_000 + i), target)
                s.recvfrom(100)
                answered += 1
            for _ in range(short):
                s.sendto(b"\x23" + bytes(20), target)
            for _ in range(bad_version):
                s.sendto(request(version=7), target)
            for _ in range(control):
                s.sendto(request(mode=6), target)
            for _ in range(private):
                s.sendto(request(mode=7), target)
        assert answered == valid + v3
        sent = valid + v3 + short + bad_version + control + private

        def delta(name: str, **labels: str) -> float:
            key = (name, tuple(sorted(labels.items())))
            return scrape_now[key] - before.get(key, 0.0)

        # Workers flush counters to shared memory within 50 ms once idle.
        def settled() -> bool:
            nonlocal scrape_now
            scrape_now = scrape(http_port)
            return delta("ntp_received_packets_total") == sent

        scrape_now: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        assert wait_for(settled, timeout=5.0, step=0.1), (
            delta("ntp_received_packets_total"),
            sent,
        )
        assert delta("ntp_responses_total") == valid + v3
        assert delta("ntp_requests_total", version="4") == valid
        assert delta("ntp_requests_total", version="3") == v3
        assert delta("ntp_dropped_total", reason="too_short") == short
        assert delta("ntp_dropped_total", reason="bad_version") == bad_version
        assert delta("ntp_dropped_total", reason="mode_control") == control
        assert delta("ntp_dropped_total", reason="mode_private") == private
        assert delta("ntp_received_bytes_total") == 48 * (sent - short) + 21 * short
        assert delta("ntp_sent_bytes_total") == 48 * (valid + v3)
        assert delta("ntp_request_duration_seconds_count") == valid + v3
        assert delta("ntp_request_duration_seconds_bucket", le="+Inf") == valid + v3
        assert 0 < delta("ntp_request_duration_seconds_sum") < (valid + v3) * 0.1
        assert scrape_now[("ntp_stratum", ())] == 3
        assert scrape_now[("ntp_synchronized", ())] == 1
        assert scrape_now[("ntp_reference_info", (("reference_id", "79.66.83.86"),))] == 1
        assert any(name == "process_cpu_seconds_total" for name, _ in scrape_now)

        # /status: the supervisor's status plus counters and sources.
        code, body = get(f"http://127.0.0.1:{http_port}/status")
        status = json.loads(body)
        assert code == 200
        assert status["stratum"] == 3 and status["synchronized"] is True
        assert status["counters"]["received"] >= sent
        assert status["drops"]["too_short"] >= short
        assert status["socket_drops"] == 0
        assert status["sources"] == []
        assert len(status["workers"]) == 2
        assert status["health"]["http_status"] == 200


def test_datagrams_the_kernel_drops_on_a_full_buffer_are_counted(tmp_path: Path) -> None:
    def small_buffer(port: int, http_port: int) -> str:
        return config(port, http_port, workers=1).replace(
            "enable_ipv6 = false\n", "enable_ipv6 = false\nreceive_buffer_size = 4096\n"
        )

    with daemon_with_http(tmp_path, small_buffer) as (d, http_port):
        time.sleep(0.3)  # the readiness probe's request counted
        before = scrape(http_port)
        assert before[("ntp_socket_drops_total", ())] == 0
        workers = [int(pid) for pid in _children(d.proc.pid)]
        assert len(workers) == 1
        sent = 500
        os.kill(workers[0], signal.SIGSTOP)  # the worker stops reading; the buffer fills
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for i in range(sent):
                    s.sendto(request(xmt=i + 1), ("127.0.0.1", d.port))
            # The main process answers scrapes while the worker is stopped.
            dropped = scrape(http_port)[("ntp_socket_drops_total", ())]
        finally:
            os.kill(workers[0], signal.SIGCONT)
        assert 0 < dropped < sent

        def received() -> float:
            key = ("ntp_received_packets_total", ())
            return scrape(http_port)[key] - before[key]

        # Every datagram was either read by the worker or counted as dropped by the kernel.
        assert wait_for(lambda: received() + dropped == sent, timeout=5.0), (received(), dropped)
        assert scrape(http_port)[("ntp_socket_drops_total", ())] == dropped
        assert json.loads(get(f"http://127.0.0.1:{http_port}/status")[1])["socket_drops"] == dropped


def test_every_metric_of_the_rules_and_dashboard_is_in_a_live_scrape(tmp_path: Path) -> None:
    env = {"SIMPLE_NTPD_ENVIRONMENT": "test", "SIMPLE_NTPD_DATACENTER": "dc1"}
    with daemon_with_http(tmp_path, config, env=env) as (d, http_port):
        assert sntp_query("127.0.0.1", d.port) is not None
        live = scrape(http_port)
        names = {name for name, _ in live}
        _, body = get(f"http://127.0.0.1:{http_port}/metrics")
        families = {m[1] for m in re.finditer(r"^# TYPE (\S+) (\S+)", body.decode(), re.M)}
    used = {
        name for expr in [*rule_exprs(), *dashboard_exprs()] for name in METRIC_NAME.findall(expr)
    }
    assert used
    # Per-source series exist only with upstreams; their families are always declared.
    source_families = {n for n in used if n.startswith("ntp_source_")}
    missing = {n for n in used - source_families if n not in names}
    assert not missing, f"named by the rules or the dashboard, absent from a live scrape: {missing}"
    for name in source_families:
        assert name in families or name.removesuffix("_total") in families, name
    labelled = [labels for (name, labels) in live if name == "ntp_stratum"]
    assert labelled == [(("datacenter", "dc1"), ("environment", "test"))]


# -- health ----------------------------------------------------------------------------


def test_health_ok_when_local_and_503_when_unsynchronized(tmp_path: Path) -> None:
    (tmp_path / "local").mkdir()
    with daemon_with_http(tmp_path / "local", config) as (_d, http_port):
        code, body = health(http_port)
        assert code == 200 and body["status"] == "ok" and body["synchronized"] is True

    def unsynchronized(port: int, http_port: int) -> str:
        return config(port, http_port, reference_clock="NONE")

    (tmp_path / "none").mkdir()
    with daemon_with_http(tmp_path / "none", unsynchronized) as (_d, http_port):
        code, body = health(http_port)
        assert code == 503
        assert body["reason"] == "unsynchronized" and body["status"] == "unavailable"


def test_self_check_queries_our_own_socket(tmp_path: Path) -> None:
    def text(port: int, http_port: int) -> str:
        return config(
            port,
            http_port,
            monitoring="enable_health_check = true\nhealth_check_interval = 0.3\n"
            "health_check_timeout = 0.2",
        )

    with daemon_with_http(tmp_path, text) as (d, http_port):
        assert wait_for(lambda: health(http_port)[1]["self_check"] == "ok", timeout=5.0)
        # Stop the workers from answering (SIGSTOP): the self-check fails, /health says so.
        workers = [int(p) for p in _children(d.proc.pid)]
        assert workers
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        try:
            assert wait_for(lambda: health(http_port)[0] == 503, timeout=5.0), d.log()
            _, body = health(http_port)
            assert body["reasons"] == ["self-check failed"]
            assert body["self_check_detail"] == "no reply before the timeout"
        finally:
            for pid in workers:
                os.kill(pid, signal.SIGCONT)
        assert wait_for(lambda: health(http_port)[0] == 200, timeout=5.0), d.log()
    assert "health self-check failed: no reply before the timeout" in d.log()


def _children(pid: int) -> list[str]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return out.stdout.split()


def test_maintenance_mode_by_reload_and_draining_on_sigterm(tmp_path: Path) -> None:
    port, http_port = free_udp_port(), free_tcp_port()
    with running_daemon(tmp_path, config(port, http_port), port) as d:
        assert wait_for(lambda: http_up(http_port)), d.log()
        assert health(http_port)[0] == 200
        write_config(
            tmp_path,
            config(port, http_port, maintenance="maintenance_mode = true\ndrain_timeout = 1.5"),
        )
        d.signal(signal.SIGHUP)
        assert wait_for(lambda: health(http_port)[0] == 503), d.log()
        _, body = health(http_port)
        assert body["reason"] == "maintenance" and body["maintenance"] is True
        # NTP keeps answering in maintenance mode.
        assert sntp_query("127.0.0.1", port) is not None

        d.signal(signal.SIGTERM)
        assert wait_for(lambda: health(http_port)[1].get("reason") == "draining", timeout=2.0)
        started = time.monotonic()
        assert sntp_query("127.0.0.1", port) is not None  # still serving while draining
        assert d.proc.wait(10) == 0
        # It kept serving about drain_timeout seconds after SIGTERM.
        assert time.monotonic() - started > 0.7
    assert "draining: serving 1.5 s more" in d.log()
    assert "maintenance mode on" in d.log()


# -- systemd ---------------------------------------------------------------------------


def test_sd_notify_ready_status_reloading_watchdog_stopping(tmp_path: Path) -> None:
    notify_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.settimeout(0.2)
    messages: list[str] = []

    def drain() -> None:
        with contextlib.suppress(TimeoutError):
            for _ in range(1000):
                messages.append(sock.recv(4096).decode())

    def count(text: str, start: int = 0) -> int:
        return sum(text in m for m in messages[start:])

    def seen(prefix: str) -> bool:
        drain()
        return any(line.startswith(prefix) for m in messages for line in m.splitlines())

    env = {"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "600000"}
    port, http_port = free_udp_port(), free_tcp_port()
    try:
        with running_daemon(tmp_path, config(port, http_port), port, env=env) as d:
            assert wait_for(lambda: seen("READY=1"), timeout=5.0), messages
            ready = next(m for m in messages if "READY=1" in m)
            assert re.search(r"^STATUS=serving synchronized time at stratum 3, ", ready, re.M)
            assert "2 workers" in ready
            assert wait_for(lambda: seen("WATCHDOG=1") and count("WATCHDOG=1") >= 2, 3.0)
            before = len(messages)
            d.signal(signal.SIGHUP)
            assert wait_for(lambda: seen("") and count("READY=1", before) >= 1, 5.0), messages
            after = messages[before:]
            reloading = next(i for i, m in enumerate(after) if "RELOADING=1" in m)
            assert re.search(r"^MONOTONIC_USEC=\d+$", after[reloading], re.M)
            assert any("READY=1" in m for m in after[reloading + 1 :])
            d.signal(signal.SIGTERM)
            assert d.proc.wait(10) == 0
        drain()
        assert any("STOPPING=1" in m for m in messages)
    finally:
        sock.close()


def test_socket_activation_serves_on_the_passed_socket(tmp_path: Path) -> None:
    activated = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    activated.bind(("127.0.0.1", 0))
    act_port = activated.getsockname()[1]
    config_port, http_port = free_udp_port(), free_tcp_port()
    cfg = write_config(tmp_path, config(config_port, http_port))
    fd = activated.fileno()
    # What systemd does: the socket as fd 3, LISTEN_PID = the daemon's pid, LISTEN_FDS = 1.
    shim = (
        "import os, sys\n"
        f"os.dup2({fd}, 3, inheritable=True)\n"
        f"os.close({fd})\n"
        "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1', LISTEN_FDNAMES='ntp')\n"
        "os.execv(sys.argv[1], sys.argv[1:])\n"
    )
    log_path = tmp_path / "daemon.log"
    with open(log_path, "w") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-c", shim, *DAEMON, "--config", str(cfg), "--foreground"],
            stdout=logf,
            stderr=subprocess.STDOUT,
            pass_fds=(fd,),
            start_new_session=True,
        )
    activated.close()  # the daemon holds it now
    try:
        assert wait_for(
            lambda: sntp_query("127.0.0.1", act_port, timeout=0.2) is not None, timeout=15.0
        ), log_path.read_text()
        replies = [sntp_query("127.0.0.1", act_port) for _ in range(20)]
        assert all(r is not None and r[1] == 3 for r in replies)
        # It did not bind the configured port: the activated socket replaced it.
        assert sntp_query("127.0.0.1", config_port, timeout=0.3) is None
        # Kernel receive timestamps are on: processing time comes from them.
        assert wait_for(lambda: http_up(http_port)), log_path.read_text()
        live = scrape(http_port)
        assert live[("ntp_responses_total", ())] >= 20
        assert "socket activation: serving on 127.0.0.1 port" in log_path.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    assert proc.returncode == 0


# -- logs and statistics ----------------------------------------------------------------


def test_json_logs_client_queries_and_performance_lines(tmp_path: Path) -> None:
    log_file = tmp_path / "daemon.jsonl"
    env = {"SIMPLE_NTPD_ENVIRONMENT": "staging", "SIMPLE_NTPD_REGION": "eu-west"}

    def text(port: int, http_port: int) -> str:
        return config(
            port,
            http_port,
            logging=f'output = "file"\nlog_file = "{log_file}"\nlog_format = "json"\n'
            "log_include_hostname = true\nlog_client_queries = true\n"
            "log_performance_metrics = true",
            monitoring="stats_export_interval = 1",
        )

    with daemon_with_http(tmp_path, text, env=env) as (d, _http_port):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"\x23\nforged line" + bytes(3), ("127.0.0.1", d.port))
        assert sntp_query("127.0.0.1", d.port) is not None

        def lines() -> list[dict[str, object]]:
            return [json.loads(x) for x in log_file.read_text().splitlines()]

        assert wait_for(lambda: any(x["logger"] == "simple_ntpd.performance" for x in lines()), 5.0)
        assert wait_for(
            lambda: any(
                x.get("fields", {}).get("outcome") == "dropped: too_short"  # type: ignore[union-attr]
                for x in lines()
            ),
            3.0,
        )
    records = lines()
    assert records
    for r in records:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", str(r["timestamp"]))
        assert r["hostname"] == socket.gethostname()
        assert r["environment"] == "staging" and r["region"] == "eu-west"
        assert {"level", "logger", "message"} <= r.keys()
    queries = [r for r in records if r["logger"] == "simple_ntpd.queries"]
    answered = [q for q in queries if q["fields"]["outcome"] == "response"]  # type: ignore[index]
    assert answered and answered[0]["fields"]["client"] == "127.0.0.1"  # type: ignore[index]
    perf = next(r for r in records if r["logger"] == "simple_ntpd.performance")
    assert {"requests_per_s", "drops_per_s", "p99"} <= perf["fields"].keys()  # type: ignore[union-attr]


def test_log_rotation_at_size_and_sigusr1_reopen(tmp_path: Path) -> None:
    log_file = tmp_path / "rotating.log"

    def text(port: int, http_port: int) -> str:
        return config(
            port,
            http_port,
            logging=f'output = "file"\nlog_file = "{log_file}"\nmax_file_size = 4096\n'
            "max_files = 2\nlog_client_queries = true\nlog_performance_metrics = true",
            monitoring="stats_export_interval = 1",
        )

    with daemon_with_http(tmp_path, text) as (d, _http_port):
        # About 150 bytes per query line: 60 queries fill the 4096 bytes twice.
        # The main process checks the size every second and rotates.
        rotated = Path(f"{log_file}.1")
        for generation in (1, 2, 3):
            for _ in range(60):
                sntp_query("127.0.0.1", d.port)
            assert wait_for(Path(f"{log_file}.{min(generation, 2)}").exists, timeout=5.0)
            time.sleep(1.2)
        assert not Path(f"{log_file}.3").exists()  # max_files = 2
        assert rotated.stat().st_size <= 3 * 4096

        # logrotate's way: move the file away, then SIGUSR1.
        moved = tmp_path / "moved.log"
        for p in (Path(f"{log_file}.1"), Path(f"{log_file}.2")):
            p.unlink()
        log_file.rename(moved)
        d.signal(signal.SIGUSR1)
        assert wait_for(lambda: log_file.exists() and log_file.stat().st_size > 0, 5.0)
        assert "performance:" in log_file.read_text()


def test_statistics_files_are_written_and_pruned(tmp_path: Path) -> None:
    stats = tmp_path / "stats"
    stats.mkdir()
    (stats / "stats-2001-01-01.jsonl").write_text("{}\n")
    (stats / "unrelated.txt").write_text("kept")

    def text(port: int, http_port: int) -> str:
        return config(
            port,
            http_port,
            monitoring=f"enable_statistics = true\nstats_export_interval = 1\n"
            f'stats_directory = "{stats}"\nstats_retention_days = 7',
        )

    with daemon_with_http(tmp_path, text) as (d, _http_port):
        for _ in range(5):
            assert sntp_query("127.0.0.1", d.port) is not None
        today = list(stats.glob("stats-2*.jsonl"))

        def exported() -> bool:
            files = [p for p in stats.glob("stats-*.jsonl") if "2001" not in p.name]
            return bool(files) and len(files[0].read_text().splitlines()) >= 2

        assert wait_for(exported, timeout=6.0)
    files = [p for p in stats.glob("stats-*.jsonl") if "2001" not in p.name]
    assert len(files) in (1, 2), today  # 2 only across midnight UTC
    records = [json.loads(x) for f in files for x in f.read_text().splitlines()]
    assert records[-1]["counters"]["received"] >= 5
    assert records[-1]["sync"]["stratum"] == 3
    assert "too_short" in records[-1]["drops"]
    assert not (stats / "stats-2001-01-01.jsonl").exists()
    assert (stats / "unrelated.txt").exists()
