"""Benchmark harness: simple-ntpd against chronyd, same machine, same run.

For each server (chronyd unpacked by scripts/install-test-deps.sh, and simple-ntpd from the repo
virtualenv) and each request rate, it runs the C load generator (benchmarks/loadgen.c) over
loopback and measures:

- the server's CPU time, utime + stime from /proc/PID/stat summed over the server process and all
  its descendants (simple-ntpd forks data-plane workers), before and after the step, divided by the
  number of responses: CPU microseconds per response;
- loss (requests without a response) and client-side latency percentiles, from the load generator;
- the kernel's UDP receive-buffer drop counter (/proc/net/snmp, system-wide) as a cross-check.

It prints a table, the ratios simple-ntpd / chronyd, PASS/FAIL for the performance targets, and
writes everything as JSON to benchmarks/out/. Every server it starts runs in its own process
group and is killed when the run ends, whatever happens. Nothing here touches the system clock:
chronyd runs with -x and serves its local clock; simple-ntpd never steers the clock by default.

Run: .venv/bin/python benchmarks/run.py --help   (`make bench` runs it with the defaults)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import pwd
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO / ".cache" / "bench"
LOADGEN_BIN = BUILD_DIR / "loadgen"
REFLECTOR_BIN = BUILD_DIR / "reflector"
CHRONYD = REPO / ".cache" / "tools" / "chrony" / "usr" / "sbin" / "chronyd"
SIMPLE_NTPD = REPO / ".venv" / "bin" / "simple-ntpd"
OUT_DIR = REPO / "benchmarks" / "out"

# "reflector" (benchmarks/reflector.c) is an optional floor: a bare echo of the request, the least
# latency and CPU per response that the kernel and scheduler of this machine allow.
# "pyecho" (benchmarks/pyecho.py) is the same kind of floor in CPython: simple-ntpd's receive
# loop around no NTP logic, what the interpreter adds before the server does any work.
SERVERS = ("chronyd", "simple-ntpd", "reflector", "pyecho")

# Targets from the performance issue; each is checked for simple-ntpd.
TARGET_NO_LOSS_RATE = 20_000  # no loss at 20,000 requests/s
TARGET_P999_RATE = 10_000  # p99.9 latency under 1 ms at 10,000 requests/s
TARGET_P999_US = 1000.0
TARGET_CPU_RATIO = 1.5  # CPU per response at most 1.5 x chronyd's

READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
NTP_MODE_SERVER = 4  # RFC 5905 section 7.3


class BenchError(Exception):
    """A benchmark step could not run (server did not start, load generator failed, ...)."""


@dataclass(frozen=True, slots=True)
class Step:
    """One load step against one server."""

    server: str
    rate: int
    repeat: int
    duration_s: float
    sent: int
    received: int
    kod: int
    invalid: int
    achieved_rate: float
    loss: float
    latency_us: dict[str, float]
    server_cpu_s: float
    server_processes: int
    server_cpu_by_process: dict[str, float]
    cpu_us_per_response: float | None
    loadgen_cpu_s: float
    udp_rcvbuf_errors: int
    udp_in_errors: int


@dataclass(frozen=True, slots=True)
class Summary:
    """All repeats of one (server, rate): loss over the summed counts, medians for the rest."""

    server: str
    rate: int
    repeats: int
    sent: int
    received: int
    kod: int
    loss: float
    cpu_us_per_response: float | None
    latency_us: dict[str, float]


@dataclass(slots=True)
class ServerRun:
    """A started server: its process (group leader), port and log file."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    first_reply: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Measurement helpers


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, utime + stime + cutime + cstime in clock ticks) for every visible process.

    cutime/cstime hold the time of children the process has already reaped, so a worker that
    exits and is replaced during a step still counts.
    """
    table: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # exited while we looked
        # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
        fields = raw[raw.rindex(")") + 2 :].split()
        # fields[0] is field 3 (state); utime..cstime are fields 14..17 of proc(5).
        ppid = int(fields[1])
        ticks = sum(int(x) for x in fields[11:15])
        table[int(entry.name)] = (ppid, ticks)
    return table


def tree_cpu_seconds(root_pid: int) -> dict[int, float]:
    """CPU seconds (user + system) used so far by root_pid and each of its descendants."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    hz = os.sysconf("SC_CLK_TCK")
    cpu: dict[int, float] = {}
    stack = [root_pid]
    while stack:
        pid = stack.pop()
        if pid in cpu or pid not in table:
            continue
        cpu[pid] = table[pid][1] / hz
        stack.extend(children.get(pid, []))
    return cpu


