"""The health self-check: one real NTP query to our own socket, judged here.

The main process sends the request built by :func:`self_check_request` to the
server's own listening socket every ``health_check_interval`` seconds and hands
the reply (or None after ``health_check_timeout``) to :func:`judge_reply`. The
verdict feeds ``/health`` ("self-check failed"). It proves what a load
balancer cares about and the published state cannot show: that the workers
are alive, the socket is reachable, and what they answer is a well-formed
server reply carrying our served time.

Pure: the random transmit timestamp, the expected served time and the reply
bytes come in as arguments.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from simple_ntpd.wire.constants import KissCode

# RFC 5905 section 7.3: the 48-octet header; first octet LI(2) VN(3) Mode(3).
HEADER_LEN = 48
VERSION = 4
MODE_CLIENT = 3
MODE_SERVER = 4
_NTP_UNIX_OFFSET = 2_208_988_800  # RFC 5905 section 6: 1900 to 1970, seconds
_NS = 1_000_000_000
_ERA = 1 << 64  # one NTP era of 64-bit timestamps, in 2^-32 s units
_KISS_CODES = frozenset(code.value for code in KissCode)

MAX_TIME_ERROR_S = 1.0
"""A reply whose transmit time is further than this from the served time fails."""


@dataclass(frozen=True, slots=True)
class SelfCheckResult:
    """The outcome of one self-check."""

    ok: bool
    detail: str
    """"ok", or why it failed, for /health and the log."""


def self_check_request(transmit: bytes) -> bytes:
    """A version-4 client request whose transmit timestamp is the 8 random bytes ``transmit``.

    A random transmit timestamp is what RFC 9109 section 4 asks of clients; the reply
    must echo it as its origin timestamp, which ties the reply to this request.
    """
    if len(transmit) != 8:
        raise ValueError("transmit must be 8 bytes")
    return bytes([(VERSION << 3) | MODE_CLIENT]) + bytes(39) + transmit


def _ntp64_to_unix_ns(value: int, near_ns: int) -> int:
    """The Unix time (ns) of a 64-bit NTP timestamp, in the era nearest ``near_ns``."""
    near = ((near_ns // _NS + _NTP_UNIX_OFFSET) << 32) + ((near_ns % _NS) << 32) // _NS
    delta = (value - near) % _ERA
    if delta >= _ERA // 2:
        delta -= _ERA
    return near_ns + (delta * _NS >> 32)


def judge_reply(
    request: bytes,
    reply: bytes | None,
    *,
    expected_ns: int,
    max_error_s: float = MAX_TIME_ERROR_S,
) -> SelfCheckResult:
    """Whether ``reply`` is a good answer to ``request`` at served time ``expected_ns``.

    Good: a server-mode reply of at least 48 octets that echoes our transmit
    timestamp as its origin, is no kiss-o'-death, and whose transmit timestamp is
    within ``max_error_s`` of the served time. An unsynchronized reply (leap 3)
    is a good answer here: /health reports unsynchronized on its own.
    """
    if reply is None:
        return SelfCheckResult(False, "no reply before the timeout")
    if len(reply) < HEADER_LEN:
        return SelfCheckResult(False, f"reply of {len(reply)} octets")
    mode = reply[0] & 7
    if mode != MODE_SERVER:
        return SelfCheckResult(False, f"reply in mode {mode}")
    if reply[24:32] != request[40:48]:
        return SelfCheckResult(False, "reply does not echo our transmit timestamp")
    leap = reply[0] >> 6
    if reply[1] == 0 and reply[12:16] in _KISS_CODES and leap == 3:
        # RFC 5905 section 7.4: stratum 0 with an ASCII code is a kiss-o'-death.
        code = reply[12:16].decode("ascii")
        return SelfCheckResult(False, f"kiss-o'-death {code}")
    (tx,) = struct.unpack_from("!Q", reply, 40)
    error_s = (_ntp64_to_unix_ns(tx, expected_ns) - expected_ns) / _NS
    if not abs(error_s) <= max_error_s:
        return SelfCheckResult(False, f"served time off by {error_s:+.3f} s")
    return SelfCheckResult(True, "ok")
