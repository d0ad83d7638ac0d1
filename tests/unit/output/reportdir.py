"""An analyze output directory written from records given by hand, for report tests:
the same writers and schemas analyze uses, without a capture."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from voipscope.anomalies import Anomaly
from voipscope.output import ALERT_SCHEMA, ANOMALY_SCHEMA, CALL_SCHEMA, FLOW_SCHEMA, open_writer
from voipscope.output.alert_records import alerts_to_batch
from voipscope.output.anomaly_records import anomalies_to_batch
from voipscope.output.call_records import calls_to_batch, streams_to_batch
from voipscope.output.schema import FLAT_STREAM_SCHEMA

T0 = 1_700_000_000.0


def flows_table(columns: dict[str, Sequence[Any]]) -> pa.Table:
    """A Flow table with these columns; the others null (flow_id and proto filled in)."""
    n = len(next(iter(columns.values())))
    cols = {"flow_id": list(range(n)), "proto": ["udp"] * n, **columns}
    arrays = [
        pa.array(cols[f.name], f.type) if f.name in cols else pa.nulls(n, f.type)
        for f in FLOW_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=FLOW_SCHEMA)


def flow(**fields: Any) -> dict[str, Any]:
    return {
        "first_seen": T0,
        "last_seen": T0 + 1,
        "category": "voip-signaling",
        "protocol": "SIP",
        "src_ip": "10.0.0.1",
        "dst_ip": "10.0.0.2",
        **fields,
    }


def call(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "call_id": f"call-{n}",
        "protocol": "SIP",
        "kind": "call",
        "caller": f"sip:a{n}@x",
        "callee": f"sip:b{n}@y",
        "start": T0 + n,
        "end": T0 + n + 30,
        "duration_s": 30.0,
        "state": "answered",
        "final_code": 200,
        "streams": [],
        **fields,
    }


def stream(**fields: Any) -> dict[str, Any]:
    return {
        "src_ip": "10.0.0.1",
        "src_port": 4000,
        "dst_ip": "10.0.0.2",
        "dst_port": 5000,
        "codec": "PCMU/8000/1",
        "packets": 100,
        "lost": 0,
        "loss_pct": 0.0,
        "jitter_ms": 2.0,
        "mos": 4.4,
        "first_seen": T0,
        "last_seen": T0 + 2,
        "talk_spurts": [],
        **fields,
    }


def alert(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "ts": T0 + n,
        "kind": "sip-scan",
        "severity": "medium",
        "src_ip": "10.9.9.9",
        "dst_ip": "10.0.0.2",
        "summary": f"scan {n}",
        "evidence": [f"e{n}"],
        "data": {},
        **fields,
    }


def write_dir(
    out: Path,
    flows: Sequence[dict[str, Any]] | pa.Table = (),
    calls: Sequence[dict[str, Any]] = (),
    alerts: Sequence[dict[str, Any]] = (),
    anomalies: Sequence[Anomaly] = (),
    summary: dict[str, Any] | None = None,
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    if not isinstance(flows, pa.Table):
        names = sorted({k for f in flows for k in f}) or ["first_seen"]
        flows = flows_table({k: [f.get(k) for f in flows] for k in names})
    pq.write_table(flows, out / "flows.parquet")
    for fmt, name, schema, batch in (
        ("parquet", "calls.parquet", CALL_SCHEMA, calls_to_batch(calls)),
        ("parquet", "streams.parquet", FLAT_STREAM_SCHEMA, streams_to_batch(calls)),
        ("jsonl", "alerts.jsonl", ALERT_SCHEMA, alerts_to_batch(alerts)),
        ("jsonl", "anomalies.jsonl", ANOMALY_SCHEMA, anomalies_to_batch(anomalies)),
    ):
        writer = open_writer(fmt, str(out / name), schema)
        writer.write(batch)
        writer.close()
    run = {"packets": 1000, "inputs": [{"path": "test.pcap", "format": "pcap", "packets": 1000}]}
    (out / "summary.json").write_text(json.dumps(summary or {"run": run}))
    return out
