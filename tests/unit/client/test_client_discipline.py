"""The discipline (simple_ntpd.client.discipline): fit, step rule, slew limits, drift file."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simple_ntpd.client.discipline import (
    Discipline,
    DisciplineParams,
    DriftFileError,
    DriftRecord,
    Outcome,
    parse_drift,
    serialize_drift,
)

S = 1_000_000_000
T0 = 1_750_000_000 * S


def fresh(**kw: float) -> Discipline:
    d = Discipline(DisciplineParams(**kw))  # type: ignore[arg-type]
    d.start(T0)
    return d


def test_first_update_steps_a_large_offset_either_way() -> None:
    d = fresh()
    r = d.update(-0.5, T0 + S, T0 + S)
    assert r.outcome is Outcome.STEPPED and r.step_ns == -500_000_000
    assert d.correction.value_ns(T0 + S) == -500_000_000
    assert d.steps == 1


def test_later_backward_errors_are_slewed_not_stepped() -> None:
    d = fresh()
    d.update(0.0, T0, T0)
    r = d.update(-0.5, T0 + 2 * S, T0 + 2 * S)  # within step_limit, but backwards
    assert r.outcome is Outcome.SLEWED
    assert d.correction.value_ns(T0 + 2 * S) == 0  # continuous at the update
    assert d.correction.freq == pytest.approx(-500e-6)  # as fast as max_drift allows


def test_forward_steps_only_within_the_step_limit() -> None:
    d = fresh(step_limit=2)
    d.update(0.0, T0, T0)
    assert d.update(0.3, T0 + S, T0 + S).outcome is Outcome.STEPPED
    assert d.update(0.6, T0 + 2 * S, T0 + 2 * S).outcome is Outcome.SLEWED
    assert d.steps == 1


def test_step_limit_zero_never_steps() -> None:
    d = fresh(step_limit=0)
    assert d.update(5.0, T0, T0).outcome is Outcome.SLEWED


def test_panic_threshold_refuses_after_the_first_update() -> None:
    d = fresh()
    assert d.update(2000.0, T0, T0).outcome is Outcome.STEPPED  # startup: like ntpd -g
    r = d.update(2000.0 + 1500.0, T0 + S, T0 + S)
    assert r.outcome is Outcome.REFUSED_PANIC
    assert d.updates == 1


def test_slew_frequency_never_exceeds_max_drift_and_ends() -> None:
    d = fresh(max_drift_ppm=100.0)
    d.update(0.0, T0, T0)
    r = d.update(0.05, T0 + S, T0 + S)
    assert abs(d.correction.freq) <= 100e-6 + 1e-12
    assert r.slew_end_ns is not None and r.slew_end_ns > T0 + S
    d.end_slew(r.slew_end_ns)
    assert d.correction.freq == d.freq and d.slew_end_ns is None


def test_fit_recovers_a_drifting_clock_within_a_fraction_of_a_ppm() -> None:
    d = fresh()
    rnd = random.Random(5)
    t = T0
    for _ in range(60):
        t += 16 * S
        y = 0.01 - 73e-6 * (t - T0) / S + rnd.gauss(0, 50e-6)
        d.update(y, t, t, delay=0.002 + abs(rnd.gauss(0, 1e-4)), group=rnd.randrange(4))
    assert d.freq * 1e6 == pytest.approx(-73.0, abs=0.5)
    predicted = d.predict(t)
    assert predicted is not None
    assert predicted == pytest.approx(0.01 - 73e-6 * (t - T0) / S, abs=100e-6)
    assert d.skew * 1e6 < 1.0


def test_a_jump_in_the_reference_restarts_the_fit_but_keeps_the_frequency() -> None:
    d = fresh()
    t = T0
    for _ in range(20):
        t += 16 * S
        d.update(-20e-6 * (t - T0) / S, t, t)
    freq = d.freq
    t += 16 * S
    d.update(2.0 - 20e-6 * (t - T0) / S, t, t)
    assert d.freq == freq
    predicted = d.predict(t)
    assert predicted is not None and predicted == pytest.approx(2.0 - 20e-6 * (t - T0) / S)


def test_restored_drift_is_the_starting_frequency_and_clamped() -> None:
    d = Discipline(DisciplineParams(max_drift_ppm=500), DriftRecord(-12.5, 0.1))
    d.start(T0)
    assert d.correction.freq == pytest.approx(-12.5e-6)
    assert Discipline(DisciplineParams(), DriftRecord(9000.0)).freq == pytest.approx(500e-6)


def test_shift_moves_correction_and_history() -> None:
    d = fresh()
    d.update(0.2, T0, T0)
    before = d.correction.value_ns(T0 + S)
    d.shift(-1.0, T0 + S)
    assert d.correction.value_ns(T0 + S) == before - S
    predicted = d.predict(T0 + S)
    assert predicted is not None and predicted == pytest.approx(-0.8)


def test_drift_file_text() -> None:
    assert serialize_drift(DriftRecord(-12.345678, 0.25)) == "-12.345678 0.250000\n"
    assert parse_drift("  -3.5   0.1\n") == DriftRecord(-3.5, 0.1)
    assert parse_drift("7") == DriftRecord(7.0, 0.0)
    for bad in ["", "a b", "1 2 3", "nan 0", "inf"]:
        with pytest.raises(DriftFileError):
            parse_drift(bad)


@given(st.floats(-1000, 1000), st.floats(0, 100))
def test_drift_roundtrip(freq: float, skew: float) -> None:
    back = parse_drift(serialize_drift(DriftRecord(freq, skew)))
    assert back.frequency_ppm == pytest.approx(freq, abs=1e-6)
    assert back.skew_ppm == pytest.approx(skew, abs=1e-6)
