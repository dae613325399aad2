"""Kiss-o'-death packets: build one in answer to a request, recognise one.

This module owns the shape of a kiss-o'-death (KoD) header (RFC 5905
section 7.4): leap 3 (unsynchronized), stratum 0, and a four-character ASCII
kiss code in the reference id. Deciding *when* to kiss (rate limit, access
control, NTS) is the server pipeline's business.

Timestamps: a KoD must match the client's request, or the client discards it
as bogus (RFC 5905 section 8: the origin timestamp must equal the transmit
timestamp the client sent), but it must not tell anyone the time, or a
rate-limited attacker still gets a time sample per kiss. We do what the
reference implementation does in ``fast_xmit`` (ntpd, and NTPsec after it):
origin, receive and transmit timestamps all echo the request's transmit
timestamp. The origin matches, the three timestamps are non-zero whenever the
request's was (some clients, chrony among them, treat zero receive or transmit
timestamps as a bogus packet and would then miss the kiss), and the offset and
delay a client could compute from it are meaningless. Reference timestamp,
root delay, root dispersion and precision are zero: a KoD reveals nothing about
the server's clock.

Note: chrony 4 builds its RATE kiss differently: a normal response with leap
3, stratum 0 and the code, but real (fuzzed) receive and transmit timestamps.
The leap 3 keeps clients from using it; we prefer not to send the time at all.
"""

from __future__ import annotations

from simple_ntpd.wire.constants import Leap, Mode
from simple_ntpd.wire.packet import NtpHeader

__all__ = ["kiss_code", "make_kod"]

# RFC 5905 section 7.4: a kiss-o'-death has stratum 0 ("unspecified or invalid").
KOD_STRATUM = 0


def _is_printable_ascii(code: bytes) -> bool:
    return all(0x20 <= b <= 0x7E for b in code)


def make_kod(
    request: NtpHeader,
    code: bytes,
    *,
    version: int | None = None,
    poll: int | None = None,
) -> NtpHeader:
    """Build the header of a kiss-o'-death answer to ``request``.

    Args:
        request: the header of the client's request.
        code: the four-character kiss code, e.g. ``KissCode.RATE``.
        version: the version to answer with; by default the request's.
        poll: the poll exponent to put in the answer; by default the
            request's. A rate limiter may pass a larger value to ask the
            client to poll less often, as ntpd and chrony do with
            ``max(request poll, minimum poll)``.

    Returns:
        A server-mode header with leap 3, stratum 0, the code as reference
        id, and the request's transmit timestamp as origin, receive and
        transmit timestamps (see the module docstring for why).

    Raises:
        ValueError: ``code`` is not four printable ASCII characters.
    """
    code = bytes(code)
    if len(code) != 4 or not _is_printable_ascii(code):
        raise ValueError(f"kiss code must be 4 printable ASCII characters, got {code!r}")
    echoed = request.transmit_ts
    return NtpHeader(
        leap=Leap.UNSYNCHRONIZED,
        version=request.version if version is None else version,
        mode=Mode.SERVER,
        stratum=KOD_STRATUM,
        poll=request.poll if poll is None else poll,
        precision=0,
        root_delay=0,
        root_dispersion=0,
        reference_id=code,
        reference_ts=0,
        origin_ts=echoed,
        receive_ts=echoed,
        transmit_ts=echoed,
    )


def kiss_code(h: NtpHeader) -> bytes | None:
    """Return the kiss code if ``h`` is a kiss-o'-death, else None.

    A header is a kiss-o'-death when its stratum is 0 and its reference id is
    four printable ASCII characters (RFC 5905 section 7.4). A client request
    (stratum 0, reference id usually zero) is therefore not one.
    """
    if h.stratum != KOD_STRATUM:
        return None
    refid = h.reference_id
    if len(refid) != 4 or not _is_printable_ascii(refid):
        return None
    return bytes(refid)
