"""The clock_adjtime adapter, run against a fake kernel: the real clock is never touched."""

from __future__ import annotations

import ctypes

import pytest

from simple_ntpd.client.actions import (
    SetClockFrequency,
    SetClockLeap,
    SetClockStatus,
    StepClock,
    apply_clock_command,
)
from simple_ntpd.runtime.sysclock import (
    ADJ_ESTERROR,
    ADJ_FREQUENCY,
    ADJ_MAXERROR,
    ADJ_NANO,
    ADJ_OFFSET,
    ADJ_SETOFFSET,
    ADJ_STATUS,
    CLOCK_REALTIME,
    STA_DEL,
    STA_INS,
    STA_UNSYNC,
    KernelClock,
    Timex,
    holds_cap_sys_time,
)


class FakeKernel:
    """A fake kernel: records every struct timex it is given (the real call is never made)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, int]] = []

    def __call__(self, clock_id: int, tx: Timex) -> int:
        assert clock_id == CLOCK_REALTIME
        self.calls.append(
            {
                "modes": tx.modes,
                "offset": tx.offset,
                "freq": tx.freq,
                "status": tx.status,
                "sec": tx.time.tv_sec,
                "nsec": tx.time.tv_usec,
                "esterror": tx.esterror,
                "maxerror": tx.maxerror,
            }
        )
        return 0


def test_timex_has_the_kernel_layout() -> None:
    assert ctypes.sizeof(Timex) == 208  # struct timex on LP64 Linux


def test_frequency_is_scaled_ppm_and_clamped() -> None:
    k = FakeKernel()
    clock = KernelClock(adjtime=k, max_ppm=500.0)
    apply_clock_command(clock, SetClockFrequency(12.5))
    apply_clock_command(clock, SetClockFrequency(-900.0))
    assert k.calls[0]["modes"] == ADJ_FREQUENCY and k.calls[0]["freq"] == round(12.5 * 65536)
    assert k.calls[1]["freq"] == round(-500.0 * 65536)


@pytest.mark.parametrize(
    ("delta", "sec", "nsec"), [(1_500_000_000, 1, 500_000_000), (-250_000_000, -1, 750_000_000)]
)
def test_step_uses_setoffset_with_normalized_nanoseconds(delta: int, sec: int, nsec: int) -> None:
    k = FakeKernel()
    apply_clock_command(KernelClock(adjtime=k), StepClock(delta))
    (call,) = k.calls
    assert call["modes"] == ADJ_SETOFFSET | ADJ_NANO
    assert (call["sec"], call["nsec"]) == (sec, nsec)


def test_slew_offset_in_nanoseconds() -> None:
    k = FakeKernel()
    KernelClock(adjtime=k).slew(-1234)
    assert k.calls[0]["modes"] & ADJ_OFFSET and k.calls[0]["modes"] & ADJ_NANO
    assert k.calls[0]["offset"] == -1234


def test_leap_and_sync_status_bits() -> None:
    k = FakeKernel()
    clock = KernelClock(adjtime=k)
    apply_clock_command(clock, SetClockLeap(1))
    assert k.calls[-1]["modes"] == ADJ_STATUS and k.calls[-1]["status"] & STA_INS
    apply_clock_command(clock, SetClockLeap(2))
    assert k.calls[-1]["status"] & STA_DEL and not k.calls[-1]["status"] & STA_INS
    apply_clock_command(clock, SetClockLeap(0))
    assert not k.calls[-1]["status"] & (STA_INS | STA_DEL)
    apply_clock_command(clock, SetClockStatus(False, 0.001, 0.5))
    last = k.calls[-1]
    assert last["modes"] == ADJ_STATUS | ADJ_ESTERROR | ADJ_MAXERROR
    assert last["status"] & STA_UNSYNC and last["esterror"] == 1000 and last["maxerror"] == 500_000
    apply_clock_command(clock, SetClockStatus(True, 0.0, 0.0))
    assert not k.calls[-1]["status"] & STA_UNSYNC


def test_capability_check_reads_capeff() -> None:
    assert holds_cap_sys_time("CapEff:\t0000000002000000\n")
    assert not holds_cap_sys_time("CapEff:\t0000000000000000\n")
