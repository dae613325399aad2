"""answer() + stamp_batch(): the worker's batched form of handle().

The worker answers a whole receive batch with ``answer`` and writes the
transmit timestamps of the batch with one ``stamp_batch`` just before the
``sendmmsg``; each reply must be exactly what ``handle`` gives for the same
request, receive time and clock reading, and the counters must agree.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.server.test_pipeline import CLIENT, SYNC, T0, make, request

from simple_ntpd.served_clock import ServedClockState
from simple_ntpd.server import pipeline as pipeline_module
from simple_ntpd.server.acl import AccessList
from simple_ntpd.server.pipeline import HEADER_LEN, ntp64
from simple_ntpd.server.policy import SecurityPolicy
from simple_ntpd.stats import LATENCY_BASE, LATENCY_BUCKETS, LATENCY_SUM_NS, Counter

# A served clock with a running correction: offset and frequency both apply.
STEERED = SYNC.with_changes(offset_ns=-123_456_789, freq=3.5e-6, t0_ns=T0 - 5 * 10**9)

requests = st.lists(
    st.tuples(
        st.binary(min_size=0, max_size=60)
        | st.builds(
            request,
            version=st.integers(1, 4),
            mode=st.sampled_from([0, 3, 3, 3, 4, 6, 7]),
            poll=st.integers(-128, 127),
            xmt=st.integers(0, 2**64 - 1),
        ),
        st.integers(0, 2_000_000),  # receive time, ns before the transmit clock reading
        st.integers(1, 65535),  # source port
    ),
    min_size=1,
    max_size=32,
)


@settings(max_examples=200, deadline=None)
@given(batch=requests, state=st.sampled_from([SYNC, STEERED, None]))
def test_batch_replies_equal_handle_replies(
    batch: list[tuple[bytes, int, int]], state: ServedClockState | None
) -> None:
    tx_clock = T0 + 3_000_000
    one, _, _ = make(state, clock_at=tx_clock)
    many, _, _ = make(state, clock_at=tx_clock)
    expected = []
    for data, before, port in batch:
        out = one.handle(data, tx_clock - before, CLIENT, port)
        expected.append(bytes(out) if not isinstance(out, int) else out)
    payload = bytearray(HEADER_LEN * len(batch))
    got: list[object] = []
    rxs = []
    for data, before, port in batch:
        out = many.answer(data, tx_clock - before, "", port)
        if out is many.plain_response:
            k = len(rxs)
            payload[48 * k : 48 * k + 48] = out
            rxs.append(tx_clock - before)
            got.append(("slot", k))
        else:
            got.append(out)
    many.stamp_batch(payload, len(rxs), rxs)
    replies = [
        bytes(payload[48 * g[1] : 48 * g[1] + 48]) if isinstance(g, tuple) else g for g in got
    ]
    assert replies == expected
    assert many.counts == one.counts


def test_stamp_batch_writes_one_transmit_time_and_counts_each_reply() -> None:
    p, _, clock = make(STEERED, clock_at=T0 + 1_000_000)
    payload = bytearray(48 * 3)
    rxs = []
    for k, before in enumerate((900_000, 20_000, 2_500)):
        out = p.answer(request(xmt=k + 1), clock.now - before, "", 40000 + k)
        assert out is p.plain_response
        payload[48 * k : 48 * k + 48] = out
        rxs.append(clock.now - before)
    assert p.counts[Counter.RESPONDED] == 0  # counted when stamped, just before the send
    p.stamp_batch(payload, 3, rxs)
    served_tx = STEERED.served_ns(clock.now)
    for k in range(3):
        (org,) = struct.unpack_from("!Q", payload, 48 * k + 24)
        rec, xmt = struct.unpack_from("!QQ", payload, 48 * k + 32)
        assert org == k + 1
        assert rec == ntp64(STEERED.served_ns(rxs[k]))
        assert abs(xmt - ntp64(served_tx)) <= 1  # one fraction unit of rounding
    assert p.counts[Counter.RESPONDED] == 3
    assert p.counts[Counter.SENT_BYTES] == 3 * 48
    assert p.counts[LATENCY_SUM_NS] == 900_000 + 20_000 + 2_500
    assert sum(p.counts[LATENCY_BASE : LATENCY_BASE + LATENCY_BUCKETS]) == 3


@pytest.mark.parametrize("guarded", [False, True])
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=requests, state=st.sampled_from([SYNC, STEERED, None]))
def test_fast_path_equals_full_path(
    monkeypatch: pytest.MonkeyPatch,
    guarded: bool,
    batch: list[tuple[bytes, int, int]],
    state: ServedClockState | None,
) -> None:
    """Bare client requests take a short path through answer(); it must agree with the full one.

    Guarded: an access list that denies some sources (including one of the clients) with
    kisses, so both the allowed and the denied requests are compared.
    """
    tx_clock = T0 + 3_000_000
    policy = (
        SecurityPolicy(
            access=AccessList.from_cidrs(["0.0.0.0/0"], ["192.0.2.99/32"]), kod_deny=True
        )
        if guarded
        else None
    )

    def run(fast: bool) -> tuple[list[object], list[int]]:
        monkeypatch.setattr(pipeline_module, "_FAST_PATH", fast)
        p, _, _ = make(state, clock_at=tx_clock, policy=policy)
        outs: list[object] = []
        for k, (data, before, port) in enumerate(batch):
            source = "192.0.2.99" if k % 3 == 2 else CLIENT
            out = p.handle(data, tx_clock - before, source, port)
            outs.append(bytes(out) if isinstance(out, bytearray) else out)
        return outs, p.counts

    assert run(True) == run(False)
