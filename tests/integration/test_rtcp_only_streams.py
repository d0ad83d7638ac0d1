"""Streams only RTCP tells of, on a real capture: rtcp_multiple_pkts_in_the_same_datagram
holds the RTCP of a call and none of its RTP. Every (SSRC, reporter) pair tshark's RTCP
dissector shows in a report block is a record of the call with the last block's fraction
lost, cumulative loss and jitter; the round trip is checked against LSR/DLSR by hand."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from voipscope.api import iter_calls

REPO = Path(__file__).resolve().parents[2]
CAPTURE = (
    REPO.parent / "shared" / "captures" / "ndpi" / "rtcp_multiple_pkts_in_the_same_datagram.pcap"
)

pytestmark = pytest.mark.skipif(
    shutil.which("tshark") is None or not CAPTURE.exists(), reason="needs tshark and the capture"
)


def tshark_blocks() -> dict[tuple[str, str], tuple[float, int, int]]:
    """(about SSRC, reporter IP) -> the last block's (fraction %, cumulative, jitter)."""
    out = subprocess.run(
        ["tshark", "-r", str(CAPTURE), "-Y", "rtcp.ssrc.fraction", "-T", "fields",
         "-e", "ip.src", "-e", "rtcp.ssrc.identifier", "-e", "rtcp.ssrc.fraction",
         "-e", "rtcp.ssrc.cum_nr", "-e", "rtcp.ssrc.jitter", "-E", "separator=;"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    blocks = {}
    for line in out.splitlines():
        reporter, ids, fraction, cumulative, jitter = line.split(";")
        about = ids.split(",")[0]  # the block's SSRC; the SDES chunk's comes after it
        blocks[(f"0x{int(about, 16):08X}", reporter)] = (
            100 * int(fraction) / 256,
            int(cumulative),
            int(jitter),
        )
    return blocks


def test_rtcp_only_streams_equal_tshark_report_blocks() -> None:
    (call,) = list(iter_calls(str(CAPTURE)))
    assert call["streams"] == []  # no RTP in the capture
    ours = {
        (s["ssrc"], s["reporter_ip"]): (
            s["rtcp_loss_pct"],
            s["rtcp_cumulative_lost"],
            s["rtcp_jitter_ts_units"],
        )
        for s in call["rtcp_only_streams"]
    }
    theirs = tshark_blocks()
    assert len(theirs) == 4
    assert ours == theirs
    # Frame 4's block about 0x5D931534 quotes the SR of frame 1 (LSR 3245362529) and held
    # it DLSR 263452/65536 s: 4.028126 s after that SR, less 4.019958 s.
    (rtt,) = [s["rtcp_rtt_ms"] for s in call["rtcp_only_streams"] if s["rtcp_rtt_ms"]]
    assert rtt == pytest.approx(4028.126 - 1000 * 263452 / 65536, abs=0.01)
