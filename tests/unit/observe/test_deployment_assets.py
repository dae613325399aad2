"""The shipped monitoring and logrotate files name only metrics that exist, and are valid.

Every ``ntp_*`` name in the alert rules and the Grafana dashboard is checked
against a scrape of the real collector (fed by fake callables) through the same
registry the daemon serves; ``promtool check rules``/``test rules``/``check
config`` run when promtool is installed (Debian's prometheus package).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from simple_ntpd.observe.prometheus import NtpCollector
from simple_ntpd.runtime.http_server import build_registry
from simple_ntpd.served_clock import LEAP_NONE, ServedClockState
from simple_ntpd.stats import COUNTERS_PER_SLOT

ROOT = Path(__file__).resolve().parents[3]
MONITORING = ROOT / "deployment" / "examples" / "monitoring"
RULES = MONITORING / "simple-ntpd-rules.yml"
DASHBOARD = MONITORING / "grafana-production-dashboard.json"
PROMETHEUS_YML = MONITORING / "prometheus.yml"
RULE_TESTS = MONITORING / "simple-ntpd-rules.test.yml"
LOGROTATE = ROOT / "deployment" / "logrotate" / "simple-ntpd"

METRIC_NAME = re.compile(r"\b((?:ntp|process)_[a-z0-9_]+)")
PROMTOOL = shutil.which("promtool")


def _latency() -> tuple[Sequence[float], Sequence[int], float]:
    return [0.001], [1, 2], 0.001


def scraped_names() -> set[str]:
    """Sample names of a live scrape, with histogram suffixes kept as they are exposed."""
    collector = NtpCollector(
        counters=lambda: [1] * COUNTERS_PER_SLOT,
        served_state=lambda: ServedClockState(leap=LEAP_NONE, stratum=2),
        sources=lambda: [
            {
                "address": "192.0.2.1",
                "stratum": 1,
                "offset": 0.0,
                "delay": 0.01,
                "jitter": 0.001,
                "reach": 255,
                "state": "selected",
            }
        ],
        labels={"environment": "test"},
        latency_histogram=_latency,
        socket_drops=lambda: 0,
    )
    text = generate_latest(build_registry(collector)).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def rule_exprs() -> list[str]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", []) if "expr" in t]
    exprs += [v["definition"] for v in doc["templating"]["list"] if "definition" in v]
    return exprs


def test_rules_and_dashboard_use_only_emitted_metrics() -> None:
    emitted = scraped_names()
    used: dict[str, str] = {}
    for source, exprs in (("rules", rule_exprs()), ("dashboard", dashboard_exprs())):
        assert exprs, f"no expressions found in the {source}"
        for expr in exprs:
            for name in METRIC_NAME.findall(expr):
                used[name] = source
    unknown = {name: where for name, where in used.items() if name not in emitted}
    assert not unknown, f"metrics named but never emitted: {unknown}"
    # the files do cover the main areas
    for name in (
        "ntp_synchronized",
        "ntp_stratum",
        "ntp_dropped_total",
        "ntp_socket_drops_total",
        "ntp_kod_sent_total",
        "ntp_source_reachability",
        "ntp_request_duration_seconds_bucket",
    ):
        assert name in used, name


def test_metric_name_check_catches_a_typo() -> None:
    assert "ntp_synchronised" not in scraped_names()
    assert METRIC_NAME.findall('rate(ntp_synchronised{job="x"}[5m])') == ["ntp_synchronised"]


def test_rules_shape() -> None:
    doc = yaml.safe_load(RULES.read_text())
    rules = {rule["alert"]: rule for group in doc["groups"] for rule in group["rules"]}
    # the deployment guide's rule, unchanged
    assert rules["NTPServiceDown"]["expr"] == 'up{job="simple-ntpd"} == 0'
    assert rules["NTPServiceDown"]["for"] == "1m"
    for name in (
        "NTPUnsynchronized",
        "NTPSelectedSourceOffsetHigh",
        "NTPStratumHigh",
        "NTPHighDropRate",
        "NTPHighKoDRate",
        "NTPSourceUnreachable",
    ):
        assert name in rules
    for rule in rules.values():
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert rule["annotations"]["summary"]


def test_dashboard_shape() -> None:
    doc = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    assert doc["uid"] and doc["title"]
    for panel in doc["panels"]:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"


def test_prometheus_yml_matches_the_guide() -> None:
    doc = yaml.safe_load(PROMETHEUS_YML.read_text())
    (job,) = doc["scrape_configs"]
    assert job["job_name"] == "simple-ntpd"
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["localhost:8080"]
    assert job["honor_labels"] is True
    assert doc["rule_files"] == ["simple-ntpd-rules.yml"]


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    # A missing tool is a failure, not a skip: `make test` installs it.
    assert PROMTOOL is not None, (
        "promtool missing: run `make test-deps` (Debian package prometheus)"
    )
    return subprocess.run(
        [PROMTOOL, *args], cwd=MONITORING, capture_output=True, text=True, timeout=60
    )


def test_promtool_check_rules() -> None:
    result = _promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_rule_unit_tests() -> None:
    result = _promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config() -> None:
    result = _promtool("check", "config", PROMETHEUS_YML.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_logrotate_signals_the_daemon_to_reopen() -> None:
    text = LOGROTATE.read_text()
    assert text.count("{") == text.count("}") == 1
    assert "/var/log/simple-ntpd/*.log" in text
    postrotate = text.split("postrotate", 1)[1].split("endscript", 1)[0]
    assert "SIGUSR1" in postrotate and "--kill-whom=main" in postrotate
    assert "-USR1" in postrotate


def test_logrotate_parses(tmp_path: Path) -> None:
    assert shutil.which("logrotate"), "logrotate missing: run `make test-deps`"
    # A copy whose user and log folder exist here: the file names ntp:ntp and /var/log.
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    text = LOGROTATE.read_text().replace("ntp ntp", f"{user} {group}")
    text = text.replace("/var/log/simple-ntpd", str(tmp_path))
    config = tmp_path / "simple-ntpd.logrotate"
    config.write_text(text)
    config.chmod(0o644)
    (tmp_path / "simple-ntpd.log").write_text("x\n")
    result = subprocess.run(
        ["logrotate", "--debug", "--state", str(tmp_path / "state"), str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr.lower(), result.stderr