def udp_counters() -> dict[str, int]:
    """System-wide UDP counters from /proc/net/snmp (RcvbufErrors shows where drops happen)."""
    lines = [ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines()]
    udp = [ln for ln in lines if ln and ln[0] == "Udp:"]
    names, values = udp[0][1:], udp[1][1:]
    return {n: int(v) for n, v in zip(names, values, strict=True)}


def children_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ntp_probe(host: str, port: int, timeout_s: float) -> dict[str, int] | None:
    """Send one NTPv4 client request; return leap/stratum of a mode-4 reply, or None."""
    request = bytes([0x23]) + bytes(47)  # LI 0, VN 4, mode 3 (RFC 5905 section 7.3)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout_s)
        try:
            s.sendto(request, (host, port))
            data = s.recv(1024)
        except OSError:  # timeout, or ECONNREFUSED before the server binds
            return None
    if len(data) < 48 or data[0] & 7 != NTP_MODE_SERVER:
        return None
    leap, stratum = data[0] >> 6, data[1]
    refid = struct.unpack("!I", data[12:16])[0]
    return {"leap": leap, "stratum": stratum, "refid": refid}


# ---------------------------------------------------------------------------------------------
# Servers


def build(binary: Path) -> Path:
    """Compile benchmarks/<name>.c into .cache/bench/<name> when the source is newer."""
    source = REPO / "benchmarks" / f"{binary.name}.c"
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    if binary.exists() and binary.stat().st_mtime >= source.stat().st_mtime:
        return binary
    cmd = ["gcc", "-O2", "-Wall", "-Wextra", "-pthread", "-o", str(binary), str(source)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise BenchError(f"building {binary.name} failed:\n{result.stderr}")
    return binary


def _taskset(cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus] if cpus else []


def chronyd_command(tmp: Path, port: int, cpus: str | None) -> list[str]:
    if not CHRONYD.exists():
        raise BenchError(
            f"{CHRONYD} not found: run `make test-deps` (scripts/install-test-deps.sh)"
        )
    conf = tmp / "chrony.conf"
    conf.write_text(
        "# generated by benchmarks/run.py: a local stratum-1 server, no upstreams\n"
        "local stratum 1\n"
        "allow 127.0.0.1\n"
        f"port {port}\n"
        "cmdport 0\n"
        "bindcmdaddress /\n"  # no Unix command socket either: nothing is created under /run
        f"pidfile {tmp / 'chronyd.pid'}\n"
        f"driftfile {tmp / 'chrony.drift'}\n"
    )
    # -x: never touch the system clock. -d: foreground, log to stderr. chronyd would switch to
    # the _chrony user, which exists only when the chrony package is installed (we only unpack
    # it), so it stays the current user; -U lets it start without root, which -x makes possible.
    cmd = [*_taskset(cpus), str(CHRONYD), "-f", str(conf), "-x", "-d"]
    if os.geteuid() == 0:
        cmd += ["-u", "root"]
    else:
        cmd += ["-U", "-u", pwd.getpwuid(os.geteuid()).pw_name]
    return cmd


def simple_ntpd_config(tmp: Path, port: int, workers: int) -> Path:
    conf = tmp / "simple-ntpd.conf"
    conf.write_text(
        "# generated by benchmarks/run.py\n"
        "[network]\n"
        'listen_address = "127.0.0.1"\n'
        f"listen_port = {port}\n"
        "enable_ipv6 = false\n"
        # A receive buffer that rides out this VM's multi-millisecond stalls (the deployment
        # guide's production configuration sets 25 MiB; chronyd has no such setting).
        "receive_buffer_size = 4194304\n"
        "[ntp_server]\n"
        'reference_clock = "LOCAL"\n'
        "stratum = 1\n"
        'reference_id = "BNCH"\n'
        "[performance]\n"
        f"worker_threads = {workers}\n"
        # Started as root, the daemon would drop to the "ntp" user; keep root here.
        "[security]\n"
        'user = "root"\n'
    )
    return conf


def port_of_config(path: Path) -> tuple[str, int]:
    """listen_address and listen_port of a simple-ntpd configuration file (any of its formats).

    Read with the daemon's own loader, so that whatever the daemon accepts (lists over several
    lines, JSON, YAML) the harness reads the same way; an invalid file is reported here.
    """
    from simple_ntpd.config.load import load_config
    from simple_ntpd.errors import ConfigError

    try:
        network = load_config(path).config.network
    except ConfigError as exc:
        raise BenchError(f"{path}: {exc}") from None
    host = str(network.listen_address)
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, int(network.listen_port)


@contextlib.contextmanager
def running_server(
    name: str, cmd: list[str], host: str, port: int, log: Path
) -> Iterator[ServerRun]:
    """Start a server in its own process group, wait until it answers, always kill it."""
    with log.open("wb") as log_fh:
        proc = subprocess.Popen(
            cmd, stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    run = ServerRun(name=name, proc=proc, port=port, log=log)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise BenchError(f"{name} exited with {proc.returncode}:\n{_tail(log)}")
            reply = ntp_probe(host, port, 0.2)
            if reply is not None:
                run.first_reply = reply
                break
            if time.monotonic() > deadline:
                raise BenchError(f"{name} did not answer within {READY_TIMEOUT_S} s:\n{_tail(log)}")
            time.sleep(0.1)
        yield run
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_TIMEOUT_S)
    # Workers may outlive a leader that exited on SIGTERM: clear the whole group in any case.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_TIMEOUT_S)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------------------------------------
# Steps


def run_step(
    server: ServerRun,
    host: str,
    rate: int,
    duration_s: float,
    args: argparse.Namespace,
    repeat: int = 0,
) -> Step:
    cmd = [
        *_taskset(args.loadgen_cpus),
        str(LOADGEN_BIN),
        "-a", host,
        "-p", str(server.port),
        "-r", str(rate),
        "-d", str(duration_s),
        "-t", str(args.loadgen_threads),
        "-s", str(args.sockets),
        "-i", str(args.tick_us),
    ]  # fmt: skip
    udp_before = udp_counters()
    lg_before = children_cpu_seconds()
    cpu_before = tree_cpu_seconds(server.proc.pid)
    try:
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=duration_s + 30, check=False
        )
    except subprocess.TimeoutExpired as exc:  # loadgen stops by itself; this is a backstop
        raise BenchError(f"loadgen did not finish within {duration_s + 30:.0f} s") from exc
    cpu_after = tree_cpu_seconds(server.proc.pid)
    lg_after = children_cpu_seconds()
    udp_after = udp_counters()
    if result.returncode != 0:
        raise BenchError(f"loadgen failed ({result.returncode}): {result.stderr.strip()}")
    if server.proc.poll() is not None:
        raise BenchError(f"{server.name} died during the {rate}/s step:\n{_tail(server.log)}")
    try:
        out = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise BenchError(f"loadgen printed no JSON: {result.stdout[:200]!r}") from exc
    # Per process, so that a process that appeared during the step counts from zero.
    by_process = {
        ("main" if pid == server.proc.pid else str(pid)): round(t - cpu_before.get(pid, 0.0), 3)
        for pid, t in cpu_after.items()
    }
    cpu = sum(by_process.values())
    received = int(out["received"])
    return Step(
        server=server.name,
        rate=rate,
        repeat=repeat,
        duration_s=float(out["duration_s"]),
        sent=int(out["sent"]),
        received=received,
        kod=int(out["kod"]),
        invalid=int(out["invalid"]),
        achieved_rate=float(out["achieved_rate"]),
        loss=float(out["loss"]),
        latency_us={k: float(v) for k, v in out["latency_us"].items()},
        server_cpu_s=round(cpu, 3),
        server_processes=len(cpu_after),
        server_cpu_by_process=by_process,
        cpu_us_per_response=round(cpu * 1e6 / received, 3) if received else None,
        loadgen_cpu_s=round(lg_after - lg_before, 3),
        udp_rcvbuf_errors=udp_after["RcvbufErrors"] - udp_before["RcvbufErrors"],
        udp_in_errors=udp_after["InErrors"] - udp_before["InErrors"],
    )


