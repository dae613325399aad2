"""MACs against packets captured from ntpdig (NTPsec) and chronyd (tests/vectors/mac/)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simple_ntpd.auth import Key, MacAlgorithm, compute_mac, parse_key_file, verify_mac

VECTORS = Path(__file__).parents[2] / "vectors" / "mac"
CAPTURED = json.loads((VECTORS / "captured.json").read_text())
CASES = [
    (tool, key_id, hex_packet)
    for tool in ("ntpdig", "chronyd")
    for key_id, hex_packet in CAPTURED[tool]["packets"].items()
]


def _store(tool: str):  # type: ignore[no-untyped-def]
    name = CAPTURED[tool]["keyfile"]
    return parse_key_file((VECTORS / name).read_text(), name)


@pytest.mark.parametrize(("tool", "key_id", "hex_packet"), CASES)
def test_captured_vectors_verify_and_recompute(tool: str, key_id: str, hex_packet: str) -> None:
    packet = bytes.fromhex(hex_packet)
    data, wire_id, digest = packet[:48], int.from_bytes(packet[48:52], "big"), packet[52:]
    assert wire_id == int(key_id)
    key = _store(tool).trusted(wire_id)
    assert key is not None
    assert verify_mac(key, data, digest)
    assert compute_mac(key, data) == digest
    # Any flipped bit in data or digest fails.
    assert not verify_mac(key, data[:-1] + bytes([data[-1] ^ 1]), digest)
    assert not verify_mac(key, data, digest[:-1] + bytes([digest[-1] ^ 0x80]))


def test_vectors_cover_every_algorithm() -> None:
    seen = set()
    for tool, key_id, _ in CASES:
        key = _store(tool).get(int(key_id))
        assert key is not None
        seen.add(key.algorithm)
    assert seen == set(MacAlgorithm)


def test_wrong_key_fails() -> None:
    packet = bytes.fromhex(CAPTURED["chronyd"]["packets"]["1"])
    wrong = Key(1, MacAlgorithm.MD5, b"not-the-key")
    assert not verify_mac(wrong, packet[:48], packet[52:])
    same_secret_other_algo = Key(1, MacAlgorithm.SHA1, bytes.fromhex("6E74707365637265740102"))
    assert not verify_mac(same_secret_other_algo, packet[:48], packet[52:])


def test_sha256_truncated_to_20_is_accepted_other_lengths_not() -> None:
    key = Key(4, MacAlgorithm.SHA256, b"sha256secret")
    data = bytes(48)
    full = hashlib.sha256(b"sha256secret" + data).digest()
    assert compute_mac(key, data) == full
    assert compute_mac(key, data, 20) == full[:20]
    assert verify_mac(key, data, full)
    assert verify_mac(key, data, full[:20])
    assert not verify_mac(key, data, full[:16])
    assert not verify_mac(key, data, full[:24])
    assert not verify_mac(key, data, b"")


def test_md5_short_digest_not_accepted() -> None:
    key = Key(1, MacAlgorithm.MD5, b"k")
    digest = compute_mac(key, b"x" * 48)
    assert len(digest) == 16
    assert not verify_mac(key, b"x" * 48, digest[:12])


def test_aes_cmac_rfc4493_example() -> None:
    # RFC 4493 section 4, Example 2 (16-byte message).
    key = Key(1, MacAlgorithm.AES128CMAC, bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c"))
    msg = bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")
    assert compute_mac(key, msg) == bytes.fromhex("070a16b46b4d4144f79bdd9dd04a287c")
    # Example 1, empty message; and the cached prototype gives the same again.
    assert compute_mac(key, b"") == bytes.fromhex("bb1d6929e95937287fa37d129b756746")
    assert compute_mac(key, msg) == bytes.fromhex("070a16b46b4d4144f79bdd9dd04a287c")


@given(st.sampled_from(list(MacAlgorithm)), st.binary(min_size=16, max_size=16), st.binary())
def test_roundtrip_property(algo: MacAlgorithm, secret: bytes, data: bytes) -> None:
    key = Key(7, algo, secret)
    digest = compute_mac(key, data)
    assert len(digest) == algo.digest_size
    assert verify_mac(key, data, digest)
    assert not verify_mac(key, data + b"\0", digest)
