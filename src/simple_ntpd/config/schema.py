"""The typed configuration: one pydantic model per section, defaults, ranges, cross-checks.

This module owns what every key *means*: its type, default, allowed range and description, and
which keys drive a feature that works today (:data:`ACTIVE_KEYS`). It knows nothing about file
syntax (that is :mod:`simple_ntpd.config.parse`) and reads nothing (that is
:mod:`simple_ntpd.config.load`).

Validation is strict on purpose: ``"yes"`` is not a boolean, ``"123"`` is not an integer and
``1.5`` is not an integer, so a typo fails loudly at load time instead of changing behaviour.
The only conversions are the documented ones: sizes (``"1GB"``), case-insensitive names for
enumerations (``info`` -> ``INFO``), and normalised spellings of addresses and networks.

Sizes: a bare integer is a number of bytes. Strings take a unit: ``B``; decimal ``KB``, ``MB``,
``GB``, ``TB`` (powers of 1000); binary ``KiB``, ``MiB``, ``GiB``, ``TiB`` (powers of 1024).
Units are case-insensitive and a fraction is allowed when the result is a whole number of bytes
(``"1.5KiB"`` = 1536).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from simple_ntpd.client.upstream import InvalidUpstreamEntry, parse_upstream_entry

# --------------------------------------------------------------------------------------------
# Value types


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"\s*([0-9][0-9_]*(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*")


def parse_size(value: object) -> object:
    """Turn ``"100MB"`` / ``"512KiB"`` / ``"1024"`` into bytes; leave ints to the int check.

    Raises:
        ValueError: a string that is not a size.
    """
    if not isinstance(value, str):
        return value  # ints pass through; bools and floats fail the strict int check
    m = _SIZE_RE.fullmatch(value)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _SIZE_UNITS:
        raise ValueError(
            f"{value!r} is not a size: use bytes (1048576) or a number with a unit "
            "B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)"
        )
    try:
        amount = Decimal(m.group(1).replace("_", "")) * _SIZE_UNITS[unit]
    except InvalidOperation:  # pragma: no cover - the regex admits only decimal numbers
        raise ValueError(f"{value!r} is not a size") from None
    if amount != amount.to_integral_value():
        raise ValueError(f"{value!r} is not a whole number of bytes")
    return int(amount)


def _to_tuple(value: object) -> object:
    # Files give lists; the models keep tuples so that a loaded Config is immutable.
    return tuple(value) if isinstance(value, list) else value


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None


def _network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        if "host bits set" in str(exc):
            net = ipaddress.ip_network(value, strict=False)
            raise ValueError(f"{value!r} has host bits set (did you mean {net}?)") from None
        raise ValueError(
            f"{value!r} is not an IPv4 or IPv6 network in CIDR notation (e.g. 10.0.0.0/8)"
        ) from None


_IFNAME_RE = re.compile(r"[^\s/:]{1,15}")  # Linux IFNAMSIZ is 16 including the NUL


def _interface(value: str) -> str:
    if value and not _IFNAME_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a network interface name (1 to 15 characters)")
    return value


def _refid(value: str) -> str:
    # RFC 5905 §7.3: for stratum 0/1 the refid is a four-octet, left-justified, zero-padded
    # ASCII string; we use the same form for LOCAL. Printable ASCII without spaces only, so
    # that monitoring output stays readable.
    if not 1 <= len(value) <= 4 or not all(0x21 <= ord(c) <= 0x7E for c in value):
        raise ValueError(f"{value!r} must be 1 to 4 printable ASCII characters without spaces")
    return value


def _server_name(value: str) -> str:
    """One ``upstream_servers`` entry: ``[pool|server] HOST[:PORT] [options]``."""
    if not value or len(value) > 255 or any(ord(c) < 0x20 for c in value):
        raise ValueError(f"{value!r} is not a server name or address")
    try:
        parse_upstream_entry(value)
    except InvalidUpstreamEntry as exc:
        raise ValueError(str(exc)) from None
    return value


def _country(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z]{2}", value):
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code (e.g. US)")
    return value.upper()


ByteSize = Annotated[int, BeforeValidator(parse_size)]

DEFAULT_RECEIVE_BUFFER = 1 << 20
"""``[network] receive_buffer_size`` when not configured, bytes.

