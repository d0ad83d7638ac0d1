"""Anomaly records (DESIGN §3, §4) -> Arrow, for their own output file."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from voipscope.anomalies import Anomaly
from voipscope.output.schema import ANOMALY_SCHEMA


def anomalies_to_batch(records: Sequence[Anomaly]) -> pa.RecordBatch:
    """Records in the order they were seen. Only the first ``anomalies.max_records_per_name``
    of each name are kept as records; the run stats have the exact counts."""
    ordered = sorted(records, key=lambda a: (a.ts is None, a.ts or 0.0))
    return pa.RecordBatch.from_pylist(
        [
            {
                "ts": a.ts,
                "name": a.name,
                "flow_id": a.flow_id,
                "src_ip": a.src_ip,
                "dst_ip": a.dst_ip,
                "detail": a.detail,
            }
            for a in ordered
        ],
        schema=ANOMALY_SCHEMA,
    )
