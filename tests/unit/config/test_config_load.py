"""Loading: shipped configs, located errors, warnings, inactive keys, env overrides, formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from simple_ntpd.config.load import (
    DEFAULT_CONFIG_TEXT,
    LoadedConfig,
    load_config,
    load_default_config,
    parse_config_text,
)
from simple_ntpd.config.parse import ConfigFileError, parse_document
from simple_ntpd.config.schema import ACTIVE_KEYS
from simple_ntpd.errors import ConfigError

CONFIGS = Path(__file__).parents[3] / "deployment" / "configs"
SHIPPED = ["production.conf", "development.conf", "high-security.conf"]


def load_error(text: str, *, fmt: str = "ini", env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, source="site.conf", fmt=fmt, env=env)
    return str(info.value)


# -- shipped configurations -------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_config_loads_without_warnings(name: str) -> None:
    loaded = load_config(CONFIGS / name, env={})
    assert loaded.source == str(CONFIGS / name)
    assert loaded.warnings == ()
    assert set(loaded.inactive).isdisjoint(ACTIVE_KEYS)


def test_production_has_the_guides_values() -> None:
    c = load_config(CONFIGS / "production.conf", env={}).config
    assert (c.network.listen_address, c.network.listen_port, c.network.max_clients) == (
        "0.0.0.0",
        123,
        10000,
    )
    assert c.network.receive_buffer_size == c.network.send_buffer_size == 26214400
    assert (c.network.keepalive_time, c.network.keepalive_probes) == (300, 3)
    assert (c.ntp_server.stratum, c.ntp_server.reference_id) == (2, "PROD")
    assert c.ntp_server.upstream_servers == (
        "pool.ntp.org",
        "time.nist.gov",
        "time.google.com",
        "time.cloudflare.com",
        "time.windows.com",
    )
    assert (c.ntp_server.min_poll, c.ntp_server.max_poll, c.ntp_server.sync_interval) == (4, 17, 60)
    assert c.security.allow_query_from == ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
    assert (c.security.max_queries_per_minute, c.security.rate_limit_burst) == (1000, 100)
    assert c.security.allowed_countries == ("US", "CA", "GB", "DE", "FR")
    assert c.performance.worker_threads == 8
    assert c.performance.max_memory_usage == 1_000_000_000
    assert c.performance.memory_pool_size == 1_000_000_000
    assert c.performance.cpu_affinity == tuple(range(8))
    assert (c.logging.output, c.logging.log_format) == ("file", "json")
    assert c.logging.max_file_size == 100_000_000
    assert (c.monitoring.metrics_port, c.monitoring.snmp_location) == (8080, "Data Center 1")
    assert c.monitoring.stats_retention_days == 90
    assert c.maintenance.config_backup_dir == "/var/backup/simple-ntpd"
    assert c.maintenance.backup_retention_days == 30


def test_development_and_high_security_shape() -> None:
    dev = load_config(CONFIGS / "development.conf", env={}).config
    assert (dev.network.listen_address, dev.network.listen_port) == ("127.0.0.1", 11123)
    assert (dev.logging.level, dev.logging.output, dev.logging.log_format) == (
        "DEBUG",
        "console",
        "text",
    )
    assert dev.ntp_server.reference_clock == "LOCAL"
    sec = load_config(CONFIGS / "high-security.conf", env={}).config
    assert sec.security.enable_authentication and sec.ntp_server.enable_authentication
    assert sec.security.kod_deny and sec.security.enable_rate_limiting
    assert sec.security.allow_query_from  # an explicit allow list
    assert sec.monitoring.metrics_address == "127.0.0.1"
    assert not sec.monitoring.enable_snmp


def test_embedded_default() -> None:
    loaded = load_default_config(env={})
    c = loaded.config
    assert loaded.source == "<embedded default>"
    assert (c.network.listen_address, c.network.listen_port, c.network.enable_ipv6) == (
        "127.0.0.1",
        11123,
        True,
    )
    assert (c.ntp_server.reference_clock, c.ntp_server.stratum, c.ntp_server.reference_id) == (
        "LOCAL",
        10,
        "LOCL",
    )
    assert c.performance.worker_threads == 1
    assert (c.logging.output, c.logging.log_format, c.logging.level) == ("console", "text", "INFO")
    assert c.monitoring.enable_metrics is False
    assert loaded.warnings == ()
    assert "[network]" in DEFAULT_CONFIG_TEXT and "#" in DEFAULT_CONFIG_TEXT


def test_embedded_default_takes_env_overrides() -> None:
    loaded = load_default_config(env={"SIMPLE_NTPD_NETWORK__LISTEN_PORT": "11124"})
    assert loaded.config.network.listen_port == 11124


def test_default_env_is_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMPLE_NTPD_LOGGING__LEVEL", "error")
    monkeypatch.setenv("SIMPLE_NTPD_REGION", "eu-west-1")
    loaded = load_default_config()
    assert loaded.config.logging.level == "ERROR"
    assert loaded.labels == {"region": "eu-west-1"}


# -- located errors: each kind of mistake -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # wrong type
        (
            "[network]\nlisten_port = 123\nenable_ipv6 = yes\n",
            "site.conf:3: [network] enable_ipv6: expected true or false, got string 'yes'",
        ),
        (
            '[network]\n\nlisten_port = "123"\n',
            "site.conf:3: [network] listen_port: expected an integer, got string '123'",
        ),
        # out of range
        (
            "[ntp_server]\nstratum = 16\n",
            "site.conf:2: [ntp_server] stratum: 16 is out of range: must be <= 15",
        ),
        (
            "[network]\nlisten_port = 70000\n",
            "site.conf:2: [network] listen_port: 70000 is out of range: must be <= 65535",
        ),
        # bad CIDR: the line of the item itself
        (
            '[security]\nallow_query_from = [\n  "10.0.0.0/8",\n  "10.0.0.0/33",\n]\n',
            "site.conf:4: [security] allow_query_from: item 2: '10.0.0.0/33' is not an IPv4 or "
            "IPv6 network in CIDR notation (e.g. 10.0.0.0/8)",
        ),
        # unknown section
        (
            "[netwrok]\nlisten_port = 1\n",
            "site.conf:1: [netwrok]: unknown section (known: network, ntp_server, security, "
            "performance, logging, monitoring, maintenance)",
        ),
        # broken list
        (
            '[ntp_server]\nupstream_servers = [\n  "a"\n  "b"\n]\n',
            "site.conf:4: [ntp_server] upstream_servers: broken list: expected ',' or ']' "
            "before '\"' (list opened on line 2)",
        ),
        # unterminated string
        (
            '[logging]\nlog_file = "/var/log/x.log\n',
            "site.conf:2: [logging] log_file: unterminated string (missing closing '\"')",
        ),
        # bad size
        (
            '[performance]\nmax_memory_usage = "1 gigabyte"\n',
            "site.conf:2: [performance] max_memory_usage: '1 gigabyte' is not a size: use bytes "
            "(1048576) or a number with a unit B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, "
            "GiB, TiB (powers of 1024)",
        ),
        # duplicate key
        (
            "[network]\nlisten_port = 1\nlisten_port = 2\n",
            "site.conf:3: [network] listen_port: duplicate key (first set on line 2)",
        ),
        # cross-field check points at the key's line
        (
            "[ntp_server]\nmax_poll = 5\nmin_poll = 9\n",
            "site.conf:2: [ntp_server] max_poll: max_poll (5) is below min_poll (9)",
        ),
        # cross-field check whose key was left at its default: the section, no line
        (
            "[monitoring]\nenable_snmp = true\n",
            "site.conf: [monitoring] snmp_community: enable_snmp is true but snmp_community is "
            "empty",
        ),
    ],
)
def test_each_mistake_gives_its_located_error(text: str, expected: str) -> None:
    assert load_error(text) == expected


def test_every_problem_is_reported_at_once() -> None:
    message = load_error("[network]\nlisten_port = -1\n\n[ntp_server]\nstratum = 0\n")
    assert message.splitlines() == [
        "site.conf:2: [network] listen_port: -1 is out of range: must be >= 0",
        "site.conf:5: [ntp_server] stratum: 0 is out of range: must be >= 1",
    ]


def test_errors_are_structured() -> None:
    with pytest.raises(ConfigFileError) as info:
        parse_config_text("[network]\nlisten_port = 1.5\n", source="site.conf")
    (problem,) = info.value.problems
    assert (problem.source, problem.line, problem.section, problem.key) == (
        "site.conf",
        2,
        "network",
        "listen_port",
    )


# -- warnings and inactive keys ---------------------------------------------------------------


def test_unknown_key_warns_and_is_ignored() -> None:
    loaded = parse_config_text(
        "[network]\nlisten_port = 5\nlisten_prot = 6\n", source="site.conf", env={}
    )
    assert loaded.config.network.listen_port == 5
    assert loaded.warnings == ("site.conf:3: unknown key [network] listen_prot (ignored)",)


def test_inactive_keys_are_those_set_but_not_active() -> None:
    loaded = parse_config_text(
        "[network]\nlisten_port = 5\nenable_keepalive = true\n"
        "[security]\nenable_dns_validation = true\nkod_deny = true\n"
        '[monitoring]\nsnmp_location = "rack 1"\n',
        env={},
    )
    assert loaded.inactive == (
        "monitoring.snmp_location",
        "network.enable_keepalive",
        "security.enable_dns_validation",
    )
    assert parse_config_text("[network]\nlisten_port = 5\n", env={}).inactive == ()


def test_empty_text_gives_schema_defaults() -> None:
    loaded = parse_config_text("", env={})
    assert loaded.config == parse_config_text("[network]\n", env={}).config
    assert loaded.inactive == () and loaded.warnings == ()
    assert loaded.config.network.listen_port == 123


# -- environment ------------------------------------------------------------------------------


def test_labels_from_environment() -> None:
    env = {
        "SIMPLE_NTPD_ENVIRONMENT": "production",
        "SIMPLE_NTPD_DATACENTER": "dc1",
        "PATH": "/bin",
    }
    loaded = parse_config_text("", env=env)
    assert dict(loaded.labels) == {"environment": "production", "datacenter": "dc1"}


@pytest.mark.parametrize(
    ("var", "value", "attr", "expected"),
    [
        ("SIMPLE_NTPD_NETWORK__LISTEN_PORT", "11123", ("network", "listen_port"), 11123),
        ("simple_ntpd_network__enable_ipv6", "false", ("network", "enable_ipv6"), False),
        ("SIMPLE_NTPD_NTP_SERVER__REFERENCE_ID", "GPS", ("ntp_server", "reference_id"), "GPS"),
        ("SIMPLE_NTPD_NTP_SERVER__REFERENCE_ID", '"GPS"', ("ntp_server", "reference_id"), "GPS"),
        (
            "SIMPLE_NTPD_SECURITY__ALLOW_QUERY_FROM",
            '["10.0.0.0/8", "::1/128"]',
            ("security", "allow_query_from"),
            ("10.0.0.0/8", "::1/128"),
        ),
        (
            "SIMPLE_NTPD_MONITORING__SNMP_LOCATION",
            "Data Center 2",
            ("monitoring", "snmp_location"),
            "Data Center 2",
        ),
        (
            "SIMPLE_NTPD_PERFORMANCE__MAX_MEMORY_USAGE",
            "2GiB",
            ("performance", "max_memory_usage"),
            2**31,
        ),
    ],
)
def test_env_override_valid(var: str, value: str, attr: tuple[str, str], expected: object) -> None:
    loaded = parse_config_text(
        "[network]\nlisten_port = 123\n[monitoring]\nsnmp_location = x\n",
        source="site.conf",
        env={var: value},
    )
    assert getattr(getattr(loaded.config, attr[0]), attr[1]) == expected
    assert any(var in w for w in loaded.warnings)


def test_env_override_replaces_file_value_and_says_so() -> None:
    loaded = parse_config_text(
        "[network]\nlisten_port = 123\n",
        source="site.conf",
        env={"SIMPLE_NTPD_NETWORK__LISTEN_PORT": "5"},
    )
    assert loaded.config.network.listen_port == 5
    assert loaded.warnings == (
        "environment variable SIMPLE_NTPD_NETWORK__LISTEN_PORT sets [network] listen_port "
        "(replaces site.conf:2)",
    )


def test_env_override_counts_as_set_for_inactive() -> None:
    loaded = parse_config_text("", env={"SIMPLE_NTPD_SECURITY__ENABLE_DNS_VALIDATION": "true"})
    assert loaded.inactive == ("security.enable_dns_validation",)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"SIMPLE_NTPD_NETWORK__LISTEN_PORT": "99999"},
            "environment variable SIMPLE_NTPD_NETWORK__LISTEN_PORT: [network] listen_port: "
            "99999 is out of range: must be <= 65535",
        ),
        (
            {"SIMPLE_NTPD_NETWORK__ENABLE_IPV6": "yes"},
            "environment variable SIMPLE_NTPD_NETWORK__ENABLE_IPV6: [network] enable_ipv6: "
            "expected true or false, got string 'yes'",
        ),
        (
            {"SIMPLE_NTPD_SECURITY__ALLOW_QUERY_FROM": '["10.0.0.0/8", '},
            "environment variable SIMPLE_NTPD_SECURITY__ALLOW_QUERY_FROM: [security] "
            "allow_query_from: broken list: missing ']' before the end of the file",
        ),
        (
            {"SIMPLE_NTPD_NETWRK__LISTEN_PORT": "1"},
            "environment variable SIMPLE_NTPD_NETWRK__LISTEN_PORT: [netwrk] listen_port: "
            "unknown section (known: network, ntp_server, security, performance, logging, "
            "monitoring, maintenance)",
        ),
    ],
)
def test_env_override_invalid_names_the_variable(env: dict[str, str], expected: str) -> None:
    assert load_error("[network]\nlisten_port = 1\n", env=env) == expected


def test_env_unknown_key_warns() -> None:
    loaded = parse_config_text("", env={"SIMPLE_NTPD_NETWORK__LISTEN_PROT": "1"})
    assert loaded.warnings == (
        "environment variable SIMPLE_NTPD_NETWORK__LISTEN_PROT: unknown key [network] "
        "listen_prot (ignored)",
    )


def test_env_without_double_underscore_is_not_an_override() -> None:
    loaded = parse_config_text("", env={"SIMPLE_NTPD_CONFIG": "/x", "SIMPLE_NTPD_LISTEN_PORT": "5"})
    assert loaded.config.network.listen_port == 123
    assert loaded.warnings == ()


# -- files ------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.conf"
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == (
        f"configuration file not found: {path} "
        "(use --config PATH, or --default-config for the embedded default)"
    )


def test_directory_and_bad_utf8(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path, env={})
    bad = tmp_path / "bad.conf"
    bad.write_bytes(b"[network]\n# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"bad.conf:2: not valid UTF-8"):
        load_config(bad, env={})


def test_load_config_uses_os_environ_when_env_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.conf"
    path.write_text("[network]\nlisten_port = 5\n")
    monkeypatch.setenv("SIMPLE_NTPD_NETWORK__LISTEN_PORT", "6")
    assert load_config(path).config.network.listen_port == 6
    assert load_config(path, env={}).config.network.listen_port == 5


# -- the same tree in three formats -----------------------------------------------------------


def as_tree(name: str) -> dict[str, dict[str, object]]:
    doc = parse_document((CONFIGS / name).read_text(), source=name)
    return {s: {k: e.value for k, e in sec.entries.items()} for s, sec in doc.sections.items()}


@pytest.mark.parametrize("name", SHIPPED)
def test_json_and_yaml_equivalents_give_the_same_config(name: str, tmp_path: Path) -> None:
    ini = load_config(CONFIGS / name, env={})
    tree = as_tree(name)
    (tmp_path / "c.json").write_text(json.dumps(tree, indent=2))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    (tmp_path / "c.yml").write_text(yaml.safe_dump(tree, default_flow_style=True))
    for other in ("c.json", "c.yaml", "c.yml"):
        loaded = load_config(tmp_path / other, env={})
        assert loaded.config == ini.config, other
        assert loaded.inactive == ini.inactive
        assert loaded.warnings == ()


def test_yaml_errors_have_lines_and_json_errors_key_paths(tmp_path: Path) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("network:\n  listen_port: 123\n  enable_ipv6: yes\n")
    with pytest.raises(ConfigError) as info:
        load_config(y, env={})
    assert str(info.value) == (
        f"{y}:3: [network] enable_ipv6: expected true or false, got string 'yes'"
    )
    j = tmp_path / "c.json"
    j.write_text('{"security": {"allow_query_from": ["10.0.0.0/8", "bad"]}}')
    with pytest.raises(ConfigError) as info:
        load_config(j, env={})
    assert str(info.value) == (
        f"{j}: [security] allow_query_from: item 2: 'bad' is not an IPv4 or IPv6 network in "
        "CIDR notation (e.g. 10.0.0.0/8)"
    )


def test_yaml_unknown_key_warning_has_line(tmp_path: Path) -> None:
    y = tmp_path / "c.yml"
    y.write_text("network:\n  listen_port: 123\n  bogus: 1\n")
    loaded = load_config(y, env={})
    assert loaded.warnings == (f"{y}:3: unknown key [network] bogus (ignored)",)


def test_loaded_config_is_frozen() -> None:
    loaded = parse_config_text("", env={})
    assert isinstance(loaded, LoadedConfig)
    with pytest.raises(AttributeError):
        loaded.source = "x"  # type: ignore[misc]


def test_huge_values_are_shortened_in_messages() -> None:
    message = load_error("[network]\nlisten_port = 1" + "0" * 400 + "\n")
    assert message.startswith("site.conf:2: [network] listen_port: 1000")
    assert "... is out of range: must be <= 65535" in message
    assert len(message) < 160
    message = load_error("[ntp_server]\npanic_threshold = 1e400\n")
    assert message == (
        "site.conf:2: [ntp_server] panic_threshold: expected a number, got string '1e400'"
    )
