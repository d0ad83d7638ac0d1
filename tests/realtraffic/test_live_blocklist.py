"""A real SIP scan (SIPVicious svmap, INVITEs to 30 hosts) from the client side of a veth
between two network namespaces this test creates, while `voipscope live --blocklist FILE
--blocklist-format nft --apply` captures on the server side: the scanner's address must
be in the block list within 5 s of its first scan packet; the file passes `nft -c -f`;
and, applied by voipscope inside the server's namespace, the rule drops the scanner's
next packets while another client still gets answers. Skipped, with the reason, when not
root or svmap/nft/ip are missing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.realtraffic.livens import (
    CLIENT_IP,
    SCANNER_IP,
    SERVER_IF,
    SERVER_IP,
    UDP_ECHO,
    LiveRun,
    VethPair,
    missing,
    stop_process,
    udp_ask,
    veth_pair,
)

WHY = missing("svmap", "nft")
pytestmark = pytest.mark.skipif(bool(WHY), reason=WHY or "")

ECHO_PORT = 7777
MAX_BLOCK_LATENCY_S = 5.0


@pytest.fixture
def pair() -> Iterator[VethPair]:
    yield from veth_pair()


def _listed(path: Path, address: str) -> bool:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return False
    return f"{{ {address} }}" in text


def test_scanner_is_blocked_within_seconds(pair: VethPair, tmp_path: Path) -> None:
    blocklist = tmp_path / "blocklist.nft"
    echo = subprocess.Popen(
        pair.run_in(pair.server, sys.executable, "-c", UDP_ECHO, SERVER_IP, str(ECHO_PORT)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    live = LiveRun(
        pair.server,
        ["-i", SERVER_IF, "--format", "jsonl", "--records", "alerts", "--blocklist",
         str(blocklist), "--blocklist-format", "nft", "--apply", "--never-block", CLIENT_IP],
        tmp_path,
    )  # fmt: skip
    try:
        live.wait_listening()
        time.sleep(0.5)
        # Before: the scanner's address gets answers like anyone's.
        assert udp_ask(pair, SCANNER_IP, SERVER_IP, ECHO_PORT) == "echo"
        svmap = subprocess.Popen(
            pair.run_in(pair.client, "svmap", "-b", SCANNER_IP, "-m", "INVITE",
                        "10.98.1.1-10.98.1.30"),
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        listed_at = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if _listed(blocklist, SCANNER_IP):
                listed_at = time.time()
                break
            time.sleep(0.02)
        stop_process(svmap)
        assert listed_at is not None, (live.stderr_text()[-2000:], blocklist.read_text())
        raised = live.wait_for("stdout", '"final":false', timeout_s=10)
        assert raised is not None, live.stderr_text()[-2000:]
        alert = json.loads(raised.text)
        assert alert["kind"] == "sip-scan" and alert["src_ip"] == SCANNER_IP
        assert alert["severity"] == "high"  # svmap's User-Agent names the tool
        # alert["ts"] is the capture time of the scanner's first INVITE.
        latency_s = listed_at - alert["ts"]
        print(f"block list latency {latency_s:.2f} s after the first scan packet")
        assert 0 < latency_s <= MAX_BLOCK_LATENCY_S

        # The file is a valid nft script (check mode, in the server's namespace)...
        check = subprocess.run(
            pair.run_in(pair.server, "nft", "-c", "-f", str(blocklist)),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert check.returncode == 0, check.stderr
        # ...that --apply loaded there: the scanner is in the set and its packets are dropped,
        # while the (allow-listed) other client still gets answers.
        listing = subprocess.run(
            pair.run_in(pair.server, "nft", "-j", "list", "table", "inet", "voipscope"),
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert SCANNER_IP in listing
        assert udp_ask(pair, SCANNER_IP, SERVER_IP, ECHO_PORT) == "silence"
        assert udp_ask(pair, CLIENT_IP, SERVER_IP, ECHO_PORT) == "echo"
        chain = pair.run_in(pair.server, "nft", "-j", "list", "chain", "inet", "voipscope",
                            "prerouting")  # fmt: skip
        rules = json.loads(subprocess.run(chain, capture_output=True, text=True, check=True).stdout)
        dropped = [
            e["counter"]["packets"]
            for item in rules["nftables"] if "rule" in item
            for e in item["rule"]["expr"] if "counter" in e
        ]  # fmt: skip
        assert sum(dropped) >= 1, rules
    finally:
        code = live.stop(signal.SIGTERM)
        stop_process(echo)
    assert code == 0, live.stderr_text()[-2000:]
    assert f"blocked {SCANNER_IP}" in live.stderr_text()
    # The final Alert record comes at the end (the scan had not gone quiet for 300 s).
    finals = [r for r in live.records() if r["final"]]
    assert [(r["kind"], r["src_ip"]) for r in finals] == [("sip-scan", SCANNER_IP)]
