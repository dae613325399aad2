"""Access control, rate limiting and authentication through the whole request pipeline.

Everything runs in simulated time: the receive time and the monotonic clock of
the rate limiter are arguments (docs/security.md states the thresholds these
tests check).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from simple_ntpd.auth import Key, KeyStore, MacAlgorithm, compute_mac, parse_key_file
from simple_ntpd.config.load import parse_config_text
from simple_ntpd.reasons import DropReason
from simple_ntpd.served_clock import (
    STATE_BUFFER_SIZE,
    SeqlockReader,
    SeqlockWriter,
    ServedClockState,
)
from simple_ntpd.server import acl as acl_module
from simple_ntpd.server.acl import AccessList
from simple_ntpd.server.auth import (
    Authenticated,
    authenticate,
    sign_request,
    sign_response,
    verify_reply,
)
from simple_ntpd.server.pipeline import RequestPipeline, security_summary
from simple_ntpd.server.policy import SecurityPolicy, policy_from_config, security_notes
from simple_ntpd.server.ratelimit import RateLimitParams
from simple_ntpd.stats import DROP_BASE, Counter
from simple_ntpd.wire.packet import decode_packet

VECTORS = Path(__file__).parents[2] / "vectors" / "mac"
CAPTURED = json.loads((VECTORS / "captured.json").read_text())
HDR = struct.Struct("!BBbbII4sQQQQ")
T0 = 1_780_000_000 * 10**9
SYNC = ServedClockState(
    leap=0,
    stratum=2,
    reference_id=b"LOCL",
    reference_time_ns=T0 - 10**9,
    root_delay=0.0,
    root_dispersion=0.001,
    precision=-20,
    update_ns=T0,
)


class Mono:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(policy: SecurityPolicy) -> tuple[RequestPipeline, Mono]:
    buf = bytearray(STATE_BUFFER_SIZE)
    SeqlockWriter(memoryview(buf)).publish(SYNC)
    mono = Mono()
    p = RequestPipeline(
        SeqlockReader(memoryview(buf)), lambda: T0 + 1000, policy=policy, monotonic=mono
    )
    return p, mono


def request(version: int = 4, xmt: int = 0x0102030405060708, poll: int = 6) -> bytes:
    return HDR.pack((version << 3) | 3, 0, poll, 0, 0, 0, b"\0" * 4, 0, 0, 0, xmt)


def answered(out: object) -> bytes:
    assert not isinstance(out, DropReason), out
    return bytes(out)  # type: ignore[arg-type]


# -- access control ---------------------------------------------------------------

ACL = SecurityPolicy(
    access=AccessList.from_cidrs(
        ["10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32", "::ffff:172.16.0.0/108"],
        ["10.1.0.0/16", "2001:db8:bad::/48", "192.168.1.7"],
    )
)

ACL_MATRIX = [
    ("10.2.3.4", True),
    ("10.1.2.3", False),  # more specific deny
    ("10.255.255.255", True),
    ("192.168.1.6", True),
    ("192.168.1.7", False),  # host deny
    ("172.16.5.5", True),  # from the IPv4-mapped rule
    ("172.32.0.1", False),
    ("8.8.8.8", False),  # not in the allow list
    ("::ffff:10.2.3.4", True),  # IPv4-mapped source
    ("::ffff:10.1.2.3", False),
    ("::ffff:8.8.8.8", False),
    ("2001:db8::1", True),
    ("2001:db8:bad::1", False),
    ("2001:db8:bad0::1", True),
    ("2001:db9::1", False),
    ("fe80::1%lo", False),
    ("::1", False),
    ("not-an-address", False),
]


@pytest.mark.parametrize(("addr", "allowed"), ACL_MATRIX)
def test_acl_matrix_ipv4_ipv6(addr: str, allowed: bool) -> None:
    p, _ = make(ACL)
    out = p.handle(request(), T0, addr, 40000)
    if allowed:
        assert len(answered(out)) == 48
        assert p.counts[Counter.RESPONDED] == 1
    else:
        assert out is DropReason.ACL_DENIED
        assert p.counts[DROP_BASE + DropReason.ACL_DENIED] == 1
        assert p.samples[DropReason.ACL_DENIED] == [addr]


def test_acl_decisions_stay_right_when_the_decision_cache_empties(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The fast path looks known clients up in AccessList.decided without a call; the cache
    # empties when full and must stay the object the pipeline holds.
    monkeypatch.setattr(acl_module, "DECISION_CACHE_SIZE", 50)
    p, _ = make(ACL)
    for i in range(400):
        allowed = f"10.2.{i // 256}.{i % 256}"
        assert len(answered(p.handle(request(), T0, allowed, 40000))) == 48
        assert p.handle(request(), T0, "10.1.0.1", 40000) is DropReason.ACL_DENIED
        assert p.handle(request(), T0, "8.8.8.8", 40000) is DropReason.ACL_DENIED
    assert p.counts[Counter.RESPONDED] == 400
    assert p.counts[DROP_BASE + DropReason.ACL_DENIED] == 800


def test_denied_gets_deny_kiss_when_configured() -> None:
    p, _ = make(SecurityPolicy(access=ACL.access, kod_deny=True))
    req = request(xmt=0xAABBCCDD00112233, poll=7)
    out = answered(p.handle(req + b"\0" * 24, T0, "8.8.8.8", 40000))
    assert len(out) == 48  # never larger than the request
    h = decode_packet(out).header
    assert (h.leap, h.stratum, h.reference_id, h.mode) == (3, 0, b"DENY", 4)
    assert h.origin_ts == h.receive_ts == h.transmit_ts == 0xAABBCCDD00112233
    assert h.poll == 7
    assert p.counts[Counter.KOD_DENY] == 1
    # Malformed requests from a denied source are still only dropped.
    assert p.handle(req[:40], T0, "8.8.8.8", 40000) is DropReason.TOO_SHORT


def test_allow_all_policy_is_unguarded() -> None:
    p, _ = make(SecurityPolicy(access=AccessList.from_cidrs([], [])))
    assert not p._guarded
    assert len(answered(p.handle(request(), T0, "garbage", 1))) == 48


# -- rate limiting in simulated time ------------------------------------------------

LIMIT = RateLimitParams(
    max_queries_per_minute=600,  # one token every 100 ms
    burst=10,
    kod_leak_log2=2,  # one limited request in four gets a RATE kiss
    trusted_networks=("192.0.2.0/24",),
    max_new_clients_per_second=0,
)


def test_rate_limit_exact_thresholds_and_kod_fraction() -> None:
    p, mono = make(SecurityPolicy(rate_limit=LIMIT))
    a = "198.51.100.7"
    for _ in range(10):  # the burst, back to back
        assert len(answered(p.handle(request(), T0, a, 1))) == 48
    outcomes = [p.handle(request(), T0, a, 1) for _ in range(400)]
    kisses = [o for o in outcomes if not isinstance(o, DropReason)]
    assert len(kisses) == 100  # exactly one in 2**2
    assert outcomes.count(DropReason.RATE_LIMITED) == 300
    for kod in kisses:
        h = decode_packet(bytes(kod)).header
        assert len(kod) == 48 and (h.stratum, h.reference_id, h.leap) == (0, b"RATE", 3)
    assert p.counts[Counter.KOD_RATE] == 100
    assert p.counts[DROP_BASE + DropReason.RATE_LIMITED] == 300
    # 99.9 ms later no token yet; 100.1 ms later exactly one.
    mono.now += 0.0999
    assert p.handle(request(), T0, a, 1) is DropReason.RATE_LIMITED
    mono.now += 0.0002
    out = answered(p.handle(request(), T0, a, 1))
    assert decode_packet(out).header.stratum == 2
    assert p.handle(request(), T0, a, 1) is DropReason.RATE_LIMITED
    assert p.samples[DropReason.RATE_LIMITED] == [a]  # distinct addresses only


def test_rate_limit_sustained_rate_over_ten_seconds() -> None:
    params = RateLimitParams(**{**_fields(LIMIT), "kod_leak_log2": None})  # type: ignore[arg-type]
    p, mono = make(SecurityPolicy(rate_limit=params))
    a = "2001:db8::5"
    served = 0
    for _ in range(10_000):  # 1000 requests/s for 10 s
        out = p.handle(request(), T0, a, 1)
        served += not isinstance(out, DropReason)
        mono.now += 0.001
    # burst + 10 s x 10/s, give or take the token in flight at the end
    assert 10 + 100 - 1 <= served <= 10 + 100 + 1


def _fields(params: RateLimitParams) -> dict[str, object]:
    return {f: getattr(params, f) for f in params.__dataclass_fields__}


def test_trusted_network_bypasses_limit_and_other_client_is_served() -> None:
    p, _ = make(SecurityPolicy(rate_limit=LIMIT))
    for _ in range(1000):
        assert len(answered(p.handle(request(), T0, "192.0.2.55", 1))) == 48
    for _ in range(50):
        p.handle(request(), T0, "198.51.100.1", 1)
    # A second client is unaffected by the first one's flood.
    assert len(answered(p.handle(request(), T0, "198.51.100.2", 1))) == 48
    assert p.limiter is not None and not p.limiter.knows("192.0.2.55")


def test_malformed_requests_do_not_use_tokens() -> None:
    p, _ = make(SecurityPolicy(rate_limit=LIMIT))
    for _ in range(100):
        assert p.handle(b"\x1b" * 20, T0, "198.51.100.9", 1) is DropReason.TOO_SHORT
    for _ in range(10):
        assert len(answered(p.handle(request(), T0, "198.51.100.9", 1))) == 48


def test_million_source_flood_memory_bound_and_legit_client_served() -> None:
    """1,000,000 distinct spoofed sources against the pipeline, with a real client polling."""
    params = RateLimitParams(
        max_queries_per_minute=60,
        burst=4,
        max_new_clients_per_second=1000,
        max_clients=1_000_000,
        kod_leak_log2=None,
    )
    p, mono = make(SecurityPolicy(rate_limit=params))
    assert p.limiter is not None and p.limiter.table_bytes <= 64 * 2**20
    legit = "203.0.113.9"
    assert len(answered(p.handle(request(), T0, legit, 1))) == 48
    req = request()
    handle = p.handle
    served = 0
    # 1,000,000 sources at 100,000 requests/s: 10 s of simulated time; the
    # legitimate client asks once a second.
    for i in range(1_000_000):
        handle(req, T0, f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", 1)
        mono.now += 0.00001
        if i % 100_000 == 99_999:
            served += not isinstance(handle(req, T0, legit, 1), DropReason)
    assert served == 10
    assert p.limiter.knows(legit)
    # Admission held the flood to ~1000 new clients per second (plus the initial burst).
    assert p.limiter.tracked() <= 1 + 1000 * 11
    assert p.counts[DROP_BASE + DropReason.RATE_LIMITED] >= 1_000_000 - 1000 * 11
    assert p.limiter.table_bytes <= 64 * 2**20


# -- authentication ---------------------------------------------------------------


def _store(tool: str) -> KeyStore:
    name = CAPTURED[tool]["keyfile"]
    return parse_key_file((VECTORS / name).read_text(), name)


AUTH_CASES = [
    (tool, int(key_id), bytes.fromhex(hex_packet))
    for tool in ("ntpdig", "chronyd")
    for key_id, hex_packet in CAPTURED[tool]["packets"].items()
]


@pytest.mark.parametrize(("tool", "key_id", "packet"), AUTH_CASES)
def test_captured_requests_get_responses_signed_with_same_key_and_length(
    tool: str, key_id: int, packet: bytes
) -> None:
    keys = _store(tool)
    p, _ = make(SecurityPolicy(keys=keys, require_auth=True))
    out = answered(p.handle(packet, T0, "127.0.0.1", 40000))
    digest_len = len(packet) - 52
    assert len(out) == 48 + 4 + digest_len == len(packet)
    assert int.from_bytes(out[48:52], "big") == key_id
    key = keys.trusted(key_id)
    assert key is not None
    assert out[52:] == compute_mac(key, out[:48])[:digest_len]
    assert verify_reply(keys, out, key_id)
    assert out[24:32] == packet[40:48]  # origin = the client's transmit timestamp
    assert (out[0] >> 3) & 7 == (packet[0] >> 3) & 7
    assert p.counts[Counter.AUTHENTICATED] == 1


@pytest.mark.parametrize("response", ["crypto-nak", "drop"])
def test_wrong_key_never_gets_an_authenticated_response(response: str) -> None:
    wrong = parse_key_file(
        "1 MD5 othersecret\n2 SHA1 HEX:00112233445566778899aabbccddeeff00112233\n"
        "3 AES128CMAC HEX:0f0e0d0c0b0a09080706050403020100\n4 SHA256 nope\n",
        "wrong",
    )
    p, _ = make(SecurityPolicy(keys=wrong, crypto_nak=response == "crypto-nak"))
    for _tool, _key_id, packet in AUTH_CASES:
        out = p.handle(packet, T0, "127.0.0.1", 40000)
        if response == "drop" or (len(packet) > 48 + 24 and packet[0] >> 3 & 7 == 4):
            # (an NTPv4 full-length SHA256 MAC that does not verify stays malformed)
            assert isinstance(out, DropReason)
            continue
        assert not isinstance(out, DropReason)
        assert len(out) == 52 and bytes(out[48:]) == b"\0\0\0\0"  # crypto-NAK
        assert len(out) <= len(packet)
    assert p.counts[Counter.AUTHENTICATED] == 0


def test_untrusted_key_is_refused() -> None:
    keys = _store("ntpdig").with_trusted([2])
    p, _ = make(SecurityPolicy(keys=keys))
    md5 = bytes.fromhex(CAPTURED["ntpdig"]["packets"]["1"])
    sha1 = bytes.fromhex(CAPTURED["ntpdig"]["packets"]["2"])
    assert bytes(answered(p.handle(md5, T0, "127.0.0.1", 1))[48:]) == b"\0" * 4
    assert len(answered(p.handle(sha1, T0, "127.0.0.1", 1))) == len(sha1)


def test_authentication_required_refuses_unauthenticated() -> None:
    p, _ = make(SecurityPolicy(keys=_store("ntpdig"), require_auth=True, crypto_nak=False))
    assert p.handle(request(), T0, "127.0.0.1", 1) is DropReason.AUTH_REQUIRED
    # extension field only, no MAC
    ef = struct.pack("!HH", 0x1234, 28) + b"\0" * 24
    assert p.handle(request() + ef, T0, "127.0.0.1", 1) is DropReason.AUTH_REQUIRED
    assert p.counts[DROP_BASE + DropReason.AUTH_REQUIRED] == 2
    bad = bytearray(bytes.fromhex(CAPTURED["ntpdig"]["packets"]["1"]))
    bad[-1] ^= 1
    assert p.handle(bytes(bad), T0, "127.0.0.1", 1) is DropReason.AUTH_FAILED


def test_unauthenticated_answered_plainly_when_not_required() -> None:
    p, _ = make(SecurityPolicy(keys=_store("ntpdig")))
    assert len(answered(p.handle(request(), T0, "127.0.0.1", 1))) == 48


@pytest.mark.parametrize("alg", list(MacAlgorithm))
def test_client_helpers_round_trip(alg: MacAlgorithm) -> None:
    secret = bytes(range(16)) if alg is MacAlgorithm.AES128CMAC else b"s3cret-key"
    key = Key(9, alg, secret)
    keys = KeyStore({9: key})
    req = sign_request(request(version=3), key)
    found = authenticate(keys, req)
    assert isinstance(found, Authenticated) and found.digest_len == alg.digest_size
    reply = sign_response(request(version=3), found)
    assert verify_reply(keys, reply, 9)
    assert not verify_reply(keys, reply, 8)
    assert not verify_reply(keys, reply[:-1] + bytes([reply[-1] ^ 1]), 9)
    assert not verify_reply(keys, request(), 9)


def test_security_summary_lines() -> None:
    p, _ = make(SecurityPolicy(access=ACL.access, kod_deny=False))
    before = list(p.counts)
    for i in range(20):
        p.handle(request(), T0, f"8.8.8.{i}", 1)
    lines = security_summary(before, p.counts, p.samples)
    assert len(lines) == 1
    kind, fmt, args = lines[0]
    assert kind is DropReason.ACL_DENIED
    text = fmt % args
    assert text.startswith("20 requests refused by the access list (0 answered")
    assert "8.8.8.0, 8.8.8.1, 8.8.8.2, 8.8.8.3" in text and "8.8.8.4" not in text


# -- configuration mapping --------------------------------------------------------------


def test_policy_from_config() -> None:
    loaded = parse_config_text(
        "[network]\nmax_clients = 5000\nmax_connections_per_second = 200\n"
        '[security]\nallow_query_from = ["10.0.0.0/8"]\nkod_deny = true\n'
        "enable_rate_limiting = true\nmax_queries_per_minute = 120\nrate_limit_burst = 8\n"
        "rate_limit_ipv4_prefix = 24\nrate_limit_kod_log2 = -1\nenable_ddos_protection = true\n"
        'trusted_keys = [2]\nauth_failure_response = "drop"\nenable_authentication = true\n',
        env={},
    )
    keys = _store("ntpdig")
    pol = policy_from_config(loaded.config, keys)
    assert pol.access is not None and pol.access.permits("10.1.1.1")
    assert not pol.access.permits("11.1.1.1")
    assert pol.kod_deny and pol.require_auth and not pol.crypto_nak
    rl = pol.rate_limit
    assert rl is not None
    assert (rl.max_queries_per_minute, rl.burst, rl.ipv4_prefix, rl.kod_leak_log2) == (
        120,
        8,
        24,
        None,
    )
    assert (rl.max_new_clients_per_second, rl.max_clients) == (200, 5000)
    assert pol.keys is not None and pol.keys.trusted(1) is None and pol.keys.trusted(2)
    notes = "\n".join(security_notes(loaded.config, keys))
    assert "1 allow and 0 deny rules" in notes and "DENY kiss" in notes
    assert "at most 200/s" in notes and "reserved for NTS-KE" in notes
    assert "unauthenticated requests refused" in notes


def test_default_config_policy_is_unguarded() -> None:
    pol = policy_from_config(parse_config_text("", env={}).config, None)
    assert pol == SecurityPolicy(crypto_nak=True)
    assert not pol.guarded


def test_worker_summary_logs_through_logging_args(caplog: pytest.LogCaptureFixture) -> None:
    from simple_ntpd.runtime.worker import _log_security_summary

    p, _ = make(SecurityPolicy(rate_limit=LIMIT, keys=_store("ntpdig")))
    before = list(p.counts)
    for _ in range(30):
        p.handle(request(), T0, "198.51.100.77", 1)
    bad = bytearray(bytes.fromhex(CAPTURED["ntpdig"]["packets"]["2"]))
    bad[-1] ^= 1
    p.handle(bytes(bad), T0, "2001:db8::66", 1)
    with caplog.at_level("INFO", logger="simple_ntpd.runtime.worker"):
        _log_security_summary(3, before, p)
    records = {r.getMessage() for r in caplog.records}
    assert (
        "worker 3: security: 20 requests over the rate limit "
        "(5 answered with RATE kisses), from e.g. 198.51.100.77" in records
    )
    assert (
        "worker 3: security: 1 requests with an unknown key or a bad MAC "
        "(1 answered with crypto-NAKs), from e.g. 2001:db8::66" in records
    )
    # Addresses are arguments, never part of the format string (the log setup escapes them).
    assert all("198.51" not in str(r.msg) for r in caplog.records)
    assert all(not samples for samples in p.samples.values())
