"""Streaming writers for record batches: JSONL, CSV, Parquet, and a console table.

Each writer takes batches as they come (flows end throughout a capture), so memory stays
bounded by a batch, except the console table, which is for people and collects its rows.
"""

from __future__ import annotations

import datetime as dt
import io
import sys
from typing import IO, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from voipscope.addresses import format_endpoint
from voipscope.calls.media_outages import missing_media_flags, outage_span

FORMATS = ("table", "jsonl", "csv", "parquet")


class RecordWriter(Protocol):
    def write(self, batch: pa.RecordBatch) -> None: ...
    def close(self) -> None: ...


class _TextTarget:
    """A path, or stdout when the path is None or '-'."""

    def __init__(self, path: str | None, binary: bool = False) -> None:
        self._own = path not in (None, "-")
        if self._own:
            self.stream: IO = open(  # noqa: SIM115 - closed in close()
                path, "wb" if binary else "w", encoding=None if binary else "utf-8"
            )  # type: ignore[arg-type]
        else:
            self.stream = sys.stdout.buffer if binary else sys.stdout

    def close(self) -> None:
        if self._own:
            self.stream.close()
        else:
            self.stream.flush()


class JsonlWriter:
    def __init__(self, path: str | None) -> None:
        self._target = _TextTarget(path, binary=True)

    def write(self, batch: pa.RecordBatch) -> None:
        json_text = [f.name for f in batch.schema if (f.metadata or {}).get(b"voipscope.json")]
        if batch.num_rows and json_text:
            # Few rows (alerts): plain json, with the JSON-text columns as objects.
            import json

            lines = []
            for row in batch.to_pylist():
                for name in json_text:
                    row[name] = None if row[name] is None else json.loads(row[name])
                lines.append(json.dumps(row, separators=(",", ":")) + "\n")
            self._target.stream.write("".join(lines).encode())
            return
        if batch.num_rows:
            import polars as pl  # only JSONL needs it; it costs ~20 MB RSS to import

            buf = io.BytesIO()
            pl.from_arrow(batch).write_ndjson(buf)  # type: ignore[union-attr]
            self._target.stream.write(buf.getvalue())

    def flush(self) -> None:
        """Push what was written to the reader now (live output)."""
        self._target.stream.flush()

    def close(self) -> None:
        self._target.close()


def _flatten_lists(batch: pa.RecordBatch) -> pa.RecordBatch:
    """CSV has no nesting: lists of strings are joined with '; ', other lists and structs
    (a call's streams) become one JSON text per cell."""
    arrays, fields = [], []
    for field, array in zip(batch.schema, batch.columns, strict=True):
        nested = pa.types.is_list(field.type) or pa.types.is_struct(field.type)
        if pa.types.is_list(field.type) and pa.types.is_string(field.type.value_type):
            joined = pc.binary_join(array, "; ")
            array = pc.if_else(pc.is_null(joined), "", joined)
            field = pa.field(field.name, pa.string())
        elif nested:
            import json

            cells = [None if v is None else json.dumps(v) for v in array.to_pylist()]
            array = pa.array(cells, pa.string())
            field = pa.field(field.name, pa.string())
        arrays.append(array)
        fields.append(field)
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


class CsvWriter:
    def __init__(self, path: str | None) -> None:
        self._target = _TextTarget(path, binary=True)
        self._writer: pacsv.CSVWriter | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        flat = _flatten_lists(batch)
        if self._writer is None:
            self._writer = pacsv.CSVWriter(self._target.stream, flat.schema)
        self._writer.write_batch(flat)

    def flush(self) -> None:
        """Push what was written to the reader now (live output)."""
        self._target.stream.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._target.close()


class ParquetWriter:
    # Flows end in small groups; gather them into row groups of this size, or the file
    # gets thousands of tiny row groups that are slow to write and to read.
    ROW_GROUP_ROWS = 16384

    def __init__(self, path: str | None, schema: pa.Schema) -> None:
        if path in (None, "-"):
            self._sink: object = pa.output_stream(sys.stdout.buffer)  # type: ignore[arg-type]
        else:
            self._sink = path
        self._writer = pq.ParquetWriter(self._sink, schema, compression="zstd")  # type: ignore[arg-type]
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= self.ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._writer.write_table(
                pa.Table.from_batches(self._pending), row_group_size=self.ROW_GROUP_ROWS
            )
            self._pending, self._pending_rows = [], 0

    def close(self) -> None:
        self._flush()
        self._writer.close()


