"""The request pipeline: one datagram in, one response or one drop reason out.

This is the per-packet hot path of every data-plane worker, so it is written
plainly on purpose: no dataclass per packet, no exceptions in the common case,
one ``struct.pack_into`` into a reused buffer. The clean codec in
:mod:`simple_ntpd.wire` is used only for the rare requests that carry more
than the 48-byte header (extension fields, MAC), where validation needs it.

Order of decisions (ntpd-rs ``Server::handle`` and chrony
``NCR_ProcessRxUnknown`` do the same): length, version and mode checks on
the first byte (they cost nothing and tell whether a kiss-o'-death could even
be built), then the source address: access list, then rate limit; then
trailer parsing and authentication (the only cryptography), then the response
from the published :class:`ServedClockState`. Nothing a denied or limited
source sends is parsed past its first byte or run through a MAC. The transmit
timestamp is the last thing written before the response is signed and sent.

The security checks cost the unguarded server one attribute test
(``self._guarded``): with every source allowed, no rate limit and
authentication not required, ``handle`` runs exactly the code it ran before.

Nothing here reads a clock or a socket: the receive time comes in as an
argument, and the transmit clock and the monotonic clock of the rate limiter
are callables the shell injects. The rate limiter runs on a monotonic clock
rather than on ``rx_ns``: ``rx_ns`` is the system (realtime) clock, and a step
of that clock backwards would make every client look as if it had just used
its whole burst.

Amplification: every answer is at most as long as its request. A normal or
kiss-o'-death response is the 48-octet header (requests are at least 48); an
authenticated one carries a MAC no longer than the request's; a crypto-NAK
(52 octets) only answers a request that carried a MAC trailer (68 or more).
"""

from __future__ import annotations

import struct
from bisect import bisect_left as _bucket
from collections.abc import Callable, Sequence

from simple_ntpd.auth.keys import KeyStore
from simple_ntpd.reasons import DropReason
from simple_ntpd.served_clock import (
    LEAP_UNSYNCHRONIZED,
    STRATUM_UNSPECIFIED,
    SeqlockReader,
    ServedClockState,
)
from simple_ntpd.server.acl import AccessList
from simple_ntpd.server.auth import (
    BAD_AUTH,
    CRYPTO_NAK_TRAILER,
    Authenticated,
    authenticate,
    sign_response,
)
from simple_ntpd.server.policy import SecurityPolicy
from simple_ntpd.server.ratelimit import KOD, RateLimiter
from simple_ntpd.stats import (
    COUNTERS_PER_SLOT,
    DROP_BASE,
    LATENCY_BASE,
    LATENCY_BOUNDS_NS,
    LATENCY_SUM_NS,
    Counter,
)
from simple_ntpd.wire.constants import KissCode
from simple_ntpd.wire.kod import make_kod
from simple_ntpd.wire.packet import decode_packet, encode_header, try_decode_packet

# RFC 5905 section 7.3: the header is 48 bytes.
HEADER_LEN = 48
NTP_PORT = 123
MODE_RESERVED = 0
MODE_CLIENT = 3
MODE_SERVER = 4
MODE_CONTROL = 6
MODE_PRIVATE = 7

_NTP_UNIX_OFFSET = 2_208_988_800
_NS = 1_000_000_000
_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF
_NTP_EPOCH_NS = _NTP_UNIX_OFFSET * 1_000_000_000  # 1900 to 1970 in ns
# Refresh the cached response template at least this often so that root
# dispersion grows with the age of the reference (RFC 5905 section 10): at
# 15 ppm it grows 3.75 us per 250 ms, a quarter of one unit of the short format.
_TEMPLATE_MAX_AGE_NS = 250_000_000

# Bytes 1..24 of a response: stratum, poll (patched per packet), precision,
# root delay, root dispersion, reference id, reference timestamp.
_TEMPLATE = struct.Struct("!BBbII4sQ")
_FAST_PATH = True
"""The short path of ``answer`` for bare client requests; a test turns it off to compare."""
# First octet -> NTP version, for a client request (mode 3) of versions 1 to 4; 0 otherwise
# (the full path decides those, NTPv1 mode 0 included).
_PLAIN_VERSION = tuple(
    (b0 >> 3) & 7 if b0 & 7 == 3 and 1 <= (b0 >> 3) & 7 <= 4 else 0 for b0 in range(256)
)
_TX = struct.Struct("!Q")

