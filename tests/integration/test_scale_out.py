"""--workers / --scheduler (voipscope.scale_out, docs/scale_out.md): the inputs of one
command run side by side on a dask.distributed cluster -- a local one the command starts,
or a scheduler and worker the test starts on loopback -- and the records are those of
each input run on its own in one process, in input order, with input i's flow ids
numbered from i * FLOW_ID_STRIDE; errors, warnings and --stats as in one process."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.test_alerts import SCANNER, sweep_capture
from tests.integration.test_flow_records import SOFTFLOWD, export_with_softflowd
from voipscope.config import Config
from voipscope.scale_out import FLOW_ID_STRIDE, InputJob, run_input

pytest.importorskip("distributed", reason="scale-out needs dask.distributed (the test extra)")

CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "captures" / "ndpi"
# Signalling of four kinds, media, an app, DNS names, and a capture with anomalies.
NAMES = ("h323.pcap", "sip.pcap", "mgcp.pcap", "rtp.pcapng", "discord.pcap",
         "dns.pcap", "iax.pcap", "whatsapp_login_call.pcap")  # fmt: skip
TIMEOUT_S = 300


def voipscope(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voipscope", *args], capture_output=True, text=True,
        timeout=TIMEOUT_S, cwd=cwd,
    )  # fmt: skip


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


# Where flow ids appear inside text: evidence ("in SIP 183 (flow 3, packet 24)") and the
# call ids of protocols without a global call identifier ("h323-<flow>-<reference>").
FLOW_ID_IN_TEXT = re.compile(r"\b(flow |h323-|sccp-|iax2-)(\d+)")
FLOW_ID_LISTS = ("signaling_flows", "media_flows")


def shifted(value: object, index: int) -> object:
    """``value`` (a record, or part of one) of a run over one input alone, with the flow
    ids the same input gets as input ``index`` of a scaled run."""
    base = index * FLOW_ID_STRIDE
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "flow_id" and isinstance(item, int):
                out[key] = item + base
            elif key in FLOW_ID_LISTS and isinstance(item, list):
                out[key] = [flow_id + base for flow_id in item]
            else:
                out[key] = shifted(item, index)
        return out
    if isinstance(value, list):
        return [shifted(item, index) for item in value]
    if isinstance(value, str):
        return FLOW_ID_IN_TEXT.sub(lambda m: f"{m[1]}{int(m[2]) + base}", value)
    return value


def alone(command: str, paths: list[Path], tmp_path: Path) -> tuple[list[dict], list[dict]]:
    """Each input run on its own (a fresh process each, two at a time): its records and
    (for flows) its anomaly records, with the ids they get in a scaled run."""

    def one(index: int) -> tuple[list[dict], list[dict]]:
        anomalies = tmp_path / f"{command}-alone-{index}.jsonl"
        extra = ["--anomalies", str(anomalies)] if command == "flows" else []
        run = voipscope(command, str(paths[index]), "-f", "jsonl", *extra)
        assert run.returncode == 0, run.stderr
        found = jsonl(anomalies.read_text()) if extra else []
        return shifted(jsonl(run.stdout), index), shifted(found, index)  # type: ignore[return-value]

    with ThreadPoolExecutor(2) as pool:
        parts = list(pool.map(one, range(len(paths))))
    return [r for p in parts for r in p[0]], [a for p in parts for a in p[1]]


@pytest.fixture(scope="module")
def paths() -> list[Path]:
    found = [CAPTURES / name for name in NAMES]
    missing = [p.name for p in found if not p.exists()]
    assert not missing, f"shared captures missing: {missing}"
    return found


@pytest.fixture(scope="module")
def flows_alone(
    paths: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[dict], list[dict]]:
    return alone("flows", paths, tmp_path_factory.mktemp("alone"))


def test_flows_and_anomalies_equal_each_input_run_alone(
    tmp_path: Path, paths: list[Path], flows_alone: tuple[list[dict], list[dict]]
) -> None:
    anomalies = tmp_path / "anomalies.jsonl"
    scaled = voipscope("flows", *map(str, paths), "--workers", "2", "-f", "jsonl",
                       "--anomalies", str(anomalies))  # fmt: skip
    assert scaled.returncode == 0, scaled.stderr
    flows = jsonl(scaled.stdout)
    assert {r["flow_id"] // FLOW_ID_STRIDE for r in flows} == set(range(len(paths)))
    expected_flows, expected_anomalies = flows_alone
    assert flows == expected_flows
    # Anomaly records: kept per name up to the cap, in input order.
    assert expected_anomalies, "these captures have anomalies"
    assert jsonl(anomalies.read_text()) == expected_anomalies


def test_calls_equal_each_input_run_alone(tmp_path: Path, paths: list[Path]) -> None:
    scaled = voipscope("calls", *map(str, paths), "--workers", "2", "-f", "jsonl")
    assert scaled.returncode == 0, scaled.stderr
    calls = jsonl(scaled.stdout)
    assert {r["capture"] for r in calls} >= {str(p) for p in paths[:2]}  # H.323, SIP
    assert calls == alone("calls", paths, tmp_path)[0]


def test_alerts_equal_each_input_run_alone(tmp_path: Path, paths: list[Path]) -> None:
    sweep = sweep_capture(tmp_path / "sweep.pcap")
    inputs = [paths[1], sweep, paths[0], sweep]  # the same input twice: two runs
    scaled = voipscope("alerts", *map(str, inputs), "--workers", "2", "-f", "jsonl")
    assert scaled.returncode == 0, scaled.stderr
    alerts = jsonl(scaled.stdout)
    assert [a["kind"] for a in alerts] == ["sip-scan", "sip-scan"]
    assert {a["src_ip"] for a in alerts} == {SCANNER}
    assert alerts == alone("alerts", inputs, tmp_path)[0]


def test_stats_are_the_sums_of_the_inputs(paths: list[Path]) -> None:
    scaled = voipscope("flows", *map(str, paths), "--workers", "2", "-o", os.devnull, "--stats")
    serial = voipscope("flows", *map(str, paths), "-o", os.devnull, "--stats")
    assert scaled.returncode == serial.returncode == 0
    a, b = json.loads(scaled.stderr), json.loads(serial.stderr)
    assert a["packets"] == b["packets"] > 0 and a["flows"] == b["flows"] > 0
    assert a["packets_by_status"] == b["packets_by_status"]
    assert a["anomalies"] == b["anomalies"]
    assert [i["path"] for i in a["inputs"]] == [str(p) for p in paths]
    assert a["inputs"] == b["inputs"]


def test_a_bad_input_is_reported_and_the_others_are_written(
    tmp_path: Path, paths: list[Path]
) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("not a capture\n" * 10)
    cut = tmp_path / "cut.pcap"
    data = paths[1].read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    inputs = [paths[1], junk, cut, paths[2]]
    scaled = voipscope("flows", *map(str, inputs), "--workers", "2", "-f", "jsonl")
    serial = voipscope("flows", *map(str, inputs), "-f", "jsonl")
    assert scaled.returncode == serial.returncode == 3
    assert scaled.stderr == serial.stderr  # the error line and the cut file's warning
    assert f"{junk}: not a pcap or pcapng capture" in scaled.stderr
    assert "truncated" in scaled.stderr
    flows = jsonl(scaled.stdout)
    by_input = {r["flow_id"] // FLOW_ID_STRIDE for r in flows}
    assert by_input == {0, 2, 3}  # the cut file's flows before the cut too


def test_spilled_records_equal_the_ones_sent_back_and_are_removed(
    tmp_path: Path, paths: list[Path]
) -> None:
    """A local cluster's worker writes an input's records to a file as the pipeline makes
    them (memory: one batch, not the input's records); read back, they are the records a
    remote worker sends whole, and the file is gone afterwards."""
    for kinds in (frozenset({"flows"}), frozenset({"calls"})):
        whole = run_input(InputJob(str(paths[1]), 1, Config(), kinds, False, False))
        spilled = run_input(InputJob(str(paths[1]), 1, Config(), kinds, False, False,
                                     spill_dir=str(tmp_path)))  # fmt: skip
        assert whole.events and not spilled.events and spilled.spill_path
        assert Path(spilled.spill_path).parent == tmp_path
        replayed = list(spilled.replay())
        assert [k for k, _ in replayed] == [k for k, _ in whole.events]
        for (_, a), (_, b) in zip(replayed, whole.events, strict=True):
            assert a == b  # RecordBatch.equals / the same call dicts
        assert list(tmp_path.iterdir()) == []


def test_the_command_leaves_no_files_behind(tmp_path: Path, paths: list[Path]) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"\x00" * 64)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    run = subprocess.run(
        [sys.executable, "-m", "voipscope", "flows", str(paths[1]), str(junk), str(paths[2]),
         "--workers", "2", "-f", "jsonl"], capture_output=True, text=True, timeout=TIMEOUT_S,
        env=env,
    )  # fmt: skip
    assert run.returncode == 3 and run.stdout
    assert list(scratch.iterdir()) == []  # neither our spill files nor dask's scratch space


@pytest.mark.parametrize("moment", ["starting", "running"])
def test_ctrl_c_stops_the_command_and_its_workers_quietly(
    tmp_path: Path, paths: list[Path], moment: str
) -> None:
    """SIGINT to the whole process group (a terminal's Ctrl-C) while the cluster starts
    (its first process is there) or while inputs run (the output file is open): one
    line, exit 130, the workers gone with the command, no files left."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    output = tmp_path / "flows.parquet"
    inputs = [str(paths[1])] * 4000  # ~1 min of work: cannot end before the signal
    run = subprocess.Popen(
        [sys.executable, "-m", "voipscope", "flows", *inputs, "--workers", "2", "-o",
         str(output)], stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (_processes_in_group(run.pid) > 1 if moment == "starting" else output.exists()):
            assert run.poll() is None and time.monotonic() < deadline, f"no {moment} seen"
            time.sleep(0.02)
        if moment == "running":
            time.sleep(1)
    finally:
        err = _ctrl_c(run, timeout_s=60)
    assert run.returncode == 130 and err.strip() == "voipscope: interrupted", err
    assert list(scratch.iterdir()) == []
    deadline = time.monotonic() + 10  # the workers' processes end soon after the command
    while _processes_in_group(run.pid):
        if time.monotonic() > deadline:
            left = subprocess.run(["ps", "-o", "pid,args", "-g", str(run.pid)],
                                  capture_output=True, text=True).stdout  # fmt: skip
            pytest.fail(f"processes of the interrupted run are still alive:\n{left}")
        time.sleep(0.2)


def test_ctrl_c_stops_a_connection_to_a_silent_scheduler(paths: list[Path]) -> None:
    """A scheduler address that accepts but never speaks: the connection attempt waits,
    and a Ctrl-C stops it (one line, exit 130)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        run = subprocess.Popen(
            [sys.executable, "-m", "voipscope", "flows", str(paths[0]), "--scheduler", address],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        try:
            time.sleep(4)  # imports done, connecting
            assert run.poll() is None, run.communicate()[1]
        finally:
            err = _ctrl_c(run, timeout_s=20)
    assert run.returncode == 130 and err.strip() == "voipscope: interrupted", err


def test_an_address_that_is_no_scheduler_is_one_line(paths: list[Path]) -> None:
    """Something else listening there (an HTTP server): one error line, exit 1, no
    traceback (dask read a frame length out of the HTTP text and tried to allocate it)."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(4)

        def answer() -> None:
            with contextlib.suppress(OSError):
                conn, _ = other.accept()
                with conn:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" * 3)
                    time.sleep(2)

        threading.Thread(target=answer, daemon=True).start()
        address = f"tcp://127.0.0.1:{other.getsockname()[1]}"
        run = voipscope("flows", str(paths[0]), "--scheduler", address)
    assert run.returncode == 1, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"voipscope: error: cannot start scale-out on {address}"
    )


def _ctrl_c(run: subprocess.Popen[str], timeout_s: float) -> str:
    """SIGINT to the run's process group (a terminal's Ctrl-C); its stderr once it ended.
    A run still there after ``timeout_s`` is killed (and the caller's checks fail)."""
    try:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGINT)
        return run.communicate(timeout=timeout_s)[1]
    except subprocess.TimeoutExpired:
        return "still running after the Ctrl-C"
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()


def _processes_in_group(pgid: int) -> int:
    """Live processes (not zombies) of process group ``pgid``."""
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid and fields[0] != "Z":  # state, ppid, pgrp, ...
            count += 1
    return count


def test_usage_errors(paths: list[Path]) -> None:
    one = str(paths[0])
    for args in (["-", "--workers", "2"], [one, "--workers", "0"],
                 [one, "--workers", "2", "--scheduler", "tcp://127.0.0.1:9"]):  # fmt: skip
        run = voipscope("flows", *args)
        assert run.returncode == 2, (args, run.stderr)
    run = voipscope("analyze", "-", "--workers", "2")
    assert run.returncode == 2


def test_a_pipe_cannot_go_to_a_worker(tmp_path: Path, paths: list[Path]) -> None:
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    run = voipscope("flows", str(paths[0]), str(fifo), "--workers", "2")
    assert run.returncode == 2 and "a pipe or device" in run.stderr


def test_an_unreachable_scheduler_is_one_error_line(paths: list[Path]) -> None:
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}  # dask's own key
    run = subprocess.run(
        [sys.executable, "-m", "voipscope", "flows", str(paths[0]), "--scheduler",
         "tcp://127.0.0.1:9"], capture_output=True, text=True, timeout=TIMEOUT_S, env=env,
    )  # fmt: skip
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot start scale-out on tcp://127.0.0.1:9" in lines[0]


