"""Timekeeping scenarios in virtual time, with pass conditions in numbers (issue 3).

Each scenario runs the real core through :mod:`tests.sim.simulator` with a
fixed seed. Errors are served time minus true (Unix) time.
"""

from __future__ import annotations

import calendar
import itertools
import math
from collections.abc import Callable

import pytest

from simple_ntpd.client.actions import DemobilizeReason
from simple_ntpd.client.discipline import parse_drift
from simple_ntpd.client.system import SourceState, SystemMode, TimekeepingParams
from simple_ntpd.served_clock import PHI
from tests.sim.simulator import MS, NS, US, Probe, SimServer, Simulator

HOUR = 3600 * NS
PARAMS = TimekeepingParams(min_poll=4, max_poll=10, stratum=10, reference_id=b"LOCL")
ASYMMETRIES = [100e-6, -50e-6, 20e-6, 0.0, -30e-6]
USED = {SourceState.SELECTED, SourceState.COMBINED}


def good_servers(n: int, **kw: object) -> list[SimServer]:
    return [
        SimServer(f"192.0.2.{i + 1}", asymmetry_s=ASYMMETRIES[i % len(ASYMMETRIES)], **kw)  # type: ignore[arg-type]
        for i in range(n)
    ]


def rms(probes: list[Probe]) -> float:
    return math.sqrt(sum(p.error_ns**2 for p in probes) / len(probes))


def worst(probes: list[Probe]) -> int:
    return max(abs(p.error_ns) for p in probes)


def run(
    servers: list[SimServer],
    duration_ns: int,
    *,
    seed: int,
    params: TimekeepingParams = PARAMS,
    watch: Callable[[Simulator], None] | None = None,
    **kw: object,
) -> Simulator:
    sim = Simulator(servers, params=params, seed=seed, **kw)  # type: ignore[arg-type]
    sim.on_probe = watch
    sim.start()
    sim.run_until(sim.start_ns + duration_ns)
    return sim


def used_sources(record: list[set[str]]) -> Callable[[Simulator], None]:
    def watch(sim: Simulator) -> None:
        snaps = sim.system.sources_snapshot(sim.system_ns())
        record.append({s.address for s in snaps if s.state in USED})

    return watch


# --- four good sources, 1 ms delay jitter, local clock 100 ppm fast ----------------------------


@pytest.fixture(scope="module")
def four_good() -> Simulator:
    return run(
        good_servers(4),
        HOUR + 60 * NS,
        seed=11,
        local_phase_s=0.5,
        local_freq_ppm=100.0,
        wander_ppm_per_sqrt_s=0.001,
    )


def test_fresh_daemon_serves_synchronized_time_within_10_s(four_good: Simulator) -> None:
    first = next(p for p in four_good.probes if p.state.leap != 3)
    assert first.true_ns - four_good.start_ns <= 10 * NS
    assert four_good.probes[0].state.leap == 3  # honest until the first synchronization
    assert four_good.probes[0].state.stratum == 0


def test_error_below_1ms_from_60s_and_200us_rms_over_the_next_hour(four_good: Simulator) -> None:
    t0 = four_good.start_ns
    window = four_good.probes_between(t0 + 60 * NS, t0 + HOUR + 60 * NS)
    assert len(window) >= 3600
    assert worst(window) < 1 * MS
    assert rms(window) < 200 * US


def test_local_frequency_error_of_100ppm_estimated_within_1ppm(four_good: Simulator) -> None:
    # The correction must run at minus the clock's error (served = system + correction).
    estimated = four_good.system.discipline.freq * 1e6
    assert abs(estimated + four_good.local.freq_ppm) < 1.0
    assert abs(four_good.system.tracking_snapshot(four_good.system_ns()).frequency_ppm + 100) < 1
    assert four_good.drift_saves, "the drift file is saved hourly"
    assert abs(parse_drift(four_good.drift_saves[-1]).frequency_ppm + 100.0) < 1.0


def test_initial_offset_stepped_once_then_served_time_never_goes_back(four_good: Simulator) -> None:
    assert four_good.system.discipline.steps == 1
    synced = [p for p in four_good.probes if p.state.leap != 3]
    assert all(b.served_ns > a.served_ns for a, b in itertools.pairwise(synced))


def test_stratum_refid_and_root_values_follow_the_system_peer(four_good: Simulator) -> None:
    state = four_good.state
    assert state.stratum == 2
    assert state.reference_id in {bytes([192, 0, 2, i]) for i in range(1, 5)}
    track = four_good.system.tracking_snapshot(four_good.system_ns())
    assert track.mode is SystemMode.SYNCHRONIZED
    assert 2 * MS / NS <= state.root_delay < 20 * MS / NS  # 1 ms each way plus queueing
    assert 0 < state.root_dispersion < 0.1
    snaps = four_good.system.sources_snapshot(four_good.system_ns())
    assert {s.reach for s in snaps} == {0xFF}
    assert all(s.poll > PARAMS.min_poll for s in snaps), "stable sources are polled less often"


