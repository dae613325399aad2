"""A worker lane serving one batch: replies in order, drops and kisses in between.

The datagrams are queued before the lane starts, so its first ``recvmmsg``
takes them as one batch: the plain replies leave in one ``sendmmsg`` whose
slots no longer line up with the receive slots once something in the batch is
dropped or answered on its own (a kiss-o'-death).
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from tests.unit.server.test_pipeline import SYNC, request

from simple_ntpd.reasons import DropReason
from simple_ntpd.runtime import mmsg, worker
from simple_ntpd.runtime.shm import SharedRegion
from simple_ntpd.runtime.sockets import SO_TIMESTAMPNS
from simple_ntpd.server.acl import AccessList
from simple_ntpd.server.pipeline import RequestPipeline
from simple_ntpd.server.policy import SecurityPolicy
from simple_ntpd.stats import DROP_BASE, Counter

pytestmark = pytest.mark.skipif(not mmsg.available(), reason="no recvmmsg/sendmmsg in this libc")


@pytest.fixture
def server() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.bind(("127.0.0.1", 0))
    yield s
    s.close()


def client(address: str) -> socket.socket:
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind((address, 0))
    c.settimeout(1.0)
    return c


def test_one_batch_with_drops_and_a_kiss(server: socket.socket) -> None:
    region = SharedRegion(slots=1)
    region.writer().publish(SYNC)
    policy = SecurityPolicy(
        access=AccessList.from_cidrs(["127.0.0.0/8"], ["127.0.0.3/32"]), kod_deny=True
    )
    pipeline = RequestPipeline(
        region.reader(), time.time_ns, policy=policy, monotonic=time.monotonic
    )
    spec = worker.WorkerSpec(
        index=0,
        slot=0,
        sockets=[server],
        max_packet_size=2048,
        cpus=None,
        parent_pid=os.getppid(),
        policy=policy,
    )
    a, b, denied, noise = (client(f"127.0.0.{n}") for n in (2, 4, 3, 5))
    where = server.getsockname()
    a.sendto(request(xmt=1), where)
    noise.sendto(b"\x23" * 20, where)  # too short: dropped
    denied.sendto(request(xmt=2), where)  # denied with a kiss, sent on its own
    noise.sendto(request(mode=6), where)  # mode 6: dropped
    b.sendto(request(xmt=3, version=3), where)
    a.sendto(request(xmt=4), where)
    time.sleep(0.05)

    flushes: list[int] = []
    lane = threading.Thread(
        target=worker._serve_lane,
        args=(spec, 0, pipeline, lambda: flushes.append(pipeline.counts[Counter.RESPONDED])),
    )
    lane.start()
    try:
        replies_a = {struct.unpack_from("!Q", a.recv(100), 24)[0] for _ in range(2)}
        reply_b = b.recv(100)
        kiss = denied.recv(100)
        # The socket is quiet now: the counts reach shared memory within the receive timeout.
        deadline = time.monotonic() + 2.0
        while not flushes and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker._Stop.requested = True
        lane.join(2.0)
        worker._Stop.requested = False
    assert not lane.is_alive()
    assert replies_a == {1, 4}
    assert struct.unpack_from("!Q", reply_b, 24)[0] == 3
    assert (reply_b[0] >> 3) & 7 == 3  # version echoed
    assert reply_b[1] == SYNC.stratum
    assert kiss[1] == 0 and kiss[12:16] == b"DENY"
    noise.settimeout(0.2)
    with pytest.raises(TimeoutError):
        noise.recv(100)
    counts = pipeline.counts
    assert counts[Counter.RECEIVED] == 6
    assert counts[Counter.RESPONDED] == 4  # three replies and the kiss
    assert counts[Counter.KOD_DENY] == 1
    assert counts[DROP_BASE + DropReason.TOO_SHORT] == 1
    assert counts[DROP_BASE + DropReason.MODE_CONTROL] == 1
    assert flushes and flushes[-1] == 4  # flushed once the socket went quiet
    for c in (a, b, denied, noise):
        c.close()
