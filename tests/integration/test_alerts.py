"""run_alerts end to end: zero alerts on every shared capture (benign traffic of all
kinds: SIP calls, RTP, WebRTC apps, games), and a SIP sweep in a built capture caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import pcapbuild as pb
from tests.conftest import SHARED_CAPTURES
from voipscope.pipeline import FlowPipeline

BENIGN = sorted(p for p in SHARED_CAPTURES.glob("*.pcap*") if not p.name.endswith(".out"))

T0_S = 1_700_000_000.0
SCANNER = "203.0.113.66"


def options(i: int, dst: str, ua: str) -> bytes:
    lines = [
        f"OPTIONS sip:100@{dst} SIP/2.0",
        f"Via: SIP/2.0/UDP {SCANNER}:5070;branch=z9hG4bK-{i}",
        f"From: <sip:100@{dst}>;tag=t{i}",
        f"To: <sip:100@{dst}>",
        f"Call-ID: scan-{i}",
        "CSeq: 1 OPTIONS",
        f"User-Agent: {ua}",
        "Max-Forwards: 70",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def sweep_capture(path: Path, hosts: int = 15, ua: str = "Linphone/5.2.0") -> Path:
    packets = [
        pb.udp_packet(
            T0_S + i * 0.2,
            SCANNER,
            5070,
            f"198.51.100.{i + 1}",
            5060,
            options(i, f"198.51.100.{i + 1}", ua),
        )
        for i in range(hosts)
    ]
    path.write_bytes(pb.pcap(packets))
    return path


def alerts_of(path: Path) -> list[dict]:
    return [a for batch in FlowPipeline().run_alerts(str(path)) for a in batch]


@pytest.mark.skipif(not BENIGN, reason=f"no shared captures in {SHARED_CAPTURES}")
@pytest.mark.parametrize("capture", BENIGN, ids=lambda p: p.name)
def test_no_alerts_on_benign_capture(capture: Path) -> None:
    assert alerts_of(capture) == []


def test_sweep_with_an_ordinary_user_agent_is_caught(tmp_path: Path) -> None:
    (alert,) = alerts_of(sweep_capture(tmp_path / "sweep.pcap"))
    assert (alert["kind"], alert["src_ip"], alert["count"]) == ("sip-scan", SCANNER, 15)
    assert alert["data"]["scanner_tool"] is None


def test_scanner_user_agent_on_a_few_requests_is_nothing(tmp_path: Path) -> None:
    assert alerts_of(sweep_capture(tmp_path / "few.pcap", hosts=3, ua="friendly-scanner")) == []
