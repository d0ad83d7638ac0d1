"""`voipscope live -i IFACE`: the pipeline of the file commands on a live interface.

Records are written as they become final (flows when they end, calls when final, alerts
when raised and again when final), flushed per line. With ``--blocklist`` the offenders
of alerts at or above ``--block-severity`` go into a block list file within seconds
(voipscope.output.blocklist). Ctrl-C or SIGTERM, ``--duration`` or ``--count`` end the
capture; every open flow, call and alert is then flushed and the exit status is 0
(4 with ``--fail-on``, as `voipscope alerts`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from voipscope.cli.main import (
    EXIT_ALERT,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNREADABLE,
    EXIT_USAGE,
    SEVERITIES,
    AnomaliesOut,
    ConfigItems,
    FailOn,
    Output,
    ShowTraceback,
    Stats,
    _err,
    _fails_on,
    _parse_config,
    _pick_format,
    _use_system_allocator,
    _valid_fail_on,
    _write_anomalies,
)

DROP_WARNING_EVERY_S = 10.0  # kernel drops are warned at most this often (and at the end)


def live(
    interface: Annotated[
        str,
        typer.Option(
            "--interface",
            "-i",
            help="Network interface to capture on (or any).",
            show_default=False,
        ),
    ],
    bpf: Annotated[
        str | None,
        typer.Option(
            "--filter",
            help="Capture filter in tcpdump syntax (pcap-filter(7)), applied in the kernel; "
            "compiled with libpcap.",
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="table | jsonl | csv (default: table on a terminal, jsonl when piped, "
            "else by the -o suffix).",
        ),
    ] = None,
    output: Output = None,
    records: Annotated[
        str,
        typer.Option(
            "--records",
            help="flows | calls | alerts | actions (a --hook's decisions) | all, or a comma "
            'list (flows,alerts). JSONL lines of several kinds say which in "record".',
        ),
    ] = "all",
    duration_s: Annotated[
        float | None,
        typer.Option("--duration", help="Stop after this many seconds.", min=0.0),
    ] = None,
    count: Annotated[
        int | None, typer.Option("--count", help="Stop after this many packets.", min=1)
    ] = None,
    blocklist: Annotated[
        str | None,
        typer.Option(
            "--blocklist",
            help="Keep the addresses of attackers (src_ip of alerts at or above "
            "--block-severity) in this file, rewritten atomically within seconds.",
        ),
    ] = None,
    blocklist_format: Annotated[
        str,
        typer.Option(
            "--blocklist-format",
            help="plain (one address per line) | nft (script for nft -f: table inet "
            "voipscope, sets blocklist4/blocklist6, a drop rule).",
        ),
    ] = "plain",
    block_severity: Annotated[
        str, typer.Option("--block-severity", help="low | medium | high.")
    ] = "high",
    never_block: Annotated[
        list[str] | None,
        typer.Option(
            "--never-block",
            help="Addresses or networks never to list, comma-separated (repeatable): "
            "your trunks and servers. Loopback, multicast and 0.0.0.0/:: never are.",
        ),
    ] = None,
    hook: Annotated[
        str | None,
        typer.Option(
            "--hook",
            help="A verdict hook (FILE.py, FILE.py:FUNCTION or MODULE:FUNCTION) asked about "
            "each VoIP flow, call and alert as it happens; its drops and shapes are action "
            "records, applied with nftables with --apply (docs/inline.md).",
        ),
    ] = None,
    apply: Annotated[
        bool,
        typer.Option(
            "--apply",
            help="Load the nft block list with nft -f after each update, and the hook's "
            "decisions into table inet voipscope_inline.",
        ),
    ] = False,
    snaplen: Annotated[
        int | None,
        typer.Option("--snaplen", "-s", help="Bytes kept per packet (default 65535).", min=64),
    ] = None,
    promiscuous: Annotated[
        bool,
        typer.Option("--promisc/--no-promisc", help="Promiscuous mode (default on)."),
    ] = True,
    fail_on: FailOn = None,
    config: ConfigItems = None,
    stats: Stats = False,
    anomalies_out: AnomaliesOut = None,
    show_traceback: ShowTraceback = False,
) -> None:
    """The same pipeline on a live interface: flows, calls and alerts as they happen,
    and a block list of attackers applied within seconds. Needs root or CAP_NET_RAW."""
    raise typer.Exit(
        _run_live(
            interface, bpf, fmt, output, records, duration_s, count, blocklist,
            blocklist_format, block_severity, never_block or [], apply, snaplen, promiscuous,
            fail_on, config or [], stats, show_traceback, hook, anomalies_out,
        )
    )  # fmt: skip


def _kinds(records: str) -> tuple[str, ...] | None:
    from voipscope.output.live_writers import RECORD_KINDS

    names = [r.strip() for r in records.split(",") if r.strip()]
    if names == ["all"]:
        return RECORD_KINDS
    if not names or any(n not in RECORD_KINDS for n in names):
        return None
    return tuple(n for n in RECORD_KINDS if n in names)


def _run_live(interface: str, bpf: str | None, fmt: str | None, output: str | None,
              records: str, duration_s: float | None, count: int | None,
              blocklist_path: str | None, blocklist_format: str, block_severity: str,
              never_block: list[str], apply: bool, snaplen: int | None, promiscuous: bool,
              fail_on: str | None, config_items: list[str], print_stats: bool,
              show_traceback: bool, hook: str | None = None,
              anomalies_out: str | None = None) -> int:  # fmt: skip
    from voipscope.errors import ConfigError, SourceError, VoipscopeError

    kinds = _kinds(records)
    if kinds is None:
        _err(f"unknown --records {records!r}; choose flows, calls, alerts, all or a comma list")
        return EXIT_USAGE
    from voipscope.output.live_writers import FORMATS as LIVE_FORMATS

    fmt = _pick_format(fmt, output)
    if fmt not in LIVE_FORMATS:
        _err(f"unknown format {fmt!r} for live; choose one of {', '.join(LIVE_FORMATS)}")
        return EXIT_USAGE
    if fmt == "csv" and len(kinds) != 1:
        _err("csv holds one kind of record: choose one with --records")
        return EXIT_USAGE
    if block_severity not in SEVERITIES:
        _err(f"unknown --block-severity {block_severity!r}; choose one of {', '.join(SEVERITIES)}")
        return EXIT_USAGE
    if not _valid_fail_on(fail_on):
        return EXIT_USAGE
    try:
        cfg, detect_cfg = _parse_config(config_items, detect_keys=True)
        if snaplen is not None:
            cfg = cfg.with_value("live.snaplen_bytes", snaplen)
        if not promiscuous:
            cfg = cfg.with_value("live.promiscuous", False)
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_USAGE

    blocklist = None
    if blocklist_path:
        from voipscope.output.blocklist import BlockList, parse_networks

        try:
            allowed = parse_networks(",".join(never_block))
            blocklist = BlockList(
                blocklist_path, blocklist_format, block_severity, allowed, apply=apply,
                log=lambda message: _err(f"{_now()} {message}"),
            )  # fmt: skip
        except ValueError as exc:
            _err(str(exc))
            return EXIT_USAGE
    elif never_block and hook is None:
        _err("--never-block needs --blocklist FILE or --hook")
        return EXIT_USAGE
    if apply and blocklist is None and hook is None:
        _err("--apply needs --blocklist FILE or --hook")
        return EXIT_USAGE
    inline = None
    if hook is not None and not cfg.dissect.enabled:
        _err("--hook needs dissect.enabled=true (the hook is asked about identified flows)")
        return EXIT_USAGE
    if hook is not None:
        from voipscope.cli.inline import load_hook_or_exit
        from voipscope.inline.stage import InlineStage

        inline = InlineStage(load_hook_or_exit(hook, show_traceback))
    never = None
    if never_block:
        from voipscope.output.blocklist import parse_networks

        try:
            never = parse_networks(",".join(never_block))
        except ValueError as exc:
            _err(str(exc))
            return EXIT_USAGE

    from voipscope.pipeline import FlowPipeline
    from voipscope.source.live import LiveCapture

    _use_system_allocator()
    _warm_up(cfg, detect_cfg)
    stop = threading.Event()
    drops = _DropWarnings(interface)
    try:
        capture = LiveCapture(interface, cfg, bpf, stop, count, duration_s, drops.seen)
    except SourceError as exc:
        _err(f"error: {exc}")
        return EXIT_UNREADABLE
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_USAGE
    from voipscope.source.linktypes import linktype_name

    # Like tcpdump's "listening on": from here on no packet is missed (scripts wait for it).
    _err(
        f"listening on {interface}, link type {linktype_name(capture.ring.linktype)}, "
        f"snapshot length {capture.snaplen} bytes" + (f", filter {bpf!r}" if bpf else "")
    )
    pipeline = FlowPipeline(cfg, inline=inline)
    enforcer = None
    if inline is not None and apply:
        from voipscope.inline.nft import NftVerdicts

        enforcer = NftVerdicts(log=lambda message: _err(f"{_now()} {message}"))
        try:
            enforcer.start()
        except (OSError, RuntimeError) as exc:
            capture.close()
            _err(f"error: cannot load nft table inet voipscope_inline: {exc}")
            return EXIT_ERROR
    if blocklist is not None:
        try:
            blocklist.write()  # the file (and the nft set) exist from the start
        except OSError as exc:
            capture.close()
            _err(f"{blocklist_path}: cannot write ({exc.strerror or exc})")
            return EXIT_ERROR
        if apply:
            blocklist.apply()

    from voipscope.output.live_writers import LiveRecordStream

    try:
        stream = LiveRecordStream(fmt, output, kinds)
    except OSError as exc:
        capture.close()
        _err(f"{output}: cannot write ({exc.strerror or exc})")
        return EXIT_ERROR
    severities: set[str] = set()
    code = EXIT_OK
    try:
        with _stop_on_signals(stop):
            for kind, payload in pipeline.run_live(capture, detect_cfg):
                if kind == "flows":
                    stream.flows(payload)  # type: ignore[arg-type]
                    continue
                if kind == "calls":
                    stream.calls(payload)  # type: ignore[arg-type]
                    continue
                if kind == "actions":
                    _act(payload, enforcer, never, stream)  # type: ignore[arg-type]
                    continue
                alerts: list[dict[str, Any]] = payload  # type: ignore[assignment]
                severities.update(a["severity"] for a in alerts)
                stream.alerts(alerts, final=kind == "alerts")
                if blocklist is not None:
                    for address in blocklist.add_alerts(alerts):
                        line = f"blocked {address} -> {blocklist_path}"
                        _err(f"{_now()} {line}")
                        stream.note(line)
        stream.close()
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once, records may be lost
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except SourceError as exc:
        _err(f"error: {exc}")
        code = EXIT_UNREADABLE
    except (VoipscopeError, OSError) as exc:
        _err(f"error: {interface}: {exc}")
        if show_traceback:
            traceback.print_exc()
        code = EXIT_ERROR
    except Exception as exc:  # a bug: one line unless asked for the stack
        _err(f"internal error: {type(exc).__name__}: {exc} (run with --traceback for details)")
        if show_traceback:
            traceback.print_exc()
        code = EXIT_ERROR
    finally:
        capture.close()
    if anomalies_out and not _write_anomalies(pipeline, anomalies_out):
        code = max(code, EXIT_ERROR)
    for warning in pipeline.stats.warnings():
        _err(f"warning: {warning}")
    if print_stats:
        import json

        print(json.dumps(pipeline.stats.to_dict(), indent=2), file=sys.stderr)
    return EXIT_ALERT if code == EXIT_OK and _fails_on(fail_on, severities) else code


def _act(actions: list[Any], enforcer: Any, never: list[Any] | None, stream: Any) -> None:
    """The hook's new decisions: addresses in --never-block taken out, loaded into nftables
    (with --apply), written as action records and one line each on stderr."""
    import ipaddress

    from voipscope.output.blocklist import in_networks

    if never:
        for action in actions:
            # Only whole addresses: a 5-tuple or a media port of a call through your SBC
            # is that call's, not the SBC's.
            kept = tuple(
                t
                for t in action.targets
                if t.scope != "from" or not in_networks(ipaddress.ip_address(t.ip), never)
            )
            if len(kept) < len(action.targets):
                left_out = len(action.targets) - len(kept)
                action.error = f"{left_out} targets in --never-block left out"
                action.targets = kept
    if enforcer is not None:
        enforcer.apply([a for a in actions if a.targets])
    records = [a.to_record(counted=False) for a in actions]
    for r in records:
        applied = {True: "applied", False: "NOT applied", None: "not applied (no --apply)"}
        _err(f"{_now()} {r['action']} {r['event']} {r['stage']} {r['subject']}: "
             f"{len(r['targets'])} targets, {applied[r['applied']]}"
             + (f" ({r['error']})" if r["error"] else ""))  # fmt: skip
    stream.actions(records)


class _SampleAsLive:
    """The bundled sample as a live source would hand it over: writable buffers (the
    file reader's are read-only maps, a different compiled variant) and a clock."""

    def __init__(self, path: str) -> None:
        from voipscope.source import CaptureInfo

        self.path = path
        self.info = CaptureInfo(path="warm-up", format="live")

    def batches(self) -> Iterator[Any]:
        import dataclasses

        import numpy as np

        from voipscope.source import read_capture

        for batch in read_capture(self.path):
            yield dataclasses.replace(batch, buf=np.array(batch.buf), clock_ns=int(batch.ts_ns[-1]))


def _warm_up(cfg: Any, detect_cfg: Any) -> None:
    """Run the bundled sample through a throwaway pipeline before the capture opens, so
    the compiled kernels are loaded (or compiled, the very first time) now and not while
    the first packets wait in the kernel ring, where a burst would overflow it."""
    from voipscope.cli.main import sample_path
    from voipscope.pipeline import FlowPipeline
    from voipscope.source.kernels_live import compile_drain_ring

    for _ in FlowPipeline(cfg).run_live(_SampleAsLive(sample_path()), detect_cfg):
        pass
    compile_drain_ring()  # the ring's copy kernel, which the sample does not use


def _now() -> str:
    """Wall-clock time for log lines (records carry capture time)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _DropWarnings:
    """Kernel drops as warning lines on stderr, at most every DROP_WARNING_EVERY_S (the
    capture thread calls ``seen``); the total is in the final warnings and --stats."""

    def __init__(self, interface: str) -> None:
        self.interface = interface
        self._last_s = 0.0
        self._unwarned = 0

    def seen(self, new: int, total: int) -> None:
        self._unwarned += new
        now = time.monotonic()
        if now - self._last_s >= DROP_WARNING_EVERY_S:
            _err(
                f"{_now()} warning: {self.interface}: the kernel dropped {self._unwarned} "
                f"packets ({total} in all): the pipeline is behind"
            )
            self._last_s, self._unwarned = now, 0


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM end the capture cleanly (records flushed, exit 0); a second one
    interrupts at once."""

    def handler(signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
