"""The served clock: what the server says about time, published lock-free.

Served time is the system clock plus a correction::

    served(t) = t + offset_ns + freq * (t - t0_ns)

where ``t`` is the system (CLOCK_REALTIME) time in nanoseconds. The discipline
in the main process publishes a new :class:`ServedClockState` whenever it
learns something; the data-plane workers read it on every packet.

Publication is a seqlock over a shared buffer (RFC-free, kernel-style): the
writer bumps the sequence to odd, writes the data, bumps it to even; a reader
copies the data between two reads of the sequence and retries when they
differ or are odd. There is one writer (the main process), so writers need no
lock, and readers never block the writer. This module only packs and unpacks
bytes in a buffer it is given: creating the shared memory is the shell's job.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

# RFC 5905 section 7.3: PHI, the frequency tolerance, 15 ppm.
PHI = 15e-6
LEAP_NONE = 0
LEAP_ADD_SECOND = 1
LEAP_DEL_SECOND = 2
LEAP_UNSYNCHRONIZED = 3
# On the wire, an unsynchronized server says stratum 0 ("unspecified");
# RFC 5905 section 7.3 maps the internal 16 to 0 in packets.
STRATUM_UNSPECIFIED = 0
MAX_STRATUM = 15


@dataclass(frozen=True, slots=True)
class ServedClockState:
    """One published snapshot of the server's clock and reference.

    Times are integers of nanoseconds on the system (CLOCK_REALTIME) scale
    unless named otherwise; durations in seconds are floats.
    """

    leap: int = LEAP_UNSYNCHRONIZED
    """Leap indicator to serve; 3 means unsynchronized."""
    stratum: int = STRATUM_UNSPECIFIED
    """Stratum to serve on the wire (0 when unsynchronized)."""
    reference_id: bytes = b"\x00\x00\x00\x00"
    """Four bytes: an ASCII code at stratum 1, else the source's IPv4 address or hash."""
    reference_time_ns: int = 0
    """Served time of the last update of the reference; 0 when never."""
    root_delay: float = 0.0
    """Round-trip delay to the primary reference, seconds."""
    root_dispersion: float = 0.0
    """Dispersion to the primary reference at ``update_ns``, seconds."""
    dispersion_rate: float = PHI
    """How fast root dispersion grows after ``update_ns``, seconds per second."""
    precision: int = -20
    """log2 of the precision of the clock, seconds."""
    offset_ns: int = 0
    """Correction from system to served time at ``t0_ns``."""
    freq: float = 0.0
    """Frequency of the correction (dimensionless: 1e-6 is 1 ppm fast)."""
    t0_ns: int = 0
    """System time at which ``offset_ns`` holds."""
    update_ns: int = 0
    """System time of this publication."""

    @property
    def synchronized(self) -> bool:
        return self.leap != LEAP_UNSYNCHRONIZED

    def served_ns(self, system_ns: int) -> int:
        """Served time for a system clock reading."""
        return system_ns + self.offset_ns + int(self.freq * (system_ns - self.t0_ns))

    def root_dispersion_at(self, system_ns: int) -> float:
        """Root dispersion grown since the update (RFC 5905 section 10: PHI times age)."""
        age = max(0, system_ns - self.update_ns) * 1e-9
        return self.root_dispersion + self.dispersion_rate * age

    def with_changes(self, **changes: object) -> ServedClockState:
        return replace(self, **changes)  # type: ignore[arg-type]


# Layout of the shared buffer: u64 sequence, then the packed state.
_SEQ = struct.Struct("=Q")
_STATE = struct.Struct("=BBb4sqdddqdqq")
STATE_BUFFER_SIZE = 8 + _STATE.size


def _pack(state: ServedClockState) -> bytes:
    return _STATE.pack(
        state.leap,
        state.stratum,
        state.precision,
        state.reference_id,
        state.reference_time_ns,
        state.root_delay,
        state.root_dispersion,
        state.dispersion_rate,
        state.offset_ns,
        state.freq,
        state.t0_ns,
        state.update_ns,
    )


def _unpack(data: bytes) -> ServedClockState:
    (leap, stratum, precision, refid, reftime, rdelay, rdisp, rate, off, freq, t0, upd) = (
        _STATE.unpack(data)
    )
    return ServedClockState(
        leap=leap,
        stratum=stratum,
        reference_id=refid,
        reference_time_ns=reftime,
        root_delay=rdelay,
        root_dispersion=rdisp,
        dispersion_rate=rate,
        precision=precision,
        offset_ns=off,
        freq=freq,
        t0_ns=t0,
        update_ns=upd,
    )


class SeqlockWriter:
    """The single writer of a served-clock buffer."""

    def __init__(self, buf: memoryview) -> None:
        if len(buf) < STATE_BUFFER_SIZE:
            raise ValueError("buffer too small for the served clock state")
        self._buf = buf
        self._seq: int = int(_SEQ.unpack_from(buf, 0)[0]) & ~1

    def publish(self, state: ServedClockState) -> int:
        """Write ``state``; returns the new (even) sequence number."""
        data = _pack(state)
        self._seq += 1
        _SEQ.pack_into(self._buf, 0, self._seq)  # odd: a write is under way
        self._buf[8 : 8 + len(data)] = data
        self._seq += 1
        _SEQ.pack_into(self._buf, 0, self._seq)  # even: consistent again
        return self._seq


class SeqlockReader:
    """A lock-free reader of a served-clock buffer.

    :meth:`sequence` is one 8-byte read: the hot path calls it per packet and
    only unpacks the state (:meth:`read`) when the sequence has moved.
    """

    def __init__(self, buf: memoryview) -> None:
        self._buf = buf

    def sequence(self) -> int:
        return int(_SEQ.unpack_from(self._buf, 0)[0])

    def sequence_view(self) -> memoryview:
        """The sequence number as a one-item view: ``view[0]`` is the cheapest read of it
        (no call, no struct), for the per-packet check on the hot path."""
        return self._buf[:8].cast("Q")

    def read(self, max_tries: int = 1000) -> tuple[int, ServedClockState] | None:
        """A consistent (sequence, state), or None if the writer kept tearing it."""
        buf = self._buf
        end = 8 + _STATE.size
        for _ in range(max_tries):
            before: int = _SEQ.unpack_from(buf, 0)[0]
            if before & 1:
                continue
            data = bytes(buf[8:end])
            if _SEQ.unpack_from(buf, 0)[0] == before:
                if before == 0:
                    return 0, ServedClockState()
                return before, _unpack(data)
        return None
