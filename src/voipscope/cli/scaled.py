"""The commands' ``--workers N`` / ``--scheduler ADDRESS`` options: their inputs analysed
side by side on a dask.distributed cluster (voipscope.scale_out, docs/scale_out.md)."""

from __future__ import annotations

import contextlib
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
        return None


def input_runs(
    scale: ScaleOptions,
    paths: list[str],
    pipeline: Any,
    kinds: set[str],
    detect_config: Any = None,
    progress: bool | None = None,
) -> Iterator[tuple[str, Iterator[tuple[str, Any]]]]:
    """voipscope.scale_out.run_inputs for a command: the jobs run the kind of pipeline
    ``pipeline`` is, with its config; counts merged into ``pipeline.stats``; a progress
    bar over the inputs on a terminal."""
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
        yield from run_inputs(paths, make_job, pipeline.stats, scale.workers, scale.scheduler,
                              bar)  # fmt: skip


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
