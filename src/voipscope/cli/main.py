"""The `voipscope` command.

Exit status (DESIGN §3): 0 ok, 1 error, 2 usage, 3 input unreadable, 4 alert at or above
--fail-on. Errors are one line naming the file and the problem; --traceback shows more.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib.abc
import os
import sys
import traceback
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from voipscope._version import __version__
from voipscope.cli.scaled import ScaleOptions, Scheduler, Workers, input_runs

NO_SCALE_OUT = ScaleOptions()

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNREADABLE, EXIT_ALERT = 0, 1, 2, 3, 4
# 128 + SIGINT, as a shell reports a command a Ctrl-C ended; ``main`` says "interrupted".
EXIT_INTERRUPTED = 130
SEVERITIES = ("low", "medium", "high")  # as voipscope.detect.alerts (not imported: start-up)
SAMPLE_NAME = "sip-call.pcap"
PROGRESS_MIN_BYTES = 32 << 20  # below this a progress bar only flickers

app = typer.Typer(
    name="voipscope",
    help="Find, classify and analyse Voice-over-IP traffic in packet captures.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"voipscope {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """voipscope: which flows are VoIP, what the calls were, how good, and what is abuse."""


def sample_path() -> str:
    return str(resources.files("voipscope") / "samples" / SAMPLE_NAME)


@app.command()
def sample() -> None:
    """Print the path of the bundled sample capture (a real SIP call with RTP)."""
    print(sample_path())


def _input_paths(inputs: list[str] | None, use_sample: bool, usage: str) -> list[str]:
    """The command's inputs, the bundled sample appended with --sample; none is a usage
    error (exit EXIT_USAGE)."""
    paths = list(inputs or [])
    if use_sample:
        paths.append(sample_path())
    if not paths:
        _err(f"usage: voipscope {usage}")
        raise typer.Exit(EXIT_USAGE)
    return paths


def _err(message: str) -> None:
    print(f"voipscope: {message}", file=sys.stderr)


def _pick_format(fmt: str | None, output: str | None) -> str:
    if fmt:
        return fmt
    if output and output != "-":
        suffix = Path(output).suffix.lower()
        return {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl",
                ".ndjson": "jsonl", ".txt": "table"}.get(suffix, "jsonl")  # fmt: skip
    return "table" if sys.stdout.isatty() else "jsonl"


# Options the commands share (one definition, so their help and defaults stay alike).
Inputs = Annotated[
    list[str] | None,
    typer.Argument(help="pcap/pcapng files (gzip too), or - for stdin.", show_default=False),
]
Format = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        help="table | jsonl | csv | parquet (default: table on a terminal, "
        "jsonl when piped, else by the -o suffix).",
    ),
]
Output = Annotated[
    str | None,
    typer.Option("--output", "-o", help="Write records to this file instead of stdout."),
]
UseSample = Annotated[
    bool, typer.Option("--sample", help="Add the bundled sample capture to the inputs.")
]
ConfigItems = Annotated[
    list[str] | None,
    typer.Option(
        "--config",
        "-c",
        help="KEY=VALUE, e.g. flows.idle_timeout_s=60 (repeatable); alerts and analyze "
        "also take detect.<detector>.<field> keys.",
    ),
]
Stats = Annotated[
    bool,
    typer.Option(
        "--stats", help="Print the run's counts (packets, flows, anomalies) to stderr as JSON."
    ),
]
ShowProgress = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress", help="Progress bar (default: on a terminal, for large files)."
    ),
]
FailOn = Annotated[
    str | None,
    typer.Option(
        "--fail-on",
        help="low | medium | high: exit with status 4 when an alert at or above this "
        "severity was raised.",
    ),
]
ShowTraceback = Annotated[bool, typer.Option("--traceback", help="Show the stack on errors.")]
AnomaliesOut = Annotated[
    str | None,
    typer.Option(
        "--anomalies",
        help="Also write the run's anomaly records (named oddities on the wire) to this "
        "file; format by suffix (.jsonl, .csv, .parquet).",
    ),
]
FlowRecords = Annotated[
    bool,
    typer.Option(
        "--flow-records",
        help="Inputs are flow records: IPFIX files, or pcap/pcapng captures of NetFlow "
        "v5/v9/IPFIX export datagrams (IPFIX files are also recognised without it).",
    ),
]


@app.command()
def flows(
    inputs: Inputs = None,
    fmt: Format = None,
    output: Output = None,
    use_sample: UseSample = False,
    config: ConfigItems = None,
    stats: Stats = False,
    progress: ShowProgress = None,
    anomalies_out: AnomaliesOut = None,
    show_traceback: ShowTraceback = False,
    flow_records: FlowRecords = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
) -> None:
    """One record per bidirectional flow (DESIGN §3 Flow record), with its verdict."""
    raise typer.Exit(
        _run_records(
            "flows", inputs, use_sample, fmt, output, config, stats, progress, show_traceback,
            anomalies_out=anomalies_out, flow_records=flow_records,
            scale=ScaleOptions(workers, scheduler),
        )
    )  # fmt: skip


def _parse_config(items: list[str], detect_keys: bool = False):  # type: ignore[no-untyped-def]
    """``-c KEY=VALUE`` items: the run's Config, and (with ``detect_keys``) the detectors'
    DetectConfig from ``detect.*`` keys (None when none was given). ConfigError on bad ones."""
    from voipscope.config import Config
    from voipscope.errors import ConfigError

    cfg, detect_cfg = Config(), None
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--config needs KEY=VALUE, got {item!r}")
        key, value = key.strip(), value.strip()
        if detect_keys and key.startswith("detect."):
            from voipscope.detect.config import DetectConfig, with_detect_value

            detect_cfg = with_detect_value(detect_cfg or DetectConfig(), key, value)
        else:
            cfg = cfg.with_value(key, value)
    return cfg, detect_cfg


def _valid_fail_on(fail_on: str | None) -> bool:
    if fail_on is None or fail_on in SEVERITIES:
        return True
    _err(f"unknown --fail-on {fail_on!r}; choose one of {', '.join(SEVERITIES)}")
    return False


def _fails_on(fail_on: str | None, severities) -> bool:  # type: ignore[no-untyped-def]
    """An alert of one of ``severities`` is at or above ``fail_on``."""
    return fail_on is not None and any(
        SEVERITIES.index(s) >= SEVERITIES.index(fail_on) for s in severities
    )


def _run_records(records: str, inputs: list[str] | None, use_sample: bool, fmt: str | None,
                 output: str | None, config_items: list[str] | None, print_stats: bool,
                 progress: bool | None, show_traceback: bool, anomalies_out: str | None = None,
                 fail_on: str | None = None, flow_records: bool = False,
                 scale: ScaleOptions = NO_SCALE_OUT) -> int:  # fmt: skip
    """The flows, calls and alerts commands: run the pipeline over the inputs and write
    ``records`` ("flows", "calls" or "alerts"); returns the exit status (with ``fail_on``,
    4 when an alert at or above it was raised)."""
    paths = _input_paths(inputs, use_sample, f"{records} INPUT... (or --sample)")
    fmt = _pick_format(fmt, output)
    from voipscope.errors import ConfigError, SourceError, VoipscopeError
    from voipscope.output import CALL_SCHEMA, FLOW_SCHEMA, FORMATS, open_writer
    from voipscope.output.schema import ALERT_SCHEMA
    from voipscope.record_pipeline import pipeline_for

    if fmt not in FORMATS:
        _err(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return EXIT_USAGE
    if problem := scale.problem(paths):
        _err(problem)
        return EXIT_USAGE
    try:
        cfg, detect_cfg = _parse_config(config_items or [], detect_keys=records == "alerts")
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_USAGE

    if not _valid_fail_on(fail_on):
        return EXIT_USAGE
    _use_system_allocator()
    pipeline = pipeline_for(cfg, paths, flow_records)  # FlowPipeline unless flow records
    code = EXIT_OK
    severities: set[str] = set()  # of the alerts written
    schema = {"calls": CALL_SCHEMA, "alerts": ALERT_SCHEMA}.get(records, FLOW_SCHEMA)
    cluster = None
    if scale.wanted:
        try:
            cluster = scale.open(len(paths))
        except ConfigError as exc:  # before any output: an existing -o file stays
            _err(f"error: {exc}")
            return EXIT_ERROR
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
    with cluster if cluster is not None else contextlib.nullcontext():
        try:
            writer = open_writer(fmt, output, schema)
        except OSError as exc:
            _err(f"{output}: cannot write ({exc.strerror or exc})")
            return EXIT_ERROR
        if cluster is not None:
            runs = input_runs(cluster, paths, pipeline, {records}, detect_cfg, progress)
        else:
            runs = ((p, _records_of(pipeline, p, records, progress, detect_cfg)) for p in paths)
        try:
            for path, events in runs:
                try:
                    for kind, payload in events:
                        _write(writer, kind, payload, severities)
                except SourceError as exc:
                    _err(f"error: {exc}")
                    code = EXIT_UNREADABLE
                except VoipscopeError as exc:
                    _err(f"error: {path}: {exc}")
                    if show_traceback:
                        traceback.print_exc()
                    code = max(code, EXIT_ERROR) if code != EXIT_UNREADABLE else code
            writer.close()
        except BrokenPipeError:
            # The reader of our stdout went away (e.g. `| head`): not an error of ours.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return code
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
        except Exception as exc:  # a bug: say so in one line unless asked for the stack
            _err(f"internal error: {type(exc).__name__}: {exc} (run with --traceback for details)")
            if show_traceback:
                traceback.print_exc()
            return EXIT_ERROR
        if anomalies_out and not _write_anomalies(pipeline, anomalies_out):
            code = max(code, EXIT_ERROR)
        for warning in pipeline.stats.warnings():
            _err(f"warning: {warning}")
        if print_stats:
            import json

            print(json.dumps(pipeline.stats.to_dict(), indent=2), file=sys.stderr)
        return EXIT_ALERT if code == EXIT_OK and _fails_on(fail_on, severities) else code


def _write_anomalies(pipeline, path: str) -> bool:  # type: ignore[no-untyped-def]
    """The run's anomaly records to ``path`` (format by suffix); False: not written."""
    from voipscope.output import ANOMALY_SCHEMA, open_writer
    from voipscope.output.anomaly_records import anomalies_to_batch

    try:
        writer = open_writer(_pick_format(None, path), path, ANOMALY_SCHEMA)
        writer.write(anomalies_to_batch(pipeline.stats.anomalies.records))
        writer.close()
    except OSError as exc:
        _err(f"{path}: cannot write ({exc.strerror or exc})")
        return False
    return True


