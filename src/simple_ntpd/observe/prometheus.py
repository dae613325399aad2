"""The Prometheus view of the server: a custom collector over snapshots.

:class:`NtpCollector` owns the metric names, types, help texts and labels
(:data:`METRICS` lists them all; docs/observability.md documents each). It
reads nothing itself: at every scrape it calls the callables it was built with
(summed worker counters, the published served-clock state, per-source
snapshots, the latency histogram, the kernel's socket drops) and turns the values into
metric families.
The data plane therefore pays nothing per packet for metrics beyond its plain
shared-memory counter increments; all the work happens here, at scrape time.

Rendering to the exposition format and process metrics belong to the shell
(``runtime/http_server.py``), which owns the registry.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from simple_ntpd.reasons import DropReason
from simple_ntpd.served_clock import ServedClockState
from simple_ntpd.stats import (
    COUNTERS_PER_SLOT,
    LATENCY_BOUNDS_NS,
    Counter,
    drop_index,
    latency_counts,
)

log = logging.getLogger(__name__)

LABEL_KEYS = ("environment", "datacenter", "region")
"""The deployment labels (SIMPLE_NTPD_ENVIRONMENT, _DATACENTER, _REGION)."""

SELECTED_STATES = frozenset({"selected", "sys.peer", "system_peer"})
"""Source states that mean "this source steers the served clock"."""

LatencyHistogram = tuple[Sequence[float], Sequence[int], float]
"""(bucket upper bounds in seconds, cumulative counts, sum of observations in seconds)."""


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A metric the collector emits: its exposed name, type, labels and help."""

    name: str
    type: str
    labels: tuple[str, ...]
    help: str


def _spec(name: str, kind: str, labels: tuple[str, ...], text: str) -> tuple[str, MetricSpec]:
    return name, MetricSpec(name, kind, labels, text)


METRICS: Mapping[str, MetricSpec] = MappingProxyType(
    dict(
        [
            # Traffic, from the per-worker counters (simple_ntpd.stats).
            _spec("ntp_received_packets_total", "counter", (), "UDP datagrams received."),
            _spec(
                "ntp_requests_total",
                "counter",
                ("version",),
                "Answerable client requests by NTP version.",
            ),
            _spec(
                "ntp_responses_total",
                "counter",
                (),
                "Responses sent, kiss-o'-death included.",
            ),
            _spec(
                "ntp_authenticated_responses_total",
                "counter",
                (),
                "Responses sent with a MAC or NTS authenticator.",
            ),
            _spec(
                "ntp_unsynchronized_responses_total",
                "counter",
                (),
                "Responses sent with leap indicator 3 (no usable reference).",
            ),
            _spec(
                "ntp_dropped_total",
                "counter",
                ("reason",),
                "Received datagrams that got no response, by reason.",
            ),
            _spec(
                "ntp_socket_drops_total",
                "counter",
                (),
                "Datagrams the kernel dropped on the NTP sockets before a worker read them "
                "(receive buffer full): /proc/net/udp 'drops'.",
            ),
            _spec("ntp_kod_sent_total", "counter", ("code",), "Kiss-o'-death responses by code."),
            _spec(
                "ntp_crypto_nak_sent_total",
                "counter",
                (),
                "Crypto-NAK responses sent to requests with an unknown key.",
            ),
            _spec("ntp_received_bytes_total", "counter", (), "Bytes of UDP payload received."),
            _spec("ntp_sent_bytes_total", "counter", (), "Bytes of UDP payload sent."),
            # The served clock (simple_ntpd.served_clock).
            _spec(
                "ntp_synchronized",
                "gauge",
                (),
                "1 when the server serves synchronized time, else 0.",
            ),
            _spec("ntp_leap_indicator", "gauge", (), "Leap indicator served (3: unsynchronized)."),
            _spec("ntp_stratum", "gauge", (), "Stratum served (0 when unsynchronized)."),
            _spec(
                "ntp_offset_seconds",
                "gauge",
                (),
                "Correction from the system clock to served time, now.",
            ),
            _spec(
                "ntp_frequency_ppm",
                "gauge",
                (),
                "Frequency of the correction, parts per million.",
            ),
            _spec(
                "ntp_root_delay_seconds",
                "gauge",
                (),
                "Round-trip delay to the primary reference.",
            ),
            _spec(
                "ntp_root_dispersion_seconds",
                "gauge",
                (),
                "Dispersion to the primary reference, grown to now.",
            ),
            _spec(
                "ntp_precision_seconds",
                "gauge",
                (),
                "Precision of the served clock.",
            ),
            _spec(
                "ntp_reference_timestamp_seconds",
                "gauge",
                (),
                "Unix time of the last update of the reference (0 when never).",
            ),
            _spec(
                "ntp_reference_info",
                "info",
                ("reference_id",),
                "Reference identifier served.",
            ),
            # Upstream sources (timekeeping).
            _spec(
                "ntp_source_offset_seconds",
                "gauge",
                ("source",),
                "Offset of the upstream source.",
            ),
            _spec(
                "ntp_source_delay_seconds",
                "gauge",
                ("source",),
                "Round-trip delay to the source.",
            ),
            _spec("ntp_source_jitter_seconds", "gauge", ("source",), "Jitter of the source."),
            _spec(
                "ntp_source_reachability",
                "gauge",
                ("source",),
                "Reach register of the source (0-255; 255 = the last 8 polls answered).",
            ),
            _spec("ntp_source_stratum", "gauge", ("source",), "Stratum of the source."),
            _spec(
                "ntp_source_selected",
                "gauge",
                ("source", "state"),
                "1 when the source steers the served clock, else 0; state is its standing.",
            ),
            _spec("ntp_sources", "gauge", (), "Configured upstream sources."),
            # Request processing.
            _spec(
                "ntp_request_duration_seconds",
                "histogram",
                (),
                "Time from kernel receive timestamp to send, per response.",
            ),
            # The collector itself.
            _spec(
                "ntp_collector_errors_total",
                "counter",
                ("section",),
                "Scrapes where a section of metrics could not be read.",
            ),
        ]
    )
)

