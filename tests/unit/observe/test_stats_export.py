"""Tests for simple_ntpd.observe.stats_export and runtime.stats_writer."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simple_ntpd.observe.stats_export import (
    CSV_COLUMNS,
    csv_header,
    csv_row,
    expired_files,
    histogram_quantile,
    json_line,
    performance_summary,
    stats_file_name,
    stats_record,
    summary_message,
)
from simple_ntpd.reasons import DropReason
from simple_ntpd.runtime.stats_writer import StatsWriter
from simple_ntpd.served_clock import ServedClockState
from simple_ntpd.stats import (
    COUNTERS_PER_SLOT,
    LATENCY_BASE,
    LATENCY_BUCKETS,
    LATENCY_SUM_NS,
    Counter,
    drop_index,
)

DAY = 86400 * 10**9
NOW = 1_796_342_400 * 10**9 + 3_600 * 10**9  # 2026-12-04T01:00:00Z
STATE = ServedClockState(
    leap=0, stratum=2, reference_id=b"\xc0\x00\x02\x01", root_delay=0.01, update_ns=NOW
)


def totals() -> list[int]:
    t = [0] * COUNTERS_PER_SLOT
    t[Counter.RECEIVED] = 120
    t[Counter.RESPONDED] = 100
    t[Counter.REQUEST_V4] = 100
    t[drop_index(DropReason.TOO_SHORT)] = 20
    t[LATENCY_BASE + 2] = 99
    t[LATENCY_BASE + LATENCY_BUCKETS - 1] = 1
    t[LATENCY_SUM_NS] = 5_000_000
    return t


def test_file_names_per_utc_day_and_pruning() -> None:
    assert stats_file_name(NOW) == "stats-2026-12-04.jsonl"
    assert stats_file_name(NOW, "csv") == "stats-2026-12-04.csv"
    names = [
        "stats-2026-12-04.jsonl",
        "stats-2026-11-04.jsonl",  # 30 days: kept with retention 30
        "stats-2026-11-03.csv",  # 31 days: expired
        "stats-2025-01-01.jsonl",
        "stats-2026-02-30.jsonl",  # not a date
        "notes.txt",
        "stats-2020-01-01.jsonl.bak",
    ]
    assert expired_files(names, NOW, 30) == ["stats-2025-01-01.jsonl", "stats-2026-11-03.csv"]


def test_record_carries_counters_sync_state_latency_and_sources() -> None:
    record = stats_record(
        now_ns=NOW,
        totals=totals(),
        state=STATE,
        sources=[{"address": "192.0.2.1", "reach": 255, "offset": 0.001, "extra": 1}],
        labels={"environment": "prod", "region": ""},
    )
    line = json_line(record)
    assert line.endswith("\n") and "\n" not in line[:-1]
    back = json.loads(line)
    assert back["timestamp"] == "2026-12-04T01:00:00.000+00:00"
    assert back["environment"] == "prod" and "region" not in back
    assert back["counters"]["received"] == 120 and back["drops"]["too_short"] == 20
    assert back["sync"]["stratum"] == 2 and back["sync"]["reference_id"] == "c0000201"
    assert back["request_duration"]["count"] == 100
    assert back["request_duration"]["buckets"]["5e-05"] == 99
    assert back["request_duration"]["sum_seconds"] == pytest.approx(0.005)
    assert back["sources"] == [{"address": "192.0.2.1", "reach": 255, "offset": 0.001}]


def test_csv_row_matches_header() -> None:
    record = stats_record(now_ns=NOW, totals=totals(), state=STATE, sources=[{"reach": 0}])
    rows = list(csv.reader(io.StringIO(csv_header() + csv_row(record))))
    assert rows[0] == list(CSV_COLUMNS)
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["received"] == "120" and row["dropped"] == "20"
    assert row["synchronized"] == "true" and row["sources"] == "1"
    assert row["sources_reachable"] == "0"


def test_quantiles_are_bucket_upper_bounds() -> None:
    assert histogram_quantile(0.99, [0] * LATENCY_BUCKETS) is None
    counts = [0] * LATENCY_BUCKETS
    counts[2] = 99
    counts[-1] = 1
    assert histogram_quantile(0.5, counts) == pytest.approx(50e-6)
    assert histogram_quantile(0.99, counts) == pytest.approx(50e-6)
    assert histogram_quantile(0.999, counts) == math.inf


def test_performance_summary_rates() -> None:
    before = [0] * COUNTERS_PER_SLOT
    s = performance_summary(before, totals(), 10.0)
    assert s.requests_per_s == 12.0 and s.responses_per_s == 10.0 and s.drops_per_s == 2.0
    assert s.p99_s == pytest.approx(50e-6)
    text = summary_message(s)
    assert "12.0 requests/s" in text and "2.0 drops/s" in text and "p99 <=50us" in text


@given(
    st.lists(
        st.integers(min_value=0, max_value=10**6),
        min_size=LATENCY_BUCKETS,
        max_size=LATENCY_BUCKETS,
    ),
    st.floats(min_value=0.01, max_value=0.999),
)
def test_quantile_bucket_holds_the_rank(counts: list[int], q: float) -> None:
    got = histogram_quantile(q, counts)
    if sum(counts) == 0:
        assert got is None
        return
    assert got is not None and got > 0


def test_writer_appends_per_day_and_prunes(tmp_path: Path) -> None:
    directory = tmp_path / "stats"
    writer = StatsWriter(directory, "json", retention_days=2)
    record = stats_record(now_ns=NOW, totals=totals(), state=STATE)
    for day in range(4):
        writer.write(record, NOW - day * DAY)
    writer.write(record, NOW)
    assert sorted(p.name for p in directory.iterdir()) == [
        "stats-2026-12-01.jsonl",
        "stats-2026-12-02.jsonl",
        "stats-2026-12-03.jsonl",
        "stats-2026-12-04.jsonl",
    ]
    assert len((directory / "stats-2026-12-04.jsonl").read_text().splitlines()) == 2
    (directory / "keep.txt").write_text("not ours")
    assert writer.prune(NOW) == ["stats-2026-12-01.jsonl"]
    assert (directory / "keep.txt").exists()


def test_writer_csv_has_one_header(tmp_path: Path) -> None:
    writer = StatsWriter(tmp_path, "csv")
    record = stats_record(now_ns=NOW, totals=totals(), state=STATE)
    path = writer.write(record, NOW)
    writer.write(record, NOW)
    assert path is not None
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and lines[0] == ",".join(CSV_COLUMNS)


def test_writer_error_is_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    writer = StatsWriter(blocker / "sub", "json")
    record = stats_record(now_ns=NOW, totals=totals(), state=STATE)
    assert writer.write(record, NOW) is None
    assert writer.write(record, NOW) is None
    assert sum("cannot write statistics" in r.message for r in caplog.records) == 1
