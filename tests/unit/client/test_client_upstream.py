"""The upstream_servers entry syntax (simple_ntpd.client.upstream)."""

from __future__ import annotations

import pytest

from simple_ntpd.client.upstream import InvalidUpstreamEntry, UpstreamSpec, parse_upstream_entry
from simple_ntpd.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pool.ntp.org", UpstreamSpec("pool.ntp.org", is_pool=True, max_sources=4)),
        ("time.nist.gov iburst", UpstreamSpec("time.nist.gov")),
        ("Time.NIST.gov. noiburst", UpstreamSpec("time.nist.gov", iburst=False)),
        ("192.0.2.1:1123 prefer", UpstreamSpec("192.0.2.1", port=1123, prefer=True)),
        ("[2001:db8::1]:123 iburst key 5", UpstreamSpec("2001:db8::1", key_id=5)),
        ("[2001:db8::1]", UpstreamSpec("2001:db8::1")),
        ("2001:db8::2 noselect", UpstreamSpec("2001:db8::2", noselect=True)),
        (
            "pool 2.pool.ntp.org maxsources 6",
            UpstreamSpec("2.pool.ntp.org", is_pool=True, max_sources=6),
        ),
        ("server 0.debian.pool.ntp.org", UpstreamSpec("0.debian.pool.ntp.org")),
        ("pool time.example.com", UpstreamSpec("time.example.com", is_pool=True, max_sources=4)),
        (
            "ntp1.example.net minpoll 4 maxpoll 6 port 10123",
            UpstreamSpec("ntp1.example.net", port=10123, min_poll=4, max_poll=6),
        ),
    ],
)
def test_entries(text: str, expected: UpstreamSpec) -> None:
    assert parse_upstream_entry(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "host:0",
        "host:99999",
        "host:abc",
        "[2001:db8::1",
        "[192.0.2.1]:123",
        "2001:db8::zz",
        "bad_host!",
        "999.1.2.3",
        "time.example.com fast",
        "time.example.com key",
        "time.example.com key x",
        "time.example.com minpoll 18",
        "time.example.com minpoll 8 maxpoll 6",
        "time.example.com maxsources 4",
        "pool 192.0.2.1",
        "192.0.2.1:123 port 124",
    ],
)
def test_invalid_entries_raise_a_config_error_naming_the_entry(text: str) -> None:
    with pytest.raises(InvalidUpstreamEntry) as info:
        parse_upstream_entry(text)
    assert isinstance(info.value, ConfigError)
    if text.strip():
        assert repr(text) in str(info.value)


def test_is_address() -> None:
    assert parse_upstream_entry("192.0.2.1").is_address
    assert parse_upstream_entry("[::1]:10123").is_address
    assert not parse_upstream_entry("localhost").is_address
