"""Access control: may this source address be answered at all?

This module owns the allow/deny decision made from the source address, before
any parsing or cryptography (ntpd-rs ``Server::handle`` order: ACL, rate
limit, then parse). It owns nothing else: what to do with a denied client
(drop or KoD DENY) is the pipeline's policy.

Semantics (chrony's ``allow``/``deny``): the most specific matching rule wins;
at equal prefix length deny beats allow; an empty allow list allows everything
that no deny rule matches; a non-empty allow list denies what it does not
match. IPv4 and IPv6 are separate families, as in chrony: ``::/0`` does not
cover IPv4 clients and ``0.0.0.0/0`` does not cover IPv6 clients. An
IPv4-mapped IPv6 source (``::ffff:192.0.2.1``, what a dual-stack socket
reports) is treated as the IPv4 address it carries, and an IPv4-mapped rule
(``::ffff:192.0.2.0/120``) as the IPv4 rule it stands for.

Why the code looks the way it does: :meth:`AccessList.permits` runs per
packet in a data plane whose whole budget is 10-20 us per response, and
``ipaddress`` costs 3-5 us per address on the reference machine. So the rules
are compiled into one dict per prefix length (a decision is at most one masked
dict lookup per distinct prefix length), addresses are parsed by hand into
ints, and decisions are cached per address string in a bounded dict, so that a
known client costs one dict lookup. The cache is cleared when it fills, which
keeps memory bounded under a flood of distinct (spoofed) sources; a miss costs
a parse, about 1-2 us. The module is pure: the address is the host string
Python's ``recvfrom`` returns, never a socket object.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

__all__ = [
    "DECISION_CACHE_SIZE",
    "AccessList",
    "parse_address",
]

DECISION_CACHE_SIZE = 65536
"""Most address strings whose decision is remembered; the cache empties when full."""

_V4_ALL = 0xFFFFFFFF
_V6_ALL = (1 << 128) - 1
# RFC 4291 section 2.5.5.2: IPv4-mapped IPv6 addresses, ::ffff:0:0/96.
_V4_MAPPED_PREFIX = 0xFFFF << 32
_HEX_DIGITS = "0123456789abcdefABCDEF"


def _parse_v4(text: str) -> int:
    parts = text.split(".")
    if len(parts) != 4:
        raise ValueError(f"not an IPv4 address: {text!r}")
    value = 0
    for part in parts:
        # isdigit() also rejects signs and blanks that int() would accept.
        if not part.isdigit() or len(part) > 3:
            raise ValueError(f"not an IPv4 address: {text!r}")
        octet = int(part)
        if octet > 255:
            raise ValueError(f"not an IPv4 address: {text!r}")
        value = (value << 8) | octet
    return value


def _parse_v6_groups(text: str, full: str) -> list[int]:
    groups: list[int] = []
    if not text:
        return groups
    for group in text.split(":"):
        if not 1 <= len(group) <= 4 or group.strip(_HEX_DIGITS):
            raise ValueError(f"not an IPv6 address: {full!r}")
        groups.append(int(group, 16))
    return groups


def _parse_v6(text: str) -> int:
    # Hand-written rather than ipaddress.IPv6Address (about 3x slower); input
    # is normally inet_ntop output from the kernel, but stays validated
    # because the same function parses configuration.
    tail4 = -1
    body = text
    if "." in text:
        # Embedded IPv4 in the last 32 bits (RFC 4291 section 2.2, form 3).
        head, _, v4 = text.rpartition(":")
        tail4 = _parse_v4(v4)
        # "::1.2.3.4" splits into ":" and the IPv4 part, so appending ":0:0"
        # restores the "::" in every case.
        body = head + ":0:0"
    if "::" in body:
        left, _, right = body.partition("::")
        if "::" in right:
            raise ValueError(f"not an IPv6 address: {text!r}")
        lg = _parse_v6_groups(left, text)
        rg = _parse_v6_groups(right, text)
        missing = 8 - len(lg) - len(rg)
        if missing < 1:
            raise ValueError(f"not an IPv6 address: {text!r}")
        groups = lg + [0] * missing + rg
    else:
        groups = _parse_v6_groups(body, text)
        if len(groups) != 8:
            raise ValueError(f"not an IPv6 address: {text!r}")
    value = 0
    for group in groups:
        value = (value << 16) | group
    if tail4 >= 0:
        value = (value & ~_V4_ALL) | tail4
    return value


def parse_address(addr: str) -> tuple[int, int]:
    """Parse a source address string into ``(family, value)``.

    ``family`` is 4 or 6; an IPv4-mapped IPv6 address comes back as family 4
    with the IPv4 value. A ``%scope`` suffix is ignored.

    Raises:
        ValueError: ``addr`` is not an IPv4 or IPv6 address.
    """
    if "%" in addr:
        addr = addr.partition("%")[0]
    if ":" not in addr:
        return 4, _parse_v4(addr)
    value = _parse_v6(addr)
    if value >> 32 == 0xFFFF:
        return 4, value & _V4_ALL
    return 6, value


def _compile(
    rules: dict[tuple[int, int, int], bool],
) -> tuple[tuple[tuple[int, dict[int, bool]], ...], tuple[tuple[int, dict[int, bool]], ...]]:
    """Group rules by family and prefix length, most specific first."""
    by_len: dict[tuple[int, int], dict[int, bool]] = {}
    for (family, plen, net), allow in rules.items():
        by_len.setdefault((family, plen), {})[net] = allow
    out: dict[int, list[tuple[int, dict[int, bool]]]] = {4: [], 6: []}
    for (family, plen), table in sorted(by_len.items(), key=lambda kv: -kv[0][1]):
        width = 32 if family == 4 else 128
        full = _V4_ALL if family == 4 else _V6_ALL
        mask = full ^ ((1 << (width - plen)) - 1)
        out[family].append((mask, table))
    return tuple(out[4]), tuple(out[6])


class AccessList:
    """Compiled allow/deny rules with a per-address decision cache.

    Build with :meth:`from_cidrs`. ``allows_all`` is true when no address can
    be denied, so the pipeline can skip :meth:`permits` entirely.
    """

    __slots__ = ("_cache", "_default", "_has_allow", "_v4", "_v6", "allows_all")

    def __init__(
        self,
        rules: dict[tuple[int, int, int], bool],
        default: bool,
        allows_all: bool,
    ) -> None:
        self._v4, self._v6 = _compile(rules)
        self._default = default
        self._has_allow = any(rules.values())
        self._cache: dict[str, bool] = {}
        self.allows_all = allows_all

    @property
    def decided(self) -> Mapping[str, bool]:
        """The decisions :meth:`permits` has already made, by address string.

        The same mapping object for the list's whole life (emptied when full,
        never replaced), so the pipeline's fast path can look a known client up
        without a call and fall back to :meth:`permits` on a miss.
        """
        return self._cache

    @classmethod
    def from_cidrs(cls, allow: Sequence[str], deny: Sequence[str]) -> AccessList:
        """Compile CIDR lists (``"10.0.0.0/8"``, ``"2001:db8::/32"``, or bare addresses).

        Raises:
            ValueError: a CIDR is malformed or has host bits set.
        """
        rules: dict[tuple[int, int, int], bool] = {}
        for cidrs, is_allow in ((allow, True), (deny, False)):
            for cidr in cidrs:
                net = ipaddress.ip_network(cidr.strip(), strict=True)
                family, plen, value = net.version, net.prefixlen, int(net.network_address)
                if isinstance(net, ipaddress.IPv6Network) and plen >= 96:
                    mapped = net.network_address.ipv4_mapped
                    if mapped is not None:
                        family, plen, value = 4, plen - 96, int(mapped)
                key = (family, plen, value)
                # Deny beats allow at equal prefix length: a deny never gets
                # overwritten by an allow of the same network.
                rules[key] = rules.get(key, True) and is_allow
        # A non-empty allow list denies what it does not match, even when
        # every allow rule was overridden by an equal deny.
        default = not allow
        covers_all = default or (rules.get((4, 0, 0)) is True and rules.get((6, 0, 0)) is True)
        allows_all = all(rules.values()) and covers_all
        return cls(rules, default, allows_all)

    def permits(self, addr: str) -> bool:
        """Whether the source ``addr`` (a ``recvfrom`` host string) may be answered.

        An address that does not parse is refused, never raised on: the
        pipeline must not raise for anything a peer sent.
        """
        cache = self._cache
        decision = cache.get(addr)
        if decision is not None:
            return decision
        try:
            family, value = parse_address(addr)
        except ValueError:
            return False
        decision = self._default
        for mask, table in self._v4 if family == 4 else self._v6:
            found = table.get(value & mask)
            if found is not None:
                decision = found
                break
        if len(cache) >= DECISION_CACHE_SIZE:
            # Clearing beats LRU bookkeeping on the hot path; known clients
            # re-enter the cache on their next packet.
            cache.clear()
        cache[addr] = decision
        return decision

    def matches(self, addr: str) -> bool:
        """Whether an allow rule is the decision for ``addr`` (an empty list matches nothing).

        Used for ``trusted_networks``, where an empty list must trust no one.
        """
        # With at least one allow rule the default is deny, so permits() is
        # exactly "an allow rule decided"; with none, nothing matches.
        return self._has_allow and self.permits(addr)
