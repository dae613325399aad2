"""Access list semantics: most specific rule wins, deny beats allow at equal length."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simple_ntpd.server import acl as acl_module
from simple_ntpd.server.acl import AccessList, parse_address

GUIDE_ALLOW = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]


@pytest.mark.parametrize(
    ("allow", "deny", "addr", "expected"),
    [
        # Empty lists: everything.
        ([], [], "192.0.2.1", True),
        ([], [], "2001:db8::1", True),
        # Empty allow list allows all but what deny matches.
        ([], ["192.0.2.0/24"], "192.0.2.1", False),
        ([], ["192.0.2.0/24"], "192.0.3.1", True),
        ([], ["2001:db8::/32"], "2001:db8::1", False),
        ([], ["2001:db8::/32"], "2001:db9::1", True),
        # Non-empty allow list denies what it does not match.
        (GUIDE_ALLOW, [], "10.1.2.3", True),
        (GUIDE_ALLOW, [], "172.31.255.255", True),
        (GUIDE_ALLOW, [], "172.32.0.0", False),
        (GUIDE_ALLOW, [], "8.8.8.8", False),
        (GUIDE_ALLOW, [], "2001:db8::1", False),
        # Most specific wins, whichever list it is in.
        (["10.0.0.0/8"], ["10.1.0.0/16"], "10.1.2.3", False),
        (["10.0.0.0/8"], ["10.1.0.0/16"], "10.2.2.3", True),
        (["10.1.2.0/24"], ["10.0.0.0/8"], "10.1.2.3", True),
        (["10.1.2.0/24"], ["10.0.0.0/8"], "10.1.3.3", False),
        (["2001:db8:1::/48"], ["2001:db8::/32"], "2001:db8:1::7", True),
        (["2001:db8:1::/48"], ["2001:db8::/32"], "2001:db8:2::7", False),
        # Deny beats allow at equal prefix length.
        (["192.0.2.0/24"], ["192.0.2.0/24"], "192.0.2.9", False),
        (["2001:db8::/32"], ["2001:db8::/32"], "2001:db8::9", False),
        # Host rules.
        (["192.0.2.7"], [], "192.0.2.7", True),
        (["192.0.2.7"], [], "192.0.2.8", False),
        ([], ["2001:db8::7"], "2001:db8::7", False),
        # Families are separate (chrony): ::/0 does not cover IPv4 and vice versa.
        (["::/0"], [], "192.0.2.1", False),
        (["0.0.0.0/0"], [], "2001:db8::1", False),
        ([], ["::/0"], "192.0.2.1", True),
        ([], ["0.0.0.0/0"], "::1", True),
        # IPv4-mapped sources are their IPv4 address.
        (GUIDE_ALLOW, [], "::ffff:10.9.8.7", True),
        (GUIDE_ALLOW, [], "::ffff:8.8.8.8", False),
        ([], ["10.0.0.0/8"], "::ffff:10.9.8.7", False),
        # IPv4-mapped rules are IPv4 rules.
        (["::ffff:10.0.0.0/104"], [], "10.3.3.3", True),
        (["::ffff:10.0.0.0/104"], [], "11.3.3.3", False),
        # Scope ids are ignored.
        (["fe80::/10"], [], "fe80::1%eth0", True),
        (["fe80::/10"], [], "fe81::1%2", True),
        (["2001:db8::/32"], [], "fe80::1%eth0", False),
        # Unparseable sources are refused, not raised on.
        ([], [], "not-an-address", False),
        ([], [], "1.2.3", False),
        ([], [], "1::2::3", False),
        # Allow overridden by an equal deny still makes the allow list non-empty.
        (["192.0.2.0/24"], ["192.0.2.0/24"], "198.51.100.1", False),
    ],
)
def test_matrix(allow: list[str], deny: list[str], addr: str, expected: bool) -> None:
    acl = AccessList.from_cidrs(allow, deny)
    assert acl.permits(addr) is expected
    # The second answer comes from the cache and must agree.
    assert acl.permits(addr) is expected


@pytest.mark.parametrize(
    ("allow", "deny", "expected"),
    [
        ([], [], True),
        (["0.0.0.0/0", "::/0"], [], True),
        (["0.0.0.0/0"], [], False),
        (GUIDE_ALLOW, [], False),
        ([], ["192.0.2.0/24"], False),
        (["0.0.0.0/0", "::/0"], ["192.0.2.0/24"], False),
    ],
)
def test_allows_all(allow: list[str], deny: list[str], expected: bool) -> None:
    assert AccessList.from_cidrs(allow, deny).allows_all is expected


@pytest.mark.parametrize("bad", ["10.0.0.1/8", "10.0.0.0/33", "banana", "2001:db8::/129", ""])
def test_bad_cidr_raises_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        AccessList.from_cidrs([bad], [])
    with pytest.raises(ValueError):
        AccessList.from_cidrs([], [bad])


def test_matches_trusts_nobody_when_empty() -> None:
    assert not AccessList.from_cidrs([], []).matches("10.0.0.1")
    trusted = AccessList.from_cidrs(["10.0.0.0/8"], [])
    assert trusted.matches("10.0.0.1")
    assert not trusted.matches("11.0.0.1")


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(acl_module, "DECISION_CACHE_SIZE", 100)
    acl = AccessList.from_cidrs(["10.0.0.0/8"], [])
    decided = acl.decided
    for i in range(1000):
        addr = f"10.0.{i // 256}.{i % 256}"
        assert acl.permits(addr)
        assert len(decided) <= 100
        assert decided[addr] is True
        # Emptied when full, never replaced: the pipeline holds this very mapping.
        assert acl.decided is decided
    assert not acl.permits("11.0.0.1")
    assert decided["11.0.0.1"] is False


@pytest.mark.parametrize(
    "text",
    [
        "::",
        "::1",
        "1::",
        "2001:db8::1",
        "2001:db8:85a3::8a2e:370:7334",
        "1:2:3:4:5:6:7:8",
        "::ffff:0:0",
        "::1.2.3.4",
        "1:2:3:4:5:6:1.2.3.4",
        "64:ff9b::192.0.2.33",
        "FE80::ABCD",
    ],
)
def test_parse_v6_agrees_with_ipaddress(text: str) -> None:
    family, value = parse_address(text)
    ref = ipaddress.IPv6Address(text)
    if ref.ipv4_mapped is not None:
        assert (family, value) == (4, int(ref.ipv4_mapped))
    else:
        assert (family, value) == (6, int(ref))


@pytest.mark.parametrize(
    "bad", ["1.2.3.256", "1.2.3", "1.2.3.4.5", "+1.2.3.4", "1:2:3", "1::2::3", "12345::", "g::1"]
)
def test_parse_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_address(bad)


@given(st.ip_addresses())
def test_parse_roundtrip_property(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    family, value = parse_address(str(addr))
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        assert (family, value) == (4, int(addr.ipv4_mapped))
    else:
        assert (family, value) == (addr.version, int(addr))


def _not_mapped(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not isinstance(addr, ipaddress.IPv6Address) or addr.ipv4_mapped is None


_NETS = st.one_of(
    st.builds(
        lambda a, p: ipaddress.ip_network(f"{a}/{p}", strict=False),
        st.ip_addresses(v=4),
        st.integers(0, 32),
    ),
    st.builds(
        lambda a, p: ipaddress.ip_network(f"{a}/{p}", strict=False),
        st.ip_addresses(v=6).filter(_not_mapped),
        st.integers(0, 128),
    ),
)


def _reference(
    allow: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
    deny: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> bool:
    """The semantics written the slow, obvious way."""
    # Matching rules as (prefix length, is_deny): the maximum is the winner,
    # so a longer prefix wins and deny wins a tie.
    matching = [
        (net.prefixlen, is_deny)
        for nets, is_deny in ((allow, False), (deny, True))
        for net in nets
        if net.version == addr.version and addr in net
    ]
    if not matching:
        return not allow
    return not max(matching)[1]


@given(
    st.lists(_NETS, max_size=6),
    st.lists(_NETS, max_size=6),
    st.lists(st.ip_addresses(), min_size=1, max_size=8),
)
def test_against_reference_property(
    allow: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
    deny: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
    addrs: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> None:
    acl = AccessList.from_cidrs([str(n) for n in allow], [str(n) for n in deny])
    for addr in addrs:
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            continue
        assert acl.permits(str(addr)) is _reference(allow, deny, addr), addr
