"""A test upstream NTP server: the system clock shifted by a known offset.

Run as a script by the integration tests (a separate process, so it does not
share the test's interpreter): ``python fake_upstream.py PORT OFFSET_S
[--stratum N] [--refid TEXT] [--leap N] [--root-dispersion S]``. It answers
client requests on 127.0.0.1 only and exits when its parent dies or after
``--lifetime`` seconds, whichever is first. ``--address`` picks another
loopback address (127.0.0.0/8) to bind.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import struct
import time

NTP_UNIX = 2_208_988_800
HDR = struct.Struct("!BBbbII4sQQQQ")


def ntp64(unix_ns: int) -> int:
    sec, ns = divmod(unix_ns, 1_000_000_000)
    return ((sec + NTP_UNIX) & 0xFFFFFFFF) << 32 | (ns << 32) // 1_000_000_000


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("offset", type=float)
    p.add_argument("--stratum", type=int, default=1)
    p.add_argument("--refid", default="TEST")
    p.add_argument("--leap", type=int, default=0)
    p.add_argument("--root-dispersion", type=float, default=0.0001)
    p.add_argument("--lifetime", type=float, default=300.0)
    p.add_argument("--address", default="127.0.0.1", help="a loopback address to bind")
    a = p.parse_args()
    parent = os.getppid()
    offset_ns = int(a.offset * 1e9)
    rdisp = int(a.root_dispersion * 65536)
    refid = a.refid.encode()[:4].ljust(4, b"\0")
    deadline = time.monotonic() + a.lifetime
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        if not a.address.startswith("127."):
            raise SystemExit("fake_upstream binds loopback addresses only")
        s.bind((a.address, a.port))
        while time.monotonic() < deadline and os.getppid() == parent:
            if not select.select([s], [], [], 0.5)[0]:
                continue
            data, addr = s.recvfrom(1024)
            rx = time.time_ns() + offset_ns
            if len(data) < 48 or data[0] & 7 != 3:
                continue
            version = (data[0] >> 3) & 7
            tx = time.time_ns() + offset_ns
            s.sendto(
                HDR.pack(
                    (a.leap << 6) | (version << 3) | 4,
                    a.stratum,
                    data[2],
                    -20,
                    0,
                    rdisp,
                    refid,
                    ntp64(rx - 1_000_000_000),
                    int.from_bytes(data[40:48], "big"),
                    ntp64(rx),
                    ntp64(tx),
                ),
                addr,
            )


if __name__ == "__main__":
    main()
