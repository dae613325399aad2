"""The timekeeping system glue (simple_ntpd.client.system)."""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import ipaddress
import json
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.sim.simulator import NS, SimServer, Simulator

from simple_ntpd.client.actions import Publish, SetClockFrequency, SourceSend, SystemTimer
from simple_ntpd.client.discipline import DriftRecord
from simple_ntpd.client.system import (
    DAY_NS,
    SourceState,
    SystemMode,
    TimekeepingParams,
    TimekeepingSystem,
    _civil_from_days,
    _last_day_of_month,
    reference_id_for,
)
from simple_ntpd.testing import seeded_rng_for_testing

T0 = 1_750_000_000 * NS


def system(**kw: object) -> TimekeepingSystem:
    return TimekeepingSystem(TimekeepingParams(**kw), rng=seeded_rng_for_testing(1))  # type: ignore[arg-type]


def published(actions: Sequence[object]) -> list[Publish]:
    return [a for a in actions if isinstance(a, Publish)]


def test_reference_id_is_the_ipv4_address_or_md5_of_the_ipv6_one() -> None:
    assert reference_id_for("192.0.2.7") == bytes([192, 0, 2, 7])
    v6 = "2001:db8::1"
    expected = hashlib.md5(ipaddress.IPv6Address(v6).packed).digest()[:4]
    assert reference_id_for(v6) == expected


def test_no_upstreams_and_local_reference_serves_local_at_once() -> None:
    s = system(stratum=3, reference_id=b"PROD")
    state = published(s.start(T0, upstreams_configured=False))[0].state
    assert (state.leap, state.stratum, state.reference_id) == (0, 3, b"PROD")
    assert s.mode is SystemMode.LOCAL


def test_no_upstreams_without_local_reference_is_unsynchronized() -> None:
    s = system(local_reference=False)
    state = published(s.start(T0, upstreams_configured=False))[0].state
    assert (state.leap, state.stratum) == (3, 0)


def test_with_upstreams_leap_3_until_the_first_update() -> None:
    s = system()
    actions = s.start(T0)
    state = published(actions)[0].state
    assert (state.leap, state.stratum, state.reference_id) == (3, 0, b"\x00" * 4)
    assert any(isinstance(a, SystemTimer) for a in actions)
    sid, first = s.add_source("192.0.2.1", T0)
    assert any(isinstance(a, SourceSend) and a.source_id == sid for a in first)


def test_discipline_system_clock_restores_the_drift_into_the_kernel() -> None:
    s = TimekeepingSystem(
        TimekeepingParams(discipline_system_clock=True),
        rng=seeded_rng_for_testing(1),
        drift=DriftRecord(-21.5),
    )
    actions = s.start(T0)
    freqs = [a.ppm for a in actions if isinstance(a, SetClockFrequency)]
    assert freqs == [pytest.approx(-21.5)]
    assert all(p.state.offset_ns == 0 and p.state.freq == 0 for p in published(actions))


def _sim(servers: list[SimServer], seconds: int, **kw: object) -> Simulator:
    sim = Simulator(
        servers,
        params=TimekeepingParams(min_poll=4, max_poll=6),
        seed=7,
        **kw,  # type: ignore[arg-type]
    )
    sim.start()
    sim.run_until(sim.start_ns + seconds * NS)
    return sim


def test_one_configured_source_is_enough() -> None:
    sim = _sim([SimServer("192.0.2.1")], 120)
    assert sim.state.leap == 0 and sim.state.stratum == 2
    assert sim.state.reference_id == bytes([192, 0, 2, 1])
    assert [s.state for s in sim.system.sources_snapshot(sim.system_ns())] == [SourceState.SELECTED]


def test_two_sources_that_disagree_give_no_time() -> None:
    sim = _sim([SimServer("192.0.2.1"), SimServer("192.0.2.2", offset_s=1.0)], 600)
    assert all(p.state.leap == 3 for p in sim.probes)
    states = {s.state for s in sim.system.sources_snapshot(sim.system_ns())}
    assert states == {SourceState.UNCONFIRMED}


def test_snapshots_serialize_to_json() -> None:
    sim = _sim([SimServer("192.0.2.1"), SimServer("2001:db8::5")], 120)
    now = sim.system_ns()
    sources = [s.to_dict() for s in sim.system.sources_snapshot(now)]
    tracking = sim.system.tracking_snapshot(now).to_dict()
    text = json.dumps({"sources": sources, "tracking": tracking})
    back = json.loads(text)
    assert back["tracking"]["mode"] == "synchronized"
    assert back["tracking"]["stratum"] == 2
    assert {s["address"] for s in back["sources"]} == {"192.0.2.1", "2001:db8::5"}
    assert all(s["reach"] > 0 and s["delay"] > 0 for s in back["sources"])


def test_remove_source() -> None:
    sim = _sim([SimServer("192.0.2.1"), SimServer("192.0.2.2")], 60)
    sid = sim.system.source_ids()[0]
    sim.system.remove_source(sid, sim.system_ns())
    assert sid not in sim.system.source_ids()


def test_a_leap_announced_mid_month_is_not_honoured() -> None:
    start = calendar.timegm((2017, 6, 15, 12, 0, 0)) * NS
    sim = _sim(
        [SimServer("192.0.2.1"), SimServer("192.0.2.2"), SimServer("192.0.2.3")],
        600,
        start_ns=start,
        leap_at_ns=start + 20 * DAY_NS,
        leap_announce_from_ns=start,
    )
    assert sim.state.stratum == 2
    assert all(p.state.leap in (0, 3) for p in sim.probes)


@given(st.integers(-700_000, 800_000))
def test_civil_dates_match_the_standard_library(days: int) -> None:
    date = dt.date(1970, 1, 1) + dt.timedelta(days=days)
    assert _civil_from_days(days) == (date.year, date.month, date.day)
    last = calendar.monthrange(date.year, date.month)[1] == date.day
    assert _last_day_of_month(days * DAY_NS + 5 * NS) == last
