"""Statistics export and performance summaries: what goes in a line, which files expire.

Pure: the shell (:mod:`simple_ntpd.runtime.stats_writer`) passes the summed
worker counters, the published served-clock state, the source snapshots and the
current time, and writes what comes back.

* :func:`stats_record` is one export (``stats_export_interval``): counters by
  name, drops by reason, the processing-time histogram, the sync state and the
  sources. :func:`json_line` renders it as one JSON object per line
  (``stats_export_format = "json"``), :func:`csv_row` as one CSV row of the
  fixed :data:`CSV_COLUMNS` (``"csv"``).
* Files are per UTC day, ``stats-YYYY-MM-DD.jsonl`` (or ``.csv``);
  :func:`expired_files` names those older than ``stats_retention_days``.
* :func:`performance_summary` turns two counter readings into rates and a
  processing-time percentile for the ``log_performance_metrics`` lines.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from simple_ntpd.reasons import DropReason
from simple_ntpd.served_clock import ServedClockState
from simple_ntpd.stats import (
    LATENCY_BOUNDS_NS,
    Counter,
    drop_index,
    latency_counts,
    named_counters,
)

FORMATS = ("json", "csv")
_SUFFIX = {"json": "jsonl", "csv": "csv"}
_FILE_RE = re.compile(r"stats-(\d{4})-(\d{2})-(\d{2})\.(jsonl|csv)")
_NS = 1_000_000_000

CSV_COLUMNS = (
    "timestamp",
    "synchronized",
    "leap",
    "stratum",
    "reference_id",
    "offset_seconds",
    "frequency_ppm",
    "root_delay_seconds",
    "root_dispersion_seconds",
    "received",
    "responded",
    "requests_v1",
    "requests_v2",
    "requests_v3",
    "requests_v4",
    "dropped",
    "kod_sent",
    "request_duration_count",
    "request_duration_sum_seconds",
    "sources",
    "sources_reachable",
)
"""Columns of a CSV export (the JSON export carries everything, by name)."""


def iso_utc(now_ns: int) -> str:
    return _dt.datetime.fromtimestamp(now_ns / _NS, tz=_dt.UTC).isoformat(timespec="milliseconds")


def _day(now_ns: int) -> _dt.date:
    return _dt.datetime.fromtimestamp(now_ns // _NS, tz=_dt.UTC).date()


def stats_file_name(now_ns: int, fmt: str = "json") -> str:
    """The file an export at ``now_ns`` goes to: one file per UTC day."""
    return f"stats-{_day(now_ns).isoformat()}.{_SUFFIX[fmt]}"


def expired_files(names: Sequence[str], now_ns: int, retention_days: int) -> list[str]:
    """The statistics files among ``names`` whose day is more than ``retention_days`` ago.

    Only names this module makes are considered: nothing else in the directory is
    ever deleted.
    """
    today = _day(now_ns)
    out = []
    for name in names:
        m = _FILE_RE.fullmatch(name)
        if m is None:
            continue
        try:
            day = _dt.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            continue
        if (today - day).days > retention_days:
            out.append(name)
    return sorted(out)


def _source_dict(source: Mapping[str, object]) -> dict[str, object]:
    keys = ("address", "state", "stratum", "reach", "offset", "delay", "jitter")
    return {k: source.get(k) for k in keys if k in source}


def stats_record(
    *,
    now_ns: int,
    totals: Sequence[int],
    state: ServedClockState,
    sources: Sequence[Mapping[str, object]] = (),
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One statistics export, JSON-ready."""
    named = named_counters(list(totals))
    buckets, sum_ns = latency_counts(list(totals))
    les = [repr(b / 1e9) for b in LATENCY_BOUNDS_NS] + ["+Inf"]
    record: dict[str, Any] = {
        "timestamp": iso_utc(now_ns),
        "unix_time": now_ns / _NS,
    }
    record.update({k: v for k, v in (labels or {}).items() if v})
    record["sync"] = {
        "synchronized": state.synchronized,
        "leap": state.leap,
        "stratum": state.stratum,
        "reference_id": state.reference_id.hex(),
        "offset_seconds": (state.served_ns(now_ns) - now_ns) / _NS,
        "frequency_ppm": state.freq * 1e6,
        "root_delay_seconds": state.root_delay,
        "root_dispersion_seconds": state.root_dispersion_at(now_ns),
    }
    record["counters"] = named["counters"]
    record["drops"] = named["drops"]
    record["request_duration"] = {
        "buckets": dict(zip(les, buckets, strict=True)),
        "count": sum(buckets),
        "sum_seconds": sum_ns / _NS,
    }
    record["sources"] = [_source_dict(s) for s in sources]
    return record


