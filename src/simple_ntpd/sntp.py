"""A minimal SNTP client exchange (RFC 4330 / RFC 5905 on-wire), sans-IO.

Used by ``simple-ntpd query`` and the health self-check. The request carries
a random transmit timestamp (as chrony and ntpd-rs send) so a reply is
accepted only if it echoes that exact value as its origin timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass

from simple_ntpd.timetypes import ntp64_diff_seconds, ntp64_from_unix_ns, seconds_from_ntp_short
from simple_ntpd.wire.constants import Leap, Mode
from simple_ntpd.wire.kod import kiss_code
from simple_ntpd.wire.packet import NtpHeader, NtpPacket, encode_packet, try_decode_packet

MODE_CLIENT = 3
MODE_SERVER = 4


@dataclass(frozen=True, slots=True)
class SntpResult:
    offset: float
    """Server clock minus local clock, seconds (RFC 5905 theta)."""
    delay: float
    """Round-trip delay, seconds (RFC 5905 delta)."""
    stratum: int
    leap: int
    version: int
    reference_id: bytes
    root_delay: float
    root_dispersion: float
    precision: int
    poll: int

    @property
    def synchronized(self) -> bool:
        return self.leap != 3 and 0 < self.stratum < 16

    def refid_text(self) -> str:
        """Reference id as ntpdig prints it: ASCII at stratum 0/1, else dotted quad."""
        rid = self.reference_id
        if self.stratum <= 1:
            return rid.rstrip(b"\0").decode("ascii", "replace")
        return ".".join(str(b) for b in rid)

    def to_dict(self) -> dict[str, object]:
        return {
            "offset": self.offset,
            "delay": self.delay,
            "stratum": self.stratum,
            "leap": self.leap,
            "version": self.version,
            "refid": self.refid_text(),
            "root_delay": self.root_delay,
            "root_dispersion": self.root_dispersion,
            "precision": self.precision,
            "poll": self.poll,
            "synchronized": self.synchronized,
        }


@dataclass(frozen=True, slots=True)
class SntpKiss:
    code: str


@dataclass(frozen=True, slots=True)
class SntpInvalid:
    why: str


def build_request(transmit_value: int, version: int = 4) -> bytes:
    """A 48-byte client request whose transmit timestamp is ``transmit_value``."""
    header = NtpHeader(
        leap=Leap.UNSYNCHRONIZED if version >= 3 else Leap.NO_WARNING,
        version=version,
        mode=Mode.CLIENT,
        stratum=0,
        poll=0,
        precision=0,
        root_delay=0,
        root_dispersion=0,
        reference_id=b"\0\0\0\0",
        reference_ts=0,
        origin_ts=0,
        receive_ts=0,
        transmit_ts=transmit_value,
    )
    return encode_packet(NtpPacket(header=header))


def evaluate_reply(
    data: bytes, transmit_value: int, t1_ns: int, t4_ns: int
) -> SntpResult | SntpKiss | SntpInvalid:
    """Check a reply against the request and compute offset and delay.

    ``t1_ns``/``t4_ns`` are the local send and receive times (Unix ns).
    """
    pkt = try_decode_packet(data)
    if not isinstance(pkt, NtpPacket):
        return SntpInvalid(f"malformed reply ({pkt.name.lower()})")
    h = pkt.header
    if h.mode != MODE_SERVER:
        return SntpInvalid(f"reply mode {h.mode}, expected 4")
    if h.origin_ts != transmit_value:
        return SntpInvalid("origin timestamp does not match the request (bogus or stale reply)")
    code = kiss_code(h)
    if code is not None:
        return SntpKiss(code.decode("ascii", "replace"))
    t1 = ntp64_from_unix_ns(t1_ns)
    t4 = ntp64_from_unix_ns(t4_ns)
    t2, t3 = h.receive_ts, h.transmit_ts
    if t2 == 0 or t3 == 0:
        return SntpInvalid("server left a timestamp zero")
    # RFC 5905 section 8: theta = ((T2 - T1) + (T3 - T4)) / 2, delta = (T4 - T1) - (T3 - T2).
    offset = (ntp64_diff_seconds(t2, t1) + ntp64_diff_seconds(t3, t4)) / 2.0
    delay = ntp64_diff_seconds(t4, t1) - ntp64_diff_seconds(t3, t2)
    return SntpResult(
        offset=offset,
        delay=delay,
        stratum=h.stratum,
        leap=h.leap,
        version=h.version,
        reference_id=h.reference_id,
        root_delay=seconds_from_ntp_short(h.root_delay),
        root_dispersion=seconds_from_ntp_short(h.root_dispersion),
        precision=h.precision,
        poll=h.poll,
    )
