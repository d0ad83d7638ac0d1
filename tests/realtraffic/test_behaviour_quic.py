"""A QUIC lookalike for the behavioural media detector: aioquic sending small RFC 9221
DATAGRAM frames every 20 ms both ways (a QUIC game or a Media-over-QUIC data track),
made inside network namespaces this test creates. The QUIC dissector names the flow
from its Initial and the verdict stays QUIC with the behaviour model on; the model's
own opinion is checked apart, as a known limit (docs/identification.md)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pytest

from tests.realtraffic.gen.generate import REPO, capture
from tests.realtraffic.media import have, netns_pair
from voipscope.classify.behaviour import BehaviourOpinion
from voipscope.classify.behaviour_model import shipped_model
from voipscope.config import Config
from voipscope.pipeline import FlowPipeline

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0
    or not have("ip", "dumpcap")
    or importlib.util.find_spec("aioquic") is None
    or shipped_model() is None,
    reason="needs root, ip, dumpcap, aioquic (pip install aioquic) and the fitted model",
)

SECONDS = 5.0  # 250 ticks each way: the 8 windows of the model's per-flow budget
PORT = 4433


def _in(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-m", *cmd]


@pytest.fixture(scope="module")
def quic_ticks(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, Any], BehaviourOpinion | None]:
    """The tick flow's record (behaviour on) and the behaviour model's opinion of it."""
    pcap = tmp_path_factory.mktemp("quic") / "quic.pcap"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": REPO}
    peer = "tests.realtraffic.gen.quic_peer"
    with netns_pair("10.96.0") as (ns_a, ns_b, _, ip_b, dev_a), capture(ns_a, dev_a, pcap, SECONDS):
        common = ["--addr", f"{ip_b}:{PORT}", "--seconds", str(SECONDS), "--seed", "7"]
        server = subprocess.Popen(_in(ns_b, peer, "datagrams", "server", *common), **quiet)
        try:
            time.sleep(1.0)  # aioquic's import and the certificate
            client = subprocess.Popen(_in(ns_a, peer, "datagrams", "client", *common), **quiet)
            assert client.wait(timeout=SECONDS + 20) == 0
        finally:
            server.terminate()  # it would otherwise linger for late clients
            server.wait(timeout=10)

    pipeline = FlowPipeline(Config.from_overrides({"dissect.behaviour": True}))
    assert pipeline.behaviour is not None
    opinions: dict[int, BehaviourOpinion | None] = {}
    take = pipeline.behaviour.take

    def keep(ended: np.ndarray) -> list[BehaviourOpinion | None]:
        out = take(ended)
        opinions.update(zip(ended[:, 0].tolist(), out, strict=True))
        return out

    pipeline.behaviour.take = keep  # type: ignore[method-assign]
    flows = [r for b in pipeline.run_one(str(pcap)) for r in b.to_pylist()]
    ticks = [f for f in flows if f["proto"] == "udp" and PORT in (f["src_port"], f["dst_port"])]
    assert len(ticks) == 1, [(f["proto"], f["src_port"], f["dst_port"]) for f in flows]
    flow = ticks[0]
    packets = f"{flow['src2dst_packets']}+{flow['dst2src_packets']} packets"
    print(f"flow: {flow['category']} {flow['protocol']} {packets}, {flow['evidence']}")
    print(f"behaviour opinion: {opinions.get(flow['flow_id'])}")
    return flow, opinions.get(flow["flow_id"])


def test_quic_datagram_ticks_are_quic_not_media(
    quic_ticks: tuple[dict[str, Any], BehaviourOpinion | None],
) -> None:
    flow, _ = quic_ticks
    assert flow["src2dst_packets"] + flow["dst2src_packets"] >= 400
    assert (flow["category"], flow["protocol"]) == ("other", "QUIC")
    assert flow["media"] is None


@pytest.mark.xfail(
    strict=True,
    reason="measured: 20 ms ticks of 40-300 B both ways are a call's timing and sizes; the "
    "shipped model says p=0.94 in 8 of 8 windows (1.00 before it was refitted with the "
    "generated QUIC ticks as negatives; docs/identification.md); the QUIC dissector keeps "
    "the verdict",
)
def test_behaviour_opinion_does_not_call_quic_ticks_media(
    quic_ticks: tuple[dict[str, Any], BehaviourOpinion | None],
) -> None:
    _, opinion = quic_ticks
    assert opinion is None
