"""What the timekeeping core asks the shell to do, as values.

This module owns the action vocabulary (modelled on ntpd-rs'
``NtpSourceAction``): an :class:`~simple_ntpd.client.association.Association`
returns :data:`SourceAction` values, the
:class:`~simple_ntpd.client.system.TimekeepingSystem` returns
:data:`SystemAction` values. The shell executes them in order; none of them
has happened until the shell did it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from simple_ntpd.clock import SteerableClock
from simple_ntpd.served_clock import ServedClockState


class DemobilizeReason(Enum):
    """Why an association asks to be removed."""

    KOD_DENY = "kod-deny"
    """The server sent a DENY kiss-o'-death (RFC 5905 section 7.4)."""
    KOD_RSTR = "kod-rstr"
    """The server sent a RSTR kiss-o'-death (RFC 5905 section 7.4)."""


@dataclass(frozen=True, slots=True)
class Measurement:
    """One accepted client/server exchange (RFC 5905 section 8), on the served time scale.

    ``offset`` and ``delay`` are seconds; ``send_ns``/``recv_ns`` are the
    caller's timestamps of our request and of the reply (T1, T4).
    """

    offset: float
    delay: float
    dispersion: float
    """Sample dispersion: both precisions plus PHI times the delay (RFC 5905 section 8)."""
    root_delay: float
    root_dispersion: float
    stratum: int
    leap: int
    reference_id: bytes
    precision: int
    send_ns: int
    recv_ns: int


@dataclass(frozen=True, slots=True)
class Send:
    """Send these bytes to the association's server (from its own socket)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Call ``handle_timer`` at ``at_ns``; replaces any earlier timer.

    ``at_ns`` is on the time scale of the ``now_ns`` the caller passed in.
    """

    at_ns: int


@dataclass(frozen=True, slots=True)
class Demobilize:
    """Stop polling this server; the association is finished."""

    reason: DemobilizeReason


@dataclass(frozen=True, slots=True)
class SampleReady:
    """A new measurement for the system (consumed by :class:`TimekeepingSystem`)."""

    measurement: Measurement


SourceAction = Send | SetTimer | Demobilize | SampleReady


# --- system-level actions, addressed to the shell ---------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceSend:
    """Send ``data`` to source ``source_id``'s server."""

    source_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class SourceTimer:
    """Call ``handle_source_timer(source_id, ...)`` at system time ``at_ns``."""

    source_id: int
    at_ns: int


@dataclass(frozen=True, slots=True)
class SourceDemobilized:
    """Source ``source_id`` is finished (kiss-o'-death); close its socket, maybe replace it."""

    source_id: int
    reason: DemobilizeReason


@dataclass(frozen=True, slots=True)
class SystemTimer:
    """Call ``handle_timer`` at system time ``at_ns``; replaces any earlier system timer."""

    at_ns: int


@dataclass(frozen=True, slots=True)
class Publish:
    """Publish this served-clock state to the data plane."""

    state: ServedClockState


@dataclass(frozen=True, slots=True)
class SaveDrift:
    """Write this text to the drift file (atomically: write a temporary file, rename)."""

    text: str


@dataclass(frozen=True, slots=True)
class SetClockFrequency:
    """``discipline_system_clock`` only: set the kernel frequency correction, ppm."""

    ppm: float


@dataclass(frozen=True, slots=True)
class StepClock:
    """``discipline_system_clock`` only: step the kernel clock by ``delta_ns``."""

    delta_ns: int


@dataclass(frozen=True, slots=True)
class SetClockLeap:
    """``discipline_system_clock`` only: arm (1 insert, 2 delete) or disarm (0) the kernel leap."""

    leap: int


@dataclass(frozen=True, slots=True)
class SetClockStatus:
    """``discipline_system_clock`` only: kernel sync status and error estimates."""

    synchronized: bool
    est_error_s: float
    max_error_s: float


ClockCommand = SetClockFrequency | StepClock | SetClockLeap | SetClockStatus

SystemAction = (
    SourceSend
    | SourceTimer
    | SourceDemobilized
    | SystemTimer
    | Publish
    | SaveDrift
    | SetClockFrequency
    | StepClock
    | SetClockLeap
    | SetClockStatus
)


def apply_clock_command(clock: SteerableClock, command: ClockCommand) -> None:
    """Apply one clock command to a :class:`simple_ntpd.clock.SteerableClock`."""
    match command:
        case SetClockFrequency(ppm):
            clock.set_frequency(ppm)
        case StepClock(delta_ns):
            clock.step(delta_ns)
        case SetClockLeap(leap):
            clock.set_leap(leap)
        case SetClockStatus(synced, est, mx):
            clock.set_sync_status(synced, est, mx)