def test_a_cluster_that_cannot_start_leaves_the_output_alone(
    tmp_path: Path, paths: list[Path]
) -> None:
    """The cluster is opened before the output: an existing -o file keeps its bytes."""
    kept = tmp_path / "flows.jsonl"
    kept.write_text("yesterday's records\n")
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    run = subprocess.run(
        [sys.executable, "-m", "voipscope", "flows", str(paths[0]), "-o", str(kept),
         "--scheduler", "tcp://127.0.0.1:9"], capture_output=True, text=True,
        timeout=TIMEOUT_S, env=env,
    )  # fmt: skip
    assert run.returncode == 1
    assert kept.read_text() == "yesterday's records\n"


def test_analyze_writes_the_same_directory(tmp_path: Path, paths: list[Path]) -> None:
    scaled, serial = tmp_path / "scaled", tmp_path / "serial"
    run = voipscope("analyze", *map(str, paths), "-o", str(scaled), "--workers", "2")
    assert run.returncode == 0, run.stderr
    assert (scaled / "report.html").stat().st_size > 10_000
    assert voipscope("analyze", *map(str, paths), "-o", str(serial)).returncode == 0
    a = json.loads((scaled / "summary.json").read_text())
    b = json.loads((serial / "summary.json").read_text())
    for key in ("flows", "calls", "streams", "alerts", "calls by state", "inputs"):
        assert a[key] == b[key], key
    assert a["run"]["packets"] == b["run"]["packets"]
    # Verdicts may differ where one process carries DNS names from one input to the next;
    # these inputs are far apart, so they do not.
    assert a["flows by category"] == b["flows by category"]


