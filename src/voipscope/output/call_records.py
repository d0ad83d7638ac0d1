"""Call records (DESIGN §3) -> Arrow. Trackers give rich dicts; the schema keeps the
contract's fields and the ones users filter on, in fixed types."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from voipscope.output.schema import CALL_SCHEMA, FLAT_STREAM_SCHEMA, STREAM_FIELDS

_STREAM_NAMES = [f.name for f in STREAM_FIELDS]
_CALL_NAMES = CALL_SCHEMA.names


def _messages(value: object) -> str | None:
    """Per-method counts as Wireshark's VoIP Calls comments give them ("INVITE:3 ACK:1"),
    then the responses by code."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return str(value)
    if "requests" not in value:  # a flat {name: count} (H.323, MGCP, IAX2 trackers)
        return " ".join(f"{k}:{v}" for k, v in value.items())
    requests = dict(value.get("requests") or {})
    for method, count in (value.get("repeated_requests") or {}).items():
        requests[method] = requests.get(method, 0) + count
    parts = [f"{m}:{n}" for m, n in requests.items()]
    parts += [f"{code}:{n}" for code, n in (value.get("responses") or {}).items()]
    return " ".join(parts)


def _related(items: Sequence[object] | None) -> list[str]:
    out = []
    for item in items or []:
        if isinstance(item, dict):
            text = (
                f"{item.get('relation', 'related')} {item.get('call_id') or item.get('record_id')}"
            )
            if item.get("evidence"):
                text += f" ({item['evidence']})"
            out.append(text)
        else:
            out.append(str(item))
    return out


def _dtmf(items: Sequence[object] | None, streams: Sequence[dict[str, Any]]) -> list[str]:
    events = [d for d in items or [] if isinstance(d, dict)]
    events += [d for s in streams for d in s.get("dtmf") or []]
    events.sort(key=lambda d: d.get("ts") or 0.0)
    return [f"{d['digit']} at {d['ts']:.3f} ({d.get('via', 'RTP')})" for d in events]


def _stream_row(stream: dict[str, Any]) -> dict[str, Any]:
    row = {name: stream.get(name) for name in _STREAM_NAMES}
    tones = stream.get("tones") or {}
    row["tone_share"] = tones.get("tone_share")
    timing = stream.get("timing") or {}
    row["timing_levels_ms"] = timing.get("levels_ms")
    row["timing_coded"] = timing.get("coded")
    row["inband_dtmf"] = [
        f"{d.get('digit')} at {d.get('ts', 0.0):.3f}" for d in stream.get("inband_dtmf") or []
    ]
    return row


def call_row(record: dict[str, Any]) -> dict[str, Any]:
    streams = record.get("streams") or []
    row = {name: record.get(name) for name in _CALL_NAMES}
    row["messages"] = _messages(record.get("messages"))
    row["related_calls"] = _related(record.get("related_calls"))
    row["dtmf"] = _dtmf(record.get("dtmf"), streams)
    row["streams"] = [_stream_row(s) for s in streams]
    if row["duration_s"] is None and record.get("start") is not None and record.get("end"):
        row["duration_s"] = record["end"] - record["start"]
    for name in ("redirected_to", "signaling_flows", "media_flows", "user_agents",
                 "transports", "auth_usernames", "evidence", "rtcp_only_streams"):  # fmt: skip
        row[name] = list(row[name] or [])
    return row


def calls_to_batch(records: Sequence[dict[str, Any]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([call_row(r) for r in records], schema=CALL_SCHEMA)


def streams_to_batch(records: Sequence[dict[str, Any]]) -> pa.RecordBatch:
    """The calls' streams, one row each, with the call they belong to."""
    rows = [
        {"call_id": r.get("call_id"), "capture": r.get("capture"), **_stream_row(s)}
        for r in records
        for s in r.get("streams") or []
    ]
    return pa.RecordBatch.from_pylist(rows, schema=FLAT_STREAM_SCHEMA)
