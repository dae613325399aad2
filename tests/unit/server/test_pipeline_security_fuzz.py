"""Property test of the whole request pipeline with ACL, rate limiting and auth all on.

For any sequence of (source address, datagram, time step): the pipeline never
raises, counts every datagram exactly once, never answers a datagram that is
not a well-formed client request, and never answers with more bytes than it
received. tests/fuzz/fuzz_pipeline.py is the atheris version of the same
oracle, for long runs by hand.
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from simple_ntpd.auth import Key, KeyStore, MacAlgorithm
from simple_ntpd.reasons import DROP_REASON_COUNT, DropReason
from simple_ntpd.served_clock import (
    STATE_BUFFER_SIZE,
    SeqlockReader,
    SeqlockWriter,
    ServedClockState,
)
from simple_ntpd.server.acl import AccessList
from simple_ntpd.server.auth import sign_request
from simple_ntpd.server.pipeline import RequestPipeline
from simple_ntpd.server.policy import SecurityPolicy
from simple_ntpd.server.ratelimit import RateLimitParams
from simple_ntpd.stats import DROP_BASE, Counter
from simple_ntpd.wire.packet import try_decode_packet

T0 = 1_780_000_000 * 10**9
KEYS = KeyStore(
    {
        1: Key(1, MacAlgorithm.MD5, b"md5key"),
        2: Key(2, MacAlgorithm.SHA1, b"sha1key"),
        3: Key(3, MacAlgorithm.AES128CMAC, bytes(range(16))),
        4: Key(4, MacAlgorithm.SHA256, b"sha256key"),
    }
)


def policy(require_auth: bool, kod_deny: bool, crypto_nak: bool) -> SecurityPolicy:
    return SecurityPolicy(
        access=AccessList.from_cidrs(
            ["10.0.0.0/8", "2001:db8::/32", "127.0.0.0/8"], ["10.9.0.0/16", "2001:db8:9::/48"]
        ),
        kod_deny=kod_deny,
        rate_limit=RateLimitParams(
            max_queries_per_minute=60,
            burst=3,
            kod_leak_log2=1,
            trusted_networks=("127.0.0.0/8",),
            max_new_clients_per_second=50,
            max_clients=64,
        ),
        keys=KEYS.with_trusted([1, 2, 3]),  # key 4 present but not trusted
        require_auth=require_auth,
        crypto_nak=crypto_nak,
    )


def pipeline(pol: SecurityPolicy) -> tuple[RequestPipeline, list[float]]:
    buf = bytearray(STATE_BUFFER_SIZE)
    SeqlockWriter(memoryview(buf)).publish(
        ServedClockState(leap=0, stratum=2, reference_id=b"LOCL", update_ns=T0)
    )
    now = [0.0]
    p = RequestPipeline(
        SeqlockReader(memoryview(buf)),
        lambda: T0,
        max_request_len=512,
        policy=pol,
        monotonic=lambda: now[0],
    )
    return p, now


addresses = st.one_of(
    st.sampled_from(
        ["10.1.2.3", "10.9.1.1", "127.0.0.1", "8.8.8.8", "::ffff:10.1.2.3", "2001:db8::1"]
    ),
    st.builds(lambda a, b: f"10.{a}.{b}.1", st.integers(0, 255), st.integers(0, 255)),
    st.ip_addresses().map(str),
    st.text(max_size=12),
)


@st.composite
def datagrams(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=200))
    first = draw(st.integers(0, 255)) if kind == 1 else (draw(st.integers(1, 4)) << 3) | 3
    header = bytes([first]) + draw(st.binary(min_size=47, max_size=47))
    if kind == 3:
        key = KEYS.get(draw(st.integers(1, 4)))
        assert key is not None
        signed = sign_request(header, key)
        if draw(st.booleans()):  # corrupt one byte
            i = draw(st.integers(0, len(signed) - 1))
            signed = signed[:i] + bytes([signed[i] ^ 0x40]) + signed[i + 1 :]
        return signed
    return header + draw(st.binary(max_size=80))


def well_formed_request(data: bytes) -> bool:
    if len(data) < 48:
        return False
    version, mode = (data[0] >> 3) & 7, data[0] & 7
    if not 1 <= version <= 4:
        return False
    # The port is never 123 here, so the NTPv1 mode-0 rule applies.
    if mode != 3 and not (mode == 0 and version == 1):
        return False
    if len(data) == 48:
        return True
    # What the codec refuses is never answered. The one exception, NTPsec's
    # full SHA256 MAC after an NTPv4 header, is answered only when it verifies
    # with a trusted key, which never happens here (key 4 is untrusted).
    return not isinstance(try_decode_packet(data), DropReason)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(st.tuples(addresses, datagrams(), st.floats(0, 2.0)), min_size=1, max_size=40),
    require_auth=st.booleans(),
    kod_deny=st.booleans(),
    crypto_nak=st.booleans(),
)
def test_pipeline_never_raises_never_amplifies_never_answers_invalid(
    steps: list[tuple[str, bytes, float]], require_auth: bool, kod_deny: bool, crypto_nak: bool
) -> None:
    p, now = pipeline(policy(require_auth, kod_deny, crypto_nak))
    for addr, data, dt in steps:
        now[0] += dt
        before = list(p.counts)
        out = p.handle(data, T0, addr, 40000)
        received = p.counts[Counter.RECEIVED] - before[Counter.RECEIVED]
        responded = p.counts[Counter.RESPONDED] - before[Counter.RESPONDED]
        drops = slice(DROP_BASE, DROP_BASE + DROP_REASON_COUNT)
        dropped = sum(p.counts[drops]) - sum(before[drops])
        assert received == 1 and responded + dropped == 1
        if isinstance(out, DropReason):
            assert dropped == 1 and p.counts[DROP_BASE + out] == before[DROP_BASE + out] + 1
            continue
        assert well_formed_request(data), (addr, data.hex())
        assert 48 <= len(out) <= len(data)
        assert out[0] & 7 == 4  # server mode
        if len(out) > 52:  # carries a MAC: only for a verified trusted key
            assert int.from_bytes(out[48:52], "big") in (1, 2, 3)
            assert p.counts[Counter.AUTHENTICATED] == before[Counter.AUTHENTICATED] + 1
        if require_auth and len(out) == 48 and out[1] != 0:
            raise AssertionError("time served without authentication")
        assert p.counts[Counter.SENT_BYTES] - before[Counter.SENT_BYTES] == len(out)


def test_oracle_sees_a_valid_request() -> None:
    header = struct.pack("!B47x", 0x23)
    assert well_formed_request(header)
    assert not well_formed_request(header[:47])
    assert not well_formed_request(b"\x26" + header[1:])
