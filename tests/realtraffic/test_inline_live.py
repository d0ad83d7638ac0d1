"""Inline verdict hooks on real traffic, live and offline: a SIP call made by sipp (UAC
on the client side playing G.711 RTP from a pcap, UAS on the server side) across a veth
between two network namespaces this test creates, while `voipscope live --hook ...
--apply` runs on the server side and dumpcap captures the same interface.

The hook drops the call when it is answered (its SDP media endpoints) or the RTP flow
when it is identified (its 5-tuple). Checked: the live action record names the right
targets and was applied; nftables in the server namespace then dropped the RTP that
arrived after it (its rule counter), within about a second of the decision; and
`voipscope inline` on dumpcap's file of the same packets makes the same decision and
counts the packets after it, of which the kernel dropped all but the first second's.
Skipped, with the reason, when not root or sipp/dumpcap/nft/ip are missing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.realtraffic.livens import (
    CLIENT_IP,
    G711_PCAP,
    SERVER_IF,
    SERVER_IP,
    LiveRun,
    VethPair,
    missing,
    sipp_pcap_call,
    stop_process,
    veth_pair,
)

WHY = missing("sipp", "dumpcap", "nft") or (None if G711_PCAP.exists() else f"needs {G711_PCAP}")
pytestmark = pytest.mark.skipif(bool(WHY), reason=WHY or "")

POLICY = """
from voipscope.inline import drop

def decide(event):
    if MODE == "call" and event.kind == "call" and event.stage == "answered":
        if event.record["callee_user"] == "service":  # sipp's default callee
            return drop("calls to service are not allowed here")
    if MODE == "flow" and event.kind == "flow" and event.record["protocol"] == "RTP":
        return drop("no RTP", ttl_s=120)
    return None
"""
# uac_pcap plays g711a.pcap (236 packets, 7 s of G.711 A-law) and dtmf_2833_1.pcap (10
# RFC 4733 telephone-event packets), both from 6100 to 6000.
RTP_PACKETS = 246
LATE_PACKETS = 75  # 1.5 s of RTP at 50 packets/s: the most that may pass before the rule


@pytest.fixture
def pair() -> Iterator[VethPair]:
    yield from veth_pair()


def _rule_counters(pair: VethPair) -> dict[str, int]:
    """Packets each set's drop rule dropped, both chains summed (set name -> packets)."""
    done = subprocess.run(
        pair.run_in(pair.server, "nft", "-j", "list", "table", "inet", "voipscope_inline"),
        capture_output=True, text=True, check=True, timeout=10,
    )  # fmt: skip
    counters: dict[str, int] = {}
    for item in json.loads(done.stdout)["nftables"]:
        rule = item.get("rule")
        if rule is None:
            continue
        name = packets = None
        for expr in rule["expr"]:
            match = expr.get("match")
            if match is not None and isinstance(match.get("right"), str):
                name = match["right"].lstrip("@")
            if "counter" in expr:
                packets = expr["counter"]["packets"]
        if name is not None and packets is not None:
            counters[name] = counters.get(name, 0) + packets
    return counters


def _decision(r: dict[str, Any]) -> tuple[Any, ...]:
    targets = sorted((t["scope"], t["proto"], t["ip"], t["port"], t["peer_ip"], t["peer_port"])
                     for t in r["targets"])  # fmt: skip
    return (r["action"], r["event"], r["stage"], r["subject"], r["reason"], tuple(targets))


