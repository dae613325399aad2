"""Tests for simple_ntpd.observe.health: the /health verdict."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simple_ntpd.observe.health import MAXDIST, health, root_distance
from simple_ntpd.served_clock import LEAP_NONE, ServedClockState

NOW = 1_800_000_000_000_000_000
GOOD = ServedClockState(
    leap=LEAP_NONE, stratum=2, root_delay=0.02, root_dispersion=0.01, update_ns=NOW
)


def check(state: ServedClockState = GOOD, **kw: object) -> tuple[int, dict[str, object]]:
    args: dict[str, object] = {
        "maintenance": False,
        "self_check_ok": True,
        "max_root_distance": MAXDIST,
    }
    args.update(kw)
    return health(state, NOW, **args)  # type: ignore[arg-type]


def test_healthy() -> None:
    code, body = check()
    assert code == 200
    assert body["status"] == "ok" and body["reasons"] == [] and "reason" not in body
    assert body["root_distance"] == pytest.approx(0.02)
    assert body["self_check"] == "ok"
    json.dumps(body)  # JSON-ready


def test_self_check_not_run_does_not_count() -> None:
    code, body = check(self_check_ok=None)
    assert code == 200 and body["self_check"] == "unknown"


@pytest.mark.parametrize(
    ("state", "kw", "reason"),
    [
        (ServedClockState(), {}, "unsynchronized"),
        (GOOD, {"maintenance": True}, "maintenance"),
        (GOOD, {"self_check_ok": False}, "self-check failed"),
        (GOOD, {"max_root_distance": 0.015}, "root distance too large"),
    ],
)
def test_each_reason(state: ServedClockState, kw: dict[str, object], reason: str) -> None:
    code, body = check(state, **kw)
    assert code == 503
    assert body["status"] == "unavailable"
    assert body["reason"] == reason and body["reasons"] == [reason]
    json.dumps(body)


def test_all_reasons_in_priority_order() -> None:
    code, body = check(ServedClockState(), maintenance=True, self_check_ok=False)
    assert code == 503
    assert body["reasons"] == ["maintenance", "unsynchronized", "self-check failed"]
    assert body["reason"] == "maintenance"


def test_root_distance_grows_with_age() -> None:
    # 0.01 + 0.01 now; 15 ppm over 1000 s adds 0.015 s
    later = NOW + 1000 * 10**9
    assert root_distance(GOOD, later) == pytest.approx(0.035)
    code, _ = health(GOOD, NOW, maintenance=False, self_check_ok=None, max_root_distance=0.03)
    assert code == 200
    code, body = health(GOOD, later, maintenance=False, self_check_ok=None, max_root_distance=0.03)
    assert code == 503 and body["reason"] == "root distance too large"


@given(
    leap=st.integers(0, 3),
    maintenance=st.booleans(),
    self_check=st.sampled_from([None, True, False]),
    delay=st.floats(0, 10, allow_nan=False),
    disp=st.floats(0, 10, allow_nan=False),
    limit=st.floats(0, 10, allow_nan=False),
)
def test_200_exactly_when_nothing_is_wrong(
    leap: int,
    maintenance: bool,
    self_check: bool | None,
    delay: float,
    disp: float,
    limit: float,
) -> None:
    state = ServedClockState(leap=leap, stratum=2, root_delay=delay, root_dispersion=disp)
    code, body = health(
        state, 0, maintenance=maintenance, self_check_ok=self_check, max_root_distance=limit
    )
    healthy = (
        leap != 3 and not maintenance and self_check is not False and delay / 2 + disp <= limit
    )
    assert (code == 200) == healthy
    assert (body["reasons"] == []) == healthy
    assert code in (200, 503)


def test_draining_comes_first() -> None:
    code, body = check(draining=True, maintenance=True)
    assert code == 503
    assert body["reasons"][:2] == ["draining", "maintenance"]
    assert body["reason"] == "draining" and body["draining"] is True
    code, body = check()
    assert code == 200 and body["draining"] is False
