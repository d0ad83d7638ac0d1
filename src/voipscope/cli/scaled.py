"""The commands' ``--workers N`` / ``--scheduler ADDRESS`` options: their inputs analysed
side by side on a dask.distributed cluster (voipscope.scale_out, docs/scale_out.md)."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import typer

Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        help="Analyse the inputs side by side in N worker processes on this machine "
        "(dask.distributed); each input on its own (docs/scale_out.md).",
    ),
]
Scheduler = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Analyse the inputs on this dask.distributed cluster: its address "
        "(tcp://HOST:8786) or scheduler file; its workers must read the inputs at the same "
        "absolute paths.",
    ),
]


@dataclass(frozen=True, slots=True)
class ScaleOptions:
    workers: int | None = None
    scheduler: str | None = None

    @property
    def wanted(self) -> bool:
        return self.workers is not None or self.scheduler is not None

    def problem(self, paths: list[str]) -> str | None:
        """A usage problem with these options for ``paths``, or None."""
        if not self.wanted:
            return None
        if self.workers is not None and self.scheduler is not None:
            return "give --workers or --scheduler, not both"
        if "-" in paths:
            return "--workers/--scheduler read files; standard input ('-') cannot be shared"
        for path in paths:
            if _is_stream(path):
                return (f"{path}: --workers/--scheduler read files; a pipe or device given to "
                        "this command cannot be read by a worker")  # fmt: skip
        return None

    def open(self, inputs: int) -> Any:
        """The cluster (voipscope.scale_out.ScaleOut, a context manager) for ``inputs``
        inputs; ConfigError when it cannot be used. Opened before any output is written,
        so a cluster that fails leaves an existing output file alone."""
        from voipscope.scale_out import ScaleOut

        return ScaleOut(self.workers, self.scheduler, inputs)


def _is_stream(path: str) -> bool:
    """A FIFO, character device or socket (``<(...)``, /dev/stdin): readable only by
    the process that was given it."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False  # missing: the worker says so, as one process would
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


def input_runs(
    cluster: Any,
    paths: list[str],
    pipeline: Any,
    kinds: set[str],
    detect_config: Any = None,
    progress: bool | None = None,
) -> Iterator[tuple[str, Iterator[tuple[str, Any]]]]:
    """voipscope.scale_out.run_inputs on ``cluster`` for a command: the jobs run the kind
    of pipeline ``pipeline`` is, with its config; counts merged into ``pipeline.stats``;
    a progress bar over the inputs on a terminal."""
    from voipscope.record_pipeline import RecordPipeline
    from voipscope.scale_out import InputJob, run_inputs

    record_input = isinstance(pipeline, RecordPipeline)
    export_pcap = bool(getattr(pipeline, "export_pcap", False))
    wanted = frozenset(kinds)

    def make_job(path: str, index: int) -> InputJob:
        return InputJob(path, index, pipeline.config, wanted, record_input, export_pcap,
                        detect_config)  # fmt: skip

    show = progress if progress is not None else sys.stderr.isatty()
    with _inputs_bar(show, paths) as bar:
        yield from run_inputs(cluster, paths, make_job, pipeline.stats, bar)


@contextlib.contextmanager
def _inputs_bar(show: bool, paths: list[str]) -> Iterator[Any]:
    """A progress bar over the inputs (the workers report nothing in between); yields
    the function that counts one input done."""
    if not show:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("inputs"), BarColumn(), MofNCompleteColumn(), transient=True) as p:
        task = p.add_task("inputs", total=len(paths))
        yield lambda: p.advance(task)