_DROP_TOO_SHORT = DROP_BASE + DropReason.TOO_SHORT
_DROP_TOO_LONG = DROP_BASE + DropReason.TOO_LONG
_DROP_BAD_VERSION = DROP_BASE + DropReason.BAD_VERSION
_DROP_BAD_MODE = DROP_BASE + DropReason.BAD_MODE
_DROP_MODE_CONTROL = DROP_BASE + DropReason.MODE_CONTROL
_DROP_MODE_PRIVATE = DROP_BASE + DropReason.MODE_PRIVATE
_DROP_ACL_DENIED = DROP_BASE + DropReason.ACL_DENIED
_DROP_RATE_LIMITED = DROP_BASE + DropReason.RATE_LIMITED
_DROP_AUTH_FAILED = DROP_BASE + DropReason.AUTH_FAILED
_DROP_AUTH_REQUIRED = DROP_BASE + DropReason.AUTH_REQUIRED

SAMPLES_PER_KIND = 4
"""Distinct source addresses remembered per security event kind between two log summaries."""
SECURITY_EVENTS = (
    DropReason.ACL_DENIED,
    DropReason.RATE_LIMITED,
    DropReason.AUTH_FAILED,
    DropReason.AUTH_REQUIRED,
)
"""Kinds of security event the pipeline samples (whether it dropped or kissed)."""