def _records_of(pipeline, path: str, records: str, progress: bool | None,  # type: ignore[no-untyped-def]
                detect_cfg=None) -> Iterator[tuple[str, object]]:  # fmt: skip
    """One input's ``records`` ("flows", "calls" or "alerts") as (kind, payload), run in
    this process."""
    batches = _with_progress(pipeline, path, progress, calls=records == "calls",
                             alerts=records == "alerts", detect_cfg=detect_cfg)  # fmt: skip
    return ((records, payload) for payload in batches)


def _write(writer, kind: str, payload, severities: set[str]) -> None:  # type: ignore[no-untyped-def]
    """Write one payload of records: a flow RecordBatch, or a list of call or alert
    records (whose severities are noted for --fail-on)."""
    if kind == "calls":
        from voipscope.output.call_records import calls_to_batch

        writer.write(calls_to_batch(payload))
    elif kind == "alerts":
        from voipscope.output.alert_records import alerts_to_batch

        severities.update(record["severity"] for record in payload)
        writer.write(alerts_to_batch(payload))
    else:
        writer.write(payload)


@app.command()
def alerts(
    inputs: Inputs = None,
    fmt: Format = None,
    output: Output = None,
    fail_on: FailOn = None,
    use_sample: UseSample = False,
    config: ConfigItems = None,
    stats: Stats = False,
    progress: ShowProgress = None,
    anomalies_out: AnomaliesOut = None,
    show_traceback: ShowTraceback = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
) -> None:
    """One record per detected abuse (DESIGN §3 Alert record): SIP scans, extension
    enumeration, password guessing, toll fraud, floods, SPIT, policy violations — each
    with its evidence. See docs/alerts.md for the detectors and their thresholds."""
    raise typer.Exit(
        _run_records(
            "alerts", inputs, use_sample, fmt, output, config, stats, progress, show_traceback,
            anomalies_out=anomalies_out, fail_on=fail_on, scale=ScaleOptions(workers, scheduler),
        )
    )  # fmt: skip


