"""pyecho: the cheapest NTP "server" CPython can run, a floor for simple-ntpd.

The same receive loop as a simple-ntpd worker lane (a blocking recvmmsg with
MSG_WAITFORONE and a receive timeout, one sendmmsg per batch, both through
runtime/mmsg.py) around no NTP logic at all: each 48-byte request gets a
mode-4 packet echoing its transmit timestamp as origin, like
benchmarks/reflector.c. What it costs per response is what the interpreter
adds to the kernel before simple-ntpd does any work of its own.

Bounded: loopback only, exits after LIFETIME seconds. Usage: pyecho.py PORT LIFETIME_S
"""

from __future__ import annotations

import ctypes
import gc
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
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", 0, 50_000))
    sock.bind(("127.0.0.1", port))
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    batch = mmsg.RecvBatch(2049)
    replies = mmsg.SendBatch(batch)
    vec, data, _ctl, _names = batch.views()
    payload = replies.payload
    for k in range(replies.n):
        payload[48 * k] = 0x24
        payload[48 * k + 1] = 1  # stratum 1: stratum 0 is a kiss-o'-death to the load generator
    unpack_len = struct.Struct("=I").unpack_from
    recvmmsg, sendmmsg = mmsg.recvmmsg_function(), mmsg.sendmmsg_function()
    # Like the worker, the slots are not restored between calls: on one socket the
    # kernel writes back the same address and control lengths every time.
    recv_vec, batch_n, send_vec = batch.vector, batch.n, replies.vector_address
    fd, bufsize = sock.fileno(), batch.bufsize
    recv_address = ctypes.addressof(recv_vec)
    deadline = time.monotonic() + lifetime
    while time.monotonic() < deadline:
        n = recvmmsg(fd, recv_address, batch_n, mmsg.MSG_WAITFORONE, None)
        k = 0
        for i in range(n):
            if unpack_len(vec, i * mmsg.MMSGHDR_LEN + 56)[0] < 48:
                continue
            if k != i:
                batch.move_source(i, k)
            off = i * bufsize
            payload[48 * k + 24 : 48 * k + 32] = data[off + 40 : off + 48]
            k += 1
        if k:
            sendmmsg(fd, send_vec, k, mmsg.MSG_DONTWAIT)


if __name__ == "__main__":
    main()
