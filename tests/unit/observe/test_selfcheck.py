"""Tests for simple_ntpd.observe.selfcheck: judging the reply to our own query."""

from __future__ import annotations

import struct

import pytest

from simple_ntpd.observe.selfcheck import judge_reply, self_check_request

NOW = 1_796_400_000 * 10**9 + 250_000_000
XMT = bytes.fromhex("0102030405060708")


def ntp64(unix_ns: int) -> int:
    sec, ns = divmod(unix_ns, 10**9)
    return (((sec + 2_208_988_800) & 0xFFFFFFFF) << 32) | ((ns << 32) // 10**9)


def reply(
    *,
    mode: int = 4,
    leap: int = 0,
    stratum: int = 2,
    origin: bytes = XMT,
    tx_ns: int = NOW,
    refid: bytes = b"TEST",
) -> bytes:
    return struct.pack(
        "!BBbbII4sQ8sQQ",
        (leap << 6) | (4 << 3) | mode,
        stratum,
        6,
        -20,
        0,
        0,
        refid,
        0,
        origin,
        0,
        ntp64(tx_ns),
    )


REQ = self_check_request(XMT)


def test_request_is_a_v4_client_query_carrying_the_random_transmit() -> None:
    assert len(REQ) == 48 and REQ[0] == 0x23 and REQ[40:48] == XMT
    with pytest.raises(ValueError):
        self_check_request(b"short")


def test_good_reply() -> None:
    result = judge_reply(REQ, reply(tx_ns=NOW - 300_000), expected_ns=NOW)
    assert result.ok and result.detail == "ok"


def test_unsynchronized_reply_is_still_an_answer() -> None:
    assert judge_reply(REQ, reply(leap=3, stratum=0, refid=bytes(4)), expected_ns=NOW).ok


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (None, "no reply"),
        (reply()[:40], "40 octets"),
        (reply(mode=3), "mode 3"),
        (reply(origin=bytes(8)), "echo"),
        (reply(leap=3, stratum=0, refid=b"RATE"), "kiss-o'-death RATE"),
        (reply(tx_ns=NOW + 5 * 10**9), "off by +5.000 s"),
        (reply(tx_ns=NOW - 2 * 10**9), "off by -2.000 s"),
    ],
)
def test_bad_replies_fail_with_a_reason(data: bytes | None, needle: str) -> None:
    result = judge_reply(REQ, data, expected_ns=NOW)
    assert not result.ok
    assert needle in result.detail


def test_era_boundary_does_not_fake_an_error() -> None:
    # 2036-02-07T06:28:16Z: the 64-bit NTP timestamp wraps to era 1.
    wrap = (2**32 - 2_208_988_800) * 10**9
    assert judge_reply(REQ, reply(tx_ns=wrap + 10**8), expected_ns=wrap - 10**8).ok
