"""The vocabulary of outcomes: why a datagram was dropped, what was counted.

Every datagram the server receives ends in exactly one outcome: a response or
a :class:`DropReason`. The integer values index per-worker counters in shared
memory (see :mod:`simple_ntpd.stats`), so they are append-only: never
renumber a member.
"""

from __future__ import annotations

from enum import IntEnum


class DropReason(IntEnum):
    """Why a received datagram got no response."""

    TOO_SHORT = 0
    """Fewer than the 48 bytes of an NTP header."""
    TOO_LONG = 1
    """Longer than the largest request we accept (``max_packet_size``)."""
    BAD_VERSION = 2
    """Version 0 or above 4."""
    BAD_MODE = 3
    """Not a client request: symmetric, server, broadcast or reserved mode."""
    MODE_CONTROL = 4
    """Mode 6 (RFC 9327 control message): not served yet."""
    MODE_PRIVATE = 5
    """Mode 7 (ntpd private/monlist): never served."""
    BAD_EXTENSION = 6
    """An RFC 7822 extension field with a bad length, padding or overrun."""
    BAD_MAC = 7
    """Trailing bytes that are neither extension fields nor a MAC."""
    ACL_DENIED = 8
    """Source address refused by access control."""
    RATE_LIMITED = 9
    """Source over its rate limit (and not picked for a RATE kiss)."""
    AUTH_FAILED = 10
    """A MAC or NTS authenticator that does not verify."""
    AUTH_REQUIRED = 11
    """Authentication is required and the request carries none."""
    INTERNAL = 12
    """A bug caught at the pipeline boundary; counted, never raised."""
    SEND_FAILED = 13
    """The response was built but the kernel refused to send it."""


DROP_REASON_COUNT = len(DropReason)
