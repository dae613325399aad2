from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from simple_ntpd.served_clock import (
    PHI,
    STATE_BUFFER_SIZE,
    SeqlockReader,
    SeqlockWriter,
    ServedClockState,
)


def make_pair() -> tuple[SeqlockWriter, SeqlockReader, bytearray]:
    buf = bytearray(STATE_BUFFER_SIZE)
    return SeqlockWriter(memoryview(buf)), SeqlockReader(memoryview(buf)), buf


def test_empty_buffer_reads_unsynchronized_default() -> None:
    _, reader, _ = make_pair()
    seq, state = reader.read() or (None, None)
    assert seq == 0
    assert state is not None and not state.synchronized and state.stratum == 0


states = st.builds(
    ServedClockState,
    leap=st.integers(0, 3),
    stratum=st.integers(0, 15),
    reference_id=st.binary(min_size=4, max_size=4),
    reference_time_ns=st.integers(0, 2**62),
    root_delay=st.floats(0, 10),
    root_dispersion=st.floats(0, 10),
    dispersion_rate=st.floats(0, 1e-3),
    precision=st.integers(-30, 0),
    offset_ns=st.integers(-(2**62), 2**62),
    freq=st.floats(-1e-3, 1e-3),
    t0_ns=st.integers(0, 2**62),
    update_ns=st.integers(0, 2**62),
)


@given(states)
def test_publish_then_read_round_trips(state: ServedClockState) -> None:
    writer, reader, _ = make_pair()
    seq = writer.publish(state)
    assert seq % 2 == 0 and seq > 0
    assert reader.sequence() == seq
    assert reader.read() == (seq, state)


def test_torn_read_is_never_returned() -> None:
    writer, reader, buf = make_pair()
    writer.publish(ServedClockState(stratum=3))
    # Simulate a writer stopped half-way: odd sequence.
    buf[0] |= 1
    assert reader.read(max_tries=5) is None
    buf[0] &= ~1 & 0xFF
    got = reader.read()
    assert got is not None and got[1].stratum == 3


def test_served_time_and_dispersion_growth() -> None:
    s = ServedClockState(
        offset_ns=1_000, freq=1e-6, t0_ns=10**18, update_ns=10**18, root_dispersion=0.001
    )
    assert s.served_ns(10**18) == 10**18 + 1_000
    # one second later the frequency term adds 1 us
    assert s.served_ns(10**18 + 10**9) == 10**18 + 10**9 + 1_000 + 1_000
    assert abs(s.root_dispersion_at(10**18 + 10**9) - (0.001 + PHI)) < 1e-12
    assert s.root_dispersion_at(10**18 - 10**9) == 0.001
