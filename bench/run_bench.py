#!/usr/bin/env python3
"""Time voipscope and peer flow tools on one capture and print a comparison table.

Every tool reads the same file in the same run (page cache warmed first), one after the
other, so the numbers are comparable. Per tool we report wall seconds, CPU seconds
(user+sys of the whole process tree), packets/s (packets counted once from the file, not
taken from any tool's own report) and peak RSS. A tool that is missing or fails gets a row
saying so; the harness itself never stops because of one tool.

Peak RSS is the larger of (a) the sum of VmRSS over the tool's process tree, sampled from
/proc every 50 ms, and (b) the kernel's exact max RSS of the tool process (ru_maxrss,
read through GNU time `/usr/bin/time -f %M`, falling back to os.wait4 without it). (b) is
exact but per process, so alone it under-reports multi-process tools such as nfstream;
(a) catches those but can miss a spike shorter than the sampling period.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import json
import os
import platform
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

DEFAULT_FILE = Path("/tmp/voipscope-bench/mix.pcap")
DEFAULT_VOIPSCOPE_CMD = "voipscope flows {file} --format parquet -o {out}"
PAGE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_PERIOD_S = 0.05
GNU_TIME = Path("/usr/bin/time")  # Debian package `time`; optional, see measure()

# nfstream is driven through the interpreter running this harness so that "installed in
# the current environment" means exactly that. Flows are only counted: no statistics and
# no nDPI dissection, which makes it a flow-metering peer like nfpcapd.
NFSTREAM_SCRIPT = """
import sys
from nfstream import NFStreamer
n = 0
for _flow in NFStreamer(source=sys.argv[1], statistical_analysis=False, n_dissections=0):
    n += 1
print(n, "flows")
"""


@dataclass(slots=True)
class Run:
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    max_process_rss_mb: float
    exit_code: int
    stderr_tail: str


@dataclass(slots=True)
class Result:
    tool: str
    status: str  # "ok", "not available (...)", "failed (...)"
    command: list[str] = field(default_factory=list)
    version: str = ""
    runs: list[Run] = field(default_factory=list)

    @property
    def best(self) -> Run | None:
        ok = [r for r in self.runs if r.exit_code == 0]
        return min(ok, key=lambda r: r.wall_s) if ok else None


@dataclass(frozen=True, slots=True)
class Context:
    file: Path
    workdir: Path  # fresh per run; tools write their outputs here
    voipscope_cmd: str


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    command: Callable[[Context], list[str]]
    missing: Callable[[Context], str | None]  # reason the tool cannot run, or None
    version: Callable[[Context], str]
    warmup: bool = False  # one untimed run first (JIT caches, not page cache)


# ---------------------------------------------------------------------------- tools


def _needs_binary(name: str, package: str) -> Callable[[Context], str | None]:
    def check(_ctx: Context) -> str | None:
        return None if shutil.which(name) else f"{name} not on PATH (apt-get install {package})"

    return check


def _deb_version(package: str) -> Callable[[Context], str]:
    def version(_ctx: Context) -> str:
        return _capture(["dpkg-query", "-W", "-f", "${Version}", package]) or "?"

    return version


def _capture(cmd: list[str]) -> str:
    """First line of a helper command's stdout, or '' if it cannot run."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if lines and out.returncode == 0 else ""


def _voipscope_command(ctx: Context) -> list[str]:
    out = ctx.workdir / "flows.parquet"
    return [a.format(file=ctx.file, out=out) for a in shlex.split(ctx.voipscope_cmd)]


def _voipscope_missing(ctx: Context) -> str | None:
    argv = shlex.split(ctx.voipscope_cmd)
    if not argv:
        return "empty --voipscope-cmd"
    return None if shutil.which(argv[0]) else f"{argv[0]} not on PATH (pip install -e . first)"


def _voipscope_version(ctx: Context) -> str:
    return _capture([shlex.split(ctx.voipscope_cmd)[0], "--version"]) or "?"