def bench_server(
    name: str, tmp: Path, args: argparse.Namespace, repeat: int
) -> tuple[list[Step], dict[str, object]]:
    if name == "chronyd":
        host, port = "127.0.0.1", free_udp_port()
        cmd = chronyd_command(tmp, port, args.server_cpus)
    elif name == "reflector":
        host, port = "127.0.0.1", free_udp_port()
        lifetime = int((args.warmup + args.duration + 2) * len(args.rates)) + 30
        cmd = [*_taskset(args.server_cpus), str(build(REFLECTOR_BIN)), str(port), str(lifetime)]
    elif name == "pyecho":
        host, port = "127.0.0.1", free_udp_port()
        lifetime = int((args.warmup + args.duration + 2) * len(args.rates)) + 30
        script = str(Path(__file__).with_name("pyecho.py"))
        cmd = [*_taskset(args.server_cpus), sys.executable, script, str(port), str(lifetime)]
    else:
        if not SIMPLE_NTPD.exists():
            raise BenchError(f"{SIMPLE_NTPD} not found: run `make` to create the virtualenv")
        if args.simple_ntpd_config:
            conf = Path(args.simple_ntpd_config).resolve()
            host, port = port_of_config(conf)
        else:
            host, port = "127.0.0.1", free_udp_port()
            conf = simple_ntpd_config(tmp, port, args.workers)
        cmd = [*_taskset(args.server_cpus), str(SIMPLE_NTPD), "--config", str(conf), "--foreground"]
    steps: list[Step] = []
    with running_server(name, cmd, host, port, tmp / f"{name}.log") as server:
        info: dict[str, object] = {"command": cmd, "first_reply": server.first_reply}
        if server.first_reply.get("leap") == 3:
            print(f"warning: {name} answers unsynchronized (leap 3)", file=sys.stderr)
        if args.warmup > 0:
            run_step(server, host, min(args.rates), args.warmup, args)
        for rate in args.rates:
            step = run_step(server, host, rate, args.duration, args, repeat)
            print(_row(step), flush=True)
            steps.append(step)
    return steps, info