@pytest.mark.parametrize("mode", ["call", "flow"])
def test_hook_decides_live_as_offline_and_nft_drops(
    pair: VethPair, tmp_path: Path, mode: str
) -> None:
    policy = tmp_path / "policy.py"
    policy.write_text(f"MODE = {mode!r}\n{POLICY}")
    capture = tmp_path / "call.pcapng"
    dumpcap = subprocess.Popen(
        pair.run_in(pair.server, "dumpcap", "-q", "-i", SERVER_IF, "-a", "duration:90",
                    "-w", str(capture)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    live = LiveRun(pair.server, ["-i", SERVER_IF, "--format", "jsonl", "--records", "actions",
                                 "--hook", str(policy), "--apply"], tmp_path)  # fmt: skip
    try:
        live.wait_listening()
        for _ in range(50):  # dumpcap writes its header once it captures
            if capture.exists() and capture.stat().st_size > 0:
                break
            time.sleep(0.1)
        time.sleep(0.5)
        sipp_pcap_call(pair, tmp_path)
        time.sleep(1.0)  # the last packets reach both captures
        counters = _rule_counters(pair)
    finally:
        code = live.stop(signal.SIGTERM)
        dumpcap.send_signal(signal.SIGINT)
        stop_process(dumpcap)
    assert code == 0, live.stderr_text()[-2000:]

    actions = live.records()
    assert len(actions) == 1, (actions, live.stderr_text()[-2000:])
    action = actions[0]
    assert action["action"] == "drop" and action["applied"] is True and action["error"] is None
    targets = {(t["scope"], t["ip"], t["port"], t["peer_ip"], t["peer_port"])
               for t in action["targets"]}  # fmt: skip
    if mode == "call":
        assert (action["event"], action["stage"]) == ("call", "answered")
        # Both sides' SDP endpoints, RTP and RTCP (port + 1: no rtcp-mux).
        expected = {
            ("to", SERVER_IP, 6000, None, None),
            ("to", CLIENT_IP, 6100, None, None),
            ("to", SERVER_IP, 6001, None, None),
            ("to", CLIENT_IP, 6101, None, None),
        }
        assert expected <= targets
        dropped = counters.get("to4_drop", 0)
    else:
        what = (action["event"], action["stage"], action["protocol"])
        assert what == ("flow", "identified", "RTP")
        assert targets == {("flow", CLIENT_IP, 6100, SERVER_IP, 6000)}
        dropped = counters.get("flow4_drop", 0)
    assert action["packets_after"] is None  # live: the kernel counts (below)

    # The same hook on the file of the same packets: the same decision, and the packets
    # after it that nftables should have dropped.
    offline = subprocess.run(
        [sys.executable, "-m", "voipscope", "inline", str(capture), "--hook", str(policy),
         "--format", "jsonl"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert offline.returncode == 0, offline.stderr[-2000:]
    (file_action,) = [json.loads(line) for line in offline.stdout.splitlines()]
    assert _decision(file_action) == _decision(action)
    assert abs(file_action["ts"] - action["ts"]) < 1e-6
    after = file_action["packets_after"]
    # All the RTP came after the answer; after the identification, all but its first packet.
    assert after == (RTP_PACKETS if mode == "call" else RTP_PACKETS - 1)
    assert after - LATE_PACKETS <= dropped <= after, (dropped, after, counters)
    print(f"{mode}: {after} RTP packets after the decision, {dropped} dropped by nftables")


LIVE_API = """
import json, sys
from voipscope.inline import drop
from voipscope.inline.runner import iter_live_actions

def decide(event):
    if event.kind == "flow" and event.record["protocol"] == "RTP":
        return drop("no RTP", ttl_s=120)

actions = iter_live_actions(sys.argv[1], decide, apply=True, duration_s=float(sys.argv[2]))
print("listening", flush=True)
for record in actions:
    print(json.dumps(record), flush=True)
"""


def test_the_python_api_decides_and_applies_live(pair: VethPair, tmp_path: Path) -> None:
    """voipscope.iter_live_actions: the same decision from the library, in nftables."""
    api = subprocess.Popen(
        pair.run_in(pair.server, sys.executable, "-c", LIVE_API, SERVER_IF, "25"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert api.stdout is not None
        assert api.stdout.readline().strip() == "listening", api.stderr.read() if api.stderr else ""
        sipp_pcap_call(pair, tmp_path)
        time.sleep(1.0)
        dropped = _rule_counters(pair).get("flow4_drop", 0)
        out, err = api.communicate(timeout=60)
    finally:
        stop_process(api)
    assert api.returncode == 0, err[-2000:]
    (action,) = [json.loads(line) for line in out.splitlines()]
    assert (action["event"], action["stage"], action["protocol"]) == ("flow", "identified", "RTP")
    assert action["applied"] is True
    assert RTP_PACKETS - 1 - LATE_PACKETS <= dropped <= RTP_PACKETS - 1, dropped
