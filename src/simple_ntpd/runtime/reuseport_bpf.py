"""Steer each client (source address) to one worker socket of a SO_REUSEPORT group.

This module owns the classic-BPF program attached with SO_ATTACH_REUSEPORT_CBPF
and the socket option call. Per-client state (the rate limiter) lives in each
worker process; it is exact only if every packet of one client reaches the
same worker, which the kernel's default reuseport choice (a hash of the 4-tuple,
so source port included) does not give.

What the program sees, and how it still reads the source address: for UDP the
kernel runs the reuseport program on the skb after pulling the UDP header
(``reuseport_select_sock`` -> ``run_bpf_filter(..., hdr_len = sizeof(udphdr))``),
so offset 0 is the start of the *UDP payload*, and the IP header at offset 12
is not reachable with ordinary offsets. Classic BPF has two escapes:

* ``SKF_AD_OFF + SKF_AD_PROTOCOL``: the ancillary load of ``skb->protocol``
  (0x0800 IPv4, 0x86DD IPv6), to tell the families apart on a dual-stack
  socket;
* ``SKF_NET_OFF + k``: loads relative to the *network header*, which the pull
  does not move. ``SKF_NET_OFF + 12`` is the IPv4 source address and
  ``SKF_NET_OFF + 8 .. 23`` the IPv6 source address.

The program masks the source to the rate limiter's aggregation prefix (so a
/24 or /64 aggregate also lands on one worker), folds it to 32 bits, mixes it
(xor-shift, multiply by the golden-ratio constant, take the high half) and
returns ``hash % n_sockets``, the index of the socket in the group (sockets
are indexed in the order they joined). A return value outside the group
makes the kernel fall back to its own hash; that cannot happen here.

:func:`expected_index` computes the same function in Python, for tests and
for diagnostics ("which worker owns this client").

Fallback where CBPF cannot be attached (kernel older than 4.5, seccomp, or a
runtime that forbids it): run a single worker for the data plane, or accept
per-worker limits (each worker enforces the full limit, so a client whose
packets are spread over N workers gets up to N times the rate). An eBPF
``SK_REUSEPORT`` program could do the same with a map but needs libbpf; it is
not needed while CBPF works.
"""

from __future__ import annotations

import ctypes
import ipaddress
import socket
import struct

__all__ = [
    "SO_ATTACH_REUSEPORT_CBPF",
    "attach_source_steering",
    "build_program",
    "expected_index",
]

# asm-generic/socket.h
SO_ATTACH_REUSEPORT_CBPF = 51
SO_DETACH_REUSEPORT_BPF = 68
# linux/filter.h
_SKF_AD_OFF = -0x1000
_SKF_AD_PROTOCOL = 0
_SKF_NET_OFF = -0x100000
_ETH_P_IPV6 = 0x86DD
# Classic BPF opcodes (linux/bpf_common.h, linux/filter.h).
_LD_W_ABS = 0x20
_LD_H_ABS = 0x28
_ALU_AND_K = 0x54
_ALU_XOR_X = 0xAC
_ALU_RSH_K = 0x74
_ALU_MUL_K = 0x24
_ALU_MOD_K = 0x94
_TAX = 0x07
_TXA = 0x87
_JEQ_K = 0x15
_JA = 0x05
_RET_A = 0x16
_GOLDEN = 0x9E3779B1  # 2**32 / golden ratio, odd: a multiplicative hash
_U32 = 0xFFFFFFFF

Insn = tuple[int, int, int, int]


def _mask32(bits: int) -> int:
    bits = max(0, min(32, bits))
    return (_U32 << (32 - bits)) & _U32


def build_program(n_sockets: int, ipv4_prefix: int = 32, ipv6_prefix: int = 128) -> list[Insn]:
    """The CBPF program as (code, jt, jf, k) tuples."""
    if not 1 <= n_sockets <= 0xFFFF:
        raise ValueError("n_sockets must be within 1..65535")
    if not 0 <= ipv4_prefix <= 32 or not 0 <= ipv6_prefix <= 128:
        raise ValueError("prefix out of range")
    v6: list[Insn] = []
    for word in range(4):  # fold the masked IPv6 source into A by xor
        v6.append((_LD_W_ABS, 0, 0, (_SKF_NET_OFF + 8 + 4 * word) & _U32))
        v6.append((_ALU_AND_K, 0, 0, _mask32(ipv6_prefix - 32 * word)))
        if word:
            v6.append((_ALU_XOR_X, 0, 0, 0))
        v6.append((_TAX, 0, 0, 0))
    v4: list[Insn] = [
        (_LD_W_ABS, 0, 0, (_SKF_NET_OFF + 12) & _U32),
        (_ALU_AND_K, 0, 0, _mask32(ipv4_prefix)),
        (_TAX, 0, 0, 0),
    ]
    mix: list[Insn] = [
        # A = X ^ (X >> 16); A *= GOLDEN; A >>= 16; A %= n
        (_ALU_RSH_K, 0, 0, 16),
        (_ALU_XOR_X, 0, 0, 0),
        (_ALU_MUL_K, 0, 0, _GOLDEN),
        (_ALU_RSH_K, 0, 0, 16),
        (_ALU_MOD_K, 0, 0, n_sockets),
        (_RET_A, 0, 0, 0),
    ]
    head: list[Insn] = [
        (_LD_H_ABS, 0, 0, (_SKF_AD_OFF + _SKF_AD_PROTOCOL) & _U32),
        # IPv6: fall through into v6; else jump over it to v4.
        (_JEQ_K, 0, len(v6) + 1, _ETH_P_IPV6),
    ]
    # Both family branches leave the folded source in X; after v6 a jump
    # skips v4. The mix starts by copying X back into A.
    return [*head, *v6, (_JA, 0, 0, len(v4)), *v4, (_TXA, 0, 0, 0), *mix]


def _mix(value: int, n_sockets: int) -> int:
    a = value ^ (value >> 16)
    a = (a * _GOLDEN) & _U32
    return (a >> 16) % n_sockets


def expected_index(addr: str, n_sockets: int, ipv4_prefix: int = 32, ipv6_prefix: int = 128) -> int:
    """The socket index the program picks for a packet from ``addr`` (Python model)."""
    ip = ipaddress.ip_address(addr.partition("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # A dual-stack socket sees an IPv4 packet: skb->protocol is IPv4.
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address):
        return _mix(int(ip) & _mask32(ipv4_prefix), n_sockets)
    value = int(ip)
    x = 0
    for word in range(4):
        w = (value >> (96 - 32 * word)) & _U32
        x ^= w & _mask32(ipv6_prefix - 32 * word)
    return _mix(x, n_sockets)


def attach_source_steering(
    sock: socket.socket, n_sockets: int, ipv4_prefix: int = 32, ipv6_prefix: int = 128
) -> None:
    """Attach the steering program to ``sock``'s reuseport group (any member will do).

    Raises:
        OSError: the kernel refused (old kernel, no SO_REUSEPORT on ``sock``).
    """
    prog = build_program(n_sockets, ipv4_prefix, ipv6_prefix)
    filters = b"".join(struct.pack("HBBI", *insn) for insn in prog)
    buf = ctypes.create_string_buffer(filters, len(filters))
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }:
    # the pointer must stay valid during setsockopt, which copies the program.
    fprog = struct.pack("HL", len(prog), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)