class ConsoleTable:
    """A rich table a person can read; collects rows (use jsonl/parquet for big inputs).
    Subclasses say which columns, how records sort, and how one record becomes rows."""

    COLUMNS: tuple[str, ...] = ()
    SORT_KEY = ""
    NOUN = "records"

    def __init__(self, path: str | None, max_rows: int = 5000) -> None:
        self._path = path
        self._batches: list[pa.RecordBatch] = []
        self._rows = 0
        self.max_rows = max_rows

    def write(self, batch: pa.RecordBatch) -> None:
        self._rows += batch.num_rows
        self._batches.append(batch)

    def add_columns(self, table) -> None:  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def add_rows(self, table, record: dict) -> None:  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def close(self) -> None:
        from rich.console import Console
        from rich.table import Table

        table = Table(show_lines=False, header_style="bold", box=None, pad_edge=False)
        self.add_columns(table)
        shown = 0
        if self._batches:
            records = pa.Table.from_batches(self._batches).sort_by(self.SORT_KEY)
            for r in records.slice(0, self.max_rows).to_pylist():
                self.add_rows(table, r)
                shown += 1
        to_file = self._path not in (None, "-")
        stream = open(self._path, "w", encoding="utf-8") if to_file else sys.stdout  # noqa: SIM115
        # A terminal gives its width; a file or pipe gets one wide enough for a row.
        console = Console(file=stream, width=None if stream.isatty() else 160)
        console.print(table)
        more = f" (first {shown} shown; use --format jsonl for all)" if shown < self._rows else ""
        console.print(f"[dim]{self._rows} {self.NOUN}{more}[/dim]")
        if to_file:
            stream.close()


class FlowConsoleTable(ConsoleTable):
    COLUMNS = ("flow", "proto", "source", "destination", "start (UTC)", "dur s",
               "pkts →/←", "bytes →/←", "verdict", "end")  # fmt: skip
    SORT_KEY = "flow_id"
    NOUN = "flows"

    def add_columns(self, table) -> None:  # type: ignore[no-untyped-def]
        for i, name in enumerate(self.COLUMNS):
            table.add_column(name, justify="right" if i in (0, 5, 6, 7) else "left", no_wrap=True)

    def add_rows(self, table, record: dict) -> None:  # type: ignore[no-untyped-def]
        table.add_row(*_flow_cells(record))


def _endpoint(ip: str | None, port: int | None) -> str:
    return "-" if ip is None else format_endpoint(ip, port)


def _flow_cells(r: dict) -> list[str]:
    first = _stamp(r["first_seen"])
    verdict = r["category"] if not r["protocol"] else f"{r['category']}/{r['protocol']}"
    if r.get("app"):
        verdict += f" ({r['app']})"
    return [
        str(r["flow_id"]), r["proto"], _endpoint(r["src_ip"], r["src_port"]),
        _endpoint(r["dst_ip"], r["dst_port"]), first, f"{r['duration_s']:.3f}",
        f"{r['src2dst_packets']}/{r['dst2src_packets']}",
        f"{r['src2dst_bytes']}/{r['dst2src_bytes']}", verdict, r["end_reason"],
    ]  # fmt: skip


class CallConsoleTable(ConsoleTable):
    """Calls at a glance: who called whom, what became of it, and each media stream
    underneath with its codec, loss, jitter and MOS."""

    # Stream rows under a call reuse the columns: the headers name both meanings.
    COLUMNS = ("start (UTC)", "proto", "caller ↳ from", "callee → to", "state·codec",
               "code·pkts", "ans s·loss%", "dur s·jit ms", "strm·MOS")  # fmt: skip
    SORT_KEY = "start"
    NOUN = "calls and registrations"

    def add_columns(self, table) -> None:  # type: ignore[no-untyped-def]
        for i, name in enumerate(self.COLUMNS):
            table.add_column(
                name,
                justify="right" if i in (5, 6, 7, 8) else "left",
                no_wrap=True,
                overflow="ellipsis",
                max_width=24 if i in (2, 3) else None,
            )

    def add_rows(self, table, record: dict) -> None:  # type: ignore[no-untyped-def]
        table.add_row(*_call_cells(record))
        for what in missing_media_flags(record.get("evidence")):
            table.add_row("", "", f"  ⚠ {what}", "", "", "", "", "", "", style="bold red")
        for stream in record["streams"] or []:
            table.add_row("", "", *_stream_cells(stream), style="dim")
            outage = outage_span(stream)
            if outage is not None:
                start, end = outage
                table.add_row(
                    "", "", f"  ⚠ media outage {end - start:.1f} s", f"  from {_stamp(start)[11:]}",
                    "", f"{stream['longest_outage_lost']} lost", "", "", "", style="bold red",
                )  # fmt: skip
        for reported in record.get("rtcp_only_streams") or []:
            table.add_row("", "", *_rtcp_only_cells(reported), style="dim italic")


