"""Decode requests captured from real NTP clients (tests/vectors/*.hex).

The fixtures were captured by scripts/capture_client_packets.py; each file's
header names the client, its version, the command line and the date. These
tests check that each decodes to what that client is known to send, that it
re-encodes to the same bytes, that the MACs in the authenticated captures
verify with the test keys named in the files (proof that the trailer was cut
at the right place), and that a kiss-o'-death answer to each one matches it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from simple_ntpd.timetypes import unix_ns_from_ntp64
from simple_ntpd.wire.constants import KissCode, Leap, Mode
from simple_ntpd.wire.kod import kiss_code, make_kod
from simple_ntpd.wire.packet import NtpPacket, decode_packet, encode_header, encode_packet

VECTORS = Path(__file__).resolve().parents[2] / "vectors"


@dataclass(frozen=True)
class Vector:
    name: str
    data: bytes
    comments: dict[str, str]

    @property
    def captured_ns(self) -> int:
        stamp = self.comments["captured"].split()[0]
        when = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        return int(when.timestamp()) * 1_000_000_000


def load(path: Path) -> Vector:
    comments: dict[str, str] = {}
    hex_lines: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            key, _, value = line[1:].strip().partition(": ")
            comments[key] = value
        elif line.strip():
            hex_lines.append(line.strip())
    return Vector(path.stem, bytes.fromhex("".join(hex_lines)), comments)


@dataclass(frozen=True)
class Expect:
    version: int
    leap: Leap
    mac: tuple[int, int] | None  # key id, digest length
    hash_name: str | None = None
    transmit: str = "clock"  # "clock": near the capture time; "random": chrony's random bits
    poll: int = 0
    precision: int = 0


# What each client is known to send. A new vector must be described here.
EXPECTED: dict[str, Expect] = {
    "ntpdig_v4": Expect(4, Leap.UNSYNCHRONIZED, None),
    "ntpdate_q": Expect(4, Leap.UNSYNCHRONIZED, None),
    "sntp": Expect(4, Leap.UNSYNCHRONIZED, None),
    "ntpdig_v4_sha1_mac": Expect(4, Leap.UNSYNCHRONIZED, (42, 20), "sha1"),
    "ntpdig_v4_md5_mac": Expect(4, Leap.UNSYNCHRONIZED, (43, 16), "md5"),
    "ntplib_v3": Expect(3, Leap.NO_WARNING, None),
    "ntplib_v4": Expect(4, Leap.NO_WARNING, None),
    # chrony hides its clock in requests: precision 32, random transmit timestamp.
    "chronyd_v4": Expect(4, Leap.NO_WARNING, None, transmit="random", poll=6, precision=32),
    "chronyd_v3": Expect(3, Leap.NO_WARNING, None, transmit="random", poll=6, precision=32),
    "chronyd_v4_sha1_mac": Expect(
        4, Leap.NO_WARNING, (42, 20), "sha1", transmit="random", poll=6, precision=32
    ),
    "chronyd_v3_sha256_mac": Expect(
        3, Leap.NO_WARNING, (44, 32), "sha256", transmit="random", poll=6, precision=32
    ),
}

ALL = sorted(VECTORS.glob("*.hex"))


def test_every_vector_is_described() -> None:
    assert {p.stem for p in ALL} == set(EXPECTED)


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_vector_names_its_source(path: Path) -> None:
    vector = load(path)
    for key in ("SOURCE", "client version", "command", "captured"):
        assert vector.comments.get(key), f"{path.name} lacks '# {key}:'"
    assert f"length: {len(vector.data)} octets" in path.read_text()


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_vector_decodes_as_its_client_sends(path: Path) -> None:
    vector = load(path)
    expect = EXPECTED[vector.name]
    packet = decode_packet(vector.data)
    h = packet.header
    assert h.mode is Mode.CLIENT
    assert h.version == expect.version
    assert h.leap is expect.leap
    assert h.stratum == 0
    assert (h.poll, h.precision) == (expect.poll, expect.precision)
    assert (h.root_delay, h.root_dispersion, h.reference_id) == (0, 0, bytes(4))
    # No client here reveals earlier timestamps in a first request.
    assert (h.reference_ts, h.origin_ts, h.receive_ts) == (0, 0, 0)
    assert h.transmit_ts != 0
    assert packet.extensions == ()
    if expect.mac is None:
        assert packet.mac is None
        assert len(vector.data) == 48
    else:
        assert packet.mac is not None
        assert (packet.mac.key_id, len(packet.mac.digest)) == expect.mac


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_vector_transmit_timestamp(path: Path) -> None:
    vector = load(path)
    expect = EXPECTED[vector.name]
    tx = decode_packet(vector.data).header.transmit_ts
    when = unix_ns_from_ntp64(tx, vector.captured_ns)
    offset_s = abs(when - vector.captured_ns) / 1e9
    if expect.transmit == "clock":
        # The client's clock at the time, seconds from the capture stamp.
        assert offset_s < 60
    else:
        # chrony (since 3.x) sends 64 random bits so its request tells nothing
        # about its clock; random bits land within a minute with odds ~1e-8.
        assert offset_s > 60


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_vector_reencodes_to_the_same_bytes(path: Path) -> None:
    vector = load(path)
    assert encode_packet(decode_packet(vector.data)) == vector.data


def _key_from(line: str) -> bytes:
    # "42 SHA1 0011..." (NTPsec: 40 hex digits are hex, shorter is ASCII)
    # or "42 SHA1 HEX:0011..." (chrony).
    _key_id, _type, secret = line.split()
    if secret.startswith("HEX:"):
        return bytes.fromhex(secret[4:])
    if re.fullmatch(r"[0-9a-fA-F]{40,}", secret):
        return bytes.fromhex(secret)
    return secret.encode("ascii")


@pytest.mark.parametrize(
    "path",
    [p for p in ALL if EXPECTED[p.stem].mac is not None],
    ids=lambda p: p.stem,
)
def test_vector_mac_verifies_with_the_test_key(path: Path) -> None:
    # Legacy NTP MAC: digest = H(key || everything before the MAC) (RFC 5905
    # Appendix A, as NTPsec and chrony compute it for MD5/SHA keys).
    vector = load(path)
    expect = EXPECTED[vector.name]
    assert expect.hash_name is not None
    packet = decode_packet(vector.data)
    assert packet.mac is not None
    key = _key_from(vector.comments["key file line"])
    covered = vector.data[: len(vector.data) - 4 - len(packet.mac.digest)]
    assert covered == encode_header(packet.header)
    digest = hashlib.new(expect.hash_name, key + covered).digest()
    assert packet.mac.digest == digest[: len(packet.mac.digest)]


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_rate_kod_answers_each_captured_request(path: Path) -> None:
    request = decode_packet(load(path).data).header
    kod = decode_packet(encode_header(make_kod(request, KissCode.RATE))).header
    assert kiss_code(kod) == b"RATE"
    assert kod.origin_ts == request.transmit_ts
    assert kod.version == request.version
    assert isinstance(decode_packet(encode_header(kod)), NtpPacket)
