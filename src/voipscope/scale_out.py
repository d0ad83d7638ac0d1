"""Scale-out: a command's inputs analysed side by side on a dask.distributed cluster.

The unit of work is one input (a capture or a flow-record file): a worker runs the same
pipeline over it that the command runs in its own process, and sends back that input's
records and run statistics; the command writes them in input order, so the output has
the same order and shape as a run in one process. ``--workers N`` starts N worker
processes on this machine (a ``LocalCluster``); ``--scheduler ADDRESS`` (or the path of a
scheduler file, ``dask scheduler --scheduler-file F``) uses an existing cluster, whose
workers must run the same voipscope version and read the inputs at the
same paths (they are sent as absolute paths).

What differs from one process, on purpose and documented (docs/scale_out.md):
- Every input is analysed on its own. In one process, names learnt from DNS and TLS in
  one input, and SDP/STUN expectations, still stand in the next input; here they do not
  (calls, alerts and flows already end at the end of each input in both modes).
- Flow ids: input *i*'s flows are numbered from ``i * FLOW_ID_STRIDE`` (3000000017 is
  the 18th flow of the 4th input), so ids stay unique and the calls' and anomalies' flow
  ids still point at the right flow without renumbering anything afterwards.

Memory: a worker holds one input's pipeline, bounded as in one process. On a local
cluster it writes the records to a file in a private directory of the command as the
pipeline makes them, and the command reads them back one batch at a time: neither holds
a whole input's records. A remote worker keeps an input's records until the command
fetches them (one input at a time), so there memory follows the records of the inputs in
flight (twice as many as workers).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import pickle
import shutil
import signal
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from voipscope.config import Config
from voipscope.errors import ConfigError, SourceError, VoipscopeError

# Input i's flow ids start at i * FLOW_ID_STRIDE: a billion flows per input is far more
# than any capture holds (a 10 GB capture has a few million), and ids stay below 2**53
# (exact in JSON) for 9 million inputs.
FLOW_ID_STRIDE = 1_000_000_000


@dataclass(slots=True)
class InputRun:
    """What a worker sends back for one input: its records in the order the pipeline
    made them (in ``events``, or written to ``spill_path`` as it made them), the run's
    statistics, and the error that ended it early, if one did."""

    path: str
    events: list[tuple[str, Any]] = field(default_factory=list)  # (kind, payload)
    spill_path: str | None = None  # the events, pickled one after the other
    stats: Any = None  # pipeline.RunStats or record_pipeline.RecordRunStats
    source_error: tuple[str, str] | None = None  # SourceError's (path, problem)
    error: str | None = None  # any other VoipscopeError's message

    def replay(self) -> Iterator[tuple[str, Any]]:
        """The events (read back one at a time and the file removed, when spilled), then
        the error as the pipeline raised it, so a caller handles a worker's input exactly
        as one run in its own process."""
        yield from self.events
        if self.spill_path is not None:
            yield from _read_spill(self.spill_path)
        if self.source_error is not None:
            raise SourceError(*self.source_error)
        if self.error is not None:
            raise VoipscopeError(self.error)


@dataclass(frozen=True, slots=True)
class InputJob:
    """Everything a worker needs to run one input (pickled to it)."""

    path: str
    index: int  # the input's position: its flows are numbered from index * FLOW_ID_STRIDE
    config: Config
    kinds: frozenset[str]  # which records to send back
    record_input: bool  # flow records (record_pipeline), not packets
    export_pcap: bool  # flow records: pcaps are captures of export datagrams
    detect_config: Any = None  # voipscope.detect.config.DetectConfig
    # A directory the command reads too (a cluster on this machine): the records go to a
    # file there as the pipeline makes them, so neither side holds a whole input's.
    spill_dir: str | None = None


def run_input(job: InputJob) -> InputRun:
    """Run one input through the pipeline; runs on a worker (and in tests, in-process)."""
    from voipscope.pipeline import FlowPipeline
    from voipscope.record_pipeline import RecordPipeline

    first = job.index * FLOW_ID_STRIDE
    pipeline: Any = (
        RecordPipeline(job.config, export_pcap=job.export_pcap, first_flow_id=first)
        if job.record_input
        else FlowPipeline(job.config, first_flow_id=first)
    )
    out = InputRun(job.path)
    spill = None
    if job.spill_dir is not None:
        fd, out.spill_path = tempfile.mkstemp(prefix=f"input{job.index}-", dir=job.spill_dir)
        spill = os.fdopen(fd, "wb")
    # The command's choice for its own process (cli.main._collect_garbage_less_often):
    # a run allocates a few containers per packet and keeps many long-lived objects.
    thresholds = gc.get_threshold()
    gc.set_threshold(50_000, *thresholds[1:])
    try:
        for kind, payload in _events(pipeline, job):
            if kind not in job.kinds:
                continue
            if spill is not None:
                pickle.dump((kind, payload), spill, protocol=pickle.HIGHEST_PROTOCOL)
            else:
                out.events.append((kind, payload))
    except SourceError as exc:
        out.source_error = (exc.path, exc.problem)
    except VoipscopeError as exc:
        out.error = str(exc)
    finally:
        gc.set_threshold(*thresholds)
        if spill is not None:
            spill.close()
    out.stats = pipeline.stats
    return out


def _read_spill(path: str) -> Iterator[tuple[str, Any]]:
    """The events a worker spilled to ``path``, one at a time; the file is removed once
    read (or given up). Only files of this command's own workers, in the private
    directory it created (0700), are read back."""
    try:
        with open(path, "rb") as fh:
            while True:
                try:
                    yield pickle.load(fh)
                except EOFError:
                    return
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _events(pipeline: Any, job: InputJob) -> Iterator[tuple[str, Any]]:
    """The pipeline's records of one input as (kind, payload), running the stages the
    wanted kinds need, as the commands do in one process."""
    path = job.path
    if "alerts" in job.kinds:
        if job.record_input:  # raises its "not built" SourceError, as in one process
            yield from (("alerts", records) for records in pipeline.run_alerts(path))
        else:
            yield from pipeline.run_all(path, detect_config=job.detect_config)
    elif "calls" in job.kinds:
        yield from (("calls", records) for records in pipeline.run_calls(path))
    else:
        yield from (("flows", batch) for batch in pipeline.run_one(path))


class ScaleOut:
    """A dask.distributed client for one command; a context manager (it closes the
    cluster it started and removes its files). ``workers``: start that many worker
    processes here (fewer when there are fewer ``inputs``); ``scheduler``: connect to that
    cluster instead (an address, or a scheduler file). ConfigError when neither works."""

    def __init__(
        self, workers: int | None = None, scheduler: str | None = None, inputs: int | None = None
    ) -> None:
        if (workers is None) == (scheduler is None):
            raise ConfigError("scale-out needs either a number of workers or a scheduler")
        if workers is not None and workers < 1:
            raise ConfigError(f"scale-out needs at least 1 worker, got {workers}")
        try:
            from distributed import Client
        except ImportError:
            raise ConfigError(
                "scale-out needs dask.distributed: pip install 'voipscope[scale]'"
            ) from None
        self.remote = scheduler is not None
        self.client: Any = None
        self._cluster: Any = None
        self.spill_dir: str | None = None
        try:
            if scheduler is not None:
                # An address, or a scheduler file (dask scheduler --scheduler-file F); a
                # Ctrl-C while connecting stops it (no process of ours to leave behind).
                key = "scheduler_file" if os.path.isfile(scheduler) else "address"
                self.client = Client(**{key: scheduler})
                self._check_remote_workers()
            else:
                assert workers is not None
                self._start_local(workers if inputs is None else max(1, min(workers, inputs)))
        except ConfigError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            where = scheduler or "a local cluster"
            if isinstance(exc, (OSError, TimeoutError, ValueError, RuntimeError)):
                why = str(exc)
            else:  # e.g. an address that answers in another protocol: dask reads a frame
                # length from it and fails to allocate exabytes
                why = f"{type(exc).__name__}: {exc}"
                why += " (is it a dask scheduler?)" if scheduler is not None else ""
            raise ConfigError(f"cannot start scale-out on {where}: {why}") from None
        except BaseException:  # Ctrl-C while starting: leave nothing behind
            self.close()
            raise

    def _start_local(self, workers: int) -> None:
        """A cluster of our own on this machine: TLS with throw-away credentials (its
        ports are on 127.0.0.1, where any local user could otherwise submit work that
        runs as us), no memory limit (a run that fits one process must not be paused or
        killed by dask), records spilled to a private directory (0700) that also holds
        dask's scratch space. The workers start with SIGINT held and blocked
        (``_sigint_held``) and keep it blocked, so a terminal's Ctrl-C, sent to the whole
        process group, reaches only the command, which closes them."""
        from multiprocessing import resource_tracker

        import dask
        from distributed import Client, LocalCluster

        # multiprocessing starts its resource tracker (once per process) with SIGINT
        # blocked and then *unblocks* it in the calling thread: from dask's event loop
        # thread, inside the hold below, that would undo the hold there before it starts
        # the workers. Started here first.
        resource_tracker.ensure_running()
        self.spill_dir = tempfile.mkdtemp(prefix="voipscope-scale-")
        # dask's own scratch space (locks, spilled data) goes there too, not to $TMPDIR.
        # A Ctrl-C while the cluster starts takes effect once it has (then it is closed).
        with _sigint_held(block=True), dask.config.set({"temporary-directory": self.spill_dir}):
            self._cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,  # the pipeline is Python: one thread per process
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
                security=True,
                memory_limit=0,
                local_directory=self.spill_dir,
            )
        self.client = Client(self._cluster)

    def _check_remote_workers(self) -> None:
        """A cluster of others: it has workers, and each runs this voipscope version (a
        worker that joins later is not checked)."""
        from voipscope._version import __version__

        try:
            self.client.wait_for_workers(1, timeout=30)
        except TimeoutError:
            raise ConfigError("the cluster has no worker (waited 30 s)") from None
        try:
            versions = self.client.run(_voipscope_version)
        except ImportError as exc:
            raise ConfigError(f"a worker cannot import voipscope: {exc}") from None
        wrong = {w: v for w, v in versions.items() if v != __version__}
        if wrong:
            worker, version = sorted(wrong.items())[0]
            raise ConfigError(
                f"worker {worker} runs voipscope {version}, this command {__version__}: "
                "every worker needs the same version"
            )

    @property
    def workers(self) -> int:
        return len(self.client.nthreads())

    def runs(
        self, paths: Sequence[str], make_job: Callable[[str, int], InputJob]
    ) -> Iterator[InputRun]:
        """One InputRun per path, in the order of ``paths``, computed side by side: at most
        twice as many inputs as workers are submitted and not yet handed out. A Ctrl-C is
        a KeyboardInterrupt in our wait for a worker, never inside a dask call; inputs
        not yet handed out are cancelled when the iteration ends early."""
        in_flight = max(2, 2 * self.workers)
        pending: deque[Any] = deque()
        queue = iter(enumerate(paths))

        def submit_next() -> None:
            item = next(queue, None)
            if item is None:
                return
            index, path = item
            target = os.path.abspath(path) if self.remote else path
            job = dataclasses.replace(make_job(target, index), spill_dir=self.spill_dir)
            with _sigint_held():
                # pure=False: the same input twice is two runs (it may have changed).
                pending.append(self.client.submit(run_input, job, pure=False))

        try:
            for _ in range(in_flight):
                submit_next()
            while pending:
                future = pending[0]
                _wait_done(future)
                with _sigint_held():
                    result: InputRun = future.result()
                    pending.popleft().release()
                submit_next()
                if result.spill_path is not None and not _inside(result.spill_path, self.spill_dir):
                    raise VoipscopeError(f"a worker spilled records outside {self.spill_dir}")
                yield result
        finally:
            if pending and self.client is not None:
                with _sigint_held():
                    self.client.cancel(list(pending))

    def close(self) -> None:
        """Close the client and our cluster and remove our directory, whatever fails; a
        Ctrl-C meanwhile takes effect once all is closed."""
        with _sigint_held():
            try:
                if self.client is not None:
                    self.client.close()
                    self.client = None
            finally:
                try:
                    if self._cluster is not None:
                        self._cluster.close()
                        self._cluster = None
                finally:
                    if self.spill_dir is not None:
                        shutil.rmtree(self.spill_dir, ignore_errors=True)
                        self.spill_dir = None

    def __enter__(self) -> ScaleOut:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wait_done(future: Any) -> None:
    """Until ``future`` is done. A Ctrl-C meanwhile is a KeyboardInterrupt here, in our
    own wait: dask's ``sync`` cut off by one can leave a callback of its event loop
    failing (a NameError logged) and the cluster's close waiting out its timeouts."""
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    while not done.wait(0.5):  # bounded waits: the signal handler runs between them
        pass