The kernel's default (``net.core.rmem_default``, 208 KiB on most distributions) holds 256
48-octet requests on loopback, 5 ms at 50,000 requests/s; 1 MiB (which the kernel doubles)
holds 2,520. With the kernel's default, the embedded configuration lost 0.004 to 0.2 % of a
50,000/s load to full receive buffers in 5 of 10 runs of 5 s on the benchmark machine; with
1 MiB it lost none in 6 (docs/benchmarks.md). Unprivileged, the kernel caps the size at
``net.core.rmem_max``; the daemon then says so at INFO, and at WARNING only for a configured size.
"""

IpAddress = Annotated[str, AfterValidator(_ip_address)]
Network = Annotated[str, AfterValidator(_network)]
NetworkList = Annotated[tuple[Network, ...], BeforeValidator(_to_tuple)]
Port = Annotated[int, Field(ge=0, le=65535)]
NonNegInt = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(ge=0)]
LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)
]
SyslogFacility = Annotated[
    Literal[
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "local0", "local1", "local2", "local3", "local4", "local5",
        "local6", "local7",
    ],
    BeforeValidator(_lower),
]  # fmt: skip
# RFC 5905's MINPOLL is 4; 0 to 3 (1 to 8 s) are accepted, as chrony accepts minpoll below 4,
# for servers on the same LAN and for tests.
PollExponent = Annotated[int, Field(ge=0, le=17)]
"""log2 seconds. RFC 5905 §7.2: MINPOLL 4 (16 s) and MAXPOLL 17 (36.4 h)."""


def _cross(key: str, message: str) -> PydanticCustomError:
    # ctx["key"] lets the loader point the error at the line of this key rather than at the
    # section header.
    return PydanticCustomError("cross_field", message, {"key": key})


_MODEL = ConfigDict(strict=True, extra="forbid", frozen=True, validate_default=True)


# --------------------------------------------------------------------------------------------
# Sections


class NetworkSection(BaseModel):
    """``[network]``: where the NTP service listens and how its sockets are set up."""

    model_config = _MODEL

    listen_address: IpAddress = Field(
        "0.0.0.0",
        description="IPv4 or IPv6 address to serve NTP on. 0.0.0.0 means every IPv4 address.",
    )
    listen_port: Port = Field(
        123, description="UDP port to serve NTP on (RFC 5905 §7.2: PORT 123). 0 picks a free port."
    )
    enable_ipv6: bool = Field(
        True,
        description=(
            "Also serve on IPv6: on :: when listen_address is 0.0.0.0, on ::1 when it is "
            "127.0.0.1; other IPv4 addresses have no IPv6 partner. Must be true when "
            "listen_address is an IPv6 address."
        ),
    )
    bind_interface: Annotated[str, AfterValidator(_interface)] = Field(
        "", description='Bind the sockets to this interface (SO_BINDTODEVICE); "" = any.'
    )
    receive_buffer_size: ByteSize = Field(
        DEFAULT_RECEIVE_BUFFER,
        ge=0,
        le=2**31 - 1,
        description=(
            "SO_RCVBUF per socket, bytes; 0 = kernel default (net.core.rmem_default). The default "
            "1 MiB holds about 2,500 requests: 50 ms at 50,000/s."
        ),
    )
    send_buffer_size: ByteSize = Field(
        0, ge=0, le=2**31 - 1, description="SO_SNDBUF per socket, bytes; 0 = kernel default."
    )
    max_clients: int = Field(
        10000,
        ge=1,
        le=10_000_000,
        description="Most client addresses tracked at once (rate limiting, statistics).",
    )
    max_connections_per_second: NonNegInt = Field(
        0,
        description=(
            "With security.enable_ddos_protection: most new clients admitted to the rate-limit "
            "table per second (known clients are never capped); 0 = no limit."
        ),
    )
    enable_tcp_nodelay: bool = Field(True, description="TCP_NODELAY on TCP sockets (NTS-KE).")
    enable_keepalive: bool = Field(False, description="SO_KEEPALIVE on TCP sockets.")
    keepalive_time: int = Field(
        7200, ge=1, le=32767, description="TCP_KEEPIDLE, seconds (Linux default 7200)."
    )
    keepalive_probes: int = Field(9, ge=1, le=127, description="TCP_KEEPCNT (Linux default 9).")
    keepalive_interval: int = Field(
        75, ge=1, le=32767, description="TCP_KEEPINTVL, seconds (Linux default 75)."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not self.enable_ipv6 and ipaddress.ip_address(self.listen_address).version == 6:
            raise _cross(
                "enable_ipv6",
                f"listen_address {self.listen_address} is IPv6 but enable_ipv6 is false",
            )
        return self


class NtpServerSection(BaseModel):
    """``[ntp_server]``: what time is served, and where it comes from."""

    model_config = _MODEL

    stratum: int = Field(
        2,
        ge=1,
        le=15,
        description=(
            "Stratum served with the LOCAL reference, and the fallback when every upstream is "
            "lost (RFC 5905 §7.3: 1..15 are valid, 16 means unsynchronized)."
        ),
    )
    reference_clock: Annotated[Literal["LOCAL", "NONE"], BeforeValidator(_upper)] = Field(
        "LOCAL",
        description=(
            "LOCAL: serve the system clock as a reference at `stratum` (like chrony's "
            "`local stratum N`). NONE: only upstream servers; unsynchronized without them."
        ),
    )
    reference_id: Annotated[str, AfterValidator(_refid)] = Field(
        "LOCL", description="Reference ID sent with the LOCAL reference: 1 to 4 ASCII characters."
    )
    upstream_servers: Annotated[
        tuple[Annotated[str, AfterValidator(_server_name)], ...], BeforeValidator(_to_tuple)
    ] = Field((), description="Upstream NTP servers or pool names (host, host:port, address).")
    sync_interval: int = Field(
        64, ge=1, le=86400, description="Seconds between clock updates from the upstreams."
    )
    max_drift: float = Field(
        500.0,
        gt=0,
        le=500_000,
        description="Largest frequency error corrected, ppm (ntpd's 500 ppm tolerance).",
    )
    min_poll: PollExponent = Field(6, description="Shortest poll interval, log2 s (6 = 64 s).")
    max_poll: PollExponent = Field(10, description="Longest poll interval, log2 s (10 = 1024 s).")
    enable_authentication: bool = Field(
        False, description="Authenticate upstream servers with the keys in auth_key_file."
    )
    auth_key_file: str = Field(
        "/etc/simple-ntpd/keys", description="Symmetric key file (ntp.keys format)."
    )
    drift_file: str = Field(
        "", description='File that keeps the frequency correction across restarts; "" = none.'
    )
    discipline_system_clock: bool = Field(
        False,
        description=(
            "Steer the kernel clock (needs CAP_SYS_TIME). False: serve system clock plus a "
            "correction and never change the machine's clock."
        ),
    )
    panic_threshold: Seconds = Field(
        1000.0,
        description="Offset, seconds, beyond which the daemon refuses to correct; 0 = no limit.",
    )
    step_threshold: Seconds = Field(
        0.1, description="Offset, seconds, above which a correction is a step, not a slew."
    )
    step_limit: int = Field(
        3,
        ge=-1,
        description=(
            "Steps allowed only during the first N updates (chrony makestep); "
            "-1 = always, 0 = never step."
        ),
    )
    min_sources: int = Field(
        1, ge=1, le=64, description="Selectable sources needed before the clock is updated."
    )
    max_sources: int = Field(4, ge=1, le=64, description="Servers used from each pool name.")
    max_distance: Seconds = Field(
        1.5,
        gt=0,
        le=16,
        description=(
            "Root distance limit, seconds (RFC 5905 MAXDIST, chrony maxdistance): a source "
            "farther is not selectable, and holdover ends when the served distance passes it."
        ),
    )
    max_holdover: Seconds = Field(
        0.0,
        le=30 * 86400,
        description=(
            "Seconds to keep serving the last synchronization after every source is lost, "
            "before falling back to LOCAL (or leap 3), like ntpd's orphanwait; 0 = until "
            "max_distance is passed."
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.min_poll > self.max_poll:
            raise _cross(
                "max_poll", f"max_poll ({self.max_poll}) is below min_poll ({self.min_poll})"
            )
        return self


class SecuritySection(BaseModel):
    """``[security]``: who may query, how hard, and the identity the daemon runs as."""

    model_config = _MODEL

    enable_authentication: bool = Field(
        False,
        description=(
            "Require authenticated requests from clients: a request without a valid MAC "
            "(key from ntp_server.auth_key_file) is refused. Makes the key file mandatory. "
            "ntp_server.enable_authentication is the upstream side."
        ),
    )
    trusted_keys: Annotated[
        tuple[Annotated[int, Field(ge=1, le=0xFFFFFFFF)], ...], BeforeValidator(_to_tuple)
    ] = Field(
        (),
        description=(
            "Key ids that may authenticate (ntpd trustedkey); [] = every key in the key file."
        ),
    )
    auth_failure_response: Annotated[Literal["crypto-nak", "drop"], BeforeValidator(_lower)] = (
        Field(
            "crypto-nak",
            description=(
                'A request whose MAC names an unknown key or does not verify: "crypto-nak" '
                '(RFC 5905 §7.4, as ntpd does) or "drop".'
            ),
        )
    )
    allow_query_from: NetworkList = Field(
        (),
        description=(
            "Networks whose requests are answered (CIDR, IPv4 and IPv6 are separate families). "
            "[] = every address that deny_query_from does not match."
        ),
    )
    deny_query_from: NetworkList = Field(
        (),
        description=(
            "Networks never answered. The most specific matching rule of the two lists wins; "
            "at equal prefix length deny wins (chrony allow/deny)."
        ),
    )
    trusted_networks: NetworkList = Field(
        (), description="Networks exempt from rate limiting and DDoS protection."
    )
    kod_deny: bool = Field(
        False,
        description=(
            "Answer denied clients with a DENY kiss-o'-death (RFC 5905 §7.4) instead of "
            "dropping silently."
        ),
    )
    enable_rate_limiting: bool = Field(False, description="Limit requests per client address.")
    max_queries_per_minute: int = Field(
        60, ge=1, le=1_000_000, description="Sustained requests per minute per client."
    )
    rate_limit_burst: int = Field(
        16, ge=1, le=1_000_000, description="Requests a client may send at once above the rate."
    )
    rate_limit_window: int = Field(
        60,
        ge=1,
        le=3600,
        description=(
            "Seconds a returning client's record is kept in preference to one-shot clients "
            "when the client table is full (the rate itself is max_queries_per_minute)."
        ),
    )
    rate_limit_ipv4_prefix: int = Field(
        32, ge=0, le=32, description="IPv4 clients are limited per this prefix (24 = per /24)."
    )
    rate_limit_ipv6_prefix: int = Field(
        128, ge=0, le=128, description="IPv6 clients are limited per this prefix (64 = per /64)."
    )
    rate_limit_kod_log2: int = Field(
        1,
        ge=-1,
        le=16,
        description=(
            "One in 2^N limited requests is answered with a RATE kiss-o'-death, the rest "
            "dropped (chrony leak); -1 = drop all."
        ),
    )
    enable_dns_validation: bool = Field(
        False, description="Check that upstream names resolve consistently before use."
    )
    enable_geoip_restrictions: bool = Field(
        False, description="Answer only clients from allowed_countries."
    )
    allowed_countries: Annotated[
        tuple[Annotated[str, AfterValidator(_country)], ...], BeforeValidator(_to_tuple)
    ] = Field((), description="ISO 3166-1 alpha-2 codes for enable_geoip_restrictions.")
    enable_ddos_protection: bool = Field(
        False,
        description=(
            "With rate limiting on: new clients enter the client table at most "
            "network.max_connections_per_second per second, so a flood from random sources "
            "cannot flush the state of known clients."
        ),
    )
    max_connections_per_ip: int = Field(
        100,
        ge=1,
        le=1_000_000,
        description="Reserved for NTS-KE: open TCP connections per client address.",
    )
    connection_timeout: Seconds = Field(
        30.0, description="Reserved for NTS-KE: TCP idle timeout, seconds."
    )
    user: str = Field("ntp", min_length=1, description="User to run as after binding ports.")
    group: str = Field(
        "ntp", description='Group to run as after binding ports; "" = the user\'s primary group.'
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.enable_rate_limiting and self.rate_limit_burst > self.max_queries_per_minute:
            raise _cross(
                "rate_limit_burst",
                f"rate_limit_burst ({self.rate_limit_burst}) is above "
                f"max_queries_per_minute ({self.max_queries_per_minute})",
            )
        if self.enable_geoip_restrictions and not self.allowed_countries:
            raise _cross(
                "allowed_countries",
                "enable_geoip_restrictions is true but allowed_countries is empty",
            )
        return self


class PerformanceSection(BaseModel):
    """``[performance]``: workers, CPU pinning, packet and memory limits."""

    model_config = _MODEL

    worker_threads: int = Field(
        0,
        ge=0,
        le=1024,
        description="Data-plane workers (processes sharing the port); 0 = one per CPU.",
    )
    max_packet_size: int = Field(
        2048,
        ge=48,
        le=65507,
        description=(
            "Largest request accepted, bytes (48 = bare NTP header, RFC 5905 §7.3; "
            "65507 = largest UDP/IPv4 payload)."
        ),
    )
    connection_timeout: Seconds = Field(30.0, description="TCP connection timeout, seconds.")
    idle_timeout: Seconds = Field(300.0, description="Idle TCP connections closed after, seconds.")
    enable_connection_pooling: bool = Field(False, description="Reuse upstream TCP connections.")
    max_pool_size: int = Field(100, ge=1, le=1_000_000, description="Pooled connections, at most.")
    pool_timeout: Seconds = Field(60.0, description="Unused pooled connections closed after, s.")
    max_memory_usage: ByteSize = Field(0, ge=0, description="Memory limit, size; 0 = no limit.")
    enable_memory_pooling: bool = Field(False, description="Preallocate packet buffers.")
    memory_pool_size: ByteSize = Field(0, ge=0, description="Preallocated buffer memory, size.")
    garbage_collection_interval: NonNegInt = Field(
        0, description="Seconds between forced collections; 0 = Python's automatic GC only."
    )
    enable_thread_affinity: bool = Field(False, description="Pin each worker to one CPU.")
    cpu_affinity: Annotated[
        tuple[Annotated[int, Field(ge=0, le=4095)], ...], BeforeValidator(_to_tuple)
    ] = Field(
        (),
        description=(
            "CPUs for the workers, in worker order, with enable_thread_affinity; "
            "[] = the CPUs the process may use."
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if len(set(self.cpu_affinity)) != len(self.cpu_affinity):
            raise _cross("cpu_affinity", "cpu_affinity lists a CPU twice")
        if self.max_memory_usage and self.memory_pool_size > self.max_memory_usage:
            raise _cross(
                "memory_pool_size",
                f"memory_pool_size ({self.memory_pool_size} bytes) is above "
                f"max_memory_usage ({self.max_memory_usage} bytes)",
            )
        return self


class LoggingSection(BaseModel):
    """``[logging]``: where log records go and what they contain."""

    model_config = _MODEL

    level: LogLevel = Field("INFO", description="Least severe level logged (case-insensitive).")
    output: Annotated[Literal["console", "file", "syslog"], BeforeValidator(_lower)] = Field(
        "console", description="console (stderr), file (log_file), or syslog."
    )
    log_file: str = Field(
        "/var/log/simple-ntpd/simple-ntpd.log", description="Log file, for output = file."
    )
    max_file_size: ByteSize = Field(
        100_000_000, ge=0, description="Rotate log_file at this size; 0 = never."
    )
    max_files: int = Field(10, ge=1, le=1000, description="Rotated log files kept.")
    log_format: Annotated[Literal["text", "json"], BeforeValidator(_lower)] = Field(
        "text", description="text (one line per record) or json (one object per line)."
    )
    log_performance_metrics: bool = Field(
        False,
        description=(
            "Log a summary line every stats_export_interval seconds: requests/s, drops/s, "
            "processing time p50/p99."
        ),
    )
    log_client_queries: bool = Field(
        False,
        description=(
            "Log every client request at INFO, one line each (costs several microseconds per "
            "request; for debugging)."
        ),
    )
    log_sync_events: bool = Field(True, description="Log source selection, steps and slews.")
    enable_syslog: bool = Field(False, description="Also send records to syslog.")
    syslog_facility: SyslogFacility = Field("daemon", description="Syslog facility.")
    syslog_tag: str = Field("simple-ntpd", min_length=1, description="Syslog identifier.")
    enable_structured_logging: bool = Field(
        False, description="Attach key/value fields to records."
    )
    log_timestamp_format: Annotated[
        Literal["ISO8601", "RFC3339", "EPOCH"], BeforeValidator(_upper)
    ] = Field("ISO8601", description="Timestamps in records: ISO8601, RFC3339 or EPOCH seconds.")
    log_include_hostname: bool = Field(False, description="Add the host name to records.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.output == "file" and not self.log_file:
            raise _cross("log_file", 'output = "file" needs a log_file')
        return self


class MonitoringSection(BaseModel):
    """``[monitoring]``: Prometheus metrics, health checks, SNMP and statistics export."""

    model_config = _MODEL

    enable_metrics: bool = Field(
        False, description="Serve Prometheus metrics on /metrics (and /health, /status)."
    )
    metrics_port: Port = Field(8080, description="TCP port of the metrics/health listener.")
    metrics_address: IpAddress = Field(
        "127.0.0.1", description="Address of the metrics/health listener."
    )
    enable_health_check: bool = Field(
        False,
        description=(
            "Self-check with a real NTP query to our own socket, fed into /health; also "
            "serves /health and /status without enable_metrics."
        ),
    )
    health_check_interval: Seconds = Field(30.0, description="Seconds between self-checks.")
    health_check_timeout: Seconds = Field(10.0, description="A self-check fails after, seconds.")
    enable_snmp: bool = Field(False, description="Run the SNMP (AgentX) subagent, NTPv4-MIB.")
    snmp_community: str = Field("", description="SNMP community; required with enable_snmp.")
    snmp_port: Port = Field(161, description="SNMP port.")
    snmp_location: str = Field("", description="sysLocation reported over SNMP.")
    snmp_contact: str = Field("", description="sysContact reported over SNMP.")
    enable_statistics: bool = Field(False, description="Export statistics files periodically.")
    stats_retention_days: int = Field(30, ge=1, le=3650, description="Days statistics are kept.")
    stats_export_format: Annotated[Literal["json", "csv"], BeforeValidator(_lower)] = Field(
        "json", description="Format of exported statistics."
    )
    stats_export_interval: int = Field(
        300,
        ge=1,
        le=86400,
        description="Seconds between statistics exports (and performance log lines).",
    )
    stats_directory: str = Field(
        "/var/lib/simple-ntpd/stats", min_length=1, description="Where statistics are written."
    )
    control_socket: str = Field(
        "/run/simple-ntpd/simple-ntpd.sock",
        description=(
            "Unix socket for `simple-ntpd counters|status|sources|tracking` (mode 0660); "
            '"" disables it.'
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.enable_health_check and self.health_check_timeout > self.health_check_interval:
            raise _cross(
                "health_check_timeout",
                f"health_check_timeout ({self.health_check_timeout:g}) is above "
                f"health_check_interval ({self.health_check_interval:g})",
            )
        if self.enable_snmp and not self.snmp_community:
            raise _cross("snmp_community", "enable_snmp is true but snmp_community is empty")
        return self


class MaintenanceSection(BaseModel):
    """``[maintenance]``: draining for zero-downtime updates, and configuration backups.

    The deployment guide describes the procedures (drain a node at the load balancer, update,
    put it back; keep config backups 30 days); these keys let the daemon take part.
    """

    model_config = _MODEL

    maintenance_mode: bool = Field(
        False,
        description=(
            'When true, /health answers 503 "maintenance" so load balancers drain the node, '
            "while it keeps serving time. Changeable by reload (SIGHUP)."
        ),
    )
    drain_timeout: Seconds = Field(
        0.0,
        le=3600,
        description=(
            'Seconds the daemon keeps serving after SIGTERM while /health says "draining"; '
            "0 = stop at once."
        ),
    )
    config_backup_dir: str = Field(
        "",
        description=(
            "Directory where each configuration loaded successfully is copied (timestamped); "
            '"" = no backups.'
        ),
    )
    backup_retention_days: int = Field(
        30, ge=1, le=3650, description="Days configuration backups are kept."
    )


class Config(BaseModel):
    """The whole configuration. Every section is optional in a file and defaults as above."""

    model_config = _MODEL

    network: NetworkSection = Field(default_factory=NetworkSection)
    ntp_server: NtpServerSection = Field(default_factory=NtpServerSection)
    security: SecuritySection = Field(default_factory=SecuritySection)
    performance: PerformanceSection = Field(default_factory=PerformanceSection)
    logging: LoggingSection = Field(default_factory=LoggingSection)
    monitoring: MonitoringSection = Field(default_factory=MonitoringSection)
    maintenance: MaintenanceSection = Field(default_factory=MaintenanceSection)


SECTIONS: Mapping[str, type[BaseModel]] = {
    name: info.annotation  # type: ignore[misc]
    for name, info in Config.model_fields.items()
}
"""Section name -> its model, in documentation order."""


def section_keys(section: str) -> tuple[str, ...]:
    """The keys a section accepts, in documentation order."""
    return tuple(SECTIONS[section].model_fields)


ALL_KEYS: frozenset[str] = frozenset(f"{s}.{k}" for s in SECTIONS for k in section_keys(s))
"""Every ``section.key`` the schema knows."""


ACTIVE_KEYS: frozenset[str] = frozenset(
    {
        "network.listen_address",
        "network.listen_port",
        "network.enable_ipv6",
        "network.bind_interface",
        "network.receive_buffer_size",
        "network.send_buffer_size",
        "ntp_server.stratum",
        "ntp_server.reference_clock",
        "ntp_server.reference_id",
        "ntp_server.upstream_servers",
        "ntp_server.sync_interval",
        "ntp_server.max_drift",
        "ntp_server.min_poll",
        "ntp_server.max_poll",
        "ntp_server.drift_file",
        "ntp_server.discipline_system_clock",
        "ntp_server.panic_threshold",
        "ntp_server.step_threshold",
        "ntp_server.step_limit",
        "ntp_server.min_sources",
        "ntp_server.max_sources",
        "ntp_server.max_distance",
        "ntp_server.max_holdover",
        "performance.worker_threads",
        "performance.max_packet_size",
        "performance.enable_thread_affinity",
        "performance.cpu_affinity",
        "logging.level",
        "logging.output",
        "logging.log_file",
        "logging.log_format",
        "logging.max_file_size",
        "logging.max_files",
        "logging.enable_syslog",
        "logging.syslog_facility",
        "logging.syslog_tag",
        "logging.log_include_hostname",
        "monitoring.control_socket",
        "monitoring.enable_metrics",
        "monitoring.metrics_port",
        "monitoring.metrics_address",
        "monitoring.enable_health_check",
        "monitoring.health_check_interval",
        "monitoring.health_check_timeout",
        "monitoring.enable_statistics",
        "monitoring.stats_retention_days",
        "monitoring.stats_export_format",
        "monitoring.stats_export_interval",
        "monitoring.stats_directory",
        "logging.log_performance_metrics",
        "logging.log_client_queries",
        "logging.log_sync_events",
        "maintenance.maintenance_mode",
        "maintenance.drain_timeout",
        "network.max_clients",
        "network.max_connections_per_second",
        "ntp_server.auth_key_file",
        "security.enable_authentication",
        "security.trusted_keys",
        "security.auth_failure_response",
        "security.allow_query_from",
        "security.deny_query_from",
        "security.trusted_networks",
        "security.kod_deny",
        "security.enable_rate_limiting",
        "security.max_queries_per_minute",
        "security.rate_limit_burst",
        "security.rate_limit_window",
        "security.rate_limit_ipv4_prefix",
        "security.rate_limit_ipv6_prefix",
        "security.rate_limit_kod_log2",
        "security.enable_ddos_protection",
        "security.user",
        "security.group",
    }
)
"""The ``section.key`` names whose feature works today.