# ---------------------------------------------------------------------------------------------
# Report


HEADER = (
    f"{'server':<12} {'run':>3} {'rate/s':>8} {'achieved':>9} {'sent':>9} {'loss %':>8} "
    f"{'p50 us':>8} {'p99 us':>8} {'p99.9 us':>9} {'max us':>8} {'cpu s':>7} {'us/resp':>8} "
    f"{'rcvbuf':>7}"
)


def _row(s: Step) -> str:
    per = f"{s.cpu_us_per_response:.2f}" if s.cpu_us_per_response is not None else "-"
    lat = s.latency_us
    return (
        f"{s.server:<12} {s.repeat:>3} {s.rate:>8} {s.achieved_rate:>9.0f} {s.sent:>9} "
        f"{s.loss * 100:>8.3f} {lat['p50']:>8.1f} {lat['p99']:>8.1f} {lat['p99.9']:>9.1f} "
        f"{lat['max']:>8.1f} {s.server_cpu_s:>7.2f} {per:>8} {s.udp_rcvbuf_errors:>7}"
    )


def summarize(steps: list[Step]) -> list[Summary]:
    groups: dict[tuple[str, int], list[Step]] = {}
    for s in steps:
        groups.setdefault((s.server, s.rate), []).append(s)
    out: list[Summary] = []
    for (server, rate), group in groups.items():
        sent = sum(s.sent for s in group)
        answered = sum(s.received + s.kod for s in group)
        cpus = [s.cpu_us_per_response for s in group if s.cpu_us_per_response is not None]
        keys = group[0].latency_us.keys()
        out.append(
            Summary(
                server=server,
                rate=rate,
                repeats=len(group),
                sent=sent,
                received=sum(s.received for s in group),
                kod=sum(s.kod for s in group),
                loss=(sent - min(answered, sent)) / sent if sent else 0.0,
                cpu_us_per_response=round(statistics.median(cpus), 3) if cpus else None,
                latency_us={k: statistics.median(s.latency_us[k] for s in group) for k in keys},
            )
        )
    return out


def _summary_row(s: Summary) -> str:
    per = f"{s.cpu_us_per_response:.2f}" if s.cpu_us_per_response is not None else "-"
    lat = s.latency_us
    return (
        f"{s.server:<12} {s.repeats:>3} {s.rate:>8} {s.sent:>9} {s.loss * 100:>8.3f} "
        f"{lat['p50']:>8.1f} {lat['p99']:>8.1f} {lat['p99.9']:>9.1f} {per:>8}"
    )


