"""Poll interval, reach register, iburst and RATE backoff (simple_ntpd.client.poll)."""

from __future__ import annotations

import pytest

from simple_ntpd.client.poll import IBURST_COUNT, NS_PER_S, POLL_LIMIT, PollController
from simple_ntpd.testing import seeded_rng_for_testing


def test_reach_register_shifts_per_poll_and_records_replies() -> None:
    p = PollController(6, 10, iburst=False)
    p.on_poll()
    p.on_reply()
    assert p.reach == 0b1
    p.on_poll()
    assert p.reach == 0b10
    p.on_poll()
    p.on_reply()
    assert p.reach == 0b101
    for _ in range(8):
        p.on_poll()
    assert p.reach == 0 and not p.reachable
    assert p.unanswered == 8


def test_iburst_polls_two_seconds_apart_then_at_min_poll() -> None:
    rng = seeded_rng_for_testing(1)
    p = PollController(6, 10, iburst=True)
    intervals = []
    for _ in range(IBURST_COUNT + 2):
        p.on_poll()
        intervals.append(p.interval_ns(rng))
    assert intervals[: IBURST_COUNT - 1] == [2 * NS_PER_S] * (IBURST_COUNT - 1)
    # After the burst: 64 s minus at most 1/16 of random spread.
    assert all(60 * NS_PER_S <= i <= 64 * NS_PER_S for i in intervals[IBURST_COUNT:])


def test_stable_samples_raise_the_poll_and_unstable_ones_lower_it() -> None:
    p = PollController(4, 6, iburst=False)
    for _ in range(POLL_LIMIT):
        p.on_sample(True)
    assert p.poll == 6
    for _ in range(100):
        p.on_sample(True)
    assert p.poll == 6  # capped at max_poll
    for _ in range(100):
        p.on_sample(False)
    assert p.poll == 4  # floored at min_poll


def test_rate_kiss_at_least_doubles_up_to_max_poll() -> None:
    p = PollController(4, 8, iburst=True)
    p.on_kod_rate(server_poll=0)
    assert p.poll == 5 and not p.in_burst
    p.on_kod_rate(server_poll=7)
    assert p.poll == 7  # the server asked for more
    p.on_kod_rate(server_poll=0)
    p.on_kod_rate(server_poll=0)
    assert p.poll == 8


@pytest.mark.parametrize(("lo", "hi"), [(-1, 6), (6, 5), (4, 18)])
def test_poll_limits_are_checked(lo: int, hi: int) -> None:
    with pytest.raises(ValueError):
        PollController(lo, hi)
