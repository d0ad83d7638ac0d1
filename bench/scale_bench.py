#!/usr/bin/env python3
"""Scale-out on one machine: many inputs, one process vs ``--workers N``, against peers.

    python bench/scale_bench.py [--file CAPTURE] [--parts 4] [--workers 2] [--repeat 1]
        [--json OUT]

The capture (default: the benchmark mix, bench/make_mix.py) is cut into ``--parts``
files of equal packet counts (editcap -c), the shape of a capture ring buffer or of a
directory of captures. Then, on those files in the same run, one after the other:

- voipscope flows / calls over all parts in one process, and with ``--workers N``;
- the peers, each part one run: one after the other, and N at a time (xargs -P N, the
  same cores a user would give them): ndpiReader for flows, tshark's RTP stream analysis
  plus SIP statistics for calls (bench/run_bench.py's commands).

Wall and CPU seconds, packets/s, and peak RSS of the whole process tree (VmRSS summed over
the tree every 50 ms: the workers are separate processes) come from run_bench.measure.
The ratio column is the peer's wall time over voipscope's: above 1, voipscope is faster.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_bench import DEFAULT_FILE, Run, count_packets, cpu_model, measure

TIMEOUT_S = 3600.0


@dataclass(slots=True)
class Row:
    name: str
    group: str  # "flows" | "calls": the peer rows it is compared with
    peer: bool
    command: list[str]
    run: Run | None = None


def split(capture: Path, parts: int, into: Path) -> list[Path]:
    packets = count_packets(capture)
    per_part = -(-packets // parts)
    subprocess.run(["editcap", "-c", str(per_part), str(capture), str(into / "part.pcap")],
                   check=True, capture_output=True)  # fmt: skip
    return sorted(into.glob("part_*.pcap"))


def rows(parts: list[Path], workers: int, scratch: Path) -> list[Row]:
    files = [str(p) for p in parts]

    def each(*argv: str) -> list[str]:  # a peer run per part, one after the other
        script = f'for f; do {shlex.join(argv)} "$f" >/dev/null || exit 1; done'
        return ["sh", "-c", script, "sh", *files]

    def parallel(*argv: str) -> list[str]:  # a peer run per part, N at a time
        script = f'printf "%s\\n" "$@" | xargs -P {workers} -n 1 {shlex.join(argv)} >/dev/null'
        return ["sh", "-c", script, "sh", *files]

    flows_out, calls_out = scratch / "flows.parquet", scratch / "calls.parquet"
    return [
        Row("voipscope flows, one process", "flows", False,
            ["voipscope", "flows", *files, "-o", str(flows_out)]),
        Row(f"voipscope flows --workers {workers}", "flows", False,
            ["voipscope", "flows", *files, "-o", str(flows_out), "--workers", str(workers),
             "--no-progress"]),
        Row("ndpiReader, parts one after the other", "flows", True, each("ndpiReader", "-q", "-i")),
        Row(f"ndpiReader, {workers} parts at a time", "flows", True,
            parallel("ndpiReader", "-q", "-i")),
        Row("voipscope calls, one process", "calls", False,
            ["voipscope", "calls", *files, "-o", str(calls_out)]),
        Row(f"voipscope calls --workers {workers}", "calls", False,
            ["voipscope", "calls", *files, "-o", str(calls_out), "--workers", str(workers),
             "--no-progress"]),
        Row("tshark rtp,streams + sip,stat, one after the other", "calls", True,
            each("tshark", "-n", "-q", "-z", "rtp,streams", "-z", "sip,stat", "-r")),
        Row(f"tshark rtp,streams + sip,stat, {workers} at a time", "calls", True,
            parallel("tshark", "-n", "-q", "-z", "rtp,streams", "-z", "sip,stat", "-r")),
    ]  # fmt: skip


def table(results: list[Row], packets: int) -> str:
    lines = [f"{'':52} {'wall s':>8} {'cpu s':>8} {'Mpkt/s':>7} {'peak RSS MB':>12} "
             f"{'peer wall / this':>17}"]  # fmt: skip
    for row in results:
        run = row.run
        if run is None:
            lines.append(f"{row.name:52} not run")
            continue
        ratio = ""
        if not row.peer:
            peers = [r.run.wall_s for r in results
                     if r.peer and r.group == row.group and r.run is not None]  # fmt: skip
            if peers:
                ratio = " / ".join(f"{p / run.wall_s:.2f}x" for p in peers)
        rate = packets / run.wall_s / 1e6
        lines.append(f"{row.name:52} {run.wall_s:8.2f} {run.cpu_s:8.2f} {rate:7.2f} "
                     f"{run.peak_rss_mb:12.0f} {ratio:>17}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per row (best kept)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    for tool in ("editcap", "voipscope", "ndpiReader", "tshark"):
        if shutil.which(tool) is None:
            print(f"{tool} not on PATH", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="voipscope-scale-", dir="/tmp") as tmp:
        scratch = Path(tmp)
        parts = split(args.file, args.parts, scratch)
        packets = sum(count_packets(p) for p in parts)
        size = sum(p.stat().st_size for p in parts)
        for p in parts:  # warm the page cache, as run_bench does
            with p.open("rb") as fh:
                while fh.read(1 << 24):
                    pass
        results = rows(parts, args.workers, scratch)
        for row in results:
            best: Run | None = None
            for attempt in range(args.repeat + (0 if row.peer else 1)):  # warm-up: numba cache
                run = measure(row.command, scratch, TIMEOUT_S)
                if run.exit_code != 0:
                    print(f"{row.name}: exit {run.exit_code}: {run.stderr_tail}", file=sys.stderr)
                    return 1
                if attempt or row.peer:
                    best = run if best is None or run.wall_s < best.wall_s else best
            row.run = best
            print(f"  {row.name}: {best.wall_s:.2f} s", file=sys.stderr, flush=True)
    header = (f"{time.strftime('%Y-%m-%d')}  {cpu_model()}  {platform.python_version()}\n"
              f"{args.file} cut into {len(parts)} parts: {packets:,} packets, "
              f"{size / 1e6:,.0f} MB; --workers {args.workers}")  # fmt: skip
    text = header + "\n" + table(results, packets)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({
            "header": header, "packets": packets,
            "rows": [{"name": r.name, "group": r.group, "peer": r.peer, "command": r.command,
                      "run": None if r.run is None else asdict(r.run)} for r in results],
        }, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