def json_line(record: Mapping[str, Any]) -> str:
    """One line of the JSON export (no newline inside, ``\\n`` at the end)."""
    return json.dumps(record, sort_keys=False, separators=(",", ":"), default=str) + "\n"


def _csv_field(value: object) -> str:
    text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_row(record: Mapping[str, Any]) -> str:
    """One CSV line (RFC 4180 quoting) of :data:`CSV_COLUMNS` from a :func:`stats_record`."""
    sync = record["sync"]
    counters = record["counters"]
    duration = record["request_duration"]
    sources = record["sources"]
    row = {
        "timestamp": record["timestamp"],
        **{k: sync[k] for k in ("synchronized", "leap", "stratum", "reference_id")},
        **{
            k: sync[k]
            for k in (
                "offset_seconds",
                "frequency_ppm",
                "root_delay_seconds",
                "root_dispersion_seconds",
            )
        },
        "received": counters["received"],
        "responded": counters["responded"],
        **{f"requests_v{v}": counters[f"request_v{v}"] for v in range(1, 5)},
        "dropped": sum(record["drops"].values()),
        "kod_sent": sum(counters[k] for k in ("kod_rate", "kod_deny", "kod_rstr", "kod_ntsn")),
        "request_duration_count": duration["count"],
        "request_duration_sum_seconds": duration["sum_seconds"],
        "sources": len(sources),
        "sources_reachable": sum(1 for s in sources if s.get("reach")),
    }
    return ",".join(_csv_field(row[c]) for c in CSV_COLUMNS) + "\r\n"


def csv_header() -> str:
    return ",".join(CSV_COLUMNS) + "\r\n"


# -- performance summaries (log_performance_metrics) ----------------------------


@dataclass(frozen=True, slots=True)
class PerformanceSummary:
    """Rates over one interval and the processing-time percentiles."""

    interval_s: float
    requests_per_s: float
    responses_per_s: float
    drops_per_s: float
    p50_s: float | None
    """Upper bound of the bucket holding the median; inf above the last bound; None: no data."""
    p99_s: float | None


def histogram_quantile(q: float, bucket_counts: Sequence[int]) -> float | None:
    """The upper bound (s) of the bucket holding quantile ``q`` of per-bucket counts.

    Conservative (the true value is at most this); ``inf`` when it is in the +Inf
    bucket, None when there are no observations.
    """
    total = sum(bucket_counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(bucket_counts):
        seen += count
        if seen >= rank and count:
            return LATENCY_BOUNDS_NS[i] / 1e9 if i < len(LATENCY_BOUNDS_NS) else math.inf
    return math.inf  # pragma: no cover - seen == total >= rank at the end


def performance_summary(
    before: Sequence[int], after: Sequence[int], interval_s: float
) -> PerformanceSummary:
    """Rates and percentiles between two counter totals ``interval_s`` apart."""
    span = interval_s if interval_s > 0 else 1.0
    diff = [max(0, b - a) for a, b in zip(before, after, strict=True)]
    drops = sum(diff[drop_index(r)] for r in DropReason)
    buckets, _ = latency_counts(diff)
    return PerformanceSummary(
        interval_s=interval_s,
        requests_per_s=diff[Counter.RECEIVED] / span,
        responses_per_s=diff[Counter.RESPONDED] / span,
        drops_per_s=drops / span,
        p50_s=histogram_quantile(0.50, buckets),
        p99_s=histogram_quantile(0.99, buckets),
    )


def _duration_text(value: float | None) -> str:
    if value is None:
        return "n/a"
    if math.isinf(value):
        return f">{LATENCY_BOUNDS_NS[-1] / 1e6:g}ms"
    if value >= 1e-3:
        return f"<={value * 1e3:g}ms"
    return f"<={value * 1e6:g}us"


def summary_fields(s: PerformanceSummary) -> dict[str, object]:
    """The summary as log fields (``extra=``), numbers rounded for reading."""
    return {
        "interval_s": round(s.interval_s, 3),
        "requests_per_s": round(s.requests_per_s, 1),
        "responses_per_s": round(s.responses_per_s, 1),
        "drops_per_s": round(s.drops_per_s, 1),
        "p50": _duration_text(s.p50_s),
        "p99": _duration_text(s.p99_s),
    }


def summary_message(s: PerformanceSummary) -> str:
    return (
        f"performance: {s.requests_per_s:.1f} requests/s, {s.responses_per_s:.1f} responses/s, "
        f"{s.drops_per_s:.1f} drops/s, processing time p50 {_duration_text(s.p50_s)} "
        f"p99 {_duration_text(s.p99_s)} over {s.interval_s:.0f} s"
    )
