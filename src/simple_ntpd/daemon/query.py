"""``simple-ntpd query HOST[:PORT]``: the socket side of :mod:`simple_ntpd.sntp`."""

from __future__ import annotations

import argparse
import json
import secrets
import socket
import sys
import time

from simple_ntpd.sntp import SntpInvalid, SntpKiss, SntpResult, build_request, evaluate_reply

EXIT_OK = 0
EXIT_UNREACHABLE = 1
EXIT_KISS = 2
EXIT_UNSYNCHRONIZED = 3


def split_host_port(text: str, default_port: int = 123) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, default_port


def query_once(
    host: str, port: int, timeout: float, version: int = 4
) -> SntpResult | SntpKiss | SntpInvalid | None:
    """One exchange; None when no valid reply came within ``timeout``."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    family, _, _, _, sockaddr = infos[0]
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        transmit_value = secrets.randbits(64)
        request = build_request(transmit_value, version)
        deadline = time.monotonic() + timeout
        t1 = time.time_ns()
        sock.sendto(request, sockaddr)
        last: SntpResult | SntpKiss | SntpInvalid | None = None
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, _addr = sock.recvfrom(2048)
            except TimeoutError:
                break
            t4 = time.time_ns()
            result = evaluate_reply(data, transmit_value, t1, t4)
            if isinstance(result, SntpInvalid):
                last = result  # keep waiting: a spoofed or stale reply must not win
                continue
            return result
        return last if isinstance(last, SntpInvalid) else None


def run_query(args: argparse.Namespace) -> int:
    try:
        host, port = split_host_port(args.server)
    except ValueError:
        print(f"simple-ntpd query: bad server {args.server!r}", file=sys.stderr)
        return EXIT_UNREACHABLE
    status = EXIT_OK
    for i in range(max(1, args.count)):
        if i:
            time.sleep(args.interval)
        try:
            result = query_once(host, port, args.timeout, args.ntp_version)
        except OSError as exc:
            print(f"{args.server}: {exc}", file=sys.stderr)
            return EXIT_UNREACHABLE
        if result is None or isinstance(result, SntpInvalid):
            why = "no reply" if result is None else result.why
            print(f"{args.server}: {why} within {args.timeout:g} s", file=sys.stderr)
            status = max(status, EXIT_UNREACHABLE)
            continue
        if isinstance(result, SntpKiss):
            print(f"{args.server}: kiss-o'-death {result.code}", file=sys.stderr)
            status = max(status, EXIT_KISS)
            continue
        if args.json:
            print(json.dumps({"server": args.server, **result.to_dict()}))
        else:
            print(
                f"{args.server} offset {result.offset:+.6f} delay {result.delay:.6f} "
                f"stratum {result.stratum} refid {result.refid_text()} leap {result.leap} "
                f"version {result.version}"
            )
        if not result.synchronized:
            print(f"{args.server}: server is unsynchronized (leap {result.leap})", file=sys.stderr)
            status = max(status, EXIT_UNSYNCHRONIZED)
    return status