_KOD_CODES = (
    ("RATE", Counter.KOD_RATE),
    ("DENY", Counter.KOD_DENY),
    ("RSTR", Counter.KOD_RSTR),
    ("NTSN", Counter.KOD_NTSN),
)
_SIMPLE_COUNTERS = (
    ("ntp_received_packets_total", Counter.RECEIVED),
    ("ntp_responses_total", Counter.RESPONDED),
    ("ntp_authenticated_responses_total", Counter.AUTHENTICATED),
    ("ntp_unsynchronized_responses_total", Counter.UNSYNCHRONIZED_RESPONSES),
    ("ntp_crypto_nak_sent_total", Counter.CRYPTO_NAK),
    ("ntp_received_bytes_total", Counter.RECEIVED_BYTES),
    ("ntp_sent_bytes_total", Counter.SENT_BYTES),
)
_SOURCE_GAUGES = (
    ("ntp_source_offset_seconds", "offset"),
    ("ntp_source_delay_seconds", "delay"),
    ("ntp_source_jitter_seconds", "jitter"),
    ("ntp_source_reachability", "reach"),
    ("ntp_source_stratum", "stratum"),
)


REQUEST_DURATION_BOUNDS_NS: tuple[int, ...] = LATENCY_BOUNDS_NS
"""Upper bounds (ns) of the ``ntp_request_duration_seconds`` buckets, as the
workers count them in shared memory (:data:`simple_ntpd.stats.LATENCY_BOUNDS_NS`)."""

REQUEST_DURATION_BOUNDS: tuple[float, ...] = tuple(b / 1e9 for b in REQUEST_DURATION_BOUNDS_NS)
"""The same bounds in seconds: tens of microseconds is where a healthy server
answers, milliseconds is trouble."""


def duration_bucket(duration_ns: int, bounds_ns: Sequence[int] = REQUEST_DURATION_BOUNDS_NS) -> int:
    """Index of the bucket a duration falls in, ``len(bounds_ns)`` for +Inf.

    For a data-plane worker that keeps one plain counter per bucket (plus one for
    the sum in nanoseconds) in its shared-memory slot; bisect keeps it O(log n).
    """
    return bisect.bisect_left(bounds_ns, duration_ns)


def latency_from_bucket_counts(
    bucket_counts: Sequence[int],
    sum_ns: int,
    bounds: Sequence[float] = REQUEST_DURATION_BOUNDS,
) -> LatencyHistogram:
    """Per-bucket counts (one per bound plus +Inf, not cumulative) and the sum in
    nanoseconds, summed over workers, as the collector's ``latency_histogram`` wants."""
    if len(bucket_counts) != len(bounds) + 1:
        raise ValueError(f"{len(bucket_counts)} bucket counts for {len(bounds)} bounds (+Inf)")
    return list(bounds), list(itertools.accumulate(bucket_counts)), sum_ns * 1e-9


