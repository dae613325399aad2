"""One upstream server: the client side of RFC 5905 (sections 8, 9 and 13), sans-IO.

This module owns the exchange with one server: when to ask (through
:class:`~simple_ntpd.client.poll.PollController`), what to send, and which
replies to believe. It returns actions (:mod:`.actions`) and never touches a
socket or a clock.

Time scale: every timestamp the caller passes (``now_ns``, ``send_ns``,
``recv_ns``) is on the **served** time scale, the time this daemon itself
serves (system clock plus the published correction). Offsets are then
measured against what clients are told, so whatever the discipline got wrong
shows up in the next measurement, and the same code serves
``discipline_system_clock`` (where served time *is* the kernel clock). The
:class:`~simple_ntpd.client.system.TimekeepingSystem` converts kernel
(system-scale) timestamps for the shell; use it rather than this class
directly.

Rules:

* Each request's transmit timestamp is 64 random bits (as ntpd-rs does): it
  reveals nothing about our clock and a blind attacker cannot guess it. T1 is
  the caller's ``send_ns`` (a kernel timestamp), not the wire value.
* A reply is accepted only if its origin timestamp equals the outstanding
  request's transmit value (RFC 5905 section 8, tests 1-2); the request is
  then no longer outstanding, so a duplicate or replay finds nothing to match.
  Kiss-o'-death packets must match too: a spoofed KoD could otherwise silence
  a source.
* Sanity checks (RFC 5905 section 8): server mode, version 1 to 4, non-zero
  receive and transmit timestamps, leap not 3, stratum 1 to 15, and root
  distance below ``max_distance``. A reply that fails them after matching
  still proves the server is reachable, but gives no sample.
* Kiss-o'-death (RFC 5905 section 7.4): RATE backs the poll off, DENY and
  RSTR demobilize; other codes are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from simple_ntpd.client.actions import (
    Demobilize,
    DemobilizeReason,
    Measurement,
    SampleReady,
    Send,
    SetTimer,
    SourceAction,
)
from simple_ntpd.client.poll import PollController
from simple_ntpd.served_clock import PHI
from simple_ntpd.timetypes import seconds_from_ntp_short, unix_ns_from_ntp64
from simple_ntpd.wire.constants import Leap, Mode
from simple_ntpd.wire.kod import kiss_code
from simple_ntpd.wire.packet import NtpHeader, NtpPacket, encode_packet, try_decode_packet

NS_PER_S = 1_000_000_000
NTP_VERSION = 4
# RFC 5905 section 7.3: MAXSTRAT; stratum 16 means unsynchronized.
MAX_STRATUM = 15
# RFC 5905 section 11.2: MAXDIST, the largest root distance a source may have.
DEFAULT_MAX_DISTANCE = 1.5
# RFC 5905 section 9.2 / 13: unreachable after 8 polls without a reply.
UNREACHABLE_POLLS = 8


class RejectReason(Enum):
    """Why a received datagram produced no sample (counted per association)."""

    MALFORMED = "malformed"
    NOT_SERVER_MODE = "not-server-mode"
    NOT_OUTSTANDING = "not-outstanding"
    """No request is outstanding, or the origin does not match it (bogus or duplicate)."""
    BAD_VERSION = "bad-version"
    ZERO_TIMESTAMP = "zero-timestamp"
    UNSYNCHRONIZED = "unsynchronized"
    BAD_STRATUM = "bad-stratum"
    ROOT_DISTANCE = "root-distance"
    KOD = "kiss-o-death"


@dataclass(frozen=True, slots=True)
class _Outstanding:
    transmit: int


class Association:
    """The client state machine for one server address."""

    def __init__(
        self,
        *,
        rng: Callable[[int], bytes],
        min_poll: int = 6,
        max_poll: int = 10,
        iburst: bool = True,
        max_distance: float = DEFAULT_MAX_DISTANCE,
        precision: int = -20,
    ) -> None:
        self.poll = PollController(min_poll, max_poll, iburst=iburst)
        self._rng = rng
        self._max_distance = max_distance
        self._precision = precision
        self._outstanding: _Outstanding | None = None
        self._next_poll_ns: int | None = None
        self.rejects: dict[RejectReason, int] = {}
        self.last_kiss: bytes | None = None
        self.last_stratum = 0
        self.last_reference_id = b"\x00\x00\x00\x00"
        self.demobilized: DemobilizeReason | None = None

    @property
    def unreachable(self) -> bool:
        """True after :data:`UNREACHABLE_POLLS` polls without any valid reply."""
        return self.poll.unanswered >= UNREACHABLE_POLLS

    @property
    def next_poll_ns(self) -> int | None:
        return self._next_poll_ns

    def _reject(self, reason: RejectReason) -> list[SourceAction]:
        self.rejects[reason] = self.rejects.get(reason, 0) + 1
        return []

    def handle_timer(self, now_ns: int) -> list[SourceAction]:
        """Called at start and whenever the last :class:`SetTimer` comes due.

        Sends a request when a poll is due, and always says when to call again.
        """
        if self.demobilized is not None:
            return []
        if self._next_poll_ns is not None and now_ns < self._next_poll_ns:
            return [SetTimer(self._next_poll_ns)]
        self.poll.on_poll()
        transmit = int.from_bytes(self._rng(8), "big") or 1
        self._outstanding = _Outstanding(transmit)
        request = NtpHeader(
            leap=Leap.NO_WARNING,
            version=NTP_VERSION,
            mode=Mode.CLIENT,
            stratum=0,
            poll=self.poll.poll,
            precision=self._precision,
            root_delay=0,
            root_dispersion=0,
            reference_id=b"\x00\x00\x00\x00",
            reference_ts=0,
            origin_ts=0,
            receive_ts=0,
            transmit_ts=transmit,
        )
        self._next_poll_ns = now_ns + self.poll.interval_ns(self._rng)
        return [Send(encode_packet(NtpPacket(request))), SetTimer(self._next_poll_ns)]

    def handle_packet(self, data: bytes, send_ns: int, recv_ns: int) -> list[SourceAction]:
        """A datagram from the server arrived.

        Args:
            data: the datagram.
            send_ns: when the outstanding request left (T1), served scale.
            recv_ns: when this datagram arrived (T4), served scale.

        Returns:
            Nothing for a rejected datagram; ``SampleReady`` for a good reply;
            ``Demobilize`` or a new ``SetTimer`` for a kiss-o'-death.
        """
        if self.demobilized is not None:
            return []
        decoded = try_decode_packet(data)
        if not isinstance(decoded, NtpPacket):
            return self._reject(RejectReason.MALFORMED)
        h = decoded.header
        if h.mode != Mode.SERVER:
            return self._reject(RejectReason.NOT_SERVER_MODE)
        outstanding = self._outstanding
        if outstanding is None or h.origin_ts != outstanding.transmit:
            return self._reject(RejectReason.NOT_OUTSTANDING)
        self._outstanding = None  # one answer per request: duplicates find nothing
        kiss = kiss_code(h)
        if kiss is not None:
            return self._handle_kiss(kiss, h, recv_ns)
        self.poll.on_reply()
        self.last_stratum = h.stratum
        self.last_reference_id = bytes(h.reference_id)
        if not 1 <= h.version <= NTP_VERSION:
            return self._reject(RejectReason.BAD_VERSION)
        if h.receive_ts == 0 or h.transmit_ts == 0:
            return self._reject(RejectReason.ZERO_TIMESTAMP)
        if h.leap == Leap.UNSYNCHRONIZED:
            return self._reject(RejectReason.UNSYNCHRONIZED)
        if not 1 <= h.stratum <= MAX_STRATUM:
            return self._reject(RejectReason.BAD_STRATUM)
        t2 = unix_ns_from_ntp64(h.receive_ts, send_ns)
        t3 = unix_ns_from_ntp64(h.transmit_ts, send_ns)
        # RFC 5905 section 8: offset and delay of one exchange.
        offset = ((t2 - send_ns) + (t3 - recv_ns)) / 2 / NS_PER_S
        precision = 2.0**self._precision + 2.0**h.precision
        delay = max(((recv_ns - send_ns) - (t3 - t2)) / NS_PER_S, precision)
        root_delay = seconds_from_ntp_short(h.root_delay)
        root_dispersion = seconds_from_ntp_short(h.root_dispersion)
        dispersion = precision + PHI * delay
        if (root_delay + delay) / 2 + root_dispersion + dispersion > self._max_distance:
            return self._reject(RejectReason.ROOT_DISTANCE)
        return [
            SampleReady(
                Measurement(
                    offset=offset,
                    delay=delay,
                    dispersion=dispersion,
                    root_delay=root_delay,
                    root_dispersion=root_dispersion,
                    stratum=h.stratum,
                    leap=int(h.leap),
                    reference_id=bytes(h.reference_id),
                    precision=h.precision,
                    send_ns=send_ns,
                    recv_ns=recv_ns,
                )
            )
        ]

    def _handle_kiss(self, kiss: bytes, h: NtpHeader, now_ns: int) -> list[SourceAction]:
        self.last_kiss = kiss
        self.rejects[RejectReason.KOD] = self.rejects.get(RejectReason.KOD, 0) + 1
        if kiss == b"RATE":
            # The server answered, so it is reachable; it asks us to slow down.
            self.poll.on_reply()
            self.poll.on_kod_rate(h.poll)
            self._next_poll_ns = now_ns + self.poll.interval_ns(self._rng)
            return [SetTimer(self._next_poll_ns)]
        if kiss in (b"DENY", b"RSTR"):
            reason = DemobilizeReason.KOD_DENY if kiss == b"DENY" else DemobilizeReason.KOD_RSTR
            self.demobilized = reason
            return [Demobilize(reason)]
        return []

    def note_sample_quality(self, stable: bool) -> None:
        """The system judged the last sample (drives the poll adaptation)."""
        self.poll.on_sample(stable)