def ratios(steps: list[Summary]) -> list[dict[str, object]]:
    """simple-ntpd / chronyd per common rate: CPU per response, p99.9, loss."""
    by = {(s.server, s.rate): s for s in steps}
    out: list[dict[str, object]] = []
    for rate in sorted({s.rate for s in steps}):
        a, b = by.get(("simple-ntpd", rate)), by.get(("chronyd", rate))
        if a is None or b is None:
            continue
        out.append(
            {
                "rate": rate,
                "cpu_per_response": _ratio(a.cpu_us_per_response, b.cpu_us_per_response),
                "p99.9": _ratio(a.latency_us["p99.9"], b.latency_us["p99.9"]),
                "loss": _ratio(a.loss, b.loss),
                "loss_simple_ntpd": a.loss,
                "loss_chronyd": b.loss,
            }
        )
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def targets(steps: list[Summary], server: str) -> list[dict[str, object]]:
    by = {(s.server, s.rate): s for s in steps}
    results: list[dict[str, object]] = []

    def add(name: str, ok: bool | None, detail: str) -> None:
        verdict = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
        results.append({"server": server, "target": name, "result": verdict, "detail": detail})

    s = by.get((server, TARGET_NO_LOSS_RATE))
    name = f"no loss at {TARGET_NO_LOSS_RATE} req/s"
    if s is None:
        add(name, None, "rate not measured")
    else:
        add(name, s.received + s.kod >= s.sent, f"{s.sent - s.received - s.kod} of {s.sent} lost")
    s = by.get((server, TARGET_P999_RATE))
    name = f"p99.9 < {TARGET_P999_US:.0f} us at {TARGET_P999_RATE} req/s"
    if s is None:
        add(name, None, "rate not measured")
    else:
        p = s.latency_us["p99.9"]
        detail = f"p99.9 = {p:.1f} us"
        floor = by.get(("reflector", TARGET_P999_RATE))
        if server != "reflector" and floor is not None:
            fp = floor.latency_us["p99.9"]
            detail += f" (floor: reflector p99.9 = {fp:.1f} us"
            detail += ", so this machine cannot show the target)" if fp >= TARGET_P999_US else ")"
        add(name, s.received > 0 and p < TARGET_P999_US, detail)
    if server == "simple-ntpd":
        name = f"CPU per response <= {TARGET_CPU_RATIO}x chronyd (every common rate)"
        rs = [r for r in ratios(steps) if r["cpu_per_response"] is not None]
        if not rs:
            add(name, None, "needs both servers")
        else:
            worst = max(float(str(r["cpu_per_response"])) for r in rs)
            detail = ", ".join(f"{r['rate']}/s: {r['cpu_per_response']}x" for r in rs)
            add(name, worst <= TARGET_CPU_RATIO, detail)
    return results


