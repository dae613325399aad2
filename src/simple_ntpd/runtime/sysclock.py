"""The kernel clock as a :class:`simple_ntpd.clock.SteerableClock`, via clock_adjtime(2).

This is the only code in simple-ntpd that can change the system clock, and it
runs only when ``discipline_system_clock = true`` and the process holds
CAP_SYS_TIME. The system call itself is injected (``adjtime``), so the tests
run every code path against a fake kernel that records the ``struct timex`` it
is given, and never touch the real clock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from collections.abc import Callable

CLOCK_REALTIME = 0

# <linux/timex.h> modes
ADJ_OFFSET = 0x0001
ADJ_FREQUENCY = 0x0002
ADJ_MAXERROR = 0x0004
ADJ_ESTERROR = 0x0008
ADJ_STATUS = 0x0010
ADJ_SETOFFSET = 0x0100
ADJ_NANO = 0x2000
# status bits
STA_PLL = 0x0001
STA_INS = 0x0010
STA_DEL = 0x0020
STA_UNSYNC = 0x0040
STA_NANO = 0x2000

CAP_SYS_TIME = 25


class Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class Timex(ctypes.Structure):
    """struct timex of <sys/timex.h> (x86-64 and aarch64 layout)."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_padding", ctypes.c_int * 11),
    ]


AdjTime = Callable[[int, Timex], int]


def _libc_clock_adjtime() -> AdjTime:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fn = libc.clock_adjtime
    fn.argtypes = [ctypes.c_int, ctypes.POINTER(Timex)]
    fn.restype = ctypes.c_int

    def call(clock_id: int, tx: Timex) -> int:
        rc = int(fn(clock_id, ctypes.byref(tx)))
        if rc < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return rc

    return call


def holds_cap_sys_time(status_text: str | None = None) -> bool:
    """True when CAP_SYS_TIME is in the effective set (from /proc/self/status)."""
    if status_text is None:
        with open("/proc/self/status") as f:
            status_text = f.read()
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_SYS_TIME & 1)
    return False


def _ppm_to_scaled(ppm: float) -> int:
    # timex.freq is ppm with a 16-bit binary fraction ("scaled ppm").
    return round(ppm * 65536)


class KernelClock:
    """SteerableClock over clock_adjtime. ``adjtime`` defaults to the real system call."""

    def __init__(self, adjtime: AdjTime | None = None, max_ppm: float = 500.0) -> None:
        self._adjtime = adjtime if adjtime is not None else _libc_clock_adjtime()
        self._max_ppm = max_ppm
        self._status = 0

    def now_ns(self) -> int:
        return time.clock_gettime_ns(time.CLOCK_REALTIME)

    def _call(self, tx: Timex) -> int:
        return self._adjtime(CLOCK_REALTIME, tx)

    def set_frequency(self, ppm: float) -> None:
        ppm = max(-self._max_ppm, min(self._max_ppm, ppm))
        tx = Timex()
        tx.modes = ADJ_FREQUENCY
        tx.freq = _ppm_to_scaled(ppm)
        self._call(tx)

    def slew(self, offset_ns: int) -> None:
        tx = Timex()
        tx.modes = ADJ_OFFSET | ADJ_NANO | ADJ_STATUS
        tx.status = self._status | STA_PLL | STA_NANO
        tx.offset = max(-500_000_000, min(500_000_000, offset_ns))
        self._call(tx)

    def step(self, delta_ns: int) -> None:
        tx = Timex()
        tx.modes = ADJ_SETOFFSET | ADJ_NANO
        sec, nsec = divmod(delta_ns, 1_000_000_000)  # tv_usec holds ns with ADJ_NANO, >= 0
        tx.time.tv_sec = sec
        tx.time.tv_usec = nsec
        self._call(tx)

    def set_leap(self, leap: int) -> None:
        self._status &= ~(STA_INS | STA_DEL)
        if leap == 1:
            self._status |= STA_INS
        elif leap == 2:
            self._status |= STA_DEL
        tx = Timex()
        tx.modes = ADJ_STATUS
        tx.status = self._status
        self._call(tx)

    def set_sync_status(self, synchronized: bool, est_error_s: float, max_error_s: float) -> None:
        if synchronized:
            self._status &= ~STA_UNSYNC
        else:
            self._status |= STA_UNSYNC
        tx = Timex()
        tx.modes = ADJ_STATUS | ADJ_ESTERROR | ADJ_MAXERROR
        tx.status = self._status
        tx.esterror = min(int(est_error_s * 1e6), 16_000_000)
        tx.maxerror = min(int(max_error_s * 1e6), 16_000_000)
        self._call(tx)
