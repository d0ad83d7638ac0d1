"""A third party joining a real call: sipp calls a sipp UAS that echoes the RTP it gets
(both sides keep sending), and 5 s into the call another host sends its own RTP stream
(a new SSRC) to the callee's announced media port -- a barge-in. voipscope must pair the
newcomer's stream to the call, name it as a party that joined, and count 3 parties.

Everything runs on the loopback of a namespace this test creates (caller 127.0.0.1,
callee 127.0.0.2, newcomer 127.0.0.3: all of 127/8 is local there); bounded in time and
packets; the namespace is deleted afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.realtraffic.livens import G711_PCAP, link_sipp_pcaps, loopback_netns
from tests.realtraffic.media import dumpcap_on_lo, in_ns
from voipscope.api import iter_calls

TOOLS = ("sipp", "dumpcap", "ip")
CALLER, CALLEE, NEWCOMER = "127.0.0.1", "127.0.0.2", "127.0.0.3"
CALLEE_MEDIA_PORT = 6000
NEWCOMER_SSRC = 0x0BADCAFE
NEWCOMER_PACKETS = 75  # 1.5 s at 20 ms

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or any(shutil.which(t) is None for t in TOOLS) or not G711_PCAP.exists(),
    reason="needs root, sipp (apt sip-tester, with its g711a.pcap), dumpcap and ip",
)

# RTP (RFC 3550 §5.1) PCMA frames, 160 samples each, every 20 ms: a real socket's stream.
RTP_SEND = """
import socket, struct, sys, time
src, dst = sys.argv[1], sys.argv[2]
port, ssrc, count = (int(x) for x in sys.argv[3:6])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 7000))
start = time.monotonic()
for i in range(count):
    header = struct.pack("!BBHII", 0x80, 8 | (0x80 if i == 0 else 0), i, i * 160, ssrc)
    s.sendto(header + bytes([0xD5]) * 160, (dst, port))
    time.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))
"""


@pytest.fixture
def netns() -> Iterator[str]:
    yield from loopback_netns("vsj")


def test_a_party_barging_into_a_sipp_call_is_named(netns: str, tmp_path: Path) -> None:
    capture = tmp_path / "barge-in.pcapng"
    link_sipp_pcaps(tmp_path)
    dumpcap = dumpcap_on_lo(netns, capture, 40)
    uas = None
    try:
        time.sleep(1.0)  # dumpcap needs a moment before the first packet
        uas = subprocess.Popen(
            in_ns(netns, "sipp", "-sn", "uas", "-i", CALLEE, "-p", "5060",
                  "-mp", str(CALLEE_MEDIA_PORT), "-rtp_echo", "-m", "1", "-timeout", "30s",
                  "-nostdin"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
        )  # fmt: skip
        time.sleep(0.5)
        uac = subprocess.Popen(
            in_ns(netns, "sipp", "-sn", "uac_pcap", f"{CALLEE}:5060", "-i", CALLER,
                  "-p", "5062", "-mp", "6100", "-m", "1", "-timeout", "30s", "-nostdin"),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path,
        )  # fmt: skip
        # The call is up and both sides send (the UAS echoes its 7 s of audio): the
        # newcomer starts 5 s in and ends before the echo does, however late (up to 3 s)
        # the call's own media began.
        time.sleep(5.0)
        subprocess.run(
            in_ns(netns, sys.executable, "-c", RTP_SEND, NEWCOMER, CALLEE,
                  str(CALLEE_MEDIA_PORT), str(NEWCOMER_SSRC), str(NEWCOMER_PACKETS)),
            check=True, timeout=30,
        )  # fmt: skip
        _, err = uac.communicate(timeout=60)
        assert uac.returncode == 0, err.decode(errors="replace")[-500:]
        uas.wait(timeout=30)
        time.sleep(0.5)
    finally:
        for process in (uas, locals().get("uac")):
            if process is not None and process.poll() is None:
                process.kill()
        dumpcap.terminate()
        dumpcap.wait(timeout=10)

    calls = [c for c in iter_calls([str(capture)]) if c["kind"] == "call"]
    assert len(calls) == 1, calls
    call = calls[0]
    assert call["state"] == "answered"
    newcomer = [s for s in call["streams"] if s["src_ip"] == NEWCOMER]
    assert [s["packets"] for s in newcomer] == [NEWCOMER_PACKETS]
    assert newcomer[0]["ssrc"] == f"0x{NEWCOMER_SSRC:08X}"
    joined = [e for e in call["evidence"] if e.startswith("another party joined")]
    assert len(joined) == 1, call["evidence"]
    assert f"{NEWCOMER}:7000 SSRC 0x{NEWCOMER_SSRC:08X}" in joined[0]
    assert f"heard by {CALLEE}:{CALLEE_MEDIA_PORT}" in joined[0]
    # The caller's, the callee's and the newcomer's media endpoints: the callee's echo of
    # the newcomer's SSRC comes from the callee's own endpoint (the same party).
    assert call["participants"] == 3
    # The callee echoes: media went both ways, nothing is missing.
    missing = ("one-way media", "no media seen", "media outage")
    assert not [e for e in call["evidence"] if e.startswith(missing)], call["evidence"]
