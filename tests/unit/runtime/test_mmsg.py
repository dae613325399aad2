"""recvmmsg through ctypes: lengths, kernel timestamps, sources and ancillary data."""

from __future__ import annotations

import errno
import socket
import struct
import time

import pytest

from simple_ntpd.runtime import mmsg
from simple_ntpd.runtime.sockets import IP_PKTINFO, IPV6_RECVPKTINFO, SO_TIMESTAMPNS

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


def _queue(server: socket.socket, *clients: tuple[socket.socket, bytes]) -> mmsg.RecvBatch:
    for client, payload in clients:
        client.sendto(payload, server.getsockname())
    time.sleep(0.05)
    batch = mmsg.RecvBatch(2049, n=8)
    assert batch.recv(server.fileno()) == len(clients)
    return batch


def test_send_batch_answers_each_source_with_its_reply() -> None:
    with (
        receiver(socket.AF_INET, "127.0.0.1") as server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b,
    ):
        a.bind(("127.0.0.2", 0))
        b.bind(("127.0.0.3", 0))
        a.settimeout(1)
        b.settimeout(1)
        batch = _queue(server, (a, b"1" * 48), (b, b"2" * 48), (a, b"3" * 48))
        replies = mmsg.SendBatch(batch)
        # Datagram 1 is dropped: datagram 2's reply goes out as reply 1.
        replies.payload[0:48] = b"A" * 48
        replies.payload[48:96] = b"C" * 48
        batch.move_source(2, 1)
        assert replies.send(server.fileno(), 2) == []
        assert {a.recv(100), a.recv(100)} == {b"A" * 48, b"C" * 48}
        b.settimeout(0.2)
        with pytest.raises(TimeoutError):
            b.recv(100)


def test_send_batch_skips_a_refused_reply_and_sends_the_rest() -> None:
    with (
        receiver(socket.AF_INET, "127.0.0.1") as server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a,
    ):
        a.bind(("127.0.0.2", 0))
        a.settimeout(1)
        batch = _queue(server, (a, b"x" * 48), (a, b"y" * 48), (a, b"z" * 48))
        replies = mmsg.SendBatch(batch)
        for k in range(3):
            replies.payload[48 * k : 48 * k + 48] = bytes([65 + k]) * 48
        # Reply 1 to the broadcast address without SO_BROADCAST: the kernel refuses it.
        names = batch.views()[3]
        struct.pack_into("=H", names, mmsg.NAME_LEN, socket.AF_INET)
        struct.pack_into("!H4s", names, mmsg.NAME_LEN + 2, 9, b"\xff\xff\xff\xff")
        failed = replies.send(server.fileno(), 3)
        assert failed == [(1, errno.EACCES)]
        assert {a.recv(100), a.recv(100)} == {b"A" * 48, b"C" * 48}


def test_send_batch_sets_the_source_address_of_each_reply_on_a_wildcard_socket() -> None:
    with (
        receiver(socket.AF_INET, "0.0.0.0") as server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a,
    ):
        server.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        port = server.getsockname()[1]
        a.bind(("127.0.0.1", 0))
        a.settimeout(1)
        for dest in ("127.0.0.9", "127.0.0.1", "127.0.0.77"):
            a.sendto(b"q" * 48, (dest, port))
        time.sleep(0.05)
        batch = mmsg.RecvBatch(2049, n=8)
        assert batch.recv(server.fileno()) == 3
        replies = mmsg.SendBatch(batch, socket.AF_INET)
        assert replies.pktinfo_len == 12
        for k in range(3):
            info = batch.control(k, socket.IPPROTO_IP, IP_PKTINFO)
            assert info is not None
            # in_pktinfo.ipi_spec_dst (octets 4..8) = the request's destination (ipi_addr)
            at = k * mmsg.CONTROL_LEN + 16 + 4
            replies.control[at : at + 4] = info[8:12]
            replies.payload[48 * k : 48 * k + 48] = bytes([k]) * 48
        assert replies.send(server.fileno(), 3) == []
        got = {}
        for _ in range(3):
            data, source = a.recvfrom(100)
            got[data[0]] = source
        assert got == {0: ("127.0.0.9", port), 1: ("127.0.0.1", port), 2: ("127.0.0.77", port)}
