"""The exception hierarchy. One root, names that describe the condition.

Exceptions never cross the request pipeline: the core turns malformed input
into a :class:`simple_ntpd.reasons.DropReason` before it reaches the shell.
"""

from __future__ import annotations

from simple_ntpd.reasons import DropReason


class SimpleNtpdError(Exception):
    """Base class of every error simple-ntpd raises."""


class WireFormatError(SimpleNtpdError):
    """A datagram is not a well-formed NTP packet."""

    def __init__(self, reason: DropReason, detail: str = "") -> None:
        super().__init__(f"{reason.name.lower()}: {detail}" if detail else reason.name.lower())
        self.reason = reason
        self.detail = detail


class ConfigError(SimpleNtpdError):
    """A configuration file or value is invalid; the message names file, line and key."""