def _stamp(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _call_cells(r: dict) -> list[str]:
    answered = "-" if r["answer"] is None else f"{r['answer'] - r['start']:.1f}"
    caller, callee = r["caller"] or r["caller_ip"] or "-", r["callee"] or r["callee_ip"] or "-"
    duration = "-" if r["duration_s"] is None else f"{r['duration_s']:.1f}"
    protocol = r["protocol"] or "-"
    if r.get("kind") and r["kind"] != "call":
        protocol += f" {r['kind']}"
    if r.get("app"):
        protocol += f" ({r['app']})"
    return [
        _stamp(r["start"]), protocol, caller.removeprefix("sip:"), callee.removeprefix("sip:"),
        r["state"] or "-", "-" if r["final_code"] is None else str(r["final_code"]),
        answered, duration, str(len(r["streams"] or [])),
    ]  # fmt: skip


def _stream_cells(m: dict) -> list[str]:
    codec = m["codec"] or ("-" if m["payload_type"] is None else f"PT {m['payload_type']}")
    return [
        f"↳ {_endpoint(m['src_ip'], m['src_port'])}",
        f"→ {_endpoint(m['dst_ip'], m['dst_port'])}",
        codec,
        str(m["packets"]),
        "-" if m["loss_pct"] is None else f"{m['loss_pct']:.1f}",
        "-" if m["jitter_ms"] is None else f"{m['jitter_ms']:.1f}",
        "-" if m["mos"] is None else f"{m['mos']:.2f}",
    ]


def _rtcp_only_cells(m: dict) -> list[str]:
    """A stream only the far end's RTCP tells of: its packets, jitter in ms and MOS are
    not known; the loss is what the reporter said (RFC 3550 §6.4.1)."""
    loss = m["rtcp_loss_pct"]
    return [
        f"↳ {_endpoint(m['sender_ip'], m['sender_port'])}",
        f"→ {_endpoint(m['reporter_ip'], m['reporter_port'])}",
        "RTCP only",
        "-",
        "-" if loss is None else f"{loss:.1f}",
        "-",
        "-",
    ]


class AlertConsoleTable(ConsoleTable):
    """Alerts at a glance: when, how bad, what, who against whom, and the summary."""

    COLUMNS = ("first (UTC)", "last (UTC)", "severity", "kind", "source", "target",
               "count", "summary")  # fmt: skip
    STYLES = {"high": "bold red", "medium": "yellow", "low": "cyan"}
    SORT_KEY = "ts"
    NOUN = "alerts"

    def add_columns(self, table) -> None:  # type: ignore[no-untyped-def]
        for i, name in enumerate(self.COLUMNS):
            table.add_column(
                name, justify="right" if i == 6 else "left", no_wrap=i < 7, overflow="fold"
            )

    def add_rows(self, table, record: dict) -> None:  # type: ignore[no-untyped-def]
        r = record
        severity = f"[{self.STYLES.get(r['severity'], '')}]{r['severity']}[/]"
        table.add_row(
            _stamp(r["ts"]), _stamp(r["last_ts"]), severity, r["kind"],
            r["src_ip"] or "-", r["dst_ip"] or "-", str(r["count"]), r["summary"],
        )  # fmt: skip


class ActionConsoleTable(ConsoleTable):
    """Inline decisions at a glance: when, what, about what, on which targets, and what
    they would have stopped."""

    COLUMNS = ("time (UTC)", "action", "event", "subject", "protocol", "targets",
               "packets after", "reason")  # fmt: skip
    SORT_KEY = "ts"
    NOUN = "actions"

    def add_columns(self, table) -> None:  # type: ignore[no-untyped-def]
        for i, name in enumerate(self.COLUMNS):
            table.add_column(name, justify="right" if i == 6 else "left", overflow="fold")

    def add_rows(self, table, record: dict) -> None:  # type: ignore[no-untyped-def]
        r = record
        action = r["action"] if r["rate_kbit"] is None else f"shape {r['rate_kbit']} kbit/s"
        targets = ", ".join(_target_text(t) for t in (r["targets"] or [])[:4])
        more = len(r["targets"] or []) - 4
        if more > 0:
            targets += f" +{more}"
        packets = "-" if r["packets_after"] is None else str(r["packets_after"])
        table.add_row(
            _stamp(r["ts"]), action, f"{r['event']} {r['stage']}", r["subject"],
            r["protocol"] or "-", targets or "-", packets, r["reason"] or "",
        )  # fmt: skip


def _target_text(t: dict) -> str:
    if t["scope"] == "flow":
        return f"{_endpoint(t['ip'], t['port'])} <-> {_endpoint(t['peer_ip'], t['peer_port'])}"
    if t["scope"] == "to":
        return f"to {_endpoint(t['ip'], t['port'])}"
    return f"from {t['ip']}"


def open_writer(fmt: str, path: str | None, schema: pa.Schema) -> RecordWriter:
    if fmt == "jsonl":
        return JsonlWriter(path)
    if fmt == "csv":
        return CsvWriter(path)
    if fmt == "parquet":
        return ParquetWriter(path, schema)
    if fmt == "table":
        if "severity" in schema.names and "kind" in schema.names:
            return AlertConsoleTable(path)
        if "action_id" in schema.names:
            return ActionConsoleTable(path)
        return CallConsoleTable(path) if "caller" in schema.names else FlowConsoleTable(path)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
