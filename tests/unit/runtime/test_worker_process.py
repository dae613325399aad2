"""A worker process end to end: both of its loops answer, count and stop on SIGTERM.

Forked like the supervisor forks it, over a v4 and a v6 socket: the lanes (the
first in the worker's main thread, the second in a thread of its own), and the
epoll fallback used where libc has no recvmmsg/sendmmsg.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import struct
import time
from collections.abc import Iterator

import pytest
from tests.unit.server.test_pipeline import SYNC, request

from simple_ntpd.runtime import mmsg, worker
from simple_ntpd.runtime.shm import SharedRegion
from simple_ntpd.runtime.sockets import SO_TIMESTAMPNS
from simple_ntpd.server.pipeline import RequestPipeline
from simple_ntpd.stats import Counter


def _socket(family: int, host: str) -> socket.socket:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.bind((host, 0))
    return s


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    socks = [_socket(socket.AF_INET, "127.0.0.1")]
    with contextlib.suppress(OSError):  # no IPv6 loopback here: the v4 socket alone
        socks.append(_socket(socket.AF_INET6, "::1"))
    yield socks
    for s in socks:
        s.close()


def _ask(server: socket.socket, xmt: int) -> bytes:
    with socket.socket(server.family, socket.SOCK_DGRAM) as c:
        c.settimeout(2.0)
        c.sendto(request(xmt=xmt), server.getsockname()[:2])
        return c.recv(100)


def _exit_code(pid: int, within: float) -> int | None:
    """The child's exit code once it exits, or None if it is still running after ``within`` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    return None


def _fork_worker(
    sockets: list[socket.socket],
    pipeline: type[RequestPipeline] = RequestPipeline,
    *,
    batched: bool = True,
) -> tuple[int, SharedRegion]:
    """Fork a worker over ``sockets`` as the supervisor does; its pid and counter region."""
    region = SharedRegion(slots=1)
    region.writer().publish(SYNC)
    spec = worker.WorkerSpec(
        index=0, slot=0, sockets=sockets, max_packet_size=2048, cpus=None, parent_pid=os.getpid()
    )
    pid = os.fork()
    if pid == 0:  # the worker
        status = 2
        try:
            if not batched:
                mmsg._recvmmsg = None  # as on a libc without it
            status = worker.run_worker(spec, region, pipeline)
        finally:
            os._exit(status)
    return pid, region


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, ChildProcessError):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


@pytest.mark.parametrize("batched", [True, False], ids=["lanes", "epoll-fallback"])
def test_worker_answers_counts_and_stops(sockets: list[socket.socket], batched: bool) -> None:
    if batched and not mmsg.available():
        pytest.skip("no recvmmsg/sendmmsg in this libc")
    pid, region = _fork_worker(sockets, batched=batched)
    try:
        for k, server in enumerate(sockets):
            reply = _ask(server, xmt=100 + k)
            assert struct.unpack_from("!Q", reply, 24)[0] == 100 + k
            assert reply[1] == SYNC.stratum
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if region.read_slot(0)[Counter.RESPONDED] == len(sockets):
                break
            time.sleep(0.01)
        assert region.read_slot(0)[Counter.RESPONDED] == len(sockets)  # flushed when quiet
        started = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        assert _exit_code(pid, within=3.0) == 0, "the worker did not stop within 3 s of SIGTERM"
        # Both lanes, the thread's included, see the stop at once, not at a timeout.
        assert time.monotonic() - started < 1.0
    finally:
        _kill(pid)


class _Exploding(RequestPipeline):
    """A pipeline with a bug: it raises on the request whose transmit timestamp is 666."""

    def answer(self, data, rx_ns, addr, port):  # type: ignore[no-untyped-def]
        if bytes(data[40:48]) == struct.pack("!Q", 666):
            raise RuntimeError("boom")
        return super().answer(data, rx_ns, addr, port)


@pytest.mark.skipif(not mmsg.available(), reason="no recvmmsg/sendmmsg in this libc")
@pytest.mark.parametrize("lane", [0, 1], ids=["main-thread-lane", "thread-lane"])
def test_a_lane_that_fails_takes_the_worker_down(sockets: list[socket.socket], lane: int) -> None:
    """The supervisor restarts a worker that exits; a worker must not live on half-dead."""
    if lane >= len(sockets):
        pytest.skip("no IPv6 loopback here: no second lane")
    pid, _ = _fork_worker(sockets, _Exploding)
    try:
        assert struct.unpack_from("!Q", _ask(sockets[lane], xmt=5), 24)[0] == 5  # serving
        with socket.socket(sockets[lane].family, socket.SOCK_DGRAM) as c:
            c.sendto(request(xmt=666), sockets[lane].getsockname()[:2])
        assert _exit_code(pid, within=3.0) == 1, "the worker kept running with a dead lane"
    finally:
        _kill(pid)


def _wakeups(pid: int) -> int:
    """Voluntary context switches of all the process's threads: one per wait that ended."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/status") as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
    return total


@pytest.mark.skipif(not mmsg.available(), reason="no recvmmsg/sendmmsg in this libc")
def test_an_idle_worker_wakes_about_once_a_second_per_socket(
    sockets: list[socket.socket],
) -> None:
    pid, region = _fork_worker(sockets)
    try:
        for k, server in enumerate(sockets):  # traffic first: each lane on its short timeout
            assert struct.unpack_from("!Q", _ask(server, xmt=7 + k), 24)[0] == 7 + k
        time.sleep(0.3)  # flushed and back on the idle timeout
        before = _wakeups(pid)
        time.sleep(3.0)
        woke = _wakeups(pid) - before
        # About 3 per socket at 1 s, and a few more when the lanes' timeouts meet at the
        # interpreter lock; with the 50 ms timeout kept it was about 55 per socket.
        assert woke <= 8 * len(sockets), f"{woke} wakeups in 3 s of idling"
        # Traffic after idling is answered at once, and counted within the short timeout.
        assert struct.unpack_from("!Q", _ask(sockets[0], xmt=99), 24)[0] == 99
        deadline = time.monotonic() + 0.5
        while region.read_slot(0)[Counter.RESPONDED] != len(sockets) + 1:
            assert time.monotonic() < deadline, "counts not flushed within 0.5 s of going quiet"
            time.sleep(0.01)
        os.kill(pid, signal.SIGTERM)
        assert _exit_code(pid, within=3.0) == 0
    finally:
        _kill(pid)


PR_SET_CHILD_SUBREAPER = 36


@pytest.mark.skipif(not mmsg.available(), reason="no recvmmsg/sendmmsg in this libc")
def test_a_worker_whose_main_process_dies_exits(sockets: list[socket.socket]) -> None:
    """An orphaned worker notices within its idle timeout (the test adopts it to see it exit)."""
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    read_end, write_end = os.pipe()
    main = os.fork()
    if main == 0:  # a stand-in for the main process: forks the worker, then dies
        status = 2
        try:
            os.write(write_end, struct.pack("=i", _fork_worker(sockets)[0]))
            status = 0
        finally:
            os._exit(status)
    pid = 0
    try:
        pid = struct.unpack("=i", os.read(read_end, 4))[0]
        assert os.waitpid(main, 0)[1] == 0
        assert struct.unpack_from("!Q", _ask(sockets[0], xmt=3), 24)[0] == 3  # still serving
        assert _exit_code(pid, within=4.0) == 0, "the orphaned worker kept running"
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        os.close(read_end)
        os.close(write_end)
        if pid:
            _kill(pid)