@app.command()
def analyze(
    inputs: Inputs = None,
    output: Annotated[
        str, typer.Option("--output", "-o", help="Directory for the records (created).")
    ] = "voipscope-out",
    use_sample: UseSample = False,
    config: ConfigItems = None,
    fail_on: FailOn = None,
    no_report: Annotated[
        bool, typer.Option("--no-report", help="Do not write report.html (the HTML report).")
    ] = False,
    show_traceback: ShowTraceback = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
) -> None:
    """Everything in one pass: flows, calls, their streams, alerts and anomalies written
    to a directory (Parquet and JSONL), an HTML report of them (report.html, offline,
    no scripts) and a summary on the terminal."""
    from voipscope.cli.analyze import make_report, print_summary, run_analyze
    from voipscope.errors import ConfigError, SourceError, VoipscopeError
    from voipscope.pipeline import FlowPipeline

    paths = _input_paths(inputs, use_sample, "analyze INPUT... [-o DIR] (or --sample)")
    if not _valid_fail_on(fail_on):
        raise typer.Exit(EXIT_USAGE)
    scale = ScaleOptions(workers, scheduler)
    if problem := scale.problem(paths):
        _err(problem)
        raise typer.Exit(EXIT_USAGE)
    try:
        cfg, detect_cfg = _parse_config(config or [], detect_keys=True)
    except ConfigError as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    _use_system_allocator()
    pipeline = FlowPipeline(cfg)
    out_dir = Path(output)
    try:
        summary = run_analyze(pipeline, paths, out_dir, detect_cfg, scale)
    except SourceError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(EXIT_UNREADABLE) from None
    except (VoipscopeError, OSError) as exc:
        _err(f"error: {exc}")
        if show_traceback:
            traceback.print_exc()
        raise typer.Exit(EXIT_ERROR) from None
    report, report_error = (None, None) if no_report else make_report(out_dir, show_traceback)
    print_summary(summary, out_dir, report)
    for warning in pipeline.stats.warnings():
        _err(f"warning: {warning}")
    if report_error is not None:
        _err(f"error: {report_error}")
        raise typer.Exit(EXIT_ERROR)
    if _fails_on(fail_on, summary["alerts by severity"]):
        raise typer.Exit(EXIT_ALERT)
    raise typer.Exit(EXIT_OK)


