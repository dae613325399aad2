"""pyecho: the cheapest NTP "server" CPython can run, a floor for simple-ntpd.

The same receive loop as a simple-ntpd worker (epoll, recvmmsg through
runtime/mmsg.py, one sendto per reply) around no NTP logic at all: each
48-byte request gets a mode-4 packet echoing its transmit timestamp as origin,
like benchmarks/reflector.c. What it costs per response is what the
interpreter adds to the kernel before simple-ntpd does any work of its own.

Bounded: loopback only, exits after LIFETIME seconds. Usage: pyecho.py PORT LIFETIME_S
"""

from __future__ import annotations

import gc
import select
import socket
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from simple_ntpd.runtime import mmsg

SO_TIMESTAMPNS = 35


def main() -> None:
    port, lifetime = int(sys.argv[1]), float(sys.argv[2])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", port))
    sock.setblocking(False)
    ep = select.epoll()
    ep.register(sock.fileno(), select.EPOLLIN)
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    batch = mmsg.RecvBatch(2049)
    vec, data, _ctl, names = batch.views()
    unpack_len = struct.Struct("=I").unpack_from
    unpack_name = struct.Struct("!HH4s").unpack_from
    out = bytearray(48)
    out[1] = 1  # stratum 1: a stratum-0 reply is a kiss-o'-death to the load generator
    fd, sendto, ntop = sock.fileno(), sock.sendto, socket.inet_ntop
    deadline = time.monotonic() + lifetime
    while time.monotonic() < deadline:
        if not ep.poll(0.5):
            continue
        while True:
            n = batch.recv(fd)
            for i in range(n):
                off = i * batch.bufsize
                if unpack_len(vec, i * mmsg.MMSGHDR_LEN + 56)[0] < 48:
                    continue
                _family, src_port, a4 = unpack_name(names, i * mmsg.NAME_LEN)
                out[0] = 0x24
                out[24:32] = data[off + 40 : off + 48]
                sendto(out, (ntop(socket.AF_INET, a4), src_port))
            if n < batch.n:
                break


if __name__ == "__main__":
    main()