# --- falsetickers ------------------------------------------------------------------------------


def test_one_of_four_sources_1s_off_is_never_selected() -> None:
    servers = good_servers(4)
    servers[3].offset_s = 1.0
    record: list[set[str]] = []
    sim = run(servers, HOUR, seed=12, local_freq_ppm=30.0, watch=used_sources(record))
    assert all(servers[3].address not in used for used in record)
    assert any(len(used) == 3 for used in record)
    window = sim.probes_between(sim.start_ns + 60 * NS, sim.start_ns + HOUR)
    assert worst(window) < 1 * MS
    assert rms(window) < 200 * US
    states = {s.address: s.state for s in sim.system.sources_snapshot(sim.system_ns())}
    assert states[servers[3].address] is SourceState.FALSETICKER


def test_two_of_five_sources_off_in_different_directions_are_never_selected() -> None:
    servers = good_servers(5)
    servers[1].offset_s = 0.3
    servers[4].offset_s = -0.25
    record: list[set[str]] = []
    sim = run(servers, HOUR, seed=13, local_freq_ppm=-40.0, watch=used_sources(record))
    bad = {servers[1].address, servers[4].address}
    assert all(not (used & bad) for used in record)
    window = sim.probes_between(sim.start_ns + 60 * NS, sim.start_ns + HOUR)
    assert worst(window) < 1 * MS
    assert rms(window) < 200 * US


# --- loss ----------------------------------------------------------------------------------------


def test_30_percent_packet_loss_still_synchronized() -> None:
    # 30 % of packets lost in each direction: about half of the exchanges fail.
    sim = run(good_servers(4, loss=0.3), HOUR, seed=14, local_freq_ppm=20.0)
    window = sim.probes_between(sim.start_ns + 60 * NS, sim.start_ns + HOUR)
    assert all(p.state.leap == 0 and p.state.stratum == 2 for p in window)
    assert worst(window) < 1 * MS
    assert sim.system.mode is SystemMode.SYNCHRONIZED
    snaps = sim.system.sources_snapshot(sim.system_ns())
    assert any(s.reach != 0xFF for s in snaps), "the reach registers show the losses"


# --- holdover and fallback ----------------------------------------------------------------------


def test_all_sources_lost_holdover_then_local_fallback() -> None:
    down = HOUR // 2
    servers = good_servers(4)
    for s in servers:
        s.down_from_ns = 1_750_000_000 * NS + down
    sim = run(
        servers,
        30 * HOUR,
        seed=15,
        local_freq_ppm=50.0,
        probe_interval_ns=60 * NS,
    )
    t0 = sim.start_ns
    holdover = sim.probes_between(t0 + down + 60 * NS, t0 + down + HOUR)
    # Holdover: still stratum 2 from the old peer, dispersion growing at 15 ppm.
    assert all(p.state.stratum == 2 and p.state.leap == 0 for p in holdover)
    first, last = holdover[0], holdover[-1]
    grown = last.state.root_dispersion_at(last.served_ns) - first.state.root_dispersion_at(
        first.served_ns
    )
    assert grown == pytest.approx(PHI * (last.true_ns - first.true_ns) / NS, rel=0.01)
    assert worst(holdover) < 2 * MS, "the frequency estimate keeps time in holdover"
    # Once root distance passes 1.5 s (about 27 h at 15 ppm): LOCAL at the configured stratum.
    fallback = next(p for p in sim.probes if p.state.stratum == PARAMS.stratum)
    hours = (fallback.true_ns - t0 - down) / HOUR
    assert 26 < hours < 29
    assert fallback.state.reference_id == b"LOCL"
    assert fallback.state.leap == 0
    assert sim.system.mode is SystemMode.LOCAL
    snaps = sim.system.sources_snapshot(sim.system_ns())
    assert {s.state for s in snaps} == {SourceState.UNREACHABLE}
    assert set(sim.system.sources_to_replace()) == {s.source_id for s in snaps}


