"""Action records (voipscope.inline) as Arrow batches in ACTION_SCHEMA."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from voipscope.output.schema import ACTION_SCHEMA


def actions_to_batch(records: Sequence[dict[str, Any]]) -> pa.RecordBatch:
    rows = [{name: r.get(name) for name in ACTION_SCHEMA.names} for r in records]
    return pa.RecordBatch.from_pylist(rows, schema=ACTION_SCHEMA)
