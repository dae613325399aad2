"""The syntax of one ``upstream_servers`` entry.

This module owns the parsing of the strings an operator lists in
``upstream_servers`` (one string per source, as in the deployment guide). The
grammar is chrony's ``server``/``pool`` directive squeezed into one string::

    entry    = [ "server" | "pool" ] address { option }
    address  = hostname [ ":" port ] | ipv4 [ ":" port ]
             | "[" ipv6 "]" [ ":" port ] | ipv6
    option   = "iburst" | "noiburst" | "prefer" | "noselect"
             | "key" N | "minpoll" N | "maxpoll" N | "maxsources" N | "port" N

Examples: ``"pool.ntp.org"``, ``"time.nist.gov iburst"``,
``"192.0.2.1:1123 prefer"``, ``"[2001:db8::1]:123 iburst key 5"``,
``"pool 2.pool.ntp.org maxsources 4"``.

Decisions:

* ``iburst`` is on by default (``noiburst`` turns it off), so a fresh daemon
  synchronizes within seconds with the guide's plain entries.
* A name is a pool when the entry starts with ``pool`` or, without a
  keyword, when one of its labels is ``pool`` (``pool.ntp.org``,
  ``2.debian.pool.ntp.org``); ``server`` forces a single source. A pool
  contributes up to ``maxsources`` addresses (default 4, chrony's), a server
  its first address.
* Options are case-insensitive; unknown options, missing or out-of-range
  numbers are errors that name the entry.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from simple_ntpd.client.poll import MAX_POLL_LIMIT, MIN_POLL_LIMIT
from simple_ntpd.errors import ConfigError

NTP_PORT = 123
DEFAULT_POOL_MAX_SOURCES = 4
_MAX_POOL_SOURCES = 16
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)"
    r"(\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$"
)


class InvalidUpstreamEntry(ConfigError):
    """An ``upstream_servers`` entry does not follow the documented syntax."""


@dataclass(frozen=True, slots=True)
class UpstreamSpec:
    """One parsed ``upstream_servers`` entry."""

    host: str
    """A host name, or an IP address literal (IPv6 without brackets)."""
    port: int = NTP_PORT
    iburst: bool = True
    prefer: bool = False
    noselect: bool = False
    key_id: int | None = None
    is_pool: bool = False
    max_sources: int = 1
    min_poll: int | None = None
    max_poll: int | None = None

    @property
    def is_address(self) -> bool:
        """True when ``host`` is an IP literal that needs no resolution."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


def _split_address(text: str, entry: str) -> tuple[str, int | None]:
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise InvalidUpstreamEntry(f"{entry!r}: missing ']' after an IPv6 address")
        host, rest = text[1:close], text[close + 1 :]
        try:
            if ipaddress.ip_address(host).version != 6:
                raise ValueError
        except ValueError:
            raise InvalidUpstreamEntry(f"{entry!r}: {host!r} is not an IPv6 address") from None
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise InvalidUpstreamEntry(f"{entry!r}: unexpected {rest!r} after ']'")
        return host, _port(rest[1:], entry)
    if text.count(":") > 1:  # a bare IPv6 address: no port possible
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            raise InvalidUpstreamEntry(f"{entry!r}: {text!r} is not an address") from None
        return text, None
    host, sep, port = text.partition(":")
    parsed_port = _port(port, entry) if sep else None
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        if not _HOSTNAME.match(host) or host.replace(".", "").isdigit():
            raise InvalidUpstreamEntry(f"{entry!r}: {host!r} is not a host name") from None
        return host.rstrip(".").lower(), parsed_port
    return host, parsed_port


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InvalidUpstreamEntry(f"{entry!r}: port {text!r} is not 1 to 65535")
    return int(text)


def _number(words: list[str], i: int, name: str, entry: str, low: int, high: int) -> int:
    if i + 1 >= len(words):
        raise InvalidUpstreamEntry(f"{entry!r}: {name} needs a number")
    text = words[i + 1]
    if not text.isdigit() or not low <= int(text) <= high:
        raise InvalidUpstreamEntry(f"{entry!r}: {name} must be {low} to {high}, not {text!r}")
    return int(text)


def parse_upstream_entry(text: str) -> UpstreamSpec:
    """Parse one ``upstream_servers`` string.

    Raises:
        InvalidUpstreamEntry: the string does not follow the grammar above.
    """
    words = text.split()
    if not words:
        raise InvalidUpstreamEntry("empty upstream server entry")
    keyword = words[0].lower()
    forced: bool | None = None
    if keyword in ("pool", "server") and len(words) > 1:
        forced = keyword == "pool"
        words = words[1:]
    host, port = _split_address(words[0], text)
    is_ip = True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        is_ip = False
    is_pool = forced if forced is not None else (not is_ip and "pool" in host.split("."))
    if is_pool and is_ip:
        raise InvalidUpstreamEntry(f"{text!r}: a pool needs a host name, not an address")
    iburst, prefer, noselect = True, False, False
    key_id: int | None = None
    min_poll: int | None = None
    max_poll: int | None = None
    max_sources = DEFAULT_POOL_MAX_SOURCES if is_pool else 1
    i = 1
    while i < len(words):
        opt = words[i].lower()
        if opt in ("iburst", "noiburst"):
            iburst = opt == "iburst"
        elif opt == "prefer":
            prefer = True
        elif opt == "noselect":
            noselect = True
        elif opt == "key":
            key_id = _number(words, i, opt, text, 1, 0xFFFF_FFFF)
            i += 1
        elif opt == "minpoll":
            min_poll = _number(words, i, opt, text, MIN_POLL_LIMIT, MAX_POLL_LIMIT)
            i += 1
        elif opt == "maxpoll":
            max_poll = _number(words, i, opt, text, MIN_POLL_LIMIT, MAX_POLL_LIMIT)
            i += 1
        elif opt == "maxsources":
            if not is_pool:
                raise InvalidUpstreamEntry(f"{text!r}: maxsources applies to a pool only")
            max_sources = _number(words, i, opt, text, 1, _MAX_POOL_SOURCES)
            i += 1
        elif opt == "port":
            if port is not None:
                raise InvalidUpstreamEntry(f"{text!r}: port given twice")
            port = _number(words, i, opt, text, 1, 65535)
            i += 1
        else:
            raise InvalidUpstreamEntry(f"{text!r}: unknown option {words[i]!r}")
        i += 1
    if min_poll is not None and max_poll is not None and min_poll > max_poll:
        raise InvalidUpstreamEntry(f"{text!r}: minpoll is above maxpoll")
    return UpstreamSpec(
        host=host,
        port=NTP_PORT if port is None else port,
        iburst=iburst,
        prefer=prefer,
        noselect=noselect,
        key_id=key_id,
        is_pool=is_pool,
        max_sources=max_sources,
        min_poll=min_poll,
        max_poll=max_poll,
    )