A key a file sets that is not here is accepted, validated, and reported as "not yet active".
Work that implements a feature moves its keys into this set (one table, nowhere else).
"""


def describe_error(error: Mapping[str, Any]) -> str:
    """A pydantic error as an operator-facing sentence (without the location)."""
    kind = error.get("type", "")
    value = error.get("input")
    ctx = error.get("ctx") or {}
    got = _describe_input(value)
    if kind == "int_type":
        return f"expected an integer, got {got}"
    if kind == "bool_type":
        return f"expected true or false, got {got}"
    if kind == "float_type":
        return f"expected a number, got {got}"
    if kind == "string_type":
        return f"expected a string, got {got} (quote it)"
    if kind in ("tuple_type", "list_type"):
        return f'expected a list such as ["a", "b"], got {got}'
    if kind == "greater_than_equal":
        return f"{_short(value)} is out of range: must be >= {ctx.get('ge')}"
    if kind == "greater_than":
        return f"{_short(value)} is out of range: must be > {ctx.get('gt')}"
    if kind == "less_than_equal":
        return f"{_short(value)} is out of range: must be <= {ctx.get('le')}"
    if kind == "less_than":
        return f"{_short(value)} is out of range: must be < {ctx.get('lt')}"
    if kind == "literal_error":
        return f"{got} is not one of {ctx.get('expected')}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "value_error":
        return str(ctx.get("error", error.get("msg", "")))
    if kind == "extra_forbidden":
        return "unknown key"
    return str(error.get("msg", "invalid value"))


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe_input(value: object) -> str:
    text = _describe_full(value)
    # A 4000-digit number or a pasted paragraph must not drown the message.
    return text if len(text) <= 80 else text[:77] + "..."


def _describe_full(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value!r}"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__
