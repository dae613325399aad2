"""The request pipeline: one datagram in, one response or one drop reason out.

This is the per-packet hot path of every data-plane worker, so it is written
plainly on purpose: no dataclass per packet, no exceptions in the common case,
one ``struct.pack_into`` into a reused buffer. The clean codec in
:mod:`simple_ntpd.wire` is used only for the rare requests that carry more
than the 48-byte header (extension fields, MAC), where validation needs it.

Order of decisions (ntpd-rs ``Server::handle`` and chrony
``NCR_ProcessRxUnknown`` do the same): length and header checks that cost
nothing, then (later) ACL and rate limit, then trailer parsing and auth, then
the response from the published :class:`ServedClockState`. The transmit
timestamp is the last thing written, immediately before the caller sends.

Nothing here reads a clock or a socket: the receive time comes in as an
argument and the transmit clock is a callable the shell injects.
"""

from __future__ import annotations

import struct
from bisect import bisect_left as _bucket
from collections.abc import Callable

from simple_ntpd.reasons import DropReason
from simple_ntpd.served_clock import (
    LEAP_UNSYNCHRONIZED,
    STRATUM_UNSPECIFIED,
    SeqlockReader,
    ServedClockState,
)
from simple_ntpd.stats import (
    COUNTERS_PER_SLOT,
    DROP_BASE,
    LATENCY_BASE,
    LATENCY_BOUNDS_NS,
    LATENCY_SUM_NS,
    Counter,
)
from simple_ntpd.wire.packet import try_decode_packet

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
# Refresh the cached response template at least this often so that root
# dispersion grows with the age of the reference (RFC 5905 section 10): at
# 15 ppm it grows 3.75 us per 250 ms, a quarter of one unit of the short format.
_TEMPLATE_MAX_AGE_NS = 250_000_000

# Bytes 1..24 of a response: stratum, poll (patched per packet), precision,
# root delay, root dispersion, reference id, reference timestamp.
_TEMPLATE = struct.Struct("!BBbII4sQ")
_RX_TX = struct.Struct("!QQ")
_TX = struct.Struct("!Q")

_DROP_TOO_SHORT = DROP_BASE + DropReason.TOO_SHORT
_DROP_TOO_LONG = DROP_BASE + DropReason.TOO_LONG
_DROP_BAD_VERSION = DROP_BASE + DropReason.BAD_VERSION
_DROP_BAD_MODE = DROP_BASE + DropReason.BAD_MODE
_DROP_MODE_CONTROL = DROP_BASE + DropReason.MODE_CONTROL
_DROP_MODE_PRIVATE = DROP_BASE + DropReason.MODE_PRIVATE


