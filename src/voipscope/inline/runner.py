"""Running a verdict hook: loading it from a file or module, and over captures.

``load_hook("policy.py")`` (function ``decide``), ``load_hook("policy.py:judge")`` or
``load_hook("mypkg.policy:judge")``. ``iter_actions(inputs, decide)`` runs the whole
pipeline (flows, calls, alerts) over captures with the hook inline and hands out each
input's Action records at its end, counted: ``packets_after``/``bytes_after`` are the
packets and IP bytes of the capture the decision would have stopped (those after it,
until it expires). ``iter_live_actions(interface, decide)`` runs the same stage on a
live interface and hands out each Action record as it is decided, loaded into
nftables first with ``apply=True`` (voipscope.inline.nft); ``voipscope live --hook`` is
the command for it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from voipscope.config import Config
from voipscope.errors import ConfigError
from voipscope.inline.decisions import Action
from voipscope.inline.stage import Hook, InlineStage
from voipscope.pipeline import FlowPipeline

DEFAULT_FUNCTION = "decide"


def load_hook(spec: str) -> Hook:
    """The hook ``spec`` names: ``FILE.py[:FUNCTION]`` or ``MODULE:FUNCTION``.

    ConfigError when the file, module or function is not there or not callable; an
    exception the module raises while loading is passed on (it is the user's code)."""
    path_text, _, function = spec.partition(":")
    if spec.endswith(".py") or (":" in spec and path_text.endswith(".py")) or os.sep in path_text:
        path = Path(path_text)
        if not path.is_file():
            raise ConfigError(f"hook file {path_text!r} not found")
        name = f"voipscope_hook_{uuid.uuid4().hex[:8]}"
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise ConfigError(f"hook file {path_text!r} is not a Python module")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module  # dataclasses and pickling look modules up by name
        loader_spec.loader.exec_module(module)
    else:
        if not function:
            raise ConfigError(f"hook {spec!r}: name a file (policy.py) or MODULE:FUNCTION")
        try:
            module = importlib.import_module(path_text)
        except ModuleNotFoundError as exc:
            raise ConfigError(f"hook module {path_text!r} not found ({exc})") from None
    function = function or DEFAULT_FUNCTION
    hook = getattr(module, function, None)
    if not callable(hook):
        raise ConfigError(f"hook {spec!r}: no function {function!r} in it")
    return hook  # type: ignore[no-any-return]


def iter_actions(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    decide: Hook,
    *,
    config: Config | None = None,
    detect_config: Any = None,
    pipeline: FlowPipeline | None = None,
) -> Iterator[dict[str, Any]]:
    """Action records of each input, at the end of the input, with what each decision
    would have stopped in it. ``pipeline``: one made with ``inline_pipeline`` (to read
    its ``stats`` and its stage's ``events``/``hook_errors`` afterwards, or to go on with
    the flow ids of an earlier call)."""
    paths = [os.fspath(inputs)] if isinstance(inputs, str | os.PathLike) else [
        os.fspath(p) for p in inputs
    ]  # fmt: skip
    pipeline = pipeline or inline_pipeline(decide, config)
    stage: InlineStage = pipeline.inline
    if stage.decide is not decide:
        raise ValueError("the pipeline was made for another hook (inline_pipeline(decide))")
    for path in paths:
        actions: list[Action] = []
        try:
            for kind, payload in pipeline.run_all(path, detect_config=detect_config):
                if kind == "actions":
                    actions.extend(payload)  # type: ignore[arg-type]
        finally:
            stage.end_input()
        for action in actions:
            record = action.to_record(counted=True)
            record["capture"] = path
            yield record


def inline_pipeline(decide: Hook, config: Config | None = None) -> FlowPipeline:
    """A FlowPipeline with an InlineStage asking ``decide``."""
    return FlowPipeline(config, inline=InlineStage(decide))


def iter_live_actions(
    interface: str,
    decide: Hook,
    *,
    config: Config | None = None,
    bpf_filter: str | None = None,
    apply: bool = False,
    stop: threading.Event | None = None,
    duration_s: float | None = None,
    max_packets: int | None = None,
    log: Callable[[str], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Action records as ``decide`` makes them on a live interface (root or CAP_NET_RAW;
    Linux), until ``stop`` is set, ``duration_s`` passed or ``max_packets`` came; with
    ``apply`` each batch's are loaded into nftables table ``inet voipscope_inline``
    first (``applied``/``error`` say how it went). Flows, calls and alerts run as in
    ``voipscope live``; only the actions are handed out. The capture opens when this is
    called: SourceError then if the interface cannot be opened, RuntimeError if nft
    cannot create the table."""
    from voipscope.inline.nft import NftVerdicts
    from voipscope.source.live import LiveCapture

    pipeline = inline_pipeline(decide, config)
    enforcer = NftVerdicts(log=log) if apply else None
    # Opened here, not at the first next(): errors come now, and packets from now on
    # are the run's.
    capture = LiveCapture(interface, pipeline.config, bpf_filter, stop, max_packets,
                          duration_s)  # fmt: skip
    try:
        if enforcer is not None:
            enforcer.start()
    except BaseException:
        capture.close()
        raise

    def actions() -> Iterator[dict[str, Any]]:
        try:
            for kind, payload in pipeline.run_live(capture):
                if kind != "actions":
                    continue
                decided: list[Action] = payload  # type: ignore[assignment]
                if enforcer is not None:
                    enforcer.apply([a for a in decided if a.targets])
                yield from (a.to_record(counted=False) for a in decided)
        finally:
            capture.close()

    return actions()
