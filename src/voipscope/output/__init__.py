"""Output: record schemas and writers (JSONL, CSV, Parquet, console)."""

from voipscope.output.flow_records import flows_to_batch
from voipscope.output.schema import ALERT_SCHEMA, ANOMALY_SCHEMA, CALL_SCHEMA, FLOW_SCHEMA
from voipscope.output.writers import FORMATS, open_writer

__all__ = [
    "ALERT_SCHEMA",
    "ANOMALY_SCHEMA",
    "CALL_SCHEMA",
    "FLOW_SCHEMA",
    "FORMATS",
    "flows_to_batch",
    "open_writer",
]