@app.command()
def calls(
    inputs: Inputs = None,
    fmt: Format = None,
    output: Output = None,
    use_sample: UseSample = False,
    config: ConfigItems = None,
    stats: Stats = False,
    progress: ShowProgress = None,
    anomalies_out: AnomaliesOut = None,
    show_traceback: ShowTraceback = False,
    flow_records: FlowRecords = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
) -> None:
    """One record per call or registration (DESIGN §3 Call record), with its media
    streams: quality (loss, jitter, MOS) and who talked when."""
    raise typer.Exit(
        _run_records(
            "calls", inputs, use_sample, fmt, output, config, stats, progress, show_traceback,
            anomalies_out=anomalies_out, flow_records=flow_records,
            scale=ScaleOptions(workers, scheduler),
        )
    )  # fmt: skip


def _use_system_allocator() -> None:
    """Arrow's default jemalloc pool keeps ~40 MB of freed memory around; the system
    allocator gives it back. The command owns its process, so it may choose (a library
    user's process keeps whatever pool its owner set)."""
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


# Container allocations between two young-generation collections (CPython's default: 700).
GC_YOUNG_THRESHOLD = 50_000


def _collect_garbage_less_often() -> None:
    """The run keeps hundreds of thousands of long-lived objects (flow contexts, the
    cross-flow tables) and allocates a few containers per packet, so at CPython's default
    the cyclic collector runs every few hundred packets and, every tenth of those, walks
    the older objects again: 15-20 % of a run's time (1 M packets of the benchmark mix:
    flows 6.2 -> 5.1 s, calls 7.4 -> 5.8 s, same records, same peak RSS). Reference
    counting still frees everything at once; only cycles wait longer. Like the allocator,
    a choice the command makes for its own process."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


class _NoPandas(importlib.abc.MetaPathFinder):
    """Makes ``import pandas`` fail in the voipscope command's process."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname == "pandas" or fullname.startswith("pandas."):
            raise ModuleNotFoundError("voipscope's command does not use pandas", name=fullname)


