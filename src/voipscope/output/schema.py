"""pyarrow schemas of the output records (DESIGN §3). One schema per record kind."""

from __future__ import annotations

import pyarrow as pa

FLOW_SCHEMA = pa.schema(
    [
        pa.field("flow_id", pa.int64(), nullable=False),
        pa.field("capture", pa.string()),
        pa.field("proto", pa.string(), nullable=False),
        pa.field("ip_version", pa.int8()),
        pa.field("src_ip", pa.string()),
        pa.field("src_port", pa.int32()),
        pa.field("dst_ip", pa.string()),
        pa.field("dst_port", pa.int32()),
        pa.field("first_seen", pa.float64()),
        pa.field("last_seen", pa.float64()),
        pa.field("duration_s", pa.float64()),
        pa.field("src2dst_packets", pa.int64()),
        pa.field("dst2src_packets", pa.int64()),
        pa.field("src2dst_bytes", pa.int64()),
        pa.field("dst2src_bytes", pa.int64()),
        pa.field("src2dst_tcp_flags", pa.string()),
        pa.field("dst2src_tcp_flags", pa.string()),
        pa.field("vlan", pa.int32()),
        pa.field("end_reason", pa.string()),
        pa.field("category", pa.string()),
        pa.field("protocol", pa.string()),
        pa.field("app", pa.string()),
        pa.field("media", pa.string()),
        pa.field("confidence", pa.float64()),
        pa.field("evidence", pa.list_(pa.string())),
        pa.field("detected_at_packet", pa.int64()),
        pa.field("call_id", pa.string()),
    ]
)

ANOMALY_SCHEMA = pa.schema(
    [
        pa.field("ts", pa.float64()),
        pa.field("name", pa.string()),
        pa.field("flow_id", pa.int64()),
        pa.field("src_ip", pa.string()),
        pa.field("dst_ip", pa.string()),
        pa.field("detail", pa.string()),
    ]
)
