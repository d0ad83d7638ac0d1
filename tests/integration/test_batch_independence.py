"""What voipscope says of a capture does not depend on how its packets were batched.

Live capture hands out small batches (a slow link: a few packets per flush interval);
files are read 65,536 packets at a time. Every record -- flows, calls, alerts -- must be
the same either way. Each capture here once differed: a final sweep that ran or not
(idle and tcp-end flows called end-of-capture), an exchange a sweep between two REGISTERs
had closed or not (a "next attempt" or a new exchange), host names read from packets
that came after the flow ended (in the same batch), a flow stretched back over a time
jump of 12 hours (a concatenated capture) or split by a sweep, RAS messages that joined
an H.323 call in one batch and made a record of their own in batches of one packet -- a
record the calls stage then dropped for the call's (same Call-ID).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from voipscope.config import Config, SourceConfig
from voipscope.pipeline import FlowPipeline

# Identifiers that number records in the order they are made, not what they say.
ORDINAL = {"flow_id", "call_id", "related_calls", "media_flows"}


# Why an H.323/MGCP/IAX2/SCCP call was let go once silent: "flows-ended" where its
# signalling flows were known to have ended by then, "idle" where they were not yet --
# ended flows reach the calls stage after their batch, so one batch knows it later than
# batches of one packet (h323.pcap's first call). The record is otherwise the same.
SILENT_CLOSE = {"flows-ended": "idle"}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: _plain(v) for k, v in sorted(value.items()) if k not in ORDINAL}
        if value.get("kind") == "call" and value.get("protocol") != "SIP":
            out["closed_by"] = SILENT_CLOSE.get(out.get("closed_by"), out.get("closed_by"))
        return out
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    return value


def records(path: Path, batch_packets: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"flows": [], "calls": [], "alerts": []}
    pipeline = FlowPipeline(Config(source=SourceConfig(batch_packets=batch_packets)))
    for kind, found in pipeline.run_all(str(path)):
        if kind in out:
            rows = found.to_pylist() if kind == "flows" else found  # type: ignore[union-attr]
            out[kind] += [json.dumps(_plain(r), sort_keys=True, default=str) for r in rows]
    return {kind: sorted(rows) for kind, rows in out.items()}


def check(path: Path, small: int) -> None:
    whole, batched = records(path, 65536), records(path, small)
    assert whole["flows"], "no flow: nothing compared"
    for kind in whole:
        only_whole = sorted(set(whole[kind]) - set(batched[kind]))[:2]
        only_batched = sorted(set(batched[kind]) - set(whole[kind]))[:2]
        assert whole[kind] == batched[kind], (kind, only_whole, only_batched)


@pytest.mark.parametrize("small", [1, 7, 100])
def test_no_capture_depends_on_batching(small: int, shared_captures: Path) -> None:
    """Every shared capture (10 s for all three sizes): ipsec_isakmp_esp, sip, snapchat,
    wechat, signal, teams, netease_games, skype and h323 once differed."""
    for path in sorted(shared_captures.iterdir()):
        if not path.name.endswith(".out"):
            check(path, small)
