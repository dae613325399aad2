"""Types, defaults, ranges and cross-checks of the schema (simple_ntpd.config.schema)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from simple_ntpd.config.schema import (
    ACTIVE_KEYS,
    ALL_KEYS,
    SECTIONS,
    Config,
    describe_error,
    parse_size,
)

# Every key of every INI block of seeds/production-deployment-guide.md, including the second
# [performance] block under "Performance Tuning".
GUIDE_KEYS = {
    "network": """listen_address listen_port enable_ipv6 max_clients bind_interface
        receive_buffer_size send_buffer_size max_connections_per_second enable_tcp_nodelay
        enable_keepalive keepalive_time keepalive_probes keepalive_interval""",
    "ntp_server": """stratum reference_clock reference_id upstream_servers sync_interval
        max_drift min_poll max_poll enable_authentication auth_key_file""",
    "security": """enable_authentication allow_query_from deny_query_from enable_rate_limiting
        max_queries_per_minute rate_limit_burst rate_limit_window enable_dns_validation
        enable_geoip_restrictions allowed_countries enable_ddos_protection
        max_connections_per_ip connection_timeout""",
    "performance": """worker_threads max_packet_size connection_timeout idle_timeout
        enable_connection_pooling max_pool_size pool_timeout max_memory_usage
        enable_memory_pooling garbage_collection_interval enable_thread_affinity cpu_affinity
        memory_pool_size""",
    "logging": """level output log_file max_file_size max_files log_format
        log_performance_metrics log_client_queries log_sync_events enable_syslog
        syslog_facility syslog_tag enable_structured_logging log_timestamp_format
        log_include_hostname""",
    "monitoring": """enable_metrics metrics_port metrics_address enable_health_check
        health_check_interval health_check_timeout enable_snmp snmp_community snmp_port
        snmp_location snmp_contact enable_statistics stats_retention_days stats_export_format
        stats_export_interval""",
}
BRIEF_EXTRA_KEYS = {
    "ntp_server": """drift_file discipline_system_clock panic_threshold step_threshold
        step_limit min_sources max_sources""",
    "security": "trusted_networks kod_deny user group",
    "monitoring": "stats_directory",
    "maintenance": "maintenance_mode drain_timeout config_backup_dir backup_retention_days",
}


def errors_of(data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as info:
        Config.model_validate(data)
    return [(tuple(e["loc"]), describe_error(e)) for e in info.value.errors()]


def one_error(section: str, key: str, value: object) -> str:
    errs = errors_of({section: {key: value}})
    assert len(errs) == 1, errs
    loc, message = errs[0]
    assert loc[:2] == (section, key), loc
    return message


def test_sections_in_order() -> None:
    assert list(SECTIONS) == [
        "network",
        "ntp_server",
        "security",
        "performance",
        "logging",
        "monitoring",
        "maintenance",
    ]


@pytest.mark.parametrize("table", [GUIDE_KEYS, BRIEF_EXTRA_KEYS])
def test_every_required_key_exists(table: dict[str, str]) -> None:
    wanted = {f"{s}.{k}" for s, keys in table.items() for k in keys.split()}
    assert wanted - ALL_KEYS == set()


def test_active_keys_exist_and_include_the_initial_set() -> None:
    # Work that implements a feature adds its keys; none of the first set may be lost.
    assert ACTIVE_KEYS <= ALL_KEYS
    assert {
        "network.listen_address",
        "network.listen_port",
        "network.enable_ipv6",
        "network.bind_interface",
        "network.receive_buffer_size",
        "network.send_buffer_size",
        "ntp_server.stratum",
        "ntp_server.reference_clock",
        "ntp_server.reference_id",
        "performance.worker_threads",
        "performance.max_packet_size",
        "performance.enable_thread_affinity",
        "performance.cpu_affinity",
        "logging.level",
        "logging.output",
        "logging.log_file",
        "logging.log_format",
    } <= ACTIVE_KEYS


def test_every_field_is_described() -> None:
    for section, model in SECTIONS.items():
        for key, info in model.model_fields.items():
            assert info.description, f"{section}.{key} has no description"


def test_defaults() -> None:
    c = Config()
    assert c.network.listen_address == "0.0.0.0"
    assert c.network.listen_port == 123
    assert c.network.enable_ipv6 is True
    assert c.network.bind_interface == ""
    assert (c.network.receive_buffer_size, c.network.send_buffer_size) == (1 << 20, 0)
    n = c.ntp_server
    assert (n.stratum, n.reference_clock, n.reference_id) == (2, "LOCAL", "LOCL")
    assert n.upstream_servers == ()
    assert (n.max_drift, n.min_poll, n.max_poll) == (500.0, 6, 10)
    assert (n.drift_file, n.discipline_system_clock) == ("", False)
    assert (n.panic_threshold, n.step_threshold, n.step_limit) == (1000.0, 0.1, 3)
    assert (n.min_sources, n.max_sources) == (1, 4)
    assert (c.security.user, c.security.group, c.security.kod_deny) == ("ntp", "ntp", False)
    assert c.security.trusted_networks == ()
    p = c.performance
    assert (p.worker_threads, p.max_packet_size, p.enable_thread_affinity) == (0, 2048, False)
    assert p.cpu_affinity == ()
    lg = c.logging
    assert (lg.level, lg.output, lg.log_format, lg.log_timestamp_format) == (
        "INFO",
        "console",
        "text",
        "ISO8601",
    )
    m = c.monitoring
    assert (m.metrics_port, m.metrics_address, m.stats_export_format) == (8080, "127.0.0.1", "json")
    assert m.stats_directory == "/var/lib/simple-ntpd/stats"
    mt = c.maintenance
    assert (mt.maintenance_mode, mt.drain_timeout, mt.backup_retention_days) == (False, 0.0, 30)


def test_config_is_immutable() -> None:
    c = Config.model_validate({"ntp_server": {"upstream_servers": ["a", "b"]}})
    assert c.ntp_server.upstream_servers == ("a", "b")
    with pytest.raises(ValidationError):
        c.network.listen_port = 5  # type: ignore[misc]


# -- sizes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1GB", 1_000_000_000),
        ("100MB", 100_000_000),
        ("512KiB", 524_288),
        ("1 GiB", 1_073_741_824),
        ("2tb", 2_000_000_000_000),
        ("1.5KiB", 1536),
        ("0.5KB", 500),
        ("1024", 1024),
        ("10B", 10),
        ("1_000KB", 1_000_000),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["1XB", "GB", "-1GB", "1.5", "0.3B", "1e3", "one MB", ""])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError, match=r"size|whole number"):
        parse_size(text)


def test_size_fields_accept_ints_and_sizes_but_not_floats_or_bools() -> None:
    c = Config.model_validate(
        {"performance": {"max_memory_usage": "2GB", "memory_pool_size": 1024}}
    )
    assert (c.performance.max_memory_usage, c.performance.memory_pool_size) == (2 * 10**9, 1024)
    assert (
        one_error("performance", "max_memory_usage", 1.5) == "expected an integer, got number 1.5"
    )
    assert one_error("performance", "max_memory_usage", True) == "expected an integer, got true"
    assert "is not a size" in one_error("logging", "max_file_size", "100 M")


# -- strictness and ranges --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("network", "enable_ipv6", "yes", "expected true or false, got string 'yes'"),
        ("network", "enable_ipv6", 1, "expected true or false, got integer 1"),
        ("network", "listen_port", "123", "expected an integer, got string '123'"),
        ("network", "listen_port", 123.0, "expected an integer, got number 123.0"),
        ("network", "listen_port", True, "expected an integer, got true"),
        ("network", "listen_port", 65536, "65536 is out of range: must be <= 65535"),
        ("network", "listen_port", -1, "-1 is out of range: must be >= 0"),
        ("ntp_server", "stratum", 16, "16 is out of range: must be <= 15"),
        ("ntp_server", "stratum", 0, "0 is out of range: must be >= 1"),
        ("ntp_server", "min_poll", -1, "-1 is out of range: must be >= 0"),
        ("ntp_server", "max_poll", 18, "18 is out of range: must be <= 17"),
        ("ntp_server", "max_drift", 0, "0 is out of range: must be > 0"),
        ("ntp_server", "panic_threshold", True, "expected a number, got true"),
        ("ntp_server", "reference_id", 1234, "expected a string, got integer 1234 (quote it)"),
        ("performance", "max_packet_size", 47, "47 is out of range: must be >= 48"),
        ("performance", "max_packet_size", 65508, "65508 is out of range: must be <= 65507"),
        ("performance", "worker_threads", -1, "-1 is out of range: must be >= 0"),
        ("ntp_server", "upstream_servers", "pool.ntp.org", "expected a list"),
    ],
)
def test_wrong_types_and_ranges(section: str, key: str, value: object, expected: str) -> None:
    assert expected in one_error(section, key, value)


@pytest.mark.parametrize(
    ("value", "normalised"),
    [("info", "INFO"), ("Debug", "DEBUG"), ("WARNING", "WARNING"), ("critical", "CRITICAL")],
)
def test_log_level_case_insensitive(value: str, normalised: str) -> None:
    assert Config.model_validate({"logging": {"level": value}}).logging.level == normalised


def test_enumerations_reject_other_words() -> None:
    assert "'VERBOSE'" in one_error("logging", "level", "verbose")
    assert "is not one of" in one_error("logging", "output", "stdout")
    assert "is not one of" in one_error("logging", "log_format", "xml")
    assert "is not one of" in one_error("ntp_server", "reference_clock", "GPS")
    assert "is not one of" in one_error("logging", "syslog_facility", "local8")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("LOCL", None),
        ("GPS", None),
        ("X", None),
        ("", "1 to 4 printable ASCII"),
        ("TOOLONG", "1 to 4 printable ASCII"),
        ("AB C", "1 to 4 printable ASCII"),
        ("ÉTÉ", "1 to 4 printable ASCII"),
    ],
)
def test_reference_id(value: str, fragment: str | None) -> None:
    if fragment is None:
        assert Config.model_validate({"ntp_server": {"reference_id": value}}).ntp_server
    else:
        assert fragment in one_error("ntp_server", "reference_id", value)


def test_addresses_validated_and_normalised() -> None:
    c = Config.model_validate(
        {"network": {"listen_address": "::0001"}, "monitoring": {"metrics_address": "::1"}}
    )
    assert c.network.listen_address == "::1"
    assert "not an IPv4 or IPv6 address" in one_error("network", "listen_address", "localhost")
    assert "not an IPv4 or IPv6 address" in one_error("network", "listen_address", "10.0.0.256")
    assert "not an IPv4 or IPv6 address" in one_error(
        "monitoring", "metrics_address", "127.0.0.1:80"
    )


def test_cidr_lists() -> None:
    c = Config.model_validate(
        {"security": {"allow_query_from": ["10.0.0.0/8", "2001:DB8::/32", "192.0.2.1"]}}
    )
    assert c.security.allow_query_from == ("10.0.0.0/8", "2001:db8::/32", "192.0.2.1/32")
    errs = errors_of({"security": {"deny_query_from": ["10.0.0.0/8", "10.0.0.1/8", "nope"]}})
    assert errs == [
        (
            ("security", "deny_query_from", 1),
            "'10.0.0.1/8' has host bits set (did you mean 10.0.0.0/8?)",
        ),
        (
            ("security", "deny_query_from", 2),
            "'nope' is not an IPv4 or IPv6 network in CIDR notation (e.g. 10.0.0.0/8)",
        ),
    ]
    assert "CIDR" in one_error("security", "trusted_networks", ["10.0.0.0/33"])


def test_cpu_affinity_and_countries() -> None:
    c = Config.model_validate(
        {"performance": {"cpu_affinity": [0, 3]}, "security": {"allowed_countries": ["us", "DE"]}}
    )
    assert c.performance.cpu_affinity == (0, 3)
    assert c.security.allowed_countries == ("US", "DE")
    errs = errors_of({"performance": {"cpu_affinity": [0, -1]}})
    assert errs == [(("performance", "cpu_affinity", 1), "-1 is out of range: must be >= 0")]
    assert "ISO 3166-1" in one_error("security", "allowed_countries", ["USA"])


def test_bind_interface() -> None:
    assert Config.model_validate({"network": {"bind_interface": "eth0"}}).network
    assert "interface name" in one_error("network", "bind_interface", "a" * 16)
    assert "interface name" in one_error("network", "bind_interface", "eth 0")


# -- cross-field checks -----------------------------------------------------------------------


def cross(data: dict[str, Any]) -> tuple[str, str, str]:
    with pytest.raises(ValidationError) as info:
        Config.model_validate(data)
    (err,) = info.value.errors()
    assert err["type"] == "cross_field"
    return str(err["loc"][0]), str(err["ctx"]["key"]), describe_error(err)


def test_min_poll_le_max_poll() -> None:
    assert cross({"ntp_server": {"min_poll": 10, "max_poll": 6}}) == (
        "ntp_server",
        "max_poll",
        "max_poll (6) is below min_poll (10)",
    )
    assert Config.model_validate({"ntp_server": {"min_poll": 8, "max_poll": 8}}).ntp_server


def test_burst_le_rate_only_when_rate_limiting() -> None:
    data = {"security": {"max_queries_per_minute": 10, "rate_limit_burst": 20}}
    assert Config.model_validate(data)  # rate limiting off: no constraint
    data["security"]["enable_rate_limiting"] = True
    assert cross(data)[1] == "rate_limit_burst"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"network": {"listen_address": "::", "enable_ipv6": False}}, "enable_ipv6"),
        ({"performance": {"cpu_affinity": [1, 1]}}, "cpu_affinity"),
        (
            {"performance": {"max_memory_usage": "1GB", "memory_pool_size": "2GB"}},
            "memory_pool_size",
        ),
        ({"logging": {"output": "file", "log_file": ""}}, "log_file"),
        ({"monitoring": {"enable_snmp": True}}, "snmp_community"),
        (
            {"monitoring": {"enable_health_check": True, "health_check_timeout": 60}},
            "health_check_timeout",
        ),
        ({"security": {"enable_geoip_restrictions": True}}, "allowed_countries"),
    ],
)
def test_other_cross_checks(data: dict[str, Any], key: str) -> None:
    assert cross(data)[1] == key