def ntp64(unix_ns: int) -> int:
    """Wire timestamp (era dropped, fraction truncated) of a Unix time in ns.

    One integer expression; :meth:`RequestPipeline._served_ntp64` and the fast
    path of :meth:`RequestPipeline.answer` compute the same with the served
    clock's correction folded in. The general, round-to-nearest conversions
    live in :mod:`simple_ntpd.timetypes`.
    """
    return (((unix_ns + _NTP_EPOCH_NS) << 32) // _NS) & _U64


def kissable(data: bytes | memoryview) -> bool:
    """Whether a request whose header passed the checks is well-formed enough to be kissed.

    The kiss decisions come before trailer parsing; a malformed trailer must
    still never be answered, so the rare kiss path validates it here.
    """
    return len(data) == HEADER_LEN or not isinstance(try_decode_packet(data), DropReason)


def kiss_of_death(data: bytes | memoryview, code: KissCode) -> bytes:
    """The 48-octet kiss-o'-death answering request ``data`` (at least 48 octets).

    Built with the codec (:func:`simple_ntpd.wire.kod.make_kod`): kisses are
    rare by construction (a fraction of the limited requests), so clarity wins
    over speed here.
    """
    return encode_header(make_kod(decode_packet(data[:HEADER_LEN]).header, code.value))


def short_format(seconds: float) -> int:
    """RFC 5905 NTP short format (16.16), saturating."""
    if seconds <= 0.0:
        return 0
    v = int(seconds * 65536.0 + 0.5)
    return v if v < _U32 else _U32


class RequestPipeline:
    """Answers client requests from the published served-clock state.

    One instance per worker. ``counts`` is a plain list indexed by
    :class:`simple_ntpd.stats.Counter` and ``DROP_BASE + DropReason``; the
    shell copies it into the worker's shared-memory slot after each batch.
    """

    __slots__ = (
        "_access",
        "_access_decided",
        "_clock_ns",
        "_crypto_nak",
        "_freq",
        "_guarded",
        "_keys",
        "_kod_deny",
        "_limiter",
        "_max_len",
        "_monotonic",
        "_ntp_base_ns",
        "_out",
        "_reader",
        "_refresh_after",
        "_require_auth",
        "_seq",
        "_seqview",
        "_state",
        "_t0",
        "_unsync",
        "counts",
        "first_byte",
        "samples",
    )

    def __init__(
        self,
        reader: SeqlockReader,
        clock_ns: Callable[[], int],
        *,
        max_request_len: int = 2048,
        policy: SecurityPolicy | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        """Args:
        reader: the served-clock state in shared memory.
        clock_ns: the system clock in ns, read for the transmit timestamp.
        max_request_len: longer datagrams are dropped (``TOO_LONG``).
        policy: access list, rate limit and authentication; None: none.
        monotonic: monotonic seconds for the rate limiter (required when
            the policy limits rates).
        """
        self._reader = reader
        self._seqview = reader.sequence_view()
        self._clock_ns = clock_ns
        self._max_len = max(HEADER_LEN, max_request_len)
        policy = policy or SecurityPolicy()
        access = policy.access
        self._access: AccessList | None = None if access is None or access.allows_all else access
        # The access list's decisions so far, looked up by the fast path without a call.
        self._access_decided = self._access.decided if self._access is not None else {}
        self._kod_deny = policy.kod_deny
        params = policy.rate_limit
        self._limiter = RateLimiter(params) if params is not None and params.enabled else None
        if self._limiter is not None and monotonic is None:
            raise ValueError("rate limiting needs a monotonic clock")
        self._monotonic = monotonic
        self._keys: KeyStore | None = policy.keys
        self._require_auth = policy.require_auth
        self._crypto_nak = policy.crypto_nak
        # The one test the fast path pays for all of the above.
        self._guarded = self._access is not None or self._limiter is not None or self._require_auth
        # A few source addresses per security event kind, for the worker's
        # periodic log summary (it empties the lists after each summary).
        self.samples: dict[DropReason, list[str]] = {k: [] for k in SECURITY_EVENTS}
        self._out = bytearray(HEADER_LEN)
        self._seq = -1
        self._state = ServedClockState()
        self._refresh_after = 0  # system time (ns) after which the template is rebuilt
        # The served state, unpacked by _refresh: every timestamp is made from these.
        self._unsync = True
        self._ntp_base_ns = _NTP_EPOCH_NS  # the correction's offset + 1900 to 1970, ns
        self._freq = 0.0
        self._t0 = 0
        self.counts = [0] * COUNTERS_PER_SLOT
        # first_byte[version] = LI | VN | mode 4, for the current leap.
        self.first_byte = [0] * 8

    @property
    def state(self) -> ServedClockState:
        return self._state

    @property
    def limiter(self) -> RateLimiter | None:
        """The rate limiter's table (for tests and diagnostics)."""
        return self._limiter

    def _sample(self, kind: DropReason, addr: str) -> None:
        samples = self.samples[kind]
        if len(samples) < SAMPLES_PER_KIND and addr not in samples:
            samples.append(addr)

    def _guard(self, data: bytes | memoryview, addr: str) -> bytes | DropReason | None:
        """Access list, then rate limit, then "authentication required" for bare headers.

        Returns None to go on, or what ``handle`` returns. Decided from the
        source address and the length only: nothing is parsed yet. (The fast
        path of ``answer`` makes the same three decisions inline.)
        """
        access = self._access
        if access is not None and not access.permits(addr):
            return self._denied(data, addr)
        limiter = self._limiter
        if limiter is not None:
            assert self._monotonic is not None  # checked in __init__
            decision = limiter.check(addr, self._monotonic())
            if decision:  # DROP or KOD
                return self._limited(data, addr, decision)
        if self._require_auth and len(data) == HEADER_LEN:
            return self._unauthenticated(addr)
        return None

    def _denied(self, data: bytes | memoryview, addr: str) -> bytes | DropReason:
        """A source the access list refuses: a DENY kiss (``kod_deny``) or a drop."""
        self._sample(DropReason.ACL_DENIED, addr)
        if self._kod_deny and kissable(data):
            self.counts[Counter.KOD_DENY] += 1
            return self._sent(kiss_of_death(data, KissCode.DENY))
        self.counts[_DROP_ACL_DENIED] += 1
        return DropReason.ACL_DENIED

    def _limited(self, data: bytes | memoryview, addr: str, decision: int) -> bytes | DropReason:
        """A source over its rate: a RATE kiss (when the limiter says KOD) or a drop."""
        self._sample(DropReason.RATE_LIMITED, addr)
        if decision == KOD and kissable(data):
            self.counts[Counter.KOD_RATE] += 1
            return self._sent(kiss_of_death(data, KissCode.RATE))
        self.counts[_DROP_RATE_LIMITED] += 1
        return DropReason.RATE_LIMITED

    def _unauthenticated(self, addr: str) -> DropReason:
        """A bare header where authentication is required."""
        self._sample(DropReason.AUTH_REQUIRED, addr)
        self.counts[_DROP_AUTH_REQUIRED] += 1
        return DropReason.AUTH_REQUIRED

    def _sent(self, response: bytes) -> bytes:
        self.counts[1] += 1  # Counter.RESPONDED
        self.counts[13] += len(response)  # Counter.SENT_BYTES
        return response

    def _refresh(self, now_ns: int) -> None:
        """Reload the served state if republished, and rebuild the template."""
        seq = self._reader.sequence()
        if seq != self._seq:
            got = self._reader.read()
            if got is not None:
                self._seq, self._state = got
        st = self._state
        self._refresh_after = now_ns + _TEMPLATE_MAX_AGE_NS
        self._unsync = st.leap == LEAP_UNSYNCHRONIZED
        self._ntp_base_ns = st.offset_ns + _NTP_EPOCH_NS
        self._freq = st.freq
        self._t0 = st.t0_ns
        leap = st.leap
        stratum = st.stratum
        if leap == LEAP_UNSYNCHRONIZED:
            # Never claim a synchronization we do not have: chrony and ntpd
            # both send stratum 0 ("unspecified") with leap 3.
            stratum = STRATUM_UNSPECIFIED
        reftime = ntp64(st.reference_time_ns) if st.reference_time_ns else 0
        _TEMPLATE.pack_into(
            self._out,
            1,
            stratum,
            0,
            st.precision,
            short_format(st.root_delay),
            short_format(st.root_dispersion_at(now_ns)),
            st.reference_id,
            reftime,
        )
        for version in range(8):
            self.first_byte[version] = (leap << 6) | (version << 3) | MODE_SERVER

    def handle(
        self, data: bytes | memoryview, rx_ns: int, addr: str, port: int
    ) -> bytearray | bytes | DropReason:
        """Answer one datagram: :meth:`answer`, then the transmit timestamp.

        Args:
            data: the datagram as received.
            rx_ns: its receive time on the system clock, in ns (kernel
                timestamp where available).
            addr: the client's source address, as ``recvmsg`` gives it
                (``"192.0.2.1"``, ``"2001:db8::1"``, ``"::ffff:192.0.2.1"``).
            port: the client's source port (NTPv1 mode-0 rule).

        Returns:
            The response (a plain 48-octet one is a buffer reused by the next
            call: send it before calling again), or the reason it is dropped.
        """
        out = self.answer(data, rx_ns, addr, port)
        if out is self._out:
            self._stamp(out, rx_ns)
        return out

    @property
    def plain_response(self) -> bytearray:
        """The buffer :meth:`answer` returns for a plain 48-octet response."""
        return self._out

    def answer(
        self, data: bytes | memoryview, rx_ns: int, addr: str, port: int
    ) -> bytearray | bytes | DropReason:
        """Answer one datagram, all but the transmit timestamp of a plain response.

        Same arguments and decisions as :meth:`handle`. A plain response is
        :attr:`plain_response` with octets 40..47 (transmit timestamp) not yet
        written: the caller copies it out and writes the transmit timestamps
        of a whole batch with :meth:`stamp_batch` just before the batch is
        sent. Anything else (a kiss-o'-death, an authenticated response or a
        crypto-NAK) comes back finished, as ``bytes``, to be sent at once; a
        drop comes back as its reason. ``addr`` is used only by the access
        list, the rate limiter and the security samples: a caller whose
        pipeline has none of them (:attr:`needs_address` is false) may pass
        ``""`` for a bare 48-octet request.
        """
        counts = self.counts
        n = len(data)
        if n == HEADER_LEN and _FAST_PATH:
            version = _PLAIN_VERSION[data[0]]
            if version:
                # The fast path: a bare NTPv1-4 client request (mode 3), the
                # common case. The same decisions and counters as the full
                # path below, in the fewest operations: this is the innermost
                # code of the server. (tests/unit/server/test_pipeline_batch.py
                # checks that both paths give the same octets and counts.)
                counts[0] += 1  # Counter.RECEIVED
                counts[12] += HEADER_LEN  # Counter.RECEIVED_BYTES
                if self._guarded:  # _guard's decisions, inline
                    access = self._access
                    if access is not None:
                        permitted = self._access_decided.get(addr)
                        if permitted is None:
                            permitted = access.permits(addr)
                        if not permitted:
                            return self._denied(data, addr)
                    limiter = self._limiter
                    if limiter is not None:
                        decision = limiter.check(addr, self._monotonic())  # type: ignore[misc]
                        if decision:
                            return self._limited(data, addr, decision)
                    if self._require_auth:
                        return self._unauthenticated(addr)
                counts[1 + version] += 1  # Counter.REQUEST_V1..V4
                if rx_ns > self._refresh_after or self._seqview[0] != self._seq:
                    self._refresh(rx_ns)
                out = self._out
                out[0] = self.first_byte[version]
                out[2] = data[2]  # poll echoed (RFC 5905 section 9.2, fast_xmit)
                out[24:32] = data[40:48]  # origin = the client's transmit timestamp
                if self._unsync:
                    counts[14] += 1  # Counter.UNSYNCHRONIZED_RESPONSES
                # _served_ntp64(rx_ns), inline.
                if self._freq:
                    rx_ns += int(self._freq * (rx_ns - self._t0))
                _TX.pack_into(out, 32, (((rx_ns + self._ntp_base_ns) << 32) // _NS) & _U64)
                return out
        counts[0] += 1  # Counter.RECEIVED
        counts[12] += n  # Counter.RECEIVED_BYTES
        if n < HEADER_LEN:
            counts[_DROP_TOO_SHORT] += 1
            return DropReason.TOO_SHORT
        if n > self._max_len:
            counts[_DROP_TOO_LONG] += 1
            return DropReason.TOO_LONG
        b0 = data[0]
        version = (b0 >> 3) & 7
        mode = b0 & 7
        if version == 0 or version > 4:
            counts[_DROP_BAD_VERSION] += 1
            return DropReason.BAD_VERSION
        # NTPv1 has no mode field: a version-1 packet with mode 0 from a port
        # other than 123 is a client request (chrony does the same).
        if mode != MODE_CLIENT and not (
            mode == MODE_RESERVED and version == 1 and port != NTP_PORT
        ):
            if mode == MODE_CONTROL:
                counts[_DROP_MODE_CONTROL] += 1
                return DropReason.MODE_CONTROL
            if mode == MODE_PRIVATE:
                counts[_DROP_MODE_PRIVATE] += 1
                return DropReason.MODE_PRIVATE
            counts[_DROP_BAD_MODE] += 1
            return DropReason.BAD_MODE
        if self._guarded:
            verdict = self._guard(data, addr)
            if verdict is not None:
                return verdict
        auth: Authenticated | None = None
        nak = False
        if n > HEADER_LEN:
            # The worker may pass a view into its receive buffer: copy on this rare path.
            found = authenticate(self._keys, bytes(data))
            if found is None:
                if self._require_auth:
                    self._sample(DropReason.AUTH_REQUIRED, addr)
                    counts[_DROP_AUTH_REQUIRED] += 1
                    return DropReason.AUTH_REQUIRED
            elif found is BAD_AUTH:
                self._sample(DropReason.AUTH_FAILED, addr)
                if not self._crypto_nak:
                    counts[_DROP_AUTH_FAILED] += 1
                    return DropReason.AUTH_FAILED
                nak = True
            elif isinstance(found, DropReason):
                counts[DROP_BASE + found] += 1
                return found
            else:
                assert isinstance(found, Authenticated)
                auth = found
        counts[1 + version] += 1  # Counter.REQUEST_V1..V4

        if rx_ns > self._refresh_after or self._seqview[0] != self._seq:
            self._refresh(rx_ns)
        out = self._out
        out[0] = self.first_byte[version]
        out[2] = data[2]  # poll echoed (RFC 5905 section 9.2, fast_xmit)
        out[24:32] = data[40:48]  # origin = the client's transmit timestamp
        if self._unsync:
            counts[14] += 1  # Counter.UNSYNCHRONIZED_RESPONSES
        _TX.pack_into(out, 32, self._served_ntp64(rx_ns))
        if auth is not None:
            # The MAC covers the finished header, transmit timestamp included.
            self._write_tx(out, rx_ns)
            counts[Counter.AUTHENTICATED] += 1
            return self._sent(sign_response(out, auth))
        if nak:
            self._write_tx(out, rx_ns)
            counts[Counter.CRYPTO_NAK] += 1
            return self._sent(bytes(out) + CRYPTO_NAK_TRAILER)
        # Counter.RESPONDED and SENT_BYTES: counted by stamp_batch, once per batch.
        return out

    @property
    def needs_address(self) -> bool:
        """Whether :meth:`answer` reads ``addr`` for a bare 48-octet request."""
        return self._guarded

    def _served_ntp64(self, t_ns: int) -> int:
        """ntp64() of the served time at system time ``t_ns``, from the state _refresh unpacked."""
        if self._freq:
            t_ns += int(self._freq * (t_ns - self._t0))
        return (((t_ns + self._ntp_base_ns) << 32) // _NS) & _U64

    def _stamp(self, out: bytearray, rx_ns: int) -> None:
        """Write the transmit timestamp of one plain response, read from the clock now."""
        self.stamp_batch(out, 1, (rx_ns,))

    def _write_tx(self, out: bytearray, rx_ns: int) -> None:
        """The transmit timestamp of a response that is finished here (MAC, crypto-NAK).

        Timed like a batch of one; ``_sent`` then counts the response at its
        own length, so the plain 48-octet one ``stamp_batch`` counted is taken back.
        """
        self.stamp_batch(out, 1, (rx_ns,))
        self.counts[1] -= 1  # Counter.RESPONDED
        self.counts[13] -= HEADER_LEN  # Counter.SENT_BYTES

    def stamp_batch(self, buf: bytearray | memoryview, count: int, rx_ns: Sequence[int]) -> None:
        """Write the transmit timestamp into ``count`` plain responses, just before they are sent.

        Response ``k`` is the 48 octets at ``buf[48 * k:]``, answered by
        :meth:`answer` for a request received at ``rx_ns[k]``. The clock is
        read once for the batch: every response gets the same transmit time,
        the last thing written before the send. Each response's time in the
        server (kernel receive timestamp to transmit timestamp, time queued
        in the socket included, docs/observability.md) goes into the latency
        histogram, which lives in the counters; the responses are counted as
        sent here.
        """
        tx_ns = self._clock_ns()
        tx64 = self._served_ntp64(tx_ns)
        counts = self.counts
        counts[1] += count  # Counter.RESPONDED
        counts[13] += HEADER_LEN * count  # Counter.SENT_BYTES
        for k in range(count):
            _TX.pack_into(buf, 48 * k + 40, tx64)
            took = tx_ns - rx_ns[k]
            counts[LATENCY_BASE + _bucket(LATENCY_BOUNDS_NS, took)] += 1
            if took > 0:  # a clock step between the two reads must not make it negative
                counts[LATENCY_SUM_NS] += took


_EVENT_COUNTERS: dict[DropReason, tuple[int, int, str, str]] = {
    # kind: (drop counter, answered counter, what happened, how it was answered)
    DropReason.ACL_DENIED: (
        _DROP_ACL_DENIED,
        int(Counter.KOD_DENY),
        "requests refused by the access list",
        "DENY kisses",
    ),
    DropReason.RATE_LIMITED: (
        _DROP_RATE_LIMITED,
        int(Counter.KOD_RATE),
        "requests over the rate limit",
        "RATE kisses",
    ),
    DropReason.AUTH_FAILED: (
        _DROP_AUTH_FAILED,
        int(Counter.CRYPTO_NAK),
        "requests with an unknown key or a bad MAC",
        "crypto-NAKs",
    ),
    DropReason.AUTH_REQUIRED: (
        _DROP_AUTH_REQUIRED,
        -1,
        "unauthenticated requests refused",
        "",
    ),
}


def security_summary(
    before: list[int], after: list[int], samples: dict[DropReason, list[str]]
) -> list[tuple[DropReason, str, tuple[object, ...]]]:
    """Log lines (kind, format, args) for the security events between two counter snapshots.

    One line per kind that happened, with its count, how many were answered
    (kisses, crypto-NAKs) and the sampled source addresses. The caller logs
    them with ``log.log(level, fmt, *args)`` so that the logging setup escapes
    every argument, and empties ``samples`` afterwards.
    """
    lines: list[tuple[DropReason, str, tuple[object, ...]]] = []
    for kind, (drop, answered, what, how) in _EVENT_COUNTERS.items():
        dropped = after[drop] - before[drop]
        kissed = after[answered] - before[answered] if answered >= 0 else 0
        if dropped + kissed <= 0:
            continue
        examples = ", ".join(samples.get(kind, ()))
        if how:
            lines.append(
                (
                    kind,
                    "%d %s (%d answered with %s), from e.g. %s",
                    (dropped + kissed, what, kissed, how, examples),
                )
            )
        else:
            lines.append((kind, "%d %s, from e.g. %s", (dropped, what, examples)))
    return lines


# handle() indexes counters by literal for speed; keep those literals honest.
assert (int(Counter.RECEIVED), int(Counter.RESPONDED), int(Counter.REQUEST_V1)) == (0, 1, 2)
assert (int(Counter.RECEIVED_BYTES), int(Counter.SENT_BYTES)) == (12, 13)
assert int(Counter.UNSYNCHRONIZED_RESPONSES) == 14
