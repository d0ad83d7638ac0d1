"""The public Python API: flows and calls (from captures or flow records)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from voipscope.config import Config
from voipscope.flows import FlowHooks
from voipscope.output.call_records import calls_to_batch
from voipscope.output.schema import CALL_SCHEMA, FLOW_SCHEMA
from voipscope.pipeline import FlowPipeline, RunStats


def _paths(inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    if isinstance(inputs, str | os.PathLike):
        return [os.fspath(inputs)]
    return [os.fspath(p) for p in inputs]


def _config(config: Config | None, overrides: dict[str, Any]) -> Config:
    """``config`` (or the defaults) with the ``key=value`` overrides of a call."""
    cfg = config or Config()
    for key, value in overrides.items():
        cfg = cfg.with_value(key, value)
    return cfg


def _flow_table(batches: Iterator[pa.RecordBatch], stats: Any) -> pa.Table:
    """All the batches as one Table ordered by flow_id, the run's counts (read once the
    batches are drained) in the schema metadata under ``voipscope.stats``."""
    table = pa.Table.from_batches(list(batches), schema=FLOW_SCHEMA).sort_by("flow_id")
    meta = {b"voipscope.stats": json.dumps(stats.to_dict()).encode()}
    return table.replace_schema_metadata(meta)


def _scaled(
    paths: list[str], cfg: Config, kind: str, stats: Any, workers: int | None,
    scheduler: str | None,
) -> Iterator[Any]:  # fmt: skip
    """The ``kind`` payloads of ``paths`` run side by side (voipscope.scale_out,
    docs/scale_out.md), in input order; the first input's error raised as in one
    process."""
    from voipscope.scale_out import InputJob, ScaleOut, run_inputs

    kinds = frozenset({kind})

    def make_job(path: str, index: int) -> InputJob:
        return InputJob(path, index, cfg, kinds, record_input=False, export_pcap=False)

    with ScaleOut(workers, scheduler, len(paths)) as cluster:
        for _, events in run_inputs(cluster, paths, make_job, stats):
            yield from (payload for _, payload in events)


def iter_flows(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    config: Config | None = None,
    hooks: Sequence[FlowHooks] = (),
    stats: RunStats | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    **overrides: Any,
) -> Iterator[pa.RecordBatch]:
    """Flow records as Arrow batches, as flows end: memory stays bounded for any size (with
    ``scheduler=``, by the largest input's records, docs/scale_out.md).

    ``overrides`` are configuration keys (``idle_timeout_s=60``); pass a ``RunStats`` as
    ``stats`` to read the counts and warnings afterwards. ``workers=N`` (N processes on
    this machine) or ``scheduler=ADDRESS`` (a dask cluster) run the inputs side by side,
    each on its own, input i's flow ids from i * 1,000,000,000 (docs/scale_out.md; a
    script that starts local workers needs an ``if __name__ == "__main__":`` guard).
    """
    cfg = _config(config, overrides)
    if workers is not None or scheduler is not None:
        if hooks:
            raise ValueError("hooks run in this process: they cannot go with workers")
        yield from _scaled(_paths(inputs), cfg, "flows", stats if stats is not None
                           else RunStats(), workers, scheduler)  # fmt: skip
        return
    pipeline = FlowPipeline(cfg, hooks)
    if stats is not None:
        pipeline.stats = stats
    yield from pipeline.run(_paths(inputs))


def read_flows(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    config: Config | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    **overrides: Any,
) -> pa.Table:
    """All Flow records of one or more captures as a pyarrow Table, ordered by flow_id.

    The run's counts and warnings are in the schema metadata under ``voipscope.stats``
    (JSON). ``pl.from_arrow(table)`` gives a polars DataFrame. ``workers``/``scheduler``:
    as ``iter_flows``.
    """
    stats = RunStats()
    batches = iter_flows(inputs, config=config, stats=stats, workers=workers,
                         scheduler=scheduler, **overrides)  # fmt: skip
    return _flow_table(batches, stats)


def iter_calls(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    config: Config | None = None,
    stats: RunStats | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    **overrides: Any,
) -> Iterator[dict[str, Any]]:
    """Call records (DESIGN §3) as dicts, as calls become final, with every detail the
    trackers know (SDP exchanges, registration fields, streams with quality and talk
    spurts). Memory stays bounded for any size. ``workers``/``scheduler``: as
    ``iter_flows``."""
    cfg = _config(config, overrides)
    if workers is not None or scheduler is not None:
        for records in _scaled(_paths(inputs), cfg, "calls", stats if stats is not None
                               else RunStats(), workers, scheduler):  # fmt: skip
            yield from records
        return
    pipeline = FlowPipeline(cfg)
    if stats is not None:
        pipeline.stats = stats
    for path in _paths(inputs):
        for records in pipeline.run_calls(path):
            yield from records


def read_calls(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    config: Config | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    **overrides: Any,
) -> pa.Table:
    """All Call records of one or more captures as a pyarrow Table in the output schema,
    ordered by start. ``workers``/``scheduler``: as ``iter_flows``."""
    records = list(iter_calls(inputs, config=config, workers=workers, scheduler=scheduler,
                              **overrides))  # fmt: skip
    table = pa.Table.from_batches([calls_to_batch(records)], schema=CALL_SCHEMA)
    return table.sort_by([("start", "ascending")])


def iter_flow_records(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    config: Config | None = None,
    export_pcap: bool = False,
    stats: Any = None,
    **overrides: Any,
) -> Iterator[pa.RecordBatch]:
    """Flow records (FLOW_SCHEMA) from flow-record inputs: IPFIX files (RFC 5655), or with
    ``export_pcap`` pcap/pcapng captures of NetFlow v5/v9/IPFIX export datagrams. Verdicts
    come from flow counters only (docs/flow_records.md). ``stats``: a
    ``voipscope.record_pipeline.RecordRunStats`` to read the counts afterwards."""
    from voipscope.record_pipeline import RecordPipeline

    cfg = _config(config, overrides)
    pipeline = RecordPipeline(cfg, export_pcap=export_pcap)
    if stats is not None:
        pipeline.stats = stats
    yield from pipeline.run(_paths(inputs))


def read_flow_records(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    config: Config | None = None,
    export_pcap: bool = False,
    **overrides: Any,
) -> pa.Table:
    """All Flow records of flow-record inputs as a pyarrow Table ordered by flow_id, the
    run's counts in the schema metadata under ``voipscope.stats`` (as ``read_flows``)."""
    from voipscope.record_pipeline import RecordRunStats

    stats = RecordRunStats()
    batches = iter_flow_records(
        inputs, config=config, export_pcap=export_pcap, stats=stats, **overrides
    )
    return _flow_table(batches, stats)