@contextlib.contextmanager
def _sigint_held(block: bool = False) -> Iterator[None]:
    """A Ctrl-C (SIGINT) inside the block takes effect as the block ends, as it would
    have (KeyboardInterrupt, or whatever handler was set), so dask's calls are not cut
    off half-way; a second Ctrl-C meanwhile takes effect at once (a close that hangs can
    still be stopped). ``block``: SIGINT is also blocked in this thread meanwhile (the
    mask it had is put back after), so the threads started inside (dask's event loop)
    keep it blocked, and so do the processes they start (the signal mask is inherited
    across fork and exec): the worker processes never see a terminal's Ctrl-C, and the
    command that started them closes them. A no-op outside the main thread (signal
    handlers belong to it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, _frame: Any) -> None:
        caught.append(signum)
        if len(caught) > 1:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, hold)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if block else None
    try:
        yield
    finally:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a pending one arrives now
        # signal.signal runs the handlers of signals that arrived before it changes one.
        signal.signal(signal.SIGINT, previous)
        if len(caught) == 1:
            _deliver_sigint(previous)


def _deliver_sigint(handler: Any) -> None:
    """What a SIGINT would have done under ``handler``."""
    if callable(handler):
        handler(signal.SIGINT, None)  # signal.default_int_handler: KeyboardInterrupt
    elif handler == signal.SIG_DFL:
        signal.raise_signal(signal.SIGINT)


def _inside(path: str, directory: str | None) -> bool:
    """``path`` is a file directly in ``directory``."""
    if directory is None:
        return False
    return os.path.dirname(os.path.realpath(path)) == os.path.realpath(directory)


def run_inputs(
    cluster: ScaleOut,
    paths: Sequence[str],
    make_job: Callable[[str, int], InputJob],
    stats: Any,
    done: Callable[[], None] | None = None,
) -> Iterator[tuple[str, Iterator[tuple[str, Any]]]]:
    """(path, that input's (kind, payload) records) in input order, every input run by a
    worker of ``cluster``; each input's counts are merged into ``stats`` as it comes
    back, so a caller reports them as after a run in its own process."""
    for run in cluster.runs(paths, make_job):
        stats.merge(run.stats)
        if done is not None:
            done()
        yield run.path, run.replay()


def _voipscope_version() -> str:
    from voipscope._version import __version__

    return __version__


__all__ = ["FLOW_ID_STRIDE", "InputJob", "InputRun", "ScaleOut", "run_input", "run_inputs"]
