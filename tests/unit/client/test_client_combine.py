"""Clustering, system peer choice and combining (simple_ntpd.client.combine)."""

from __future__ import annotations

import pytest

from simple_ntpd.client.combine import Survivor, choose_system_peer, cluster, combine


def s(key: str, off: float, dist: float = 0.01, jitter: float = 1e-4, **kw: object) -> Survivor:
    return Survivor(key, off, dist, jitter, kw.pop("stratum", 1), **kw)  # type: ignore[arg-type]


def test_clustering_prunes_the_outlier_but_keeps_three() -> None:
    kept, pruned = cluster(
        [s("a", 0.0), s("b", 0.0001), s("c", -0.0001), s("d", 0.0003), s("e", 0.02)]
    )
    assert next(p.key for p in pruned) == "e"
    assert len(kept) >= 3 and "e" not in {k.key for k in kept}
    kept, pruned = cluster([s("a", 0.0), s("b", 0.5), s("c", -0.5)])
    assert len(kept) == 3 and not pruned


def test_clustering_stops_when_spread_is_below_peer_jitter() -> None:
    group = [s(k, i * 1e-5, jitter=1e-3) for i, k in enumerate("abcde")]
    kept, pruned = cluster(group)
    assert len(kept) == 5 and not pruned


def test_combine_weights_by_inverse_distance() -> None:
    a, b = s("a", 0.0, dist=0.01), s("b", 0.003, dist=0.02)
    c = combine([a, b], a)
    assert c.offset == pytest.approx((0.0 / 0.01 + 0.003 / 0.02) / (1 / 0.01 + 1 / 0.02))
    assert c.jitter > 0


def test_system_peer_prefers_prefer_then_current_then_best() -> None:
    a = s("a", 0.0, dist=0.02, stratum=2)
    b = s("b", 0.0, dist=0.01, stratum=1)
    c = s("c", 0.0, dist=0.005, stratum=1, prefer=True)
    assert choose_system_peer([a, b], None).key == "b"
    assert choose_system_peer([a, b], "a").key == "a"  # no needless hopping
    assert choose_system_peer([a, b, c], "a").key == "c"
    with pytest.raises(ValueError):
        choose_system_peer([], None)