@functools.cache
def _nfpcapd_dir_flag() -> str:
    """nfdump 1.7 names the flow directory with -w; 1.6 releases used -l."""
    try:
        out = subprocess.run(["nfpcapd", "-h"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "-w"
    help_text = out.stdout + out.stderr
    return "-l" if "-l flowdir" in help_text and "-w flowdir" not in help_text else "-w"


def _nfstream_missing(_ctx: Context) -> str | None:
    if importlib.util.find_spec("nfstream") is None:
        return f"python module nfstream not importable by {sys.executable} (pip install nfstream)"
    return None


def _nfstream_version(_ctx: Context) -> str:
    return _capture([sys.executable, "-c", "import nfstream; print(nfstream.__version__)"])


TOOLS: tuple[Tool, ...] = (
    Tool(
        "voipscope",
        _voipscope_command,
        _voipscope_missing,
        _voipscope_version,
        warmup=True,
    ),
    Tool(
        # Flow accounting only (identification off): the like-for-like row for nfpcapd.
        "voipscope-flows-only",
        lambda c: [*_voipscope_command(c), "-c", "dissect.enabled=false"],
        _voipscope_missing,
        _voipscope_version,
        warmup=True,
    ),
    Tool(
        # The same command on the 112-packet bundled sample: what every run pays before
        # the first packet (interpreter, imports, loading the cached numba kernels).
        "voipscope-startup",
        lambda c: [
            a.format(file="--sample", out=c.workdir / "sample.parquet")
            for a in shlex.split(c.voipscope_cmd)
        ],
        _voipscope_missing,
        _voipscope_version,
        warmup=True,
    ),
    Tool(
        # Calls with media quality and talk spurts (issue 5): the peer row is tshark's
        # RTP stream analysis plus its SIP statistics on the same file.
        "voipscope-calls",
        lambda c: [
            "voipscope",
            "calls",
            str(c.file),
            "--format",
            "parquet",
            "-o",
            str(c.workdir / "calls.parquet"),
        ],
        _voipscope_missing,
        _voipscope_version,
        warmup=True,
    ),
    Tool(
        "tshark-rtp-sip",
        lambda c: ["tshark", "-n", "-q", "-z", "rtp,streams", "-z", "sip,stat", "-r", str(c.file)],
        _needs_binary("tshark", "tshark"),
        _deb_version("tshark"),
    ),
    Tool(
        "nfpcapd",
        lambda c: ["nfpcapd", "-r", str(c.file), _nfpcapd_dir_flag(), str(c.workdir)],
        _needs_binary("nfpcapd", "nfdump"),
        _deb_version("nfdump"),
    ),
    Tool(
        "ndpiReader",
        # -q only silences the per-flow dump; detection runs in full. No -t, so GTP
        # tunnels are not decoded (nfstream, unlike the others, decodes them by default).
        lambda c: ["ndpiReader", "-i", str(c.file), "-q"],
        _needs_binary("ndpiReader", "libndpi-bin"),
        _deb_version("libndpi-bin"),
    ),
    Tool(
        "tshark-conv-udp",
        # -n: never resolve names (that would be network traffic and noise in timings).
        lambda c: ["tshark", "-n", "-q", "-z", "conv,udp", "-r", str(c.file)],
        _needs_binary("tshark", "tshark"),
        _deb_version("tshark"),
    ),
    Tool(
        "tshark-conv-tcp",
        lambda c: ["tshark", "-n", "-q", "-z", "conv,tcp", "-r", str(c.file)],
        _needs_binary("tshark", "tshark"),
        _deb_version("tshark"),
    ),
    Tool(
        "nfstream",
        lambda c: [sys.executable, "-c", NFSTREAM_SCRIPT, str(c.file)],
        _nfstream_missing,
        _nfstream_version,
    ),
)


# ---------------------------------------------------------------------- measurement


def _process_tree(root: int) -> list[int]:
    """root and all its descendants, from a /proc scan (no /proc/*/children here)."""
    parent_of: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue  # exited while scanning
        # comm may contain spaces and parentheses: ppid is the 2nd field after the last ')'.
        parent_of[int(entry.name)] = int(stat[stat.rindex(b")") + 2 :].split()[1])
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parent_of.items() if ppid in frontier]
        tree.extend(frontier)
    return tree


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


class TreeRssSampler(threading.Thread):
    """Background sampler of the summed RSS of a process tree."""

    def __init__(self, root: int, include_root: bool) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.skip = 0 if include_root else 1  # the GNU time wrapper is not the tool
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            total = sum(_rss_bytes(pid) for pid in _process_tree(self.root)[self.skip :])
            self.peak = max(self.peak, total)
            if self._stop_event.wait(SAMPLE_PERIOD_S):
                return

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def _kill_group(pgid: int) -> None:
    # The child leads its own session (start_new_session), so this reaches exactly the
    # processes this harness started for the run.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def measure(cmd: list[str], workdir: Path, timeout_s: float) -> Run:
    err_path = workdir / "stderr.txt"
    rss_path = workdir / "maxrss.txt"
    # GNU time as a small intermediary: the tool is forked from *its* tiny address space.
    # Spawned straight from Python, the child's ru_maxrss would start at this harness's
    # own high-water RSS (Linux carries it across exec), inflating small tools' numbers.
    wrapped = GNU_TIME.exists()
    argv = [str(GNU_TIME), "-f", "%M", "-o", str(rss_path), *cmd] if wrapped else cmd
    with err_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=workdir,
            start_new_session=True,
        )
        sampler = TreeRssSampler(proc.pid, include_root=not wrapped)
        sampler.start()
        killer = threading.Timer(timeout_s, _kill_group, (proc.pid,))
        killer.start()
        # wait4 instead of proc.wait(): it returns this child's own rusage (CPU time of
        # the whole tree it reaped), which RUSAGE_CHILDREN deltas blur across tools.
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # tell Popen it was reaped
        tree_peak = sampler.stop()
    tail = err_path.read_text(errors="replace").strip().splitlines()[-3:]
    max_process_kib = _gnu_time_maxrss(rss_path) if wrapped else usage.ru_maxrss
    return Run(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=max(tree_peak, max_process_kib * 1024) / 2**20,
        max_process_rss_mb=max_process_kib / 1024,
        exit_code=proc.returncode,
        stderr_tail=" | ".join(tail),
    )


