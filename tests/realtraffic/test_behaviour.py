"""The behavioural media detector on a real WebRTC call (aiortc: Opus over DTLS-SRTP) made
inside network namespaces this test creates, with a game-like UDP flow beside it that
must stay clean. The detector's own opinion is checked, not the dissectors' (which also
know this call from its STUN/DTLS/RTP bytes)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.realtraffic.gen.generate import REPO, capture
from tests.realtraffic.media import have, netns_pair
from voipscope.classify import behaviour_kernel as K
from voipscope.classify.behaviour import BehaviourOpinion
from voipscope.classify.behaviour_model import shipped_model
from voipscope.config import Config
from voipscope.pipeline import FlowPipeline

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0
    or not have("ip", "dumpcap")
    or importlib.util.find_spec("aiortc") is None
    or shipped_model() is None,
    reason="needs root, ip, dumpcap, aiortc (pip install aiortc) and the fitted model",
)

SECONDS = 8.0


def _in(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-m", *cmd]


def test_behaviour_finds_webrtc_audio_and_not_a_game(tmp_path: Path) -> None:
    pcap = tmp_path / "call.pcap"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": REPO}
    with netns_pair("10.97.0") as (ns_a, ns_b, _, ip_b, dev_a), capture(ns_a, dev_a, pcap, SECONDS):
        peer = "tests.realtraffic.gen.aiortc_peer"
        game = "tests.realtraffic.gen.lookalikes"
        common = ["--seconds", str(SECONDS), "--seed", "7"]
        signal, addr = ["--signal", f"{ip_b}:9000"], ["--addr", f"{ip_b}:9100"]
        procs = [
            subprocess.Popen(_in(ns_b, peer, "callee", *signal, *common), **quiet),
            subprocess.Popen(_in(ns_b, game, "game", "server", *addr, *common), **quiet),
        ]
        time.sleep(0.5)
        procs += [
            subprocess.Popen(_in(ns_a, peer, "caller", *signal, *common), **quiet),
            subprocess.Popen(_in(ns_a, game, "game", "client", *addr, *common), **quiet),
        ]
        for p in procs:
            p.wait(timeout=SECONDS + 40)

    pipeline = FlowPipeline(Config.from_overrides({"dissect.behaviour": True}))
    assert pipeline.behaviour is not None
    opinions: dict[int, BehaviourOpinion | None] = {}
    take = pipeline.behaviour.take

    def keep(ended):  # type: ignore[no-untyped-def]
        out = take(ended)
        opinions.update(zip(ended[:, 0].tolist(), out, strict=True))
        return out

    pipeline.behaviour.take = keep  # type: ignore[method-assign]
    flows = [r for b in pipeline.run_one(str(pcap)) for r in b.to_pylist()]
    udp = [f for f in flows if f["proto"] == "udp"]
    media = [f for f in udp if f["src2dst_packets"] + f["dst2src_packets"] > 200 and 9100
             not in (f["src_port"], f["dst_port"])]  # fmt: skip
    games = [f for f in udp if 9100 in (f["src_port"], f["dst_port"])]
    assert media and games, [(f["src_port"], f["dst_port"]) for f in udp]
    call = opinions[media[0]["flow_id"]]
    print(f"call: {call}")
    assert call is not None and call.media == "audio"
    # The first verdict within 1 s of media: the first window (48 payload packets) or,
    # when ICE and DTLS filled that one, the second.
    assert call.at_packet <= 2 * K.WINDOW_PACKETS + 10
    print(f"game: {opinions[games[0]['flow_id']]}")
    assert opinions[games[0]["flow_id"]] is None
