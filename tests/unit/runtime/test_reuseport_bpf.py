"""Source-address steering in a real SO_REUSEPORT group on loopback."""

from __future__ import annotations

import select
import socket
import time
from collections import defaultdict

import pytest

from simple_ntpd.runtime.reuseport_bpf import attach_source_steering, build_program, expected_index

N_SOCKETS = 4


def _group(family: int, host: str, n: int) -> list[socket.socket]:
    socks: list[socket.socket] = []
    port = 0
    for _ in range(n):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((host, port))
        port = s.getsockname()[1]
        s.setblocking(False)
        socks.append(s)
    return socks


def _collect(socks: list[socket.socket], expected: int) -> dict[str, set[int]]:
    """Receive until ``expected`` datagrams arrived or 5 s passed; source -> socket indexes."""
    seen: dict[str, set[int]] = defaultdict(set)
    got = 0
    deadline = time.monotonic() + 5.0
    while got < expected and time.monotonic() < deadline:
        ready, _, _ = select.select(socks, [], [], 0.2)
        for s in ready:
            while True:
                try:
                    _, addr = s.recvfrom(64)
                except BlockingIOError:
                    break
                seen[addr[0]].add(socks.index(s))
                got += 1
    assert got == expected
    return seen


def _send_from(family: int, src: str, dst: tuple[str, int], count: int) -> None:
    # A fresh socket per datagram: a new source port each time, so only the
    # address is common to all of a client's packets.
    for _ in range(count):
        with socket.socket(family, socket.SOCK_DGRAM) as c:
            c.bind((src, 0))
            c.sendto(b"x" * 48, dst)


def test_ipv4_sources_stick_to_one_socket() -> None:
    socks = _group(socket.AF_INET, "127.0.0.1", N_SOCKETS)
    try:
        attach_source_steering(socks[0], N_SOCKETS)
        dst = socks[0].getsockname()
        sources = [f"127.0.0.{i}" for i in range(1, 41)] + ["127.1.2.3", "127.200.0.9"]
        for src in sources:
            _send_from(socket.AF_INET, src, dst, 5)
        seen = _collect(socks, 5 * len(sources))
        assert set(seen) == set(sources)
        for src, idx in seen.items():
            assert idx == {expected_index(src, N_SOCKETS)}, src
        # The hash spreads clients: every socket gets some.
        assert {i for idx in seen.values() for i in idx} == set(range(N_SOCKETS))
    finally:
        for s in socks:
            s.close()


def test_aggregation_prefix_steers_a_whole_24() -> None:
    socks = _group(socket.AF_INET, "127.0.0.1", N_SOCKETS)
    try:
        attach_source_steering(socks[0], N_SOCKETS, ipv4_prefix=24)
        dst = socks[0].getsockname()
        sources = [f"127.0.{net}.{host}" for net in range(8) for host in (1, 77, 200)]
        for src in sources:
            _send_from(socket.AF_INET, src, dst, 2)
        seen = _collect(socks, 2 * len(sources))
        for net in range(8):
            idx = set().union(*(seen[f"127.0.{net}.{h}"] for h in (1, 77, 200)))
            assert idx == {expected_index(f"127.0.{net}.0", N_SOCKETS, ipv4_prefix=24)}
    finally:
        for s in socks:
            s.close()


def _ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback_available(), reason="no IPv6 loopback in this sandbox")
def test_ipv6_and_mapped_sources_on_dual_stack_group() -> None:
    socks = []
    port = 0
    for _ in range(N_SOCKETS):
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("::", port))
        port = s.getsockname()[1]
        s.setblocking(False)
        socks.append(s)
    try:
        attach_source_steering(socks[0], N_SOCKETS)
        v4_sources = [f"127.0.0.{i}" for i in range(1, 21)]
        for src in v4_sources:
            _send_from(socket.AF_INET, src, ("127.0.0.1", port), 3)
        _send_from(socket.AF_INET6, "::1", ("::1", port), 3)
        seen = _collect(socks, 3 * len(v4_sources) + 3)
        assert seen["::1"] == {expected_index("::1", N_SOCKETS)}
        for src in v4_sources:
            mapped = f"::ffff:{src}"
            assert seen[mapped] == {expected_index(mapped, N_SOCKETS)}, src
    finally:
        for s in socks:
            s.close()


def test_program_shape() -> None:
    prog = build_program(4)
    assert len(prog) < 40
    assert prog[-1] == (0x16, 0, 0, 0)  # RET A
    with pytest.raises(ValueError):
        build_program(0)
    with pytest.raises(ValueError):
        build_program(4, ipv4_prefix=33)


def test_expected_index_model() -> None:
    assert expected_index("192.0.2.1", 1) == 0
    assert expected_index("::ffff:192.0.2.1", 8) == expected_index("192.0.2.1", 8)
    assert expected_index("2001:db8::1", 8, ipv6_prefix=64) == expected_index(
        "2001:db8::ffff", 8, ipv6_prefix=64
    )
    spread = {expected_index(f"10.0.{i}.{j}", 8) for i in range(4) for j in range(64)}
    assert spread == set(range(8))