def _gnu_time_maxrss(path: Path) -> int:
    """KiB from GNU time's -o file; its last line is %M (earlier ones note signals)."""
    try:
        return int(path.read_text().strip().splitlines()[-1])
    except (OSError, IndexError, ValueError):
        return 0


def run_tool(tool: Tool, args: argparse.Namespace, scratch: Path) -> Result:
    probe = Context(args.file, scratch, args.voipscope_cmd)
    reason = tool.missing(probe)
    if reason:
        return Result(tool.name, f"not available ({reason})")
    result = Result(tool.name, "ok", tool.command(probe), tool.version(probe))
    passes = ([False] if tool.warmup else []) + [True] * args.repeat
    for timed in passes:
        workdir = Path(tempfile.mkdtemp(prefix=f"{tool.name}-", dir=scratch))
        ctx = Context(args.file, workdir, args.voipscope_cmd)
        run = measure(tool.command(ctx), workdir, args.timeout)
        shutil.rmtree(workdir, ignore_errors=True)  # outputs can be large: do not pile up
        _log(f"  {tool.name}{'' if timed else ' (warm-up)'}: {_describe(run)}")
        if run.exit_code != 0:
            result.status = f"failed (exit {run.exit_code}: {run.stderr_tail or 'no stderr'})"
            return result
        if timed:
            result.runs.append(run)
    return result


def _describe(run: Run) -> str:
    return (
        f"exit {run.exit_code}, {run.wall_s:.2f} s wall, {run.cpu_s:.2f} s cpu, "
        f"{run.peak_rss_mb:.0f} MB peak"
    )


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------- input file


PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": "<",
    b"\x4d\x3c\xb2\xa1": "<",
    b"\xa1\xb2\xc3\xd4": ">",
    b"\xa1\xb2\x3c\x4d": ">",
}
CHUNK = 16 << 20


def count_packets(path: Path) -> int:
    """Packets in the capture, counted by walking classic-pcap record headers.

    Plain chunked reads, not mmap: mapping the file would push this process's RSS
    high-water mark to the file size. Reading it all also leaves the file in the page
    cache, so no tool pays (or is spared) the first cold read. Non-pcap files (pcapng)
    are counted by capinfos instead.
    """
    with path.open("rb", buffering=0) as fh:
        endian = PCAP_MAGICS.get(fh.read(4))
        if endian is None:
            return _count_with_capinfos(path)
        fh.seek(24)
        return _count_records(fh, struct.Struct(endian + "I"))


def _count_records(fh: BinaryIO, caplen_field: struct.Struct) -> int:
    count, pending, skip = 0, b"", 0  # skip: bytes of the current record still to pass
    while chunk := fh.read(CHUNK):
        if skip >= len(chunk):
            skip -= len(chunk)
            continue
        buf, pos = pending + chunk[skip:], 0
        while pos + 16 <= len(buf):
            count += 1
            pos += 16 + caplen_field.unpack_from(buf, pos + 8)[0]
        pending, skip = (buf[pos:], 0) if pos <= len(buf) else (b"", pos - len(buf))
    # A truncated last record (header or body cut short) is not a packet tools will see.
    return count - (1 if skip else 0)


