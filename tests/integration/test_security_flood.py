"""A live flood from many distinct spoofed source addresses, inside a network namespace.

The test creates a namespace with only loopback; a raw socket in it sends
requests from 50,000 distinct addresses of 127.0.0.0/8 (all local to that
namespace's loopback, so nothing can leave it) at a paced rate, while a
legitimate client polls at 10 requests per second. Pass: the legitimate
client keeps being served, the flood is rate limited at admission, and the
workers' memory does not grow with the number of sources. Bounded in count
(50,000 + 125 datagrams) and time (a few seconds). The 1,000,000-source
version runs in process against the pipeline (tests/unit/server/).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simple_ntpd.runtime.control_socket import request
from tests.integration.helpers import IS_ROOT, NetNs, basic_config, running_daemon

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not IS_ROOT, reason="needs root for a network namespace and a raw socket"),
]

PORT = 12123
SOURCES = 50_000
RATE = 20_000  # spoofed datagrams per second

FLOOD = r"""
import json, socket, struct, sys, time
port, n, rate = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)  # IP_HDRINCL
legit = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
legit.bind(("127.0.0.1", 0))
legit.setblocking(False)
dst = socket.inet_aton("127.0.0.1")
payload = struct.pack("!B47x", 0x23)
sent_legit, answered, xmts = 0, 0, set()

def ask():
    global sent_legit
    xmt = 0x5EED0000 + sent_legit
    legit.sendto(struct.pack("!B39xQ", 0x23, xmt), ("127.0.0.1", port))
    xmts.add(xmt)
    sent_legit += 1

def drain():
    global answered
    while True:
        try:
            data = legit.recv(512)
        except BlockingIOError:
            return
        if len(data) >= 48 and data[1] != 0 and struct.unpack("!Q", data[24:32])[0] in xmts:
            answered += 1

for _ in range(5):  # known before the flood starts
    ask()
    time.sleep(0.05)
drain()
start = time.monotonic()
deadline = start + 3 * n / rate + 10
for i in range(n):
    src = bytes((127, 1 + (i >> 16), (i >> 8) & 255, i & 255))
    # IPv4 header: the kernel fills in checksum and total length (raw(7), IP_HDRINCL).
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0, 64, 17, 0, src, dst)
    udp = struct.pack("!HHHH", 1024 + (i % 60000), port, 8 + 48, 0)  # checksum 0: none
    raw.sendto(ip + udp + payload, ("127.0.0.1", 0))
    if i % (int(rate) // 10) == 0:
        ask()
        drain()
    if i % 500 == 0:
        ahead = start + i / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        if time.monotonic() > deadline:
            break
time.sleep(0.3)
drain()
print(json.dumps({"sent": i + 1, "legit_sent": sent_legit, "legit_answered": answered,
                  "seconds": time.monotonic() - start}))
"""


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_live_flood_from_distinct_sources_keeps_serving_legitimate_client(tmp_path: Path) -> None:
    ctl = tmp_path / "ctl.sock"
    cfg = basic_config(
        PORT,
        ipv6=False,
        workers=2,
        security="\n".join(
            [
                "enable_rate_limiting = true",
                "max_queries_per_minute = 1200",
                "rate_limit_burst = 8",
                "enable_ddos_protection = true",
            ]
        ),
        extra=(
            f'\n[monitoring]\ncontrol_socket = "{ctl}"\n'
            # Replace the [network] defaults basic_config does not set.
        ),
    ).replace(
        "[ntp_server]", "max_clients = 2000\nmax_connections_per_second = 500\n\n[ntp_server]"
    )
    with NetNs() as ns, running_daemon(tmp_path, cfg, PORT, netns=ns.name) as d:
        workers = [
            int(p)
            for p in subprocess.run(
                ["pgrep", "-P", str(d.proc.pid)], capture_output=True, text=True, check=False
            ).stdout.split()
        ]
        assert workers
        rss_before = {pid: _rss_kb(pid) for pid in workers}
        r = subprocess.run(
            [*ns.prefix(), sys.executable, "-c", FLOOD, str(PORT), str(SOURCES), str(RATE)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert r.returncode == 0, r.stderr
        result = json.loads(r.stdout)
        time.sleep(0.3)
        totals = request(str(ctl), "counters")
        counts = {**totals["counters"], **totals["drops"]}  # type: ignore[dict-item]
        rss_after = {pid: _rss_kb(pid) for pid in workers}

    assert result["sent"] == SOURCES
    # The legitimate client, known before the flood, keeps being served.
    assert result["legit_answered"] >= 0.9 * result["legit_sent"], result
    # Admission: at most ~500 new clients per second per worker got in; the
    # rest of the flood was dropped by the rate limiter, not answered.
    seconds = result["seconds"]
    admitted_bound = 2 * 500 * (seconds + 2)
    assert counts["rate_limited"] >= SOURCES - admitted_bound, (counts, result)
    assert counts["responded"] <= admitted_bound + result["legit_sent"] + 10, (counts, result)
    # Memory: the client table is fixed at start; 50,000 sources add nothing
    # that grows with them (allow 4 MB of allocator noise per worker).
    for pid, before in rss_before.items():
        assert rss_after[pid] - before < 4096, (pid, before, rss_after[pid])