def _keep_pandas_out() -> None:
    """pyarrow probes for pandas whenever it converts Python objects (``pa.array``,
    ``RecordBatch.from_pylist``, compute functions given Python scalars) and imports it
    where it is installed: ~50 MB of RSS and 0.2-0.4 s in every run of a command that
    never uses it. Like the allocator, the command owns its process and may choose;
    pyarrow and polars take the failed import as "pandas not installed". A library
    user's process is left alone (the record path there builds from buffers,
    arrow_columns)."""
    if "pandas" not in sys.modules:
        sys.meta_path.insert(0, _NoPandas())


def _with_progress(pipeline, path: str, progress: bool | None, calls: bool = False,  # type: ignore[no-untyped-def]
                   alerts: bool = False, detect_cfg=None) -> Iterator:  # fmt: skip
    size = os.path.getsize(path) if path != "-" and os.path.isfile(path) else 0
    show = (
        progress if progress is not None else (sys.stderr.isatty() and size >= PROGRESS_MIN_BYTES)
    )
    run = pipeline.run_calls if calls else pipeline.run_one
    if alerts:
        run = functools.partial(pipeline.run_alerts, detect_config=detect_cfg)
    if not show:
        yield from run(path)
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(TextColumn("{task.description}"), *columns, transient=True) as bar:
        task = bar.add_task(os.path.basename(path), total=size or None)

        def update(info) -> None:  # type: ignore[no-untyped-def]
            total = info.bytes_total or None
            bar.update(task, completed=info.bytes_done, total=total)

        yield from run(path, progress=update)


from voipscope.cli.inline import inline  # noqa: E402 - they use the shared options above
from voipscope.cli.live import live  # noqa: E402

app.command()(live)
app.command()(inline)


def main() -> None:
    _keep_pandas_out()
    _collect_garbage_less_often()
    try:
        app()
    except BrokenPipeError:
        sys.exit(EXIT_OK)
    except KeyboardInterrupt:  # outside a command (typer makes one inside exit 130)
        sys.exit(_interrupted())
    except SystemExit as exc:
        # One line for a Ctrl-C wherever it came: a command's own handler, or typer's
        # (a Ctrl-C between a command's handlers, e.g. while a cluster closes).
        if exc.code == EXIT_INTERRUPTED:
            _interrupted()
        raise


def _interrupted() -> int:
    _err("interrupted")
    return EXIT_INTERRUPTED
