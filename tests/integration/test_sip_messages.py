"""SIP messages reach the later stages (calls, detectors) one by one, in capture order,
exactly as tshark lists them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from voipscope.flows.hooks import NoHooks
from voipscope.pipeline import FlowPipeline

CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "captures" / "ndpi"


class Collect(NoHooks):
    def __init__(self) -> None:
        self.messages: list[object] = []

    def on_messages(self, messages: list[object]) -> None:
        self.messages.extend(messages)


def _voipscope(name: str) -> list[tuple[int, str]]:
    hook = Collect()
    for _ in FlowPipeline(hooks=[hook]).run([str(CAPTURES / name)]):
        pass
    out = []
    for event in hook.messages:
        if event.protocol != "SIP":  # type: ignore[attr-defined]
            continue
        msg = event.message  # type: ignore[attr-defined]
        out.append((event.ts_ns // 1000, msg.method if msg.is_request else str(msg.status_code)))  # type: ignore[attr-defined]
    return out


def _tshark(name: str) -> list[tuple[int, str]]:
    text = subprocess.run(
        ["tshark", "-r", str(CAPTURES / name), "-Y", "sip", "-T", "fields",
         "-e", "frame.time_epoch", "-e", "sip.Method", "-e", "sip.Status-Code",
         "-E", "occurrence=f"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    out = []
    for line in text.splitlines():
        stamp, method, code = line.split("\t")
        seconds, _, fraction = stamp.partition(".")
        out.append((int(seconds) * 1_000_000 + int(fraction[:6].ljust(6, "0")), method or code))
    return out


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("name", ["sip.pcap", "FAX-Call-t38-CA-TDM-SIP-FB-1.pcap"])
def test_sip_messages_match_tshark(name: str) -> None:
    if not (CAPTURES / name).exists():
        pytest.skip(f"{name} not in the shared captures")
    ours = _voipscope(name)
    assert ours, "no SIP message handed out"
    assert ours == _tshark(name)