def test_all_sources_lost_without_local_reference_announces_leap_3() -> None:
    down = HOUR // 2
    servers = good_servers(3)
    for s in servers:
        s.down_from_ns = 1_750_000_000 * NS + down
    params = TimekeepingParams(
        min_poll=4, max_poll=8, local_reference=False, max_distance=0.05, stratum=10
    )
    sim = run(servers, 3 * HOUR, seed=16, params=params, probe_interval_ns=10 * NS)
    t0 = sim.start_ns
    assert all(p.state.leap == 0 for p in sim.probes_between(t0 + 60 * NS, t0 + down))
    unsync = next(p for p in sim.probes if p.true_ns > t0 + down and p.state.leap == 3)
    # 50 ms of distance at 15 ppm is a bit under an hour.
    assert 0.5 * HOUR < unsync.true_ns - t0 - down < 1.0 * HOUR
    assert unsync.state.stratum == 0
    assert sim.state.leap == 3 and sim.system.mode is SystemMode.UNSYNCHRONIZED


def test_max_holdover_bounds_holdover_then_local_fallback() -> None:
    down = HOUR // 2
    servers = good_servers(3)
    for s in servers:
        s.down_from_ns = 1_750_000_000 * NS + down
    params = TimekeepingParams(min_poll=4, max_poll=6, stratum=10, max_holdover=600.0)
    sim = run(servers, 2 * HOUR, seed=17, params=params, probe_interval_ns=5 * NS)
    t0 = sim.start_ns
    assert all(p.state.stratum == 2 for p in sim.probes_between(t0 + 60 * NS, t0 + down))
    fallback = next(p for p in sim.probes if p.true_ns > t0 + down and p.state.stratum == 10)
    # The sources fall silent; holdover begins once they are unreachable (8 unanswered polls,
    # at most 8 x 64 s at max_poll 6) and lasts 600 s, not the ~27 h the distance limit allows.
    after = (fallback.true_ns - t0 - down) / NS
    assert 600 < after < 600 + 8 * 64 + 60, after
    assert fallback.state.reference_id == b"LOCL" and fallback.state.leap == 0
    assert sim.system.mode is SystemMode.LOCAL


# --- kiss-o'-death --------------------------------------------------------------------------------


def test_kod_rate_backs_the_poll_off() -> None:
    servers = good_servers(4)
    start = 1_750_000_000 * NS
    servers[0].kod = b"RATE"
    servers[0].kod_from_ns = start + 600 * NS
    sim = run(servers, 3 * HOUR, seed=17, local_freq_ppm=10.0)
    after = [t for t in servers[0].requests if t >= servers[0].kod_from_ns]
    gaps = [(b - a) / NS for a, b in itertools.pairwise(after)]
    assert len(gaps) >= 3
    # Each kiss at least doubles the interval until max_poll (2**10 s).
    for a, b in itertools.pairwise(gaps):
        assert b >= min(2 * a * 0.9, 1024 * 0.9)
    assert gaps[-1] >= 1024 * 0.9
    src = sim.system.sources_snapshot(sim.system_ns())[0]
    assert src.poll == PARAMS.max_poll
    window = sim.probes_between(start + 60 * NS, start + 3 * HOUR)
    assert worst(window) < 1 * MS


def test_kod_deny_demobilizes_the_source() -> None:
    servers = good_servers(4)
    servers[1].kod = b"DENY"
    sim = run(servers, 600 * NS, seed=18)
    assert list(sim.demobilized.values()) == [DemobilizeReason.KOD_DENY]
    assert len(servers[1].requests) == 1
    assert sim.state.leap == 0  # the other three still agree


# --- a step of every upstream ---------------------------------------------------------------------


