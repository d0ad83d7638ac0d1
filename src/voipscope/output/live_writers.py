"""Streaming output of `voipscope live`: every record written and flushed as it becomes
final, so ``voipscope live ... | jq`` and ``tail -f`` see it at once.

- jsonl: the same lines as `voipscope flows/calls/alerts` write; with more than one kind
  of record each line also has ``"record": "flow" | "call" | "alert"``. Alert lines have
  ``"final"``: false when the alert was just raised (or its severity rose) while the
  attack goes on, true for the Alert record proper once it has gone quiet.
- csv: one kind of record only (their columns differ), header first.
- table: one readable line per record for a terminal (rich), streams under their call.

With a verdict hook (``--hook``) the hook's drop and shape decisions are "action" records
(voipscope.inline), written when decided.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import IO, Any

import pyarrow as pa
from rich.markup import escape

from voipscope.output.action_records import actions_to_batch
from voipscope.output.alert_records import alerts_to_batch
from voipscope.output.call_records import calls_to_batch
from voipscope.output.writers import (
    CsvWriter,
    JsonlWriter,
    _call_cells,
    _endpoint,
    _flow_cells,
    _stream_cells,
    _target_text,
)

FORMATS = ("table", "jsonl", "csv")
RECORD_KINDS = ("flows", "calls", "alerts", "actions")
_SINGULAR = {"flows": "flow", "calls": "call", "alerts": "alert", "actions": "action"}
SEVERITY_STYLES = {"high": "bold red", "medium": "yellow", "low": "cyan"}


class LiveRecordStream:
    """Writes the chosen ``kinds`` of records in ``fmt`` to ``path`` (stdout: None/'-')."""

    def __init__(self, fmt: str, path: str | None, kinds: tuple[str, ...]) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        if fmt == "csv" and len(kinds) != 1:
            raise ValueError("csv holds one kind of record: choose one with --records")
        self.fmt = fmt
        self.kinds = kinds
        self.counts = dict.fromkeys(RECORD_KINDS, 0)
        self._tag = len(kinds) > 1
        self._writer: JsonlWriter | CsvWriter | _ConsoleLines
        if fmt == "jsonl":
            self._writer = JsonlWriter(path)
        elif fmt == "csv":
            self._writer = CsvWriter(path)
        else:
            self._writer = _ConsoleLines(path)

    def flows(self, batch: pa.RecordBatch) -> None:
        if "flows" in self.kinds and batch.num_rows:
            self._write("flows", batch)

    def calls(self, records: list[dict[str, Any]]) -> None:
        if "calls" in self.kinds and records:
            self._write("calls", calls_to_batch(records))

    def alerts(self, records: list[dict[str, Any]], final: bool) -> None:
        if "alerts" in self.kinds and records:
            batch = alerts_to_batch(records)
            batch = batch.append_column("final", pa.array([final] * batch.num_rows, pa.bool_()))
            self._write("alerts", batch)

    def actions(self, records: list[dict[str, Any]]) -> None:
        if "actions" in self.kinds and records:
            self._write("actions", actions_to_batch(records))

    def note(self, text: str) -> None:
        """A line for people (a blocked address) on the table; machine formats skip it."""
        if isinstance(self._writer, _ConsoleLines):
            self._writer.note(text)

    def _write(self, kind: str, batch: pa.RecordBatch) -> None:
        self.counts[kind] += batch.num_rows
        if isinstance(self._writer, _ConsoleLines):
            self._writer.write(kind, batch)
            return
        if self._tag:
            batch = batch.append_column(
                "record", pa.array([_SINGULAR[kind]] * batch.num_rows, pa.string())
            )
        self._writer.write(batch)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _clock(ts: float | None) -> str:
    if ts is None:
        return "--:--:--"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%H:%M:%S")


class _ConsoleLines:
    """One line per record, times in UTC (capture time), flushed as written."""

    def __init__(self, path: str | None) -> None:
        from rich.console import Console  # only the table pays for it

        self._own = path not in (None, "-")
        self._stream: IO[str] = (
            open(path, "w", encoding="utf-8")  # type: ignore[arg-type]  # noqa: SIM115
            if self._own
            else sys.stdout
        )
        width = None if self._stream.isatty() else 200
        self.console = Console(file=self._stream, width=width, highlight=False, soft_wrap=True)

    def write(self, kind: str, batch: pa.RecordBatch) -> None:
        for record in batch.to_pylist():
            if kind == "flows":
                self._flow(record)
            elif kind == "calls":
                self._call(record)
            elif kind == "actions":
                self._action(record)
            else:
                self._alert(record)
        self._stream.flush()

    def note(self, text: str) -> None:
        self.console.print(f"[bold magenta]{escape(text)}[/]")
        self._stream.flush()

    def _flow(self, r: dict[str, Any]) -> None:
        cells = [escape(c) for c in _flow_cells(r)]
        flow_id, proto, src, dst, _, duration, packets, octets, verdict, end = cells
        self.console.print(
            f"{_clock(r['last_seen'])} [dim]flow[/] {flow_id:>6} {proto:<4} {src} → {dst} "
            f"{duration} s pkts {packets} bytes {octets} [bold]{verdict}[/] [dim]{end}[/]"
        )

    def _call(self, r: dict[str, Any]) -> None:
        start, protocol, caller, callee, state, code, answered, duration, streams = (
            escape(c) for c in _call_cells(r)
        )
        del start
        self.console.print(
            f"{_clock(r['start'])} [green]call[/] {protocol} {caller} → {callee} "
            f"[bold]{state}[/] {code} answer {answered} s dur {duration} s streams {streams}"
        )
        for stream in r.get("streams") or []:
            src, dst, codec, packets, loss, jitter, mos = (escape(c) for c in _stream_cells(stream))
            self.console.print(
                f"           [dim]{src} {dst} {codec} pkts {packets} loss {loss} % "
                f"jitter {jitter} ms MOS {mos}[/]"
            )

    def _alert(self, r: dict[str, Any]) -> None:
        style = SEVERITY_STYLES.get(r["severity"], "")
        state = "final" if r.get("final") else "raised"
        target = _endpoint(r["dst_ip"], None) if r["dst_ip"] else "-"
        self.console.print(
            f"{_clock(r['ts'])} [{style}]alert {escape(r['severity'])}[/] {escape(r['kind'])} "
            f"({state}) {escape(r['src_ip'] or '-')} → {escape(target)} ×{r['count']}: "
            f"{escape(r['summary'] or '')}"
        )

    def _action(self, r: dict[str, Any]) -> None:
        what = r["action"] if r["rate_kbit"] is None else f"shape {r['rate_kbit']} kbit/s"
        targets = ", ".join(_target_text(t) for t in (r["targets"] or [])[:4])
        applied = {True: " [green]applied[/]", False: " [red]not applied[/]"}.get(r["applied"], "")
        error = f" ({escape(r['error'])})" if r["error"] else ""
        self.console.print(
            f"{_clock(r['ts'])} [bold magenta]action {escape(what)}[/] {escape(r['event'])} "
            f"{escape(r['stage'])} {escape(r['subject'])} [{escape(targets or '-')}]: "
            f"{escape(r['reason'] or '')}{applied}{error}"
        )

    def close(self) -> None:
        self._stream.flush()
        if self._own:
            self._stream.close()