def latency_from_totals(totals: Sequence[int]) -> LatencyHistogram:
    """The processing-time histogram held in summed worker counters (:mod:`simple_ntpd.stats`)."""
    buckets, sum_ns = latency_counts(list(totals))
    return latency_from_bucket_counts(buckets, sum_ns)


def source_label(source: Mapping[str, object]) -> str:
    """The ``source`` label: the address, with the port when it is not 123.

    Two sources on one host (different ports) must not share a series.
    """
    address = str(source.get("address", ""))
    port = source.get("port")
    if not address or not isinstance(port, int) or isinstance(port, bool) or port in (0, 123):
        return address
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def reference_id_text(state: ServedClockState) -> str:
    """The refid as people write it: ASCII code at stratum 0/1, dotted quad above."""
    refid = state.reference_id
    if state.stratum <= 1:
        return refid.rstrip(b"\x00").decode("ascii", "backslashreplace")
    return ".".join(str(b) for b in refid)


def histogram_buckets(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Prometheus ``le`` buckets from upper bounds and cumulative counts.

    ``counts`` has one entry per bound, plus one for +Inf unless the last bound
    already is +Inf. Bounds must increase and counts must not decrease.
    """
    finite = list(bounds)
    if finite and math.isinf(finite[-1]):
        finite.pop()
    if len(counts) != len(finite) + 1:
        raise ValueError(
            f"histogram has {len(counts)} counts for {len(finite)} finite bounds (+Inf needed)"
        )
    if any(b <= a for a, b in itertools.pairwise(finite)):
        raise ValueError("histogram bounds must increase")
    if any(b < a for a, b in itertools.pairwise(counts)):
        raise ValueError("histogram counts must be cumulative")
    les = [repr(float(b)) for b in finite] + ["+Inf"]
    return [(le, float(c)) for le, c in zip(les, counts, strict=True)]


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class NtpCollector(Collector):
    """Collects the ``ntp_*`` metrics from callables read at scrape time.

    ``counters`` returns the summed worker counters in the layout of
    :mod:`simple_ntpd.stats`; ``served_state`` the published
    :class:`ServedClockState`; ``sources`` one mapping per upstream with keys
    ``address`` (and ``port``: see :func:`source_label`), ``stratum``, ``offset``, ``delay``,
    ``jitter`` (seconds),
    ``reach`` (int) and ``state`` (str; see :data:`SELECTED_STATES`), where a
    missing or non-numeric value omits that one sample; ``latency_histogram``
    returns :data:`LatencyHistogram`; ``socket_drops`` the kernel's drop count of
    the NTP sockets (:mod:`simple_ntpd.observe.kernel_udp`). ``now_ns`` (system time, ns) lets the
    gauges age root dispersion and the correction to the scrape time; without
    it they are reported as published. ``labels`` (non-empty values only) go on
    every sample.

    A callable that raises costs only its own section of metrics and one
    ``ntp_collector_errors_total{section}`` increment, never the whole scrape.
    """

    def __init__(
        self,
        *,
        counters: Callable[[], Sequence[int]],
        served_state: Callable[[], ServedClockState],
        sources: Callable[[], Sequence[Mapping[str, object]]] | None = None,
        labels: Mapping[str, str] = MappingProxyType({}),
        latency_histogram: Callable[[], LatencyHistogram] | None = None,
        now_ns: Callable[[], int] | None = None,
        socket_drops: Callable[[], int] | None = None,
    ) -> None:
        self._counters = counters
        self._socket_drops = socket_drops
        self._served_state = served_state
        self._sources = sources
        self._latency = latency_histogram
        self._now_ns = now_ns
        self._label_names = [k for k, v in labels.items() if v]
        self._label_values = [labels[k] for k in self._label_names]
        self._errors: dict[str, int] = {
            "counters": 0,
            "served_state": 0,
            "sources": 0,
            "latency": 0,
            "sockets": 0,
        }

    # -- helpers ----------------------------------------------------------

    def _family(self, name: str) -> CounterMetricFamily | GaugeMetricFamily:
        spec = METRICS[name]
        labels = [*spec.labels, *self._label_names]
        if spec.type == "counter":
            return CounterMetricFamily(name, spec.help, labels=labels)
        return GaugeMetricFamily(name, spec.help, labels=labels)

    def _add(
        self, family: CounterMetricFamily | GaugeMetricFamily, values: Sequence[str], v: float
    ) -> None:
        family.add_metric([*values, *self._label_values], v)

    def _gauge(self, name: str, value: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, METRICS[name].help, labels=self._label_names)
        family.add_metric(self._label_values, value)
        return family

    # -- sections ---------------------------------------------------------

    def _collect_counters(self) -> list[Metric]:
        values = list(self._counters())
        if len(values) < COUNTERS_PER_SLOT:
            raise ValueError(f"{len(values)} counters, expected {COUNTERS_PER_SLOT}")
        out: list[Metric] = []
        for name, index in _SIMPLE_COUNTERS:
            family = self._family(name)
            self._add(family, (), values[index])
            out.append(family)
        requests = self._family("ntp_requests_total")
        for version in range(1, 5):
            self._add(requests, (str(version),), values[Counter.REQUEST_V1 + version - 1])
        out.append(requests)
        dropped = self._family("ntp_dropped_total")
        for reason in DropReason:
            self._add(dropped, (reason.name.lower(),), values[drop_index(reason)])
        out.append(dropped)
        kod = self._family("ntp_kod_sent_total")
        for code, index in _KOD_CODES:
            self._add(kod, (code,), values[index])
        out.append(kod)
        return out

    def _collect_served(self) -> list[Metric]:
        state = self._served_state()
        now = self._now_ns() if self._now_ns is not None else None
        if now is None:
            offset = state.offset_ns * 1e-9
            dispersion = state.root_dispersion
        else:
            offset = (state.served_ns(now) - now) * 1e-9
            dispersion = state.root_dispersion_at(now)
        info = InfoMetricFamily(
            "ntp_reference",
            METRICS["ntp_reference_info"].help,
            labels=self._label_names,
        )
        info.add_metric(self._label_values, {"reference_id": reference_id_text(state)})
        return [
            self._gauge("ntp_synchronized", 1.0 if state.synchronized else 0.0),
            self._gauge("ntp_leap_indicator", state.leap),
            self._gauge("ntp_stratum", state.stratum),
            self._gauge("ntp_offset_seconds", offset),
            self._gauge("ntp_frequency_ppm", state.freq * 1e6),
            self._gauge("ntp_root_delay_seconds", state.root_delay),
            self._gauge("ntp_root_dispersion_seconds", dispersion),
            self._gauge("ntp_precision_seconds", 2.0**state.precision),
            self._gauge("ntp_reference_timestamp_seconds", state.reference_time_ns * 1e-9),
            info,
        ]

    def _collect_sources(self) -> list[Metric]:
        sources = list(self._sources()) if self._sources is not None else []
        families = {name: self._family(name) for name, _ in _SOURCE_GAUGES}
        selected = self._family("ntp_source_selected")
        for source in sources:
            address = source_label(source)
            if not address:
                continue
            for name, key in _SOURCE_GAUGES:
                value = _finite(source.get(key))
                if value is not None:
                    self._add(families[name], (address,), value)
            state = str(source.get("state", "unknown"))
            is_selected = 1.0 if state.lower() in SELECTED_STATES else 0.0
            self._add(selected, (address, state), is_selected)
        return [*families.values(), selected, self._gauge("ntp_sources", len(sources))]

    def _collect_latency(self) -> list[Metric]:
        if self._latency is None:
            return []
        bounds, counts, total = self._latency()
        spec = METRICS["ntp_request_duration_seconds"]
        family = HistogramMetricFamily(
            spec.name, spec.help, labels=[*spec.labels, *self._label_names]
        )
        family.add_metric(self._label_values, histogram_buckets(bounds, counts), float(total))
        return [family]

    def _collect_sockets(self) -> list[Metric]:
        if self._socket_drops is None:
            return []
        family = self._family("ntp_socket_drops_total")
        self._add(family, (), self._socket_drops())
        return [family]

    def collect(self) -> Iterator[Metric]:
        sections: tuple[tuple[str, Callable[[], list[Metric]]], ...] = (
            ("counters", self._collect_counters),
            ("served_state", self._collect_served),
            ("sources", self._collect_sources),
            ("latency", self._collect_latency),
            ("sockets", self._collect_sockets),
        )
        for section, collect in sections:
            try:
                families = collect()
            except Exception:
                # A broken reader must not blank the whole page: the other
                # sections still tell the operator what is going on.
                log.exception("metrics section %s failed", section)
                self._errors[section] += 1
                continue
            yield from families
        errors = self._family("ntp_collector_errors_total")
        for section, count in self._errors.items():
            self._add(errors, (section,), count)
        yield errors


def emitted_metric_names(collector: Collector) -> set[str]:
    """Every metric name a collect() yields, as exposed (counters with ``_total``,
    histograms and info metrics by their family name as listed in :data:`METRICS`)."""
    names: set[str] = set()
    for family in collector.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "info":
            names.add(family.name + "_info")
        else:
            names.add(family.name)
    return names
