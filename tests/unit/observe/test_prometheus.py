"""Tests for simple_ntpd.observe.prometheus: the ntp_* collector and its documentation."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from simple_ntpd.observe.prometheus import (
    METRICS,
    REQUEST_DURATION_BOUNDS,
    NtpCollector,
    duration_bucket,
    emitted_metric_names,
    histogram_buckets,
    latency_from_bucket_counts,
    reference_id_text,
)
from simple_ntpd.reasons import DropReason
from simple_ntpd.served_clock import LEAP_NONE, ServedClockState
from simple_ntpd.stats import COUNTERS_PER_SLOT, Counter, drop_index

DOC = Path(__file__).resolve().parents[3] / "docs" / "observability.md"
LABELS = {"environment": "production", "datacenter": "dc1", "region": ""}

SYNCED = ServedClockState(
    leap=LEAP_NONE,
    stratum=2,
    reference_id=bytes([192, 0, 2, 7]),
    reference_time_ns=1_800_000_000_000_000_000,
    root_delay=0.010,
    root_dispersion=0.002,
    dispersion_rate=15e-6,
    precision=-20,
    offset_ns=250_000,
    freq=2e-6,
    t0_ns=1_800_000_000_000_000_000,
    update_ns=1_800_000_000_000_000_000,
)

SOURCES: list[Mapping[str, object]] = [
    {
        "address": "192.0.2.7",
        "stratum": 1,
        "offset": -0.0005,
        "delay": 0.012,
        "jitter": 0.0003,
        "reach": 255,
        "state": "selected",
    },
    {
        "address": "2001:db8::1",
        "stratum": 2,
        "offset": None,
        "delay": 0.02,
        "jitter": 0.001,
        "reach": 3,
        "state": "candidate",
    },
]


def counters() -> list[int]:
    values = [0] * COUNTERS_PER_SLOT
    values[Counter.RECEIVED] = 1000
    values[Counter.RESPONDED] = 900
    values[Counter.REQUEST_V3] = 100
    values[Counter.REQUEST_V4] = 800
    values[Counter.KOD_RATE] = 7
    values[Counter.RECEIVED_BYTES] = 48_000
    values[Counter.SENT_BYTES] = 43_200
    for reason in DropReason:
        values[drop_index(reason)] = 10 + int(reason)
    return values


def latency() -> tuple[Sequence[float], Sequence[int], float]:
    return [0.0001, 0.001, 0.01], [500, 880, 899, 900], 0.09


def full_collector(now_ns: int | None = None) -> NtpCollector:
    return NtpCollector(
        counters=counters,
        served_state=lambda: SYNCED,
        sources=lambda: SOURCES,
        labels=LABELS,
        latency_histogram=latency,
        now_ns=(lambda: now_ns) if now_ns is not None else None,
        socket_drops=lambda: 291,
    )


def scrape(collector: NtpCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = {k: v for k, v in s.labels.items() if k not in ("environment", "datacenter")}
            samples[(s.name, tuple(sorted(labels.items())))] = s.value
    return samples


def test_counters_map_to_the_shared_layout() -> None:
    s = scrape(full_collector())
    assert s[("ntp_received_packets_total", ())] == 1000
    assert s[("ntp_responses_total", ())] == 900
    assert s[("ntp_requests_total", (("version", "3"),))] == 100
    assert s[("ntp_requests_total", (("version", "4"),))] == 800
    assert s[("ntp_requests_total", (("version", "1"),))] == 0
    assert s[("ntp_kod_sent_total", (("code", "RATE"),))] == 7
    assert s[("ntp_kod_sent_total", (("code", "DENY"),))] == 0
    assert s[("ntp_received_bytes_total", ())] == 48_000
    assert s[("ntp_sent_bytes_total", ())] == 43_200
    for reason in DropReason:
        key = ("ntp_dropped_total", (("reason", reason.name.lower()),))
        assert s[key] == 10 + int(reason)
    assert s[("ntp_collector_errors_total", (("section", "counters"),))] == 0


def test_served_clock_gauges_as_published() -> None:
    s = scrape(full_collector())
    assert s[("ntp_synchronized", ())] == 1
    assert s[("ntp_leap_indicator", ())] == 0
    assert s[("ntp_stratum", ())] == 2
    assert s[("ntp_offset_seconds", ())] == pytest.approx(0.00025)
    assert s[("ntp_frequency_ppm", ())] == pytest.approx(2.0)
    assert s[("ntp_root_delay_seconds", ())] == pytest.approx(0.010)
    assert s[("ntp_root_dispersion_seconds", ())] == pytest.approx(0.002)
    assert s[("ntp_precision_seconds", ())] == pytest.approx(2.0**-20)
    assert s[("ntp_reference_timestamp_seconds", ())] == pytest.approx(1.8e9)
    assert s[("ntp_reference_info", (("reference_id", "192.0.2.7"),))] == 1


def test_served_clock_gauges_aged_to_now() -> None:
    later = SYNCED.update_ns + 100 * 10**9  # 100 s after the update
    s = scrape(full_collector(now_ns=later))
    # dispersion grows by 15 ppm * 100 s; the correction by 2 ppm * 100 s
    assert s[("ntp_root_dispersion_seconds", ())] == pytest.approx(0.002 + 0.0015)
    assert s[("ntp_offset_seconds", ())] == pytest.approx(0.00025 + 0.0002, abs=1e-9)


def test_unsynchronized_state() -> None:
    collector = NtpCollector(counters=counters, served_state=ServedClockState)
    s = scrape(collector)
    assert s[("ntp_synchronized", ())] == 0
    assert s[("ntp_leap_indicator", ())] == 3
    assert s[("ntp_stratum", ())] == 0
    assert s[("ntp_sources", ())] == 0


def test_sources() -> None:
    s = scrape(full_collector())
    assert s[("ntp_source_offset_seconds", (("source", "192.0.2.7"),))] == pytest.approx(-0.0005)
    assert ("ntp_source_offset_seconds", (("source", "2001:db8::1"),)) not in s
    assert s[("ntp_source_delay_seconds", (("source", "2001:db8::1"),))] == pytest.approx(0.02)
    assert s[("ntp_source_jitter_seconds", (("source", "192.0.2.7"),))] == pytest.approx(0.0003)
    assert s[("ntp_source_reachability", (("source", "192.0.2.7"),))] == 255
    assert s[("ntp_source_stratum", (("source", "2001:db8::1"),))] == 2
    assert s[("ntp_source_selected", (("source", "192.0.2.7"), ("state", "selected")))] == 1
    assert s[("ntp_source_selected", (("source", "2001:db8::1"), ("state", "candidate")))] == 0
    assert s[("ntp_sources", ())] == 2


def test_latency_histogram() -> None:
    s = scrape(full_collector())
    assert s[("ntp_request_duration_seconds_bucket", (("le", "0.0001"),))] == 500
    assert s[("ntp_request_duration_seconds_bucket", (("le", "0.01"),))] == 899
    assert s[("ntp_request_duration_seconds_bucket", (("le", "+Inf"),))] == 900
    assert s[("ntp_request_duration_seconds_count", ())] == 900
    assert s[("ntp_request_duration_seconds_sum", ())] == pytest.approx(0.09)


def test_labels_on_every_sample_and_empty_labels_dropped() -> None:
    registry = CollectorRegistry()
    registry.register(full_collector())
    families = list(text_string_to_metric_families(generate_latest(registry).decode()))
    assert families
    for family in families:
        for sample in family.samples:
            assert sample.labels["environment"] == "production", sample
            assert sample.labels["datacenter"] == "dc1", sample
            assert "region" not in sample.labels


def test_every_emitted_name_is_in_metrics_table_and_names_are_conventional() -> None:
    names = emitted_metric_names(full_collector())
    assert names == set(METRICS)
    for name, spec in METRICS.items():
        assert name.startswith("ntp_")
        assert (spec.type == "counter") == name.endswith("_total"), name
        assert re.fullmatch(r"[a-z_]+", name)
        assert spec.help


def test_a_failing_section_costs_only_itself() -> None:
    def broken() -> Sequence[Mapping[str, object]]:
        raise RuntimeError("source table being rebuilt")

    collector = NtpCollector(counters=counters, served_state=lambda: SYNCED, sources=broken)
    s = scrape(collector)
    assert s[("ntp_stratum", ())] == 2
    assert ("ntp_sources", ()) not in s
    assert s[("ntp_collector_errors_total", (("section", "sources"),))] == 1
    s = scrape(collector)
    assert s[("ntp_collector_errors_total", (("section", "sources"),))] == 2


def test_socket_drops() -> None:
    assert scrape(full_collector())[("ntp_socket_drops_total", ())] == 291

    def unreadable() -> int:
        raise OSError("none of /proc/net/udp, /proc/net/udp6 can be read")

    s = scrape(
        NtpCollector(counters=counters, served_state=lambda: SYNCED, socket_drops=unreadable)
    )
    assert ("ntp_socket_drops_total", ()) not in s
    assert s[("ntp_collector_errors_total", (("section", "sockets"),))] == 1
    assert s[("ntp_responses_total", ())] == 900


def test_short_counter_list_is_an_error_not_a_wrong_number() -> None:
    collector = NtpCollector(counters=lambda: [1, 2, 3], served_state=lambda: SYNCED)
    s = scrape(collector)
    assert ("ntp_responses_total", ()) not in s
    assert s[("ntp_collector_errors_total", (("section", "counters"),))] == 1


def test_reference_id_text() -> None:
    gps = ServedClockState(leap=0, stratum=1, reference_id=b"GPS\x00")
    assert reference_id_text(gps) == "GPS"
    assert reference_id_text(SYNCED) == "192.0.2.7"
    assert reference_id_text(ServedClockState()) == ""


def test_histogram_buckets_validation() -> None:
    assert histogram_buckets([0.5, math.inf], [1, 2]) == [("0.5", 1.0), ("+Inf", 2.0)]
    with pytest.raises(ValueError, match="counts"):
        histogram_buckets([0.5, 1.0], [1, 2])
    with pytest.raises(ValueError, match="increase"):
        histogram_buckets([1.0, 0.5], [1, 2, 3])
    with pytest.raises(ValueError, match="cumulative"):
        histogram_buckets([0.5, 1.0], [2, 1, 3])


@given(st.lists(st.integers(min_value=0, max_value=2**64 - 1), min_size=COUNTERS_PER_SLOT))
def test_any_counter_values_render(values: list[int]) -> None:
    collector = NtpCollector(counters=lambda: values, served_state=lambda: SYNCED)
    s = scrape(collector)
    assert s[("ntp_responses_total", ())] == float(values[Counter.RESPONDED])


def test_docs_list_every_metric() -> None:
    text = DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"`(ntp_[a-z_]+)`", text))
    missing = set(METRICS) - documented
    assert not missing, f"docs/observability.md does not document {sorted(missing)}"
    unknown = {
        n
        for n in documented - set(METRICS)
        if not n.endswith(("_bucket", "_sum", "_count")) and n != "ntp_"
    }
    assert not unknown, f"docs/observability.md names metrics that do not exist: {unknown}"


def test_duration_buckets_feed_the_histogram() -> None:
    per_bucket = [0] * (len(REQUEST_DURATION_BOUNDS) + 1)
    durations_ns = [5_000, 10_000, 10_001, 99_999, 1_000_000, 50_000_000]
    for d in durations_ns:
        per_bucket[duration_bucket(d)] += 1
    assert per_bucket[0] == 2  # 5 us and exactly 10 us (le is inclusive)
    assert per_bucket[1] == 1
    assert per_bucket[-1] == 1  # 50 ms: +Inf
    collector = NtpCollector(
        counters=counters,
        served_state=lambda: SYNCED,
        latency_histogram=lambda: latency_from_bucket_counts(per_bucket, sum(durations_ns)),
    )
    s = scrape(collector)
    assert s[("ntp_request_duration_seconds_bucket", (("le", "1e-05"),))] == 2
    assert s[("ntp_request_duration_seconds_bucket", (("le", "0.0001"),))] == 4
    assert s[("ntp_request_duration_seconds_bucket", (("le", "0.001"),))] == 5
    assert s[("ntp_request_duration_seconds_count", ())] == 6
    assert s[("ntp_request_duration_seconds_sum", ())] == pytest.approx(0.051125)
    with pytest.raises(ValueError):
        latency_from_bucket_counts([1, 2], 0)


def test_source_label_tells_same_host_sources_apart() -> None:
    from simple_ntpd.observe.prometheus import source_label

    assert source_label({"address": "192.0.2.1"}) == "192.0.2.1"
    assert source_label({"address": "192.0.2.1", "port": 123}) == "192.0.2.1"
    assert source_label({"address": "192.0.2.1", "port": 10123}) == "192.0.2.1:10123"
    assert source_label({"address": "2001:db8::1", "port": 1234}) == "[2001:db8::1]:1234"
    assert source_label({"address": "", "port": 1234}) == ""