def test_2s_step_of_every_upstream_is_slewed_after_startup() -> None:
    start = 1_750_000_000 * NS
    servers = good_servers(4)
    for s in servers:
        s.steps.append((start + HOUR // 2, 2.0))
    sim = run(servers, HOUR // 2 + 3 * HOUR, seed=19, local_freq_ppm=60.0)
    # The step rule: steps only in the first 3 updates; later the 2 s are slewed.
    assert sim.system.discipline.steps == 0  # the clock started right, nothing to step
    synced = [p for p in sim.probes if p.state.leap != 3]
    limit = PARAMS.max_drift_ppm * 1e-6
    for a, b in itertools.pairwise(synced):
        step_served = b.served_ns - a.served_ns
        step_true = b.true_ns - a.true_ns
        assert step_served > 0
        # Served rate stays within max_drift of the system clock (60 ppm fast here).
        assert abs(step_served - step_true) <= (limit + 61e-6) * step_true + 10 * US
    # Served time follows the upstreams to their new time (2 s ahead of the simulator's).
    # That takes 2 s / (500 - 60 ppm), about 76 min; after that it is accurate again.
    end = sim.probes_between(start + HOUR // 2 + 2 * HOUR, start + HOUR // 2 + 3 * HOUR)
    assert max(abs(p.error_ns - 2 * NS) for p in end) < 1 * MS
    # The filters confirm the jump over three polls first, then the slew runs at full rate.
    mid = sim.probes_between(start + HOUR // 2 + HOUR, start + HOUR // 2 + HOUR)
    assert 0.5 < mid[0].error_ns / NS < 1.9, "an hour in, the slew is under way"


def test_2s_offset_at_startup_is_stepped() -> None:
    sim = run(good_servers(4), 600 * NS, seed=20, local_phase_s=-2.0)
    assert sim.system.discipline.steps == 1
    window = sim.probes_between(sim.start_ns + 60 * NS, sim.start_ns + 600 * NS)
    assert worst(window) < 1 * MS


# --- leap second ----------------------------------------------------------------------------------


def test_leap_second_announced_served_and_applied_once() -> None:
    midnight = calendar.timegm((2017, 1, 1, 0, 0, 0)) * NS  # a real leap second
    start = midnight - HOUR
    sim = run(
        good_servers(4),
        HOUR + HOUR // 2,
        seed=21,
        start_ns=start,
        leap_at_ns=midnight,
        leap_announce_from_ns=start,
        local_freq_ppm=25.0,
        probe_interval_ns=300 * 1_000_000,
    )
    before = sim.probes_between(start + 60 * NS, midnight - NS)
    assert all(p.state.leap == 1 for p in before)
    after = sim.probes_between(midnight + 5 * NS, start + HOUR + HOUR // 2)
    assert all(p.state.leap == 0 for p in after)
    assert sim.system.leaps_applied == 1
    backwards = [
        (a, b)
        for a, b in zip(sim.probes, sim.probes[1:], strict=False)
        if b.served_ns < a.served_ns
    ]
    assert len(backwards) == 1
    a, b = backwards[0]
    assert a.true_ns < midnight <= b.true_ns
    assert b.served_ns - a.served_ns == pytest.approx(-NS + (b.true_ns - a.true_ns), abs=MS)
    assert worst(outside_leap(sim.probes_between(start + 60 * NS, start + 90 * 60 * NS))) < MS


def outside_leap(probes: list[Probe]) -> list[Probe]:
    """Probes not within 1 ms of the leap: a clock that is off by a few hundred us inserts
    its second that much before or after true midnight, and a probe in between sees 1 s."""
    midnight = calendar.timegm((2017, 1, 1, 0, 0, 0)) * NS
    return [p for p in probes if abs(p.true_ns - midnight) > MS]


def test_leap_second_with_discipline_system_clock_is_inserted_by_the_kernel_once() -> None:
    midnight = calendar.timegm((2017, 1, 1, 0, 0, 0)) * NS
    start = midnight - HOUR
    params = TimekeepingParams(min_poll=4, max_poll=10, discipline_system_clock=True)
    sim = run(
        good_servers(4),
        HOUR + HOUR // 2,
        seed=23,
        params=params,
        start_ns=start,
        leap_at_ns=midnight,
        leap_announce_from_ns=start,
        local_freq_ppm=25.0,
        probe_interval_ns=300 * 1_000_000,
    )
    assert sim.kernel is not None
    assert sim.kernel.leaps_applied == 1 and sim.system.leaps_applied == 1
    assert {p.state.leap for p in sim.probes_between(start + 60 * NS, midnight - NS)} == {1}
    assert {p.state.leap for p in sim.probes_between(midnight + 5 * NS, start + 90 * 60 * NS)} == {
        0
    }
    backwards = [(a, b) for a, b in itertools.pairwise(sim.probes) if b.served_ns < a.served_ns]
    assert len(backwards) == 1
    assert worst(outside_leap(sim.probes_between(start + 60 * NS, start + 90 * 60 * NS))) < MS


# --- discipline_system_clock --------------------------------------------------------------------


def test_discipline_system_clock_steers_the_fake_kernel_and_keeps_correction_zero() -> None:
    params = TimekeepingParams(min_poll=4, max_poll=10, discipline_system_clock=True)
    sim = run(good_servers(4), HOUR, seed=22, params=params, local_phase_s=0.3, local_freq_ppm=50)
    assert sim.kernel is not None
    assert all(s.offset_ns == 0 and s.freq == 0.0 for _, s in sim.published)
    assert len(sim.kernel.steps) == 1
    assert sim.kernel.steps[0] == pytest.approx(-0.3 * NS, abs=5 * MS)
    assert sim.kernel.frequency_ppm == pytest.approx(-50.0, abs=1.0)
    assert sim.kernel.synchronized
    window = sim.probes_between(sim.start_ns + 60 * NS, sim.start_ns + HOUR)
    assert worst(window) < 1 * MS
    assert rms(window) < 200 * US
