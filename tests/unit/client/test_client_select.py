"""Intersection (simple_ntpd.client.select), with property tests of Marzullo's guarantee."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from simple_ntpd.client.select import Candidate, intersect, majority


def test_one_source_alone_is_its_own_truechimer() -> None:
    r = intersect([Candidate("a", 0.01, 0.005)])
    assert r is not None and r.truechimers == ("a",) and r.falsetickers == ()
    assert (r.low, r.high) == (0.005, 0.015)


def test_two_disagreeing_sources_give_nothing() -> None:
    assert intersect([Candidate("a", 0.0, 0.01), Candidate("b", 1.0, 0.01)]) is None


def test_two_agreeing_sources_both_survive() -> None:
    r = intersect([Candidate("a", 0.0, 0.01), Candidate("b", 0.015, 0.01)])
    assert r is not None and set(r.truechimers) == {"a", "b"}
    assert (r.low, r.high) == pytest.approx((0.005, 0.01))


def test_one_of_four_a_second_off_is_a_falseticker() -> None:
    cands = [Candidate(i, off, 0.002) for i, off in enumerate([0.0, 0.0005, -0.0003, 1.0])]
    r = intersect(cands)
    assert r is not None and r.falsetickers == (3,) and set(r.truechimers) == {0, 1, 2}


def test_needed_counts_sources_not_yet_heard_from() -> None:
    # Two of four usable sources have answered and agree: no majority of four yet.
    cands = [Candidate("a", 0.0, 0.01), Candidate("b", 0.0, 0.01)]
    assert intersect(cands, needed=majority(4)) is None
    assert intersect(cands, needed=majority(2)) is not None


def test_majority() -> None:
    assert [majority(n) for n in range(1, 7)] == [1, 2, 2, 3, 3, 4]


@st.composite
def scenario(draw: st.DrawFn) -> tuple[float, list[Candidate], set[int]]:
    """Truechimers whose intervals hold the truth; falsetickers clear of all of them."""
    truth = draw(st.floats(-10.0, 10.0))
    n_true = draw(st.integers(1, 8))
    n_false = draw(st.integers(0, n_true - 1))  # f < n / 2
    cands = []
    for i in range(n_true):
        dist = draw(st.floats(1e-4, 0.5))
        off = truth + draw(st.floats(-0.999, 0.999)) * dist
        cands.append(Candidate(i, off, dist))
    hull_low = min(c.low for c in cands)
    hull_high = max(c.high for c in cands)
    for j in range(n_false):
        dist = draw(st.floats(1e-4, 0.5))
        gap = draw(st.floats(1e-3, 5.0))
        off = hull_high + gap + dist if draw(st.booleans()) else hull_low - gap - dist
        cands.append(Candidate(n_true + j, off, dist))
    order = draw(st.permutations(range(len(cands))))
    return truth, [cands[k] for k in order], set(range(n_true))


@given(scenario())
def test_truechimers_are_found_when_fewer_than_half_lie(
    case: tuple[float, list[Candidate], set[int]],
) -> None:
    truth, cands, true_keys = case
    r = intersect(cands)
    assert r is not None
    assert r.low <= truth <= r.high
    assert set(r.truechimers) == true_keys
    assert set(r.falsetickers) == {c.key for c in cands} - true_keys


@given(st.lists(st.tuples(st.floats(-100, 100), st.floats(1e-6, 10)), min_size=1, max_size=12))
def test_any_result_is_a_majority_inside_the_hull(pairs: list[tuple[float, float]]) -> None:
    cands = [Candidate(i, off, d) for i, (off, d) in enumerate(pairs)]
    r = intersect(cands)
    assume(r is not None)
    assert r is not None
    assert len(r.truechimers) >= majority(len(cands))
    assert min(c.low for c in cands) <= r.low <= r.high <= max(c.high for c in cands)
    assert set(r.truechimers) | set(r.falsetickers) == {c.key for c in cands}
