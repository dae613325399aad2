"""A data-plane worker process: receive, answer, send, count. Nothing else.

Each of the worker's sockets is served by a *lane*: a plain loop, not
asyncio, that blocks in ``recvmmsg`` until datagrams are queued, answers each
one through its own :class:`~simple_ntpd.server.pipeline.RequestPipeline`,
writes the transmit timestamps of the batch and sends the replies with one
``sendmmsg`` (runtime/mmsg.py measures why). The first socket's lane runs in
the worker's main thread, any other socket's (IPv6 beside IPv4) in a thread of
its own: a lane waiting in the kernel holds no interpreter lock, so two lanes
only take turns when both have traffic.

Counters are copied to shared memory every ``_FLUSH_EVERY`` datagrams and
within ``_FLUSH_TIMEOUT`` of the sockets going quiet (the receive timeout), so
what the main process reports is exact once the sockets are idle. An idle lane
then waits with a receive timeout of ``_IDLE_TIMEOUT_S``.

Where the C library lacks ``recvmmsg``/``sendmmsg``, a plain epoll loop with
one ``recvmsg`` and one ``sendto`` per datagram serves all sockets instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import gc
import logging
import os
import select
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from simple_ntpd.daemon.logging_setup import QUERY_LOGGER, describe_query
from simple_ntpd.reasons import DropReason
from simple_ntpd.runtime import mmsg
from simple_ntpd.runtime.shm import SharedRegion, SlotWriter
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
_POLL_TIMEOUT = 0.5
# Counters reach shared memory every _FLUSH_EVERY datagrams under load, and
# within _FLUSH_TIMEOUT once the sockets go quiet (one pack_into of the whole
# slot costs as much as answering a request, so not after every wakeup).
_FLUSH_EVERY = 256
_FLUSH_TIMEOUT = 0.05
_MSG_LEN = struct.Struct("=I")
_PORT = struct.Struct("!H")
_CONTROLLEN = struct.Struct("=Q")  # msghdr.msg_controllen, as the kernel wrote it back
_CMSG_HEADER = struct.Struct("=Qii")  # cmsg_len, cmsg_level, cmsg_type
# From the port of a sockaddr_in / sockaddr_in6: port and address octets.
_SOURCE4 = struct.Struct("!H4s")
_SOURCE6 = struct.Struct("!H4x16s")
_HOST_CACHE_SIZE = 4096
# The lanes' receive timeouts. While datagrams come, the short one: how soon counters
# reach shared memory once the socket goes quiet. After that flush, the idle one: how
# often a quiet lane looks at its parent and at a pending security summary (a stop
# wakes it at once, by signal), so that an idle worker wakes once a second per
# socket, not twenty times. Switching costs a setsockopt only at those transitions.
_RCVTIMEO = struct.pack("@ll", 0, int(_FLUSH_TIMEOUT * 1_000_000))
_IDLE_TIMEOUT_S = 1
_IDLE_RCVTIMEO = struct.pack("@ll", _IDLE_TIMEOUT_S, 0)
_WAIT_ERRNOS = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR)
_MAIN_THREAD_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2}
_CMSG_TS = struct.Struct("=Qiiqq")  # cmsghdr + timespec: the usual first control message
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
    # SIGUSR1 only wakes a lane thread out of its wait at shutdown (EINTR): a
    # handler, not SIG_IGN, or the wait would not be interrupted.
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: None)
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGUSR2):
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
    pipelines = [
        make_pipeline(
            region.reader(),
            time.time_ns,
            max_request_len=spec.max_packet_size,
            policy=spec.policy,
            monotonic=time.monotonic,
        )
        for _ in range(max(1, len(spec.sockets)))
    ]
    slot = region.slot_writer(spec.slot)
    # A restarted worker continues the counts its slot already holds.
    pipelines[0].counts[:] = region.read_slot(spec.slot)
    if not mmsg.available():
        return _run_epoll(spec, pipelines[0], slot)
    return _run_lanes(spec, pipelines, slot)


def _run_lanes(spec: WorkerSpec, pipelines: list[RequestPipeline], slot: SlotWriter) -> int:
    """One lane per socket: the first in this thread, the others in threads of their own."""
    if len(pipelines) == 1:
        only = pipelines[0].counts

        def flush() -> None:
            slot.flush(only)

    else:
        lock = threading.Lock()
        lanes_counts = [p.counts for p in pipelines]

        def flush() -> None:
            with lock:
                slot.flush([sum(c) for c in zip(*lanes_counts, strict=True)])

    failed: list[BaseException] = []
    threads: list[threading.Thread] = []
    main_ident = threading.get_ident()

    def run_lane(lane: int) -> None:
        try:
            _serve_lane(spec, lane, pipelines[lane], flush)
        except BaseException as exc:  # a lane that dies takes the worker with it
            failed.append(exc)
            log.exception("worker %d: lane %d failed", spec.index, lane)
            _Stop.requested = True
            if threading.get_ident() != main_ident:
                signal.pthread_kill(main_ident, signal.SIGUSR1)

    for lane in range(1, len(spec.sockets)):
        t = threading.Thread(
            target=_lane_thread, args=(run_lane, lane), name=f"lane-{lane}", daemon=True
        )
        t.start()
        threads.append(t)
    try:
        run_lane(0)
    finally:
        _Stop.requested = True
        for t in threads:
            if t.ident is not None and t.is_alive():
                with contextlib.suppress(OSError):
                    signal.pthread_kill(t.ident, signal.SIGUSR1)
            t.join(1.0)
        flush()
    return 1 if failed else 0


def _lane_thread(run_lane: Callable[[int], None], lane: int) -> None:
    # Process signals go to the main thread, whose wait they interrupt; this
    # thread is woken by SIGUSR1 from the main thread when the worker stops.
    signal.pthread_sigmask(signal.SIG_BLOCK, _MAIN_THREAD_SIGNALS)
    run_lane(lane)


def _serve_lane(
    spec: WorkerSpec, lane: int, pipeline: RequestPipeline, flush: Callable[[], None]
) -> None:
    """Serve one socket until the worker stops: wait, answer the batch, send it, count.

    Written flat, with locals bound outside the loop: it runs once per
    datagram. Each datagram costs three ``struct`` reads (length, kernel
    receive timestamp, source port), ``answer`` and one slice copy (the
    reply; the raw source address moves only after a drop in the batch); the
    batch costs one ``recvmmsg``, one clock read with ``stamp_batch`` and one
    ``sendmmsg``. The source address becomes a string only when the pipeline
    needs it (access list, rate limit, authentication required, query log) or
    the request is not a bare header. Measured with ``valgrind
    --tool=callgrind`` on this loop fed batches of two: 23,150 instructions per
    reply unguarded, 31,160 with an access list and a rate limit.
    """
    sock = spec.sockets[lane]
    sock.setblocking(True)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _IDLE_RCVTIMEO)
    short_wait = False  # the short receive timeout is set (datagrams came since the last flush)
    setsockopt, sol_socket, so_rcvtimeo = sock.setsockopt, socket.SOL_SOCKET, socket.SO_RCVTIMEO
    fd = sock.fileno()
    wildcard = socket_is_wildcard(sock)
    counts = pipeline.counts
    summarize = spec.policy is not None
    summarized = list(counts)
    next_summary = time.monotonic() + SUMMARY_INTERVAL_S
    log_queries = _query_log.isEnabledFor(logging.INFO)
    need_addr = pipeline.needs_address or log_queries
    bufsize = spec.max_packet_size + 1  # one more byte to see over-long datagrams
    batch = mmsg.RecvBatch(bufsize)
    replies = mmsg.SendBatch(batch, sock.family if wildcard else None)
    # recvmmsg and sendmmsg are called here, not through RecvBatch.recv and
    # SendBatch.send, to spare two Python calls per wakeup.
    recvmmsg, sendmmsg, memmove = mmsg.recvmmsg_function(), mmsg.sendmmsg_function(), ctypes.memmove
    recv_vec, recv_template = batch.vector, batch.template
    recv_vec_address = ctypes.addressof(recv_vec)  # an int converts faster than the array
    template_len = len(recv_template)
    batch_n, send_vec = batch.n, replies.vector_address
    waitforone, dontwait = mmsg.MSG_WAITFORONE, mmsg.MSG_DONTWAIT
    vec, dview, ctl, names = batch.views()
    payload, reply_ctl = replies.payload, replies.control
    move_source = batch.move_source
    answer = pipeline.answer
    plain = pipeline.plain_response
    stamp = pipeline.stamp_batch
    rxs = [0] * batch.n
    mmsg_len, ctl_len, name_len = mmsg.MMSGHDR_LEN, mmsg.CONTROL_LEN, mmsg.NAME_LEN
    # Per slot, made once: where its length, control messages and source port
    # are, and a view of its first 48 octets (most datagrams are exactly that).
    len_at = [i * mmsg_len + 56 for i in range(batch.n)]
    ctl_at = [i * ctl_len for i in range(batch.n)]
    port_at = [i * name_len + 2 for i in range(batch.n)]
    header_view = [dview[i * bufsize : i * bufsize + 48] for i in range(batch.n)]
    # Source port and address octets of a slot, in one read: a socket receives from its own
    # family only (an IPv6 socket gets IPv4 clients as ::ffff:a.b.c.d). The address strings
    # the pipeline needs are remembered (inet_ntop formats with sprintf: the dearest step of
    # a guarded request), a bounded table cleared when full, as the access list's cache.
    family = sock.family
    unpack_source = (_SOURCE4 if family == socket.AF_INET else _SOURCE6).unpack_from
    hosts: dict[bytes, str] = {}
    ntop = socket.inet_ntop
    unpack_len = _MSG_LEN.unpack_from
    unpack_cmsg = _CMSG_TS.unpack_from
    unpack_port = _PORT.unpack_from
    ts_level, ts_type = socket.SOL_SOCKET, SO_TIMESTAMPNS
    time_ns = time.time_ns
    monotonic = time.monotonic
    ipv4 = family == socket.AF_INET
    if wildcard:
        info_level, info_type = (
            (socket.IPPROTO_IP, IP_PKTINFO) if ipv4 else (socket.IPPROTO_IPV6, IPV6_PKTINFO)
        )
        # Where the reply's pktinfo data goes, and which received octets it copies:
        # IPv4 sends from the request's destination (in_pktinfo.ipi_addr, as
        # ipi_spec_dst); IPv6 echoes the whole in6_pktinfo.
        info_dst, info_src, info_len = (20, 8, 4) if ipv4 else (16, 0, 20)
        info_kind = (info_level, info_type)
        # The controllen that holds the timestamp's message (32 octets) and a pktinfo one.
        info_controllen = 32 + 16 + (12 if ipv4 else 20)
        controllen_at = [i * mmsg_len + 40 for i in range(batch.n)]
        unpack_controllen = _CONTROLLEN.unpack_from
        unpack_cmsg_header = _CMSG_HEADER.unpack_from
    unflushed = 0
    # recvmmsg reads each slot's msg_namelen and msg_controllen as buffer sizes
    # and overwrites them with the sizes used. On one socket those are the same
    # for every datagram (the same address family, the same control messages),
    # so the slots need restoring from the template only after a datagram came
    # without its usual control messages; that spares a memmove per wakeup.
    restore = False
    while not _Stop.requested:
        if restore:
            memmove(recv_vec, recv_template, template_len)
            restore = False
        n = recvmmsg(fd, recv_vec_address, batch_n, waitforone, None)
        if n <= 0:
            # The receive timeout (the socket is quiet), a signal, or an error.
            err = ctypes.get_errno()
            if n < 0 and err not in _WAIT_ERRNOS:
                log.debug("worker %d: recvmmsg: %s", spec.index, os.strerror(err))
            if unflushed:
                flush()
                unflushed = 0
            if short_wait:  # quiet and flushed: wait long
                setsockopt(sol_socket, so_rcvtimeo, _IDLE_RCVTIMEO)
                short_wait = False
            if lane == 0 and os.getppid() != spec.parent_pid:
                log.warning("worker %d: main process gone, exiting", spec.index)
                break
            n = 0
        elif not short_wait:  # busy again: counters must reach shared memory soon
            setsockopt(sol_socket, so_rcvtimeo, _RCVTIMEO)
            short_wait = True
        k = 0
        for i in range(n):
            length = unpack_len(vec, len_at[i])[0]
            data = header_view[i] if length == 48 else dview[i * bufsize : i * bufsize + length]
            _, level, ctype, sec, nsec = unpack_cmsg(ctl, ctl_at[i])
            if ctype == ts_type and level == ts_level:
                rx_ns = sec * 1_000_000_000 + nsec
            else:
                rx_ns = batch.timestamp_ns(i) or time_ns()
                restore = True
            if need_addr or length != 48:
                port, raw = unpack_source(names, port_at[i])
                host = hosts.get(raw)
                if host is None:
                    host = ntop(family, raw)
                    if len(hosts) >= _HOST_CACHE_SIZE:
                        hosts.clear()
                    hosts[raw] = host
            else:
                host, port = "", unpack_port(names, port_at[i])[0]
            out = answer(data, rx_ns, host, port)
            if log_queries:
                _log_query((host, port), bytes(data), out)
            if out is plain:
                o = k * 48
                payload[o : o + 48] = out
                if k != i:
                    move_source(i, k)
                if wildcard:
                    # The pktinfo message follows the timestamp's (the kernel writes
                    # timestamps first); anywhere else, or absent, is the slow way.
                    dst = k * ctl_len + info_dst
                    at = ctl_at[i] + 32
                    if (
                        unpack_controllen(vec, controllen_at[i])[0] >= info_controllen
                        and unpack_cmsg_header(ctl, at)[1:] == info_kind
                    ):
                        at += 16 + info_src
                        reply_ctl[dst : dst + info_len] = ctl[at : at + info_len]
                    else:
                        info = batch.control(i, info_level, info_type)
                        if info is None:  # no pktinfo: the source cannot be chosen, drop
                            counts[_SEND_FAILED] += 1
                            restore = True
                            continue
                        reply_ctl[dst : dst + info_len] = info[info_src : info_src + info_len]
                rxs[k] = rx_ns
                k += 1
            elif not isinstance(out, DropReason):
                # A kiss-o'-death, an authenticated response or a crypto-NAK:
                # finished by the pipeline, sent on its own.
                _send_one(sock, wildcard, batch, i, out, counts, spec.index)
        if k:
            stamp(payload, k, rxs)
            sent = sendmmsg(fd, send_vec, k, dontwait)
            if sent != k:
                _finish_send(replies, fd, k, sent, counts, spec.index)
        unflushed += n
        if unflushed >= _FLUSH_EVERY:
            flush()
            unflushed = 0
        # Once per wakeup, busy or idle: security summaries at a bounded rate.
        if summarize and monotonic() >= next_summary:
            next_summary = monotonic() + SUMMARY_INTERVAL_S
            _log_security_summary(spec.index, summarized, pipeline)
            summarized[:] = counts


def _finish_send(
    replies: mmsg.SendBatch, fd: int, count: int, sent: int, counts: list[int], index: int
) -> None:
    """After a sendmmsg that stopped short of ``count``: count the refused reply, send the rest.

    ``sent`` < 0: the first reply was refused (errno says why); otherwise the
    kernel sent ``sent`` replies and stopped at the next without saying why,
    so that one is tried once more with the rest.
    """
    if sent < 0:
        _count_send_failure(counts, 48)
        log.debug("worker %d: sendmmsg: %s", index, os.strerror(ctypes.get_errno()))
        sent = 1
    for _reply, err in replies.send(fd, count, sent):
        _count_send_failure(counts, 48)
        log.debug("worker %d: sendmmsg: %s", index, os.strerror(err))


def _send_one(
    sock: socket.socket,
    wildcard: bool,
    batch: mmsg.RecvBatch,
    i: int,
    out: bytes | bytearray,
    counts: list[int],
    index: int,
) -> None:
    """Send one reply that is not a plain 48-octet header (the rare path)."""
    addr = batch.source_address(i)
    try:
        if wildcard:
            pktinfo = _batch_pktinfo(batch, i, sock.family == socket.AF_INET)
            if pktinfo is not None:
                sock.sendmsg([out], [pktinfo], socket.MSG_DONTWAIT, addr)
                return
        sock.sendto(out, socket.MSG_DONTWAIT, addr)
    except OSError as exc:
        _count_send_failure(counts, len(out))
        log.debug("worker %d: send to %s: %s", index, addr, exc)


def _run_epoll(spec: WorkerSpec, pipeline: RequestPipeline, slot: SlotWriter) -> int:
    """The fallback loop: epoll over all sockets, one recvmsg and one sendto per datagram."""
    counts = pipeline.counts
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
    bufsize = spec.max_packet_size + 1  # one more byte to see over-long datagrams
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
                unflushed += _serve_recvmsg(
                    sock, wildcard, handle, counts, bufsize, log_queries, spec.index
                )
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