def _count_with_capinfos(path: Path) -> int:
    line = _capture(["capinfos", "-c", "-M", "-T", "-r", str(path)])
    try:
        return int(line.split("\t")[-1])
    except ValueError:
        raise SystemExit(f"cannot count packets in {path}: not pcap and capinfos failed") from None


# --------------------------------------------------------------------------- output


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def format_table(results: list[Result], packets: int) -> str:
    reference = next((r.best for r in results if r.tool == "voipscope"), None)
    ref_pps = packets / reference.wall_s if reference else None
    header = "| tool | wall s | CPU s | packets/s | peak RSS MB | voipscope ÷ tool |"
    lines = [header, "|---|---:|---:|---:|---:|---:|"]
    for result in results:
        best = result.best
        if best is None:
            lines.append(f"| {result.tool} | {result.status} | | | | |")
            continue
        pps = packets / best.wall_s
        ratio = f"{ref_pps / pps:.2f}×" if ref_pps else "n/a"
        if result.tool == "voipscope-startup":
            lines.append(
                f"| {result.tool} | {best.wall_s:.2f} | {best.cpu_s:.2f} | (fixed cost) | "
                f"{best.peak_rss_mb:,.0f} | |"
            )
            continue
        lines.append(
            f"| {result.tool} | {best.wall_s:.2f} | {best.cpu_s:.2f} | {pps:,.0f} | "
            f"{best.peak_rss_mb:,.0f} | {ratio} |"
        )
    startup = next((r.best for r in results if r.tool == "voipscope-startup"), None)
    if reference and startup and reference.wall_s > startup.wall_s:
        steady = packets / (reference.wall_s - startup.wall_s)
        lines.append("")
        lines.append(
            f"voipscope after start-up: {steady:,.0f} packets/s "
            f"({reference.wall_s:.2f} s − {startup.wall_s:.2f} s start-up)"
        )
    return "\n".join(lines)


def save_json(path: Path, args: argparse.Namespace, packets: int, results: list[Result]) -> None:
    payload = {
        "file": str(args.file),
        "file_bytes": args.file.stat().st_size,
        "packets": packets,
        "repeat": args.repeat,
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "kernel": platform.release()},
        "results": [
            {
                **asdict(r),
                "best": asdict(r.best) if r.best else None,
                "packets_per_s": packets / r.best.wall_s if r.best else None,
            }
            for r in results
        ],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    names = [t.name for t in TOOLS]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--file", type=Path, default=DEFAULT_FILE, help="capture to read")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per tool; best is kept")
    ap.add_argument("--tools", default=",".join(names), help=f"comma list from {names}")
    ap.add_argument("--json", type=Path, help="also write all results as JSON here")
    ap.add_argument(
        "--voipscope-cmd",
        default=DEFAULT_VOIPSCOPE_CMD,
        help="voipscope command line; {file} and {out} are substituted",
    )
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per tool run")
    args = ap.parse_args(argv)
    wanted = [n.strip() for n in args.tools.split(",") if n.strip()]
    by_lower = {n.lower(): n for n in names}
    unknown = [n for n in wanted if n.lower() not in by_lower]
    if unknown or not wanted:
        ap.error(f"unknown tools {unknown}; choose from {names}")
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    args.tools = [by_lower[n.lower()] for n in wanted]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.file.is_file():
        raise SystemExit(f"{args.file} not found: build it with bench/make_mix.py")
    packets = count_packets(args.file)
    size = args.file.stat().st_size
    _log(f"{args.file}: {packets} packets, {size} bytes; {cpu_model()}, {os.cpu_count()} cores")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="voipscope-bench-", dir="/tmp") as scratch:
        for tool in (t for t in TOOLS if t.name in args.tools):
            _log(f"{tool.name} ...")
            result = run_tool(tool, args, Path(scratch))
            if result.best is None:
                _log(f"  {tool.name}: {result.status}")
            results.append(result)
    print(f"\n{args.file}: {packets:,} packets, {size / 1e9:.2f} GB, best of {args.repeat}\n")
    print(format_table(results, packets))
    for result in results:
        if result.best is None:
            print(f"{result.tool}: {result.status}")
    if args.json:
        save_json(args.json, args, packets, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
