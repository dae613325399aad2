"""Clock interfaces: what the core may ask of a clock, as Protocols.

This module owns the two shapes a clock takes in simple-ntpd:

* :class:`Clock`, something that can be read (the server's transmit timestamp,
  the shell's timers);
* :class:`SteerableClock`, the kernel clock as ``clock_adjtime(2)`` exposes it,
  used only when ``discipline_system_clock = true``.

The pure core never reads or steers a clock itself: the discipline returns
:mod:`simple_ntpd.client.actions` clock commands, and the shell applies them to
a :class:`SteerableClock`. The real implementation lives in ``runtime/``; the
tests and the simulator use :class:`simple_ntpd.testing.FakeKernelClock`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """A readable clock on the Unix (CLOCK_REALTIME) scale."""

    def now_ns(self) -> int:
        """Nanoseconds since 1970-01-01T00:00:00Z, not counting leap seconds."""
        ...


@runtime_checkable
class SteerableClock(Clock, Protocol):
    """A clock that can be steered, shaped after Linux ``clock_adjtime(2)``.

    Each method maps to one ``struct timex`` operation, so the runtime adapter
    stays a thin translation.
    """

    def set_frequency(self, ppm: float) -> None:
        """Set the frequency correction (``ADJ_FREQUENCY``): positive runs the clock faster.

        The value is absolute, not added to the previous one.
        """
        ...

    def slew(self, offset_ns: int) -> None:
        """Ask the kernel to slew out ``offset_ns`` gradually (``ADJ_OFFSET``, ``ADJ_NANO``)."""
        ...

    def step(self, delta_ns: int) -> None:
        """Step the clock by ``delta_ns`` at once (``ADJ_SETOFFSET``)."""
        ...

    def set_leap(self, leap: int) -> None:
        """Arm a leap second at the next UTC midnight (``STA_INS``/``STA_DEL``); 0 disarms."""
        ...

    def set_sync_status(self, synchronized: bool, est_error_s: float, max_error_s: float) -> None:
        """Set ``STA_UNSYNC`` and the kernel's ``esterror`` and ``maxerror``."""
        ...