def ntp64(unix_ns: int) -> int:
    """Wire timestamp (era dropped, fraction truncated) of a Unix time in ns.

    Kept here, inline-able and tiny, because it runs twice per response; the
    general, round-to-nearest conversions live in :mod:`simple_ntpd.timetypes`.
    """
    sec, ns = divmod(unix_ns, _NS)
    return (((sec + _NTP_UNIX_OFFSET) & _U32) << 32) | ((ns << 32) // _NS)


def check_trailer(data: bytes) -> DropReason | None:
    """Validate what follows the header (RFC 7822 extension fields, MAC).

    Only requests longer than 48 bytes get here. Unknown extension fields are
    fine (they are ignored and not echoed: the response is the bare header,
    never larger than the request); malformed ones are a drop.
    """
    decoded = try_decode_packet(data)
    return decoded if isinstance(decoded, DropReason) else None


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
        "_clock_ns",
        "_max_len",
        "_out",
        "_reader",
        "_seq",
        "_state",
        "_template_ns",
        "_trailer_check",
        "counts",
        "first_byte",
    )

    def __init__(
        self,
        reader: SeqlockReader,
        clock_ns: Callable[[], int],
        *,
        max_request_len: int = 2048,
        trailer_check: Callable[[bytes], DropReason | None] = check_trailer,
    ) -> None:
        self._reader = reader
        self._clock_ns = clock_ns
        self._max_len = max(HEADER_LEN, max_request_len)
        self._trailer_check = trailer_check
        self._out = bytearray(HEADER_LEN)
        self._seq = -1
        self._state = ServedClockState()
        self._template_ns = 0
        self.counts = [0] * COUNTERS_PER_SLOT
        # first_byte[version] = LI | VN | mode 4, for the current leap.
        self.first_byte = [0] * 8

    @property
    def state(self) -> ServedClockState:
        return self._state

    def _refresh(self, now_ns: int) -> None:
        """Reload the served state if republished, and rebuild the template."""
        seq = self._reader.sequence()
        if seq != self._seq:
            got = self._reader.read()
            if got is not None:
                self._seq, self._state = got
        st = self._state
        self._template_ns = now_ns
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

    def handle(self, data: bytes, rx_ns: int, port: int = 0) -> bytearray | DropReason:
        """Answer one datagram.

        Args:
            data: the datagram as received.
            rx_ns: its receive time on the system clock, in ns (kernel
                timestamp where available).
            port: the client's source port (NTPv1 mode-0 rule).

        Returns:
            The response, in a buffer reused by the next call (send it
            before calling again), or the reason it is dropped.
        """
        counts = self.counts
        counts[0] += 1  # Counter.RECEIVED
        n = len(data)
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
        if n > HEADER_LEN:
            reason = self._trailer_check(data)
            if reason is not None:
                counts[DROP_BASE + reason] += 1
                return reason
        counts[1 + version] += 1  # Counter.REQUEST_V1..V4

        if rx_ns - self._template_ns > _TEMPLATE_MAX_AGE_NS or (
            self._reader.sequence() != self._seq
        ):
            self._refresh(rx_ns)
        st = self._state
        out = self._out
        out[0] = self.first_byte[version]
        out[2] = data[2]  # poll echoed (RFC 5905 section 9.2, fast_xmit)
        out[24:32] = data[40:48]  # origin = the client's transmit timestamp
        if st.leap == LEAP_UNSYNCHRONIZED:
            counts[14] += 1  # Counter.UNSYNCHRONIZED_RESPONSES
        off = st.offset_ns
        freq = st.freq
        if freq:
            rx = rx_ns + off + int(freq * (rx_ns - st.t0_ns))
            tx_ns = self._clock_ns()
            tx = tx_ns + off + int(freq * (tx_ns - st.t0_ns))
        else:
            rx = rx_ns + off
            tx_ns = self._clock_ns()
            tx = tx_ns + off
        # Processing time as the client sees it: kernel receive timestamp to
        # transmit timestamp, time queued in the socket included (docs/observability.md).
        # One C bisect and two list increments: the histogram lives in the counters.
        took = tx_ns - rx_ns
        counts[LATENCY_BASE + _bucket(LATENCY_BOUNDS_NS, took)] += 1
        if took > 0:  # a clock step between the two reads must not make it negative
            counts[LATENCY_SUM_NS] += took
        # Inline ntp64() twice: this is the innermost code of the server.
        sec, ns = divmod(rx, _NS)
        rx64 = (((sec + _NTP_UNIX_OFFSET) & _U32) << 32) | ((ns << 32) // _NS)
        sec, ns = divmod(tx, _NS)
        _RX_TX.pack_into(
            out, 32, rx64, (((sec + _NTP_UNIX_OFFSET) & _U32) << 32) | ((ns << 32) // _NS)
        )
        counts[1] += 1  # Counter.RESPONDED
        counts[13] += HEADER_LEN  # Counter.SENT_BYTES
        return out


# handle() indexes counters by literal for speed; keep those literals honest.
assert (int(Counter.RECEIVED), int(Counter.RESPONDED), int(Counter.REQUEST_V1)) == (0, 1, 2)
assert (int(Counter.RECEIVED_BYTES), int(Counter.SENT_BYTES)) == (12, 13)
assert int(Counter.UNSYNCHRONIZED_RESPONSES) == 14
