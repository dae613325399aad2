"""recvmmsg through ctypes: lengths, kernel timestamps, sources and ancillary data."""

from __future__ import annotations

import socket
import time

import pytest

from simple_ntpd.runtime import mmsg
from simple_ntpd.runtime.sockets import IPV6_RECVPKTINFO, SO_TIMESTAMPNS

pytestmark = pytest.mark.skipif(not mmsg.available(), reason="no recvmmsg in this libc")


def receiver(family: int, host: str) -> socket.socket:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.bind((host, 0))
    return s


def test_batch_reads_lengths_sources_and_timestamps() -> None:
    with receiver(socket.AF_INET, "127.0.0.1") as r, socket.socket() as _:
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.bind(("127.0.0.2", 0))
        before = time.time_ns()
        for i in range(5):
            sender.sendto(bytes([i]) * (48 + i), r.getsockname())
        time.sleep(0.05)
        batch = mmsg.RecvBatch(2049, n=4)
        assert batch.recv(r.fileno()) == 4  # bounded by the batch size
        for i in range(4):
            assert bytes(batch.data(i)) == bytes([i]) * (48 + i)
            assert batch.source(i) == ("127.0.0.2", sender.getsockname()[1])
            ts = batch.timestamp_ns(i)
            assert before <= ts <= time.time_ns()
        assert batch.recv(r.fileno()) == 1
        assert bytes(batch.data(0)) == bytes([4]) * 52
        assert batch.recv(r.fileno()) == 0  # empty queue: a return value, not an exception
        sender.close()


def test_oversized_datagram_is_truncated_to_the_buffer() -> None:
    with receiver(socket.AF_INET, "127.0.0.1") as r:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x" * 3000, r.getsockname())
        time.sleep(0.02)
        batch = mmsg.RecvBatch(100)
        assert batch.recv(r.fileno()) == 1
        assert len(batch.data(0)) == 100


def test_ipv6_source_and_pktinfo() -> None:
    with receiver(socket.AF_INET6, "::1") as r:
        r.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.sendto(b"y" * 60, r.getsockname()[:2])
        time.sleep(0.02)
        batch = mmsg.RecvBatch(2049)
        assert batch.recv(r.fileno()) == 1
        assert batch.source(0) == ("::1", s.getsockname()[1])
        info = batch.control(0, socket.IPPROTO_IPV6, getattr(socket, "IPV6_PKTINFO", 50))
        assert info is not None and info[:16] == socket.inet_pton(socket.AF_INET6, "::1")
        assert batch.timestamp_ns(0) > 0
        s.close()
