"""`voipscope analyze`: everything about the inputs in one pass, written to a directory.

flows.parquet, calls.parquet, streams.parquet (the calls' streams flattened),
alerts.jsonl, anomalies.jsonl and summary.json, then report.html read back from them
(voipscope.output.report), plus a short summary on stdout.
"""

from __future__ import annotations

import collections
import contextlib
import json
import traceback
from pathlib import Path
from typing import Any

import pyarrow as pa

from voipscope.cli.scaled import ScaleOptions, input_runs


def run_analyze(pipeline, paths: list[str], out_dir: Path, detect_cfg=None,  # type: ignore[no-untyped-def]
                scale: ScaleOptions | None = None) -> dict[str, Any]:  # fmt: skip
    """Write the records of ``paths`` under ``out_dir``; returns the summary written.
    ``scale`` (--workers/--scheduler): the inputs run side by side on a cluster."""

    # The cluster first: one that cannot be used leaves an existing directory alone.
    cluster = scale.open(len(paths)) if scale is not None and scale.wanted else None
    with cluster if cluster is not None else contextlib.nullcontext():
        return _write_all(pipeline, paths, out_dir, detect_cfg, cluster)


def _write_all(pipeline, paths: list[str], out_dir: Path, detect_cfg, cluster) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from voipscope.output import ALERT_SCHEMA, ANOMALY_SCHEMA, CALL_SCHEMA, FLOW_SCHEMA, open_writer
    from voipscope.output.alert_records import alerts_to_batch
    from voipscope.output.anomaly_records import anomalies_to_batch
    from voipscope.output.call_records import calls_to_batch, streams_to_batch
    from voipscope.output.schema import FLAT_STREAM_SCHEMA

    out_dir.mkdir(parents=True, exist_ok=True)
    writers = {
        "flows": open_writer("parquet", str(out_dir / "flows.parquet"), FLOW_SCHEMA),
        "calls": open_writer("parquet", str(out_dir / "calls.parquet"), CALL_SCHEMA),
        "streams": open_writer("parquet", str(out_dir / "streams.parquet"), FLAT_STREAM_SCHEMA),
        "alerts": open_writer("jsonl", str(out_dir / "alerts.jsonl"), ALERT_SCHEMA),
    }
    counts: dict[str, collections.Counter[str]] = {
        "flows by category": collections.Counter(),
        "flows by protocol": collections.Counter(),
        "calls by state": collections.Counter(),
        "alerts by kind": collections.Counter(),
        "alerts by severity": collections.Counter(),
    }
    streams = 0
    if cluster is not None:
        runs = input_runs(cluster, paths, pipeline, {"flows", "calls", "alerts"}, detect_cfg)
    else:
        runs = ((p, pipeline.run_all(p, detect_config=detect_cfg)) for p in paths)
    try:
        for _, events in runs:
            for kind, payload in events:
                if kind == "flows":
                    assert isinstance(payload, pa.RecordBatch)
                    writers["flows"].write(payload)
                    for name in ("category", "protocol"):
                        values = payload.column(name).to_pylist()
                        counts[f"flows by {name}"].update(v or "-" for v in values)
                elif kind == "calls":
                    assert isinstance(payload, list)
                    writers["calls"].write(calls_to_batch(payload))
                    flat = streams_to_batch(payload)
                    streams += flat.num_rows
                    writers["streams"].write(flat)
                    counts["calls by state"].update(
                        f"{r.get('kind') or 'call'} {r.get('state')}" for r in payload
                    )
                else:
                    assert isinstance(payload, list)
                    writers["alerts"].write(alerts_to_batch(payload))
                    counts["alerts by kind"].update(r["kind"] for r in payload)
                    counts["alerts by severity"].update(r["severity"] for r in payload)
    finally:
        for writer in writers.values():
            writer.close()
    anomalies = open_writer("jsonl", str(out_dir / "anomalies.jsonl"), ANOMALY_SCHEMA)
    anomalies.write(anomalies_to_batch(pipeline.stats.anomalies.records))
    anomalies.close()
    from voipscope._version import __version__

    summary = {
        "voipscope_version": __version__,  # of the run that wrote the records
        "inputs": paths,
        "flows": sum(counts["flows by category"].values()),
        "calls": sum(counts["calls by state"].values()),
        "streams": streams,
        "alerts": sum(counts["alerts by kind"].values()),
        **{name: dict(c.most_common()) for name, c in counts.items()},
        "run": pipeline.stats.to_dict(),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def make_report(out_dir: Path, show_traceback: bool = False) -> tuple[Path | None, str | None]:
    """Write ``out_dir/report.html`` from the records already there: (its path, None), or
    (None, a one-line error). The report is written last and alone (to a temporary file,
    then renamed), so its failure never costs the records written before it."""
    from voipscope.output.report import REPORT_NAME, write_report

    target = out_dir / REPORT_NAME
    try:
        return write_report(out_dir), None
    except Exception as exc:  # OSError, or a bug in the report: the records are still good
        if isinstance(exc, OSError):
            message = f"{target}: cannot write the report ({exc.strerror or exc})"
        else:
            message = f"{target}: the report failed ({type(exc).__name__}: {exc})"
            if not show_traceback:
                message += "; run with --traceback for details"
        if show_traceback:
            traceback.print_exc()
    return None, f"{message}; the other records in {out_dir}/ are written"


def print_summary(summary: dict[str, Any], out_dir: Path, report: Path | None = None) -> None:
    from rich.console import Console

    console = Console(highlight=False)
    console.print(
        f"[bold]{summary['flows']}[/bold] flows, [bold]{summary['calls']}[/bold] calls and "
        f"registrations ({summary['streams']} media streams), "
        f"[bold]{summary['alerts']}[/bold] alerts → {out_dir}/"
    )
    if report is not None:
        size_kb = report.stat().st_size / 1024
        # soft_wrap: a path cut over two lines cannot be copied
        console.print(f"  report: {report} ({size_kb:,.0f} kB)", markup=False, soft_wrap=True)
    for name in ("flows by category", "calls by state", "alerts by severity", "alerts by kind"):
        if summary[name]:
            parts = ", ".join(f"{k} {v}" for k, v in summary[name].items())
            console.print(f"  {name}: {parts}")