def machine_info() -> dict[str, object]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Compare simple-ntpd with chronyd: CPU per response, loss, latency.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--rates", default="10000,20000,50000", help="request rates (req/s), comma list")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per rate step")
    p.add_argument(
        "--servers",
        default="both",
        help="chronyd, simple-ntpd, both, or a comma list adding reflector or pyecho (floors)",
    )
    # One worker by default: chronyd answers from one thread, and on a small machine the load
    # generator needs the other core (a second worker only adds wakeups: docs/benchmarks.md).
    p.add_argument("--workers", type=int, default=1, help="simple-ntpd worker_threads")
    p.add_argument(
        "--simple-ntpd-config",
        metavar="FILE",
        help="run simple-ntpd with this config file instead of the generated one "
        "(its [network] listen_address/listen_port are used; keep it on loopback)",
    )
    p.add_argument("--warmup", type=float, default=1.0, help="unrecorded seconds before steps")
    p.add_argument("--repeat", type=int, default=1, help="runs per server, taking turns")
    p.add_argument("--tick-us", type=int, default=200, help="load generator pacing tick (us)")
    p.add_argument("--loadgen-threads", type=int, default=1, help="load generator threads")
    p.add_argument("--sockets", type=int, default=8, help="source ports per loadgen thread")
    p.add_argument(
        "--pin",
        action="store_true",
        help="pin the load generator to CPU 0 and the servers to the other CPUs (taskset)",
    )
    p.add_argument("--out", default=str(OUT_DIR), help="directory for the JSON result")
    args = p.parse_args(argv)
    args.rates = [int(r) for r in str(args.rates).split(",") if r.strip()]
    if not args.rates or min(args.rates) <= 0 or max(args.rates) > 500_000:
        p.error("--rates: positive integers up to 500000")
    if not 0 < args.duration <= 120:
        p.error("--duration: more than 0 and at most 120 seconds")
    if not 0 <= args.warmup <= 30:
        p.error("--warmup: 0 to 30 seconds")
    if not 1 <= args.repeat <= 10:
        p.error("--repeat: 1 to 10")
    if not 10 <= args.tick_us <= 100_000:
        p.error("--tick-us: 10 to 100000")
    if not 1 <= args.loadgen_threads <= 16 or not 1 <= args.sockets <= 64:
        p.error("--loadgen-threads: 1 to 16, --sockets: 1 to 64")
    servers = ["chronyd", "simple-ntpd"] if args.servers == "both" else args.servers.split(",")
    for s in servers:
        if s not in SERVERS:
            p.error(f"--servers: unknown server {s!r}")
    args.servers = servers
    args.loadgen_cpus = None
    args.server_cpus = None
    if args.pin:
        ncpu = os.cpu_count() or 1
        if ncpu < 2 or shutil.which("taskset") is None:
            p.error("--pin needs taskset and at least 2 CPUs")
        args.loadgen_cpus = "0"
        args.server_cpus = f"1-{ncpu - 1}" if ncpu > 2 else "1"
    return args


def _interrupted(signum: int, _frame: object) -> None:
    # SIGTERM/SIGHUP would end Python without running `finally`; as an exception, the servers
    # started so far are still stopped on the way out.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGHUP, _interrupted)
    args = parse_args(argv)
    build(LOADGEN_BIN)
    started = dt.datetime.now(dt.UTC)
    steps: list[Step] = []
    servers_info: dict[str, object] = {}
    errors: dict[str, str] = {}
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="simple-ntpd-bench-") as tmpdir:
        # Servers take turns within each repeat, so a slow spell of a shared machine does not
        # land on one server only.
        for repeat in range(args.repeat):
            for name in args.servers:
                if name in errors:
                    continue
                tmp = Path(tmpdir) / f"{name}-{repeat}"
                tmp.mkdir()
                try:
                    server_steps, info = bench_server(name, tmp, args, repeat)
                except BenchError as exc:
                    errors[name] = str(exc)
                    print(f"{name}: ERROR: {exc}", file=sys.stderr)
                    continue
                steps += server_steps
                servers_info[name] = info

    summaries = summarize(steps)
    rs = ratios(summaries)
    verdicts: list[dict[str, object]] = []
    for name in args.servers:
        if any(s.server == name for s in steps):
            verdicts += targets(summaries, name)
    report = {
        "started": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "options": {k: v for k, v in vars(args).items() if k not in ("out",)},
        "servers": servers_info,
        "steps": [asdict(s) for s in steps],
        "summary": [asdict(s) for s in summaries],
        "ratios": rs,
        "targets": verdicts,
        "errors": errors,
    }
    # Written before the report is printed, so the numbers survive a closed stdout.
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / f"bench-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out_file.write_text(json.dumps(report, indent=2) + "\n")

    if args.repeat > 1:
        print(f"\nsummary: loss over all {args.repeat} runs, medians for the rest")
        print(
            f"{'server':<12} {'n':>3} {'rate/s':>8} {'sent':>9} {'loss %':>8} {'p50 us':>8} "
            f"{'p99 us':>8} {'p99.9 us':>9} {'us/resp':>8}"
        )
        for sm in summaries:
            print(_summary_row(sm))
    if rs:
        print("\nratios simple-ntpd / chronyd")
        for r in rs:
            print(
                f"  {r['rate']:>7}/s  cpu/response {r['cpu_per_response']}  "
                f"p99.9 {r['p99.9']}  loss {r['loss_simple_ntpd']:.4%} vs {r['loss_chronyd']:.4%}"
            )
    if verdicts:
        print("\ntargets")
        for v in verdicts:
            print(f"  {v['result']:<4}  {v['server']:<12} {v['target']}: {v['detail']}")
    print(f"\nwrote {out_file}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
