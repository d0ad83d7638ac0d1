"""Alert records (DESIGN §3) -> Arrow."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from voipscope.output.schema import ALERT_SCHEMA


def alerts_to_batch(records: Sequence[dict[str, Any]]) -> pa.RecordBatch:
    rows = []
    for r in records:
        row = {name: r.get(name) for name in ALERT_SCHEMA.names}
        row["data"] = json.dumps(r.get("data") or {}, sort_keys=True)
        row["evidence"] = list(row["evidence"] or [])
        rows.append(row)
    return pa.RecordBatch.from_pylist(rows, schema=ALERT_SCHEMA)
