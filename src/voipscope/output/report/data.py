"""What the report shows, read back from the files ``analyze`` wrote in its directory.

Reading the files (not the records in memory) keeps the report independent of the run
and its memory bounded by a Parquet row group, not by the capture (see ``query``); every
table keeps at most ``Limits`` rows and says how many more there are.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from voipscope.output.report.query import (
    UNKNOWN,
    Histogram,
    chart_span,
    count_by,
    first_rows,
    histogram,
    lines,
    row_groups,
    top,
)

FLOWS, CALLS, STREAMS = "flows.parquet", "calls.parquet", "streams.parquet"
ALERTS, ANOMALIES, SUMMARY = "alerts.jsonl", "anomalies.jsonl", "summary.json"
CATEGORIES = ("voip-signaling", "voip-media", "other", "unknown")  # DESIGN §3, this order
VOIP_CATEGORIES = ("voip-signaling", "voip-media")
SEVERITIES = ("high", "medium", "low")  # worst first
REGISTRATION = "registration"
# ITU-T G.107 Annex B user satisfaction by R, as MOS (the E-model's own mapping):
# R 90 = MOS 4.34, R 80 = 4.03, R 70 = 3.60, R 60 = 3.10, R 50 = 2.58.
MOS_BANDS = (
    (4.34, "≥ 4.34 very satisfied"),
    (4.03, "4.03–4.34 satisfied"),
    (3.60, "3.60–4.03 some dissatisfied"),
    (3.10, "3.10–3.60 many dissatisfied"),
    (2.58, "2.58–3.10 most dissatisfied"),
    (-math.inf, "< 2.58 not recommended"),
)
LOSS_BANDS_PCT = (
    (10.0, "> 10 %"),
    (3.0, "3–10 %"),
    (1.0, "1–3 %"),
    (0.0, "0–1 %"),
    (-math.inf, "0 % (or duplicates)"),
)
JITTER_BANDS_MS = (
    (100.0, "≥ 100 ms"),
    (50.0, "50–100 ms"),
    (30.0, "30–50 ms"),
    (10.0, "10–30 ms"),
    (-math.inf, "< 10 ms"),
)


@dataclass(frozen=True, slots=True)
class Limits:
    """Rows each table shows; the rest are counted and named in their file."""

    calls: int = 500
    registrations: int = 200
    streams: int = 300
    alerts: int = 300
    voip_flows: int = 200
    anomaly_names: int = 200
    timeline_calls: int = 40  # lanes of the call timeline
    spurt_calls: int = 6  # calls drawn with their talk spurts
    spurt_lanes: int = 8  # streams per such call
    evidence_items: int = 5  # evidence strings per alert or flow
    bars: int = 15  # bars of a count chart; the rest sum into one "others" bar


@dataclass(slots=True)
class SpurtCall:
    call_id: str | None
    title: str
    streams: list[dict[str, Any]]


@dataclass(slots=True)
class ReportData:
    generated_at: dt.datetime
    summary: dict[str, Any]
    span: tuple[float, float] | None = None  # first to last packet of the flows
    chart_span: tuple[float, float] | None = None  # the charts' time range (see OUTLIER_*)
    flows_outside_charts: int = 0
    flows_total: int = 0
    flows_by_category: list[tuple[str, int]] = field(default_factory=list)
    flows_by_protocol: list[tuple[str, int]] = field(default_factory=list)
    flows_by_app: list[tuple[str, int]] = field(default_factory=list)
    flows_without_app: int = 0
    flow_histogram: Histogram | None = None
    voip_flows_total: int = 0
    voip_flows: list[dict[str, Any]] = field(default_factory=list)
    calls_total: int = 0
    registrations_total: int = 0
    calls_by_state: list[tuple[str, int]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    registrations: list[dict[str, Any]] = field(default_factory=list)
    call_histogram: Histogram | None = None
    streams_total: int = 0
    mos_bands: list[tuple[str, int]] = field(default_factory=list)
    loss_bands: list[tuple[str, int]] = field(default_factory=list)
    jitter_bands: list[tuple[str, int]] = field(default_factory=list)
    streams: list[dict[str, Any]] = field(default_factory=list)
    spurt_calls_total: int = 0
    spurt_calls: list[SpurtCall] = field(default_factory=list)
    alerts_total: int = 0
    alerts_by_severity: list[tuple[str, int]] = field(default_factory=list)
    alerts_by_kind: list[tuple[str, int]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    anomalies_total: int = 0
    anomaly_names_total: int = 0
    anomalies: list[tuple[str, int, dict[str, Any] | None]] = field(default_factory=list)

    @property
    def packets(self) -> int | None:
        run = self.summary.get("run") or {}
        return run.get("packets")


def load(out_dir: Path, limits: Limits, generated_at: dt.datetime) -> ReportData:
    summary_path = out_dir / SUMMARY
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    data = ReportData(generated_at=generated_at, summary=summary)
    _flows(data, out_dir / FLOWS, limits)
    _calls(data, out_dir / CALLS, limits)
    _streams(data, out_dir / STREAMS, out_dir / CALLS, limits)
    _alerts(data, out_dir / ALERTS, limits)
    _anomalies(data, out_dir / ANOMALIES, limits)
    return data


# The columns the tables show (the rest of a record stays in its file).
FLOW_COLUMNS = ("flow_id", "first_seen", "proto", "src_ip", "src_port", "dst_ip", "dst_port",
                "category", "protocol", "app", "media", "src2dst_packets", "dst2src_packets",
                "src2dst_bytes", "dst2src_bytes", "confidence", "evidence", "call_id")  # fmt: skip
CALL_COLUMNS = ("call_id", "protocol", "kind", "app", "caller", "callee", "start", "answer",
                "end", "duration_s", "state", "final_code", "streams", "rtcp_only_streams",
                "user_agents", "caller_ip", "callee_ip", "result", "challenges",
                "credentials_rejected", "auth_usernames", "evidence")  # fmt: skip


def _flows(data: ReportData, path: Path, limits: Limits) -> None:
    lf = pl.scan_parquet(path)
    row = (
        lf.select(
            pl.len().alias("n"),
            pl.col("first_seen").min().alias("t0"),
            pl.col("last_seen").max().alias("t1"),
        )
        .collect()
        .row(0)
    )
    data.flows_total = int(row[0])
    if row[1] is not None and row[2] is not None:
        data.span = (float(row[1]), float(row[2]))
    by_category = count_by(lf, pl.col("category"))
    data.flows_by_category = [(c, by_category.pop(c, 0)) for c in CATEGORIES]
    data.flows_by_category += sorted(by_category.items())  # a category outside the contract
    data.flows_by_protocol = top(count_by(lf, pl.col("protocol")), limits.bars, "protocols")
    apps = count_by(lf, pl.col("app"))
    data.flows_without_app = apps.pop(UNKNOWN, 0)
    data.flows_by_app = top(apps, limits.bars, "apps")
    if data.span is not None:
        data.chart_span, data.flows_outside_charts = chart_span(lf, data.flows_total)
        data.flow_histogram = histogram(
            lf, "first_seen", pl.col("category"), data.chart_span, CATEGORIES
        )
    is_voip = pl.col("category").is_in(VOIP_CATEGORIES)
    voip = lf.filter(is_voip).select(pl.len()).collect()
    data.voip_flows_total = int(voip.item())
    order = ["first_seen", "flow_id"]
    data.voip_flows = first_rows(path, order, limits.voip_flows, is_voip, None, FLOW_COLUMNS)


def _is_registration() -> pl.Expr:
    return pl.col("kind").fill_null("call") == REGISTRATION


def _calls(data: ReportData, path: Path, limits: Limits) -> None:
    lf = pl.scan_parquet(path)
    kinds = count_by(lf, pl.col("kind").fill_null("call"))
    data.registrations_total = kinds.pop(REGISTRATION, 0)
    data.calls_total = sum(kinds.values())
    states = count_by(
        lf.filter(~_is_registration()),
        pl.col("kind").fill_null("call") + pl.lit(" ") + pl.col("state").fill_null(UNKNOWN),
    )
    data.calls_by_state = sorted(states.items(), key=lambda kv: (-kv[1], kv[0]))
    by_start = ["start", "call_id"]
    data.calls = first_rows(path, by_start, limits.calls, ~_is_registration(), None, CALL_COLUMNS)
    data.registrations = first_rows(
        path, by_start, limits.registrations, _is_registration(), None, CALL_COLUMNS
    )
    if data.span is None:  # calls without flows: only from records written by hand
        row = lf.select(pl.col("start").min(), pl.col("end").max()).collect()
        row = row.row(0)
        if row[0] is not None:
            data.span = (float(row[0]), float(row[1] if row[1] is not None else row[0]))
            data.chart_span = data.span
    if data.chart_span is not None and data.calls_total + data.registrations_total:
        data.call_histogram = histogram(
            lf,
            "start",
            pl.col("kind").fill_null("call"),
            data.chart_span,
            ("call", "app-call", "media-only", REGISTRATION),
        )


def _band(expr: pl.Expr, bands: tuple[tuple[float, str], ...]) -> pl.Expr:
    """The label of the first band whose floor ``expr`` reaches; "unknown" for null."""
    out: Any = pl.when(expr.is_null()).then(pl.lit(UNKNOWN))
    for floor, label in bands:
        out = out.when(expr >= floor).then(pl.lit(label)) if math.isfinite(floor) else out
    return out.otherwise(pl.lit(bands[-1][1]))


def _band_counts(
    lf: pl.LazyFrame, column: str, bands: tuple[tuple[float, str], ...]
) -> list[tuple[str, int]]:
    found = count_by(lf, _band(pl.col(column), bands))
    return [(label, found.get(label, 0)) for _, label in bands] + [(UNKNOWN, found[UNKNOWN])]


# A stream's longest gap and its media outages (calls.media_outages).
OUTAGE_COLUMNS = (
    "longest_gap_ms",
    "outages",
    "outage_s",
    "longest_outage_ms",
    "longest_outage_start",
    "longest_outage_lost",
)
STREAM_TABLE_COLUMNS = (
    "call_id",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "ssrc",
    "codec",
    "payload_type",
    "first_seen",
    "last_seen",
    "packets",
    "lost",
    "loss_pct",
    "jitter_ms",
    "max_delta_ms",
    "mos",
    "mos_reason",
    "burst_ratio",
    *OUTAGE_COLUMNS,
)


def _streams(data: ReportData, path: Path, calls: Path, limits: Limits) -> None:
    lf = pl.scan_parquet(path)
    data.streams_total = int(lf.select(pl.len()).collect().item())
    data.mos_bands = _band_counts(lf, "mos", MOS_BANDS)
    # Loss above 0 but at most 1 % is the "0–1 %" band: the floor of that band is open.
    loss = pl.when(pl.col("loss_pct") <= 0).then(pl.lit(-1.0)).otherwise(pl.col("loss_pct"))
    loss_counts = count_by(lf, _band(loss, LOSS_BANDS_PCT))
    data.loss_bands = [(label, loss_counts.get(label, 0)) for _, label in LOSS_BANDS_PCT]
    data.loss_bands = [*reversed(data.loss_bands), (UNKNOWN, loss_counts[UNKNOWN])]
    jitter = _band_counts(lf, "jitter_ms", JITTER_BANDS_MS)
    data.jitter_bands = [*reversed(jitter[:-1]), jitter[-1]]
    # Worst first: the lowest MOS, then the highest loss; streams without a MOS after.
    order, descending = ["mos", "loss_pct", "first_seen"], [False, True, False]
    data.streams = first_rows(path, order, limits.streams, None, descending, STREAM_TABLE_COLUMNS)
    _spurts(data, path, calls, limits)


SPURT_COLUMNS = ("call_id", "src_ip", "src_port", "dst_ip", "dst_port", "codec",
                 "first_seen", "last_seen", "talk_spurts", "activity_method",
                 *OUTAGE_COLUMNS)  # fmt: skip


def _spurts(data: ReportData, path: Path, calls: Path, limits: Limits) -> None:
    """The first ``limits.spurt_calls`` calls (by first packet) with talk spurts, and
    their streams that have some. Talk spurts are nested lists: read a row group at a
    time, keeping only the best candidates (exact: a call's earliest stream wins)."""
    earliest: dict[str | None, float] = {}  # candidate call -> its earliest stream
    with_spurts: set[str | None] = set()  # ids only, for the count
    for _, group in row_groups(path, ["call_id", "first_seen", "talk_spurts"]):
        has = pc.fill_null(pc.greater(pc.list_value_length(group["talk_spurts"]), 0), False)
        picked = group.filter(has)
        for call_id, first in zip(picked["call_id"].to_pylist(),
                                  picked["first_seen"].to_pylist(), strict=True):  # fmt: skip
            with_spurts.add(call_id)
            first = math.inf if first is None else first
            earliest[call_id] = min(first, earliest.get(call_id, math.inf))
        if len(earliest) > 4 * limits.spurt_calls:
            earliest = dict(heapq.nsmallest(limits.spurt_calls, earliest.items(), _by_time))
    data.spurt_calls_total = len(with_spurts)
    ids = [cid for cid, _ in heapq.nsmallest(limits.spurt_calls, earliest.items(), _by_time)]
    if not ids:
        return
    rows: dict[str | None, list[dict[str, Any]]] = {cid: [] for cid in ids}
    for _, group in row_groups(path, SPURT_COLUMNS):
        mine = pc.is_in(group["call_id"], value_set=pa.array(ids, pa.string()))
        has = pc.greater(pc.list_value_length(group["talk_spurts"]), 0)
        for row in group.filter(pc.fill_null(pc.and_(mine, has), False)).to_pylist():
            rows[row["call_id"]].append(row)
    who = (
        pl.scan_parquet(calls)
        .filter(pl.col("call_id").is_in(ids) & ~_is_registration())
        .select("call_id", "caller", "callee", "caller_ip", "callee_ip")
        .unique("call_id", keep="first", maintain_order=True)
        .collect()
    )
    names = {r["call_id"]: r for r in who.to_dicts()}
    for call_id in ids:
        person = names.get(call_id) or {}
        caller = person.get("caller") or person.get("caller_ip") or "?"
        callee = person.get("callee") or person.get("callee_ip") or "?"
        streams = sorted(rows[call_id], key=lambda r: r["first_seen"] or 0.0)
        data.spurt_calls.append(
            SpurtCall(call_id, f"{caller} → {callee}", streams[: limits.spurt_lanes])
        )


def _by_time(item: tuple[str | None, float]) -> tuple[float, str]:
    return item[1], item[0] or ""


def _alerts(data: ReportData, path: Path, limits: Limits) -> None:
    """Counts over every alert; the table keeps the worst ``limits.alerts``: highest
    severity first, then the earliest."""
    by_severity: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    kept: list[tuple[int, float, int, dict[str, Any]]] = []
    for number, record in lines(path):
        by_severity[record.get("severity") or UNKNOWN] += 1
        by_kind[record.get("kind") or UNKNOWN] += 1
        record["line"] = number
        ts = record.get("ts")
        ts = math.inf if ts is None else ts  # undated last
        key = (rank.get(record.get("severity") or "", len(rank)), ts, number)
        kept.append((*key, record))
        if len(kept) >= 2 * limits.alerts:  # trim now and then: memory stays O(limit)
            kept = heapq.nsmallest(limits.alerts, kept, key=lambda k: k[:3])
    data.alerts = [k[3] for k in heapq.nsmallest(limits.alerts, kept, key=lambda k: k[:3])]
    data.alerts_total = sum(by_severity.values())
    data.alerts_by_severity = [(s, by_severity.pop(s, 0)) for s in SEVERITIES]
    data.alerts_by_severity += sorted(by_severity.items())
    data.alerts_by_kind = top(by_kind, limits.bars, "kinds")


def _anomalies(data: ReportData, path: Path, limits: Limits) -> None:
    """Exact counts per name from the run's stats (the JSONL keeps only the first
    ``anomalies.max_records_per_name`` of each), the first record of each as example."""
    examples: dict[str, dict[str, Any]] = {}
    kept: Counter[str] = Counter()
    for _, record in lines(path):
        name = record.get("name") or UNKNOWN
        kept[name] += 1
        examples.setdefault(name, record)  # names are the code's own: a bounded set
    exact = (data.summary.get("run") or {}).get("anomalies")
    counts = Counter(exact) if isinstance(exact, dict) else kept
    data.anomalies_total = sum(counts.values())
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    data.anomaly_names_total = len(ranked)
    data.anomalies = [(name, n, examples.get(name)) for name, n in ranked[: limits.anomaly_names]]
