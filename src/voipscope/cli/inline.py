"""`voipscope inline INPUT... --hook policy.py`: what a verdict hook decides about the flows,
calls and alerts of captures, and what each decision would have stopped in them.

The same hook runs live with ``voipscope live --hook policy.py --apply`` (nftables).
docs/inline.md.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated, Any

import typer

from voipscope.cli.main import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNREADABLE,
    EXIT_USAGE,
    ConfigItems,
    Format,
    Inputs,
    Output,
    ShowTraceback,
    Stats,
    UseSample,
    _err,
    _input_paths,
    _parse_config,
    _pick_format,
    _use_system_allocator,
)

Hook = Annotated[
    str,
    typer.Option(
        "--hook",
        help="The verdict hook: FILE.py (its function decide), FILE.py:FUNCTION or "
        "MODULE:FUNCTION. It is Python code and runs with voipscope's rights.",
        show_default=False,
    ),
]


def load_hook_or_exit(spec: str, show_traceback: bool) -> Any:
    """The hook, or exit 2 (not found) / 1 (its module failed to load)."""
    from voipscope.errors import ConfigError
    from voipscope.inline.runner import load_hook

    try:
        return load_hook(spec)
    except ConfigError as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    except Exception as exc:  # the user's module: say where, not our stack
        _err(f"error: hook {spec}: {type(exc).__name__}: {exc}")
        if show_traceback:
            traceback.print_exc()
        raise typer.Exit(EXIT_ERROR) from None


def inline(
    hook: Hook,
    inputs: Inputs = None,
    fmt: Format = None,
    output: Output = None,
    use_sample: UseSample = False,
    config: ConfigItems = None,
    stats: Stats = False,
    show_traceback: ShowTraceback = False,
) -> None:
    """What a verdict hook (a Python function) decides, flow by flow, call by call and
    alert by alert as they happen, and what each drop or shape would have stopped:
    one Action record per decision (docs/inline.md)."""
    raise typer.Exit(
        _run_inline(hook, inputs, use_sample, fmt, output, config or [], stats, show_traceback)
    )


def _run_inline(spec: str, inputs: list[str] | None, use_sample: bool, fmt: str | None,
                output: str | None, config_items: list[str], print_stats: bool,
                show_traceback: bool) -> int:  # fmt: skip
    paths = _input_paths(inputs, use_sample, "inline INPUT... --hook FILE.py (or --sample)")
    fmt = _pick_format(fmt, output)
    from voipscope.errors import ConfigError, SourceError, VoipscopeError
    from voipscope.output import FORMATS, open_writer
    from voipscope.output.action_records import actions_to_batch
    from voipscope.output.schema import ACTION_SCHEMA

    if fmt not in FORMATS:
        _err(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return EXIT_USAGE
    try:
        cfg, detect_cfg = _parse_config(config_items, detect_keys=True)
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_USAGE
    decide = load_hook_or_exit(spec, show_traceback)
    from voipscope.inline.runner import inline_pipeline, iter_actions

    _use_system_allocator()
    try:
        pipeline = inline_pipeline(decide, cfg)
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_USAGE
    stage = pipeline.inline
    try:
        writer = open_writer(fmt, output, ACTION_SCHEMA)
    except OSError as exc:
        _err(f"{output}: cannot write ({exc.strerror or exc})")
        return EXIT_ERROR
    code = EXIT_OK
    actions = packets = 0
    try:
        for path in paths:
            try:
                records = list(iter_actions(path, decide, detect_config=detect_cfg,
                                            pipeline=pipeline))  # fmt: skip
            except SourceError as exc:
                _err(f"error: {exc}")
                code = EXIT_UNREADABLE
                continue
            except VoipscopeError as exc:
                _err(f"error: {path}: {exc}")
                code = max(code, EXIT_ERROR) if code != EXIT_UNREADABLE else code
                continue
            actions += len(records)
            packets += sum(r["packets_after"] or 0 for r in records)
            if records:
                writer.write(actions_to_batch(records))
        writer.close()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: one line unless asked for the stack
        _err(f"internal error: {type(exc).__name__}: {exc} (run with --traceback for details)")
        if show_traceback:
            traceback.print_exc()
        return EXIT_ERROR
    _err(f"{stage.events} events asked, {actions} actions; packets after them, summed over "
         f"the actions: {packets}")  # fmt: skip
    if stage.hook_errors:
        _err(f"warning: the hook failed or answered wrongly on {stage.hook_errors} events "
             "(anomalies inline_hook_error, inline_hook_bad_answer); they passed")  # fmt: skip
    for warning in pipeline.stats.warnings():
        _err(f"warning: {warning}")
    if print_stats:
        import json

        print(json.dumps(pipeline.stats.to_dict(), indent=2), file=sys.stderr)
    return code
