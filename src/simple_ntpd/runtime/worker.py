"""A data-plane worker process: receive, answer, send, count. Nothing else.

The loop is a plain epoll loop, not asyncio: per datagram it does one
``recvmsg`` (with the kernel receive timestamp), one call into the pure
:class:`~simple_ntpd.server.pipeline.RequestPipeline`, and one ``sendto``.
Sockets are drained in bounded batches; counters are copied to shared memory
after each batch, so what the main process reports is exact once the
sockets are idle and at most one batch behind under load.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import select
import signal
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from simple_ntpd.daemon.logging_setup import QUERY_LOGGER, describe_query
from simple_ntpd.reasons import DropReason
from simple_ntpd.runtime import mmsg
from simple_ntpd.runtime.shm import SharedRegion
from simple_ntpd.runtime.sockets import IP_PKTINFO, SO_TIMESTAMPNS, socket_is_wildcard
from simple_ntpd.server.pipeline import RequestPipeline, security_summary
from simple_ntpd.server.policy import SecurityPolicy
from simple_ntpd.stats import DROP_BASE, Counter

log = logging.getLogger(__name__)
_query_log = logging.getLogger(QUERY_LOGGER)

IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
_TIMESPEC = struct.Struct("@qq")
_ANC_SPACE = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(20)
_BATCH = 256
_MAX_BATCHES = 8  # recvmmsg calls per socket per wakeup, so no socket starves the others
_POLL_TIMEOUT = 0.5
# Counters reach shared memory every _FLUSH_EVERY datagrams under load, and
# within _FLUSH_TIMEOUT once the sockets go quiet (one pack_into of the whole
# slot costs as much as answering a request, so not after every wakeup).
_FLUSH_EVERY = 256
_FLUSH_TIMEOUT = 0.05
_MSG_LEN = struct.Struct("=I")
_CMSG_TS = struct.Struct("=Qiiqq")  # cmsghdr + timespec: the usual first control message
# sockaddr_in: sa_family (host byte order), port and address (network order). One
# big-endian unpack reads all three; the family is compared byte-swapped.
_NAME4 = struct.Struct("!HH4s")
_AF_INET_WIRE = struct.unpack("!H", struct.pack("=H", socket.AF_INET))[0]
_SCOPE = struct.Struct("=I")
_SEND_FAILED = DROP_BASE + DropReason.SEND_FAILED
SUMMARY_INTERVAL_S = 10.0
"""Security events are logged as one summary line per kind per worker at most this often."""
# Denials and rate limiting are routine on a public server; failed MACs are not.
_SUMMARY_LEVELS = {
    DropReason.ACL_DENIED: logging.INFO,
    DropReason.RATE_LIMITED: logging.INFO,
    DropReason.AUTH_FAILED: logging.WARNING,
    DropReason.AUTH_REQUIRED: logging.INFO,
}


@dataclass(frozen=True)
class WorkerSpec:
    index: int
    slot: int
    sockets: Sequence[socket.socket]
    max_packet_size: int
    cpus: frozenset[int] | None
    parent_pid: int
    policy: SecurityPolicy | None = None
    """Access list, rate limit and keys; inherited through fork."""


class _Stop:
    requested = False


def _request_stop(_signum: int, _frame: object) -> None:
    _Stop.requested = True


def run_worker(spec: WorkerSpec, region: SharedRegion, make_pipeline: type[RequestPipeline]) -> int:
    """Serve until SIGTERM or the parent disappears. Returns an exit status."""
    signal.signal(signal.SIGTERM, _request_stop)
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    if spec.cpus:
        try:
            os.sched_setaffinity(0, spec.cpus)
        except OSError as exc:
            log.warning("worker %d: cannot set CPU affinity %s: %s", spec.index, spec.cpus, exc)

    # Everything inherited from the main process lives as long as the worker:
    # move it out of the collector's sight, and collect young objects rarely.
    # The loop allocates only short-lived, acyclic objects (tuples, views), so
    # generation-0 passes every 700 allocations were pure overhead per packet.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    pipeline = make_pipeline(
        region.reader(),
        time.time_ns,
        max_request_len=spec.max_packet_size,
        policy=spec.policy,
        monotonic=time.monotonic,
    )
    counts = pipeline.counts
    slot = region.slot_writer(spec.slot)
    # A restarted worker continues the counts its slot already holds.
    counts[:] = region.read_slot(spec.slot)
    summarize = spec.policy is not None
    summarized = list(counts)
    next_summary = time.monotonic() + SUMMARY_INTERVAL_S

    ep = select.epoll()
    by_fd: dict[int, tuple[socket.socket, bool]] = {}
    for sock in spec.sockets:
        sock.setblocking(False)
        ep.register(sock.fileno(), select.EPOLLIN)
        by_fd[sock.fileno()] = (sock, socket_is_wildcard(sock))
    # SIGTERM must end the loop at once, not when epoll next returns: Python retries an
    # interrupted poll (PEP 475), and after a reload the old generation would otherwise keep
    # answering with the old policy until its poll timed out. The signal's wakeup byte makes
    # epoll return; the flag set by the handler then ends the loop.
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    ep.register(wake_r, select.EPOLLIN)

    handle = pipeline.handle
    # log_client_queries: the main process set the level before forking us.
    log_queries = _query_log.isEnabledFor(logging.INFO)
    time_ns = time.time_ns
    ts_level, ts_type = socket.SOL_SOCKET, SO_TIMESTAMPNS
    bufsize = spec.max_packet_size + 1  # one more byte to see over-long datagrams
    batch = mmsg.RecvBatch(bufsize) if mmsg.available() else None
    if batch is not None:
        recv_batch = batch.recv
        batch_size = batch.n
        vec, dview, ctl, names = batch.views()
    mmsg_len, ctl_len, name_len = mmsg.MMSGHDR_LEN, mmsg.CONTROL_LEN, mmsg.NAME_LEN
    unpack_len = _MSG_LEN.unpack_from
    unpack_cmsg = _CMSG_TS.unpack_from
    unpack_name = _NAME4.unpack_from
    unpack_scope = _SCOPE.unpack_from
    ntop = socket.inet_ntop
    af_inet, af_inet6, af_inet_wire = socket.AF_INET, socket.AF_INET6, _AF_INET_WIRE
    unflushed = 0
    try:
        while not _Stop.requested:
            try:
                # With counts not yet in shared memory, wake soon to flush them.
                events = ep.poll(_FLUSH_TIMEOUT if unflushed else _POLL_TIMEOUT)
            except InterruptedError:
                continue
            if not events:
                if unflushed:
                    slot.flush(counts)
                    unflushed = 0
                if os.getppid() != spec.parent_pid:
                    log.warning("worker %d: main process gone, exiting", spec.index)
                    break
            for fd, _ev in events:
                if fd == wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 64)
                    continue
                sock, wildcard = by_fd[fd]
                if batch is None:
                    unflushed += _serve_recvmsg(
                        sock, wildcard, handle, counts, bufsize, log_queries, spec.index
                    )
                    continue
                # The batched path (runtime/mmsg.py says why): one recvmmsg per
                # up to BATCH datagrams, fields read straight from its buffers.
                for _ in range(_MAX_BATCHES):
                    try:
                        n = recv_batch(fd)
                    except OSError as exc:
                        log.debug("worker %d: recvmmsg: %s", spec.index, exc)
                        continue
                    for i in range(n):
                        length = unpack_len(vec, i * mmsg_len + 56)[0]
                        off = i * bufsize
                        data = dview[off : off + length]
                        _, level, ctype, sec, nsec = unpack_cmsg(ctl, i * ctl_len)
                        if ctype == ts_type and level == ts_level:
                            rx_ns = sec * 1_000_000_000 + nsec
                        else:
                            rx_ns = batch.timestamp_ns(i) or time_ns()
                        family, port, a4 = unpack_name(names, i * name_len)
                        if family == af_inet_wire:
                            addr: tuple[str, int] | tuple[str, int, int, int] = (
                                ntop(af_inet, a4),
                                port,
                            )
                        else:
                            base = i * name_len
                            addr = (
                                ntop(af_inet6, names[base + 8 : base + 24]),
                                port,
                                0,
                                unpack_scope(names, base + 24)[0],
                            )
                        out = handle(data, rx_ns, addr[0], port)
                        if log_queries:
                            _log_query((addr[0], port), bytes(data), out)
                        if isinstance(out, DropReason):
                            continue
                        try:
                            if wildcard:
                                # Reply from the address the request was sent to.
                                pktinfo = _batch_pktinfo(batch, i, family == af_inet_wire)
                                if pktinfo is not None:
                                    sock.sendmsg([out], [pktinfo], 0, addr)
                                    continue
                            sock.sendto(out, addr)
                        except OSError as exc:
                            _count_send_failure(counts, len(out))
                            log.debug("worker %d: send to %s: %s", spec.index, addr, exc)
                    unflushed += n
                    if n < batch_size:
                        break
            if unflushed >= _FLUSH_EVERY:
                slot.flush(counts)
                unflushed = 0
            # Once per wakeup, busy or idle: security summaries at a bounded rate.
            if summarize and time.monotonic() >= next_summary:
                next_summary = time.monotonic() + SUMMARY_INTERVAL_S
                _log_security_summary(spec.index, summarized, pipeline)
                summarized[:] = counts
    finally:
        slot.flush(counts)
        ep.close()
        signal.set_wakeup_fd(-1)
        os.close(wake_r)
        os.close(wake_w)
    return 0


def _count_send_failure(counts: list[int], length: int) -> None:
    counts[Counter.RESPONDED] -= 1
    counts[Counter.SENT_BYTES] -= length
    counts[_SEND_FAILED] += 1


def _serve_recvmsg(
    sock: socket.socket,
    wildcard: bool,
    handle: Callable[[bytes | memoryview, int, str, int], bytearray | bytes | DropReason],
    counts: list[int],
    bufsize: int,
    log_queries: bool,
    index: int,
) -> int:
    """One datagram per recvmsg (where recvmmsg is missing); returns how many were read."""
    recvmsg = sock.recvmsg
    unpack_ts = _TIMESPEC.unpack
    ts_level, ts_type = socket.SOL_SOCKET, SO_TIMESTAMPNS
    time_ns = time.time_ns
    got = 0
    for _ in range(_BATCH):
        try:
            data, anc, _flags, addr = recvmsg(bufsize, _ANC_SPACE)
        except (BlockingIOError, InterruptedError):
            break
        except OSError as exc:
            # ICMP errors queued on the socket (ECONNREFUSED etc.).
            log.debug("worker %d: recvmsg: %s", index, exc)
            continue
        got += 1
        rx_ns = 0
        pktinfo = None
        for level, ctype, cdata in anc:
            if level == ts_level and ctype == ts_type:
                sec, nsec = unpack_ts(cdata[:16])
                rx_ns = sec * 1_000_000_000 + nsec
            elif wildcard:
                pktinfo = (level, ctype, cdata)
        if not rx_ns:
            rx_ns = time_ns()
        out = handle(data, rx_ns, addr[0], addr[1])
        if log_queries:
            _log_query(addr, data, out)
        if isinstance(out, DropReason):
            continue
        try:
            if pktinfo is None:
                sock.sendto(out, addr)
            else:
                sock.sendmsg([out], [_reply_pktinfo(pktinfo)], 0, addr)
        except OSError as exc:
            _count_send_failure(counts, len(out))
            log.debug("worker %d: send to %s: %s", index, addr, exc)
    return got


def _batch_pktinfo(batch: mmsg.RecvBatch, i: int, ipv4: bool) -> tuple[int, int, bytes] | None:
    level, ctype = (socket.IPPROTO_IP, IP_PKTINFO) if ipv4 else (socket.IPPROTO_IPV6, IPV6_PKTINFO)
    data = batch.control(i, level, ctype)
    return None if data is None else _reply_pktinfo((level, ctype, data))


def _log_security_summary(index: int, before: list[int], pipeline: RequestPipeline) -> None:
    """One line per kind of security event since the last summary (bounded log rate).

    Addresses and counts go through the logging arguments, never into the
    format string, so the logging setup escapes them.
    """
    for kind, fmt, args in security_summary(before, pipeline.counts, pipeline.samples):
        log.log(_SUMMARY_LEVELS[kind], "worker %d: security: " + fmt, index, *args)
    for samples in pipeline.samples.values():
        samples.clear()


def _log_query(addr: tuple[str, int], data: bytes, out: object) -> None:
    message, fields = describe_query(addr[0], addr[1], data, out)
    _query_log.info("%s", message, extra={"fields": fields})


def _reply_pktinfo(pktinfo: tuple[int, int, bytes]) -> tuple[int, int, bytes]:
    """The ancillary data that makes a reply leave from the request's destination."""
    level, ctype, cdata = pktinfo
    if level == socket.IPPROTO_IP and ctype == IP_PKTINFO:
        # struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }:
        # send from addr (the request's destination), let routing pick the interface.
        return (level, ctype, b"\0\0\0\0" + cdata[8:12] + b"\0\0\0\0")
    if level == socket.IPPROTO_IPV6 and ctype == IPV6_PKTINFO:
        # struct in6_pktinfo { in6_addr addr; int ifindex; }: echo as received.
        return (level, ctype, cdata[:20])
    return pktinfo