@pytest.fixture
def loopback_cluster(tmp_path: Path) -> Iterator[Path]:
    """A dask scheduler and one worker on 127.0.0.1, started and stopped by the test."""
    scheduler_file = tmp_path / "scheduler.json"
    common = ["--no-dashboard"]
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", "0", "--scheduler-file", str(scheduler_file), *common],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    processes = [scheduler]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.1)
        worker = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
             str(scheduler_file), "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1",
             *common],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/",
        )  # fmt: skip
        processes.append(worker)
        yield scheduler_file
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in reversed(processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_an_existing_cluster_reads_inputs_by_absolute_path(
    tmp_path: Path,
    paths: list[Path],
    flows_alone: tuple[list[dict], list[dict]],
    loopback_cluster: Path,
) -> None:
    """The worker runs in / and the command elsewhere: relative inputs still resolve."""
    address = json.loads(loopback_cluster.read_text())["address"]
    assert address.startswith("tcp://127.0.0.1:")
    relative = [os.path.relpath(p, tmp_path) for p in paths[:3]]
    expected = [r for r in flows_alone[0] if r["flow_id"] < 3 * FLOW_ID_STRIDE]
    for target in (address, str(loopback_cluster)):
        run = voipscope("flows", *relative, "--scheduler", target, "-f", "jsonl", cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert jsonl(run.stdout) == expected


def test_the_python_api_takes_workers(paths: list[Path]) -> None:
    """read_flows/read_calls(..., workers=2): the records of each input read alone, ids
    shifted; the counts of all inputs in the table's metadata; hooks refused."""
    import voipscope

    three = paths[:3]
    table = voipscope.read_flows(three, workers=2)
    expected = []
    for index, path in enumerate(three):
        expected += shifted(voipscope.read_flows(path).to_pylist(), index)  # type: ignore[operator]
    assert table.to_pylist() == expected
    stats = json.loads(table.schema.metadata[b"voipscope.stats"])
    assert stats["packets"] == sum(
        json.loads(voipscope.read_flows(p).schema.metadata[b"voipscope.stats"])["packets"]
        for p in three
    )
    calls = voipscope.read_calls(three, workers=2).to_pylist()
    alone_calls = []
    for index, path in enumerate(three):
        alone_calls += shifted(voipscope.read_calls(path).to_pylist(), index)  # type: ignore[operator]
    assert sorted(calls, key=str) == sorted(alone_calls, key=str) and calls
    with pytest.raises(ValueError, match="hooks"):
        list(voipscope.iter_flows(three, workers=2, hooks=[object()]))  # type: ignore[list-item]


@pytest.mark.skipif(SOFTFLOWD is None, reason="softflowd not installed (apt-get install softflowd)")
def test_flow_record_inputs_run_on_workers_too(tmp_path: Path, paths: list[Path]) -> None:
    """Captures of softflowd's NetFlow v9 export datagrams (--flow-records): flows and app
    calls with --workers 2 equal each export read alone."""
    exports = [export_with_softflowd(paths[i], "v9", tmp_path)[0] for i in (1, 4)]  # SIP, Discord
    for command in ("flows", "calls"):
        scaled = voipscope(command, "--flow-records", *map(str, exports), "--workers", "2",
                           "-f", "jsonl")  # fmt: skip
        assert scaled.returncode == 0, scaled.stderr
        expected: list[dict] = []
        for index, export in enumerate(exports):
            run = voipscope(command, "--flow-records", str(export), "-f", "jsonl")
            assert run.returncode == 0, run.stderr
            expected += shifted(jsonl(run.stdout), index)  # type: ignore[operator]
        records = jsonl(scaled.stdout)
        assert records == expected and records  # Discord's app calls among the calls
        if command == "flows":
            assert {r["flow_id"] // FLOW_ID_STRIDE for r in records} == {0, 1}
