"""SIP over WebSocket (RFC 7118) from a real server: Kamailio with its websocket module
answers a client that upgrades an HTTP connection to the ``sip`` subprotocol with the
``websockets`` library and sends a REGISTER and an INVITE (with SDP) through it, inside
a network namespace this test creates, captured with dumpcap. voipscope must find the
one flow as SIP, every SIP message Wireshark finds in it, the registration and the
refused call with their codes, transport ``ws``, and the media address the SDP announced.

Kamailio declines permessage-deflate (RFC 7692); browsers offer it and servers built on
WebSocket libraries accept it. The second test has the same client talk to a server
built on the ``websockets`` library (the SIP answers are the test's; the upgrade, the
extension's negotiation, compression with context takeover and framing are the
library's on both sides): every message compressed, voipscope must read the same SIP
messages Wireshark inflates.

Traffic stays on the namespace's loopback; the namespace is deleted afterwards. Skipped,
with the reason, when not root or when a tool is missing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.realtraffic.livens import loopback_netns, stop_process
from tests.realtraffic.media import in_ns
from voipscope.api import iter_calls, read_flows
from voipscope.flows import NoHooks
from voipscope.pipeline import FlowPipeline

KAMAILIO_MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
PORT = 8080
TOOLS = ("kamailio", "dumpcap", "tshark", "ip")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0
    or any(shutil.which(t) is None for t in TOOLS)
    or not (KAMAILIO_MODULES / "websocket.so").exists()
    or importlib.util.find_spec("websockets") is None,
    reason="needs root, kamailio with its websocket module (apt kamailio-websocket-modules), "
    "dumpcap, tshark, ip and the websockets package (test extra)",
)

KAMAILIO_CFG = f"""#!KAMAILIO
debug=1
log_stderror=yes
children=1
tcp_children=1
listen=tcp:127.0.0.1:{PORT}
tcp_accept_no_cl=yes
mpath="{KAMAILIO_MODULES}/"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xhttp.so"
loadmodule "websocket.so"

event_route[xhttp:request] {{
    if ($hdr(Upgrade)=~"websocket" && $hdr(Connection)=~"Upgrade" && $rm=~"GET") {{
        if (ws_handle_handshake()) {{
            exit;
        }}
    }}
    xhttp_reply("404", "Not Found", "", "");
}}

request_route {{
    force_rport();
    if (is_method("REGISTER")) {{
        sl_send_reply("200", "OK");
        exit;
    }}
    if (is_method("INVITE")) {{
        sl_send_reply("486", "Busy Here");
        exit;
    }}
    if (is_method("ACK")) {{
        exit;
    }}
    sl_send_reply("404", "Not Here");
}}
"""

# The client: the websockets library does the upgrade and the framing (masked frames,
# RFC 6455); the SIP text is what a WebRTC softphone sends (RFC 7118 §5.2 Via).
CLIENT = r"""
import asyncio, sys, websockets

HOST, PORT = sys.argv[1], int(sys.argv[2])
OPTIONS = int(sys.argv[3]) if len(sys.argv) > 3 else 0

def message(method, cseq, user, body=b""):
    head = (f"{method} sip:{user}@{HOST} SIP/2.0\r\n"
            f"Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK{method}{cseq};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:alice@{HOST}>;tag=a1\r\nTo: <sip:{user}@{HOST}>\r\n"
            f"Call-ID: ws-{method.lower()}\r\nCSeq: {cseq} {method}\r\n"
            "Contact: <sip:alice@df7jal23ls0d.invalid;transport=ws>\r\n"
            + ("Content-Type: application/sdp\r\n" if body else "")
            + f"Content-Length: {len(body)}\r\n\r\n")
    return (head.encode() + body).decode()

async def main():
    async with websockets.connect(f"ws://{HOST}:{PORT}", subprotocols=["sip"]) as ws:
        await ws.send(message("REGISTER", 1, "alice"))
        assert (await ws.recv()).startswith("SIP/2.0 200")
        sdp = (f"v=0\r\no=- 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
               "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n").encode()
        await ws.send(message("INVITE", 2, "bob", sdp))
        assert (await ws.recv()).startswith("SIP/2.0 486")
        for cseq in range(3, 3 + OPTIONS):  # the same text again: context takeover
            await ws.send(message("OPTIONS", cseq, "bob"))
            assert (await ws.recv()).startswith("SIP/2.0 200")
        print(ws.response.headers.get("Sec-WebSocket-Extensions") or "-")

asyncio.run(main())
"""


# A SIP "server" on the websockets library: it accepts the sip subprotocol and, by the
# library's default, the permessage-deflate the client offers; it answers REGISTER with
# 200 and INVITE with 486, and says OPTIONS 200 (three times, for context takeover).
SERVER = r"""
import asyncio, sys, websockets

def answer(request, code):
    head, _, _ = request.partition("\r\n\r\n")
    lines = head.split("\r\n")
    keep = [l for l in lines[1:] if l.split(":", 1)[0].lower() in
            ("via", "from", "to", "call-id", "cseq")]
    keep = [l + ";tag=s1" if l.lower().startswith("to:") else l for l in keep]
    return "\r\n".join([f"SIP/2.0 {code}", *keep, "Server: websockets-sip-test",
                          "Content-Length: 0", "", ""])

async def handler(ws):
    async for request in ws:
        method = request.split(" ", 1)[0]
        await ws.send(answer(request, "486 Busy Here" if method == "INVITE" else "200 OK"))

async def main():
    async with websockets.serve(handler, sys.argv[1], int(sys.argv[2]), subprotocols=["sip"]):
        print("ready", flush=True)
        await asyncio.sleep(float(sys.argv[3]))

asyncio.run(main())
"""


@pytest.fixture
def netns() -> Iterator[str]:
    yield from loopback_netns("vws")


class _Messages(NoHooks):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_messages(self, events: list[object]) -> None:
        for ev in events:
            m = ev.message  # type: ignore[attr-defined]
            if ev.protocol == "SIP" and ev.via == "ws":  # type: ignore[attr-defined]
                self.seen.append(m.method if m.is_request else str(m.status_code))


def sip_messages(capture: Path) -> list[str]:
    """The SIP messages voipscope read over WebSocket, in capture order."""
    hook = _Messages()
    for _ in FlowPipeline(hooks=[hook]).run([str(capture)]):
        pass
    return hook.seen


def wireshark_sip_messages(capture: Path) -> list[str]:
    """The SIP messages Wireshark finds in the capture (methods and status codes)."""
    return subprocess.run(
        ["tshark", "-r", str(capture), "-Y", "sip", "-T", "fields", "-e", "sip.Method",
         "-e", "sip.Status-Code"], capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()  # fmt: skip


@contextlib.contextmanager
def running(*args: str, **popen: Any) -> Iterator[subprocess.Popen[Any]]:
    """A process started for the block and stopped after it, whatever happens."""
    process = subprocess.Popen(args, **popen)
    try:
        yield process
    finally:
        stop_process(process)


@contextlib.contextmanager
def capturing(netns: str, capture: Path) -> Iterator[None]:
    """dumpcap on the namespace's loopback into ``capture`` while the block runs."""
    with running(
        *in_ns(netns, "dumpcap", "-q", "-i", "lo", "-a", "duration:30", "-w", str(capture)),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    ):  # fmt: skip
        time.sleep(1.0)  # dumpcap needs a moment before the first packet
        yield


def test_sip_over_websocket_from_kamailio(netns: str, tmp_path: Path) -> None:
    capture = tmp_path / "ws.pcapng"
    (tmp_path / "kamailio.cfg").write_text(KAMAILIO_CFG)
    (tmp_path / "client.py").write_text(CLIENT)
    with capturing(netns, capture), running(
        *in_ns(netns, "kamailio", "-DD", "-E", "-f", str(tmp_path / "kamailio.cfg"),
               "-P", str(tmp_path / "kamailio.pid"), "-w", str(tmp_path)),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    ) as kamailio:  # fmt: skip
        time.sleep(1.5)
        assert kamailio.poll() is None, kamailio.stderr.read().decode(errors="replace")[-800:]  # type: ignore[union-attr]
        client = subprocess.run(
            in_ns(netns, sys.executable, str(tmp_path / "client.py"), "127.0.0.1", str(PORT)),
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        assert client.returncode == 0, client.stderr.decode(errors="replace")[-800:]
        time.sleep(0.5)

    flows = [r for r in read_flows(str(capture)).to_pylist() if r["dst_port"] == PORT]
    assert len(flows) == 1, flows
    (flow,) = flows
    assert (flow["category"], flow["protocol"]) == ("voip-signaling", "SIP"), flow
    assert any("WebSocket" in e for e in flow["evidence"]), flow["evidence"]

    # Every SIP message Wireshark finds in the WebSocket frames, in order, and no other.
    tshark = wireshark_sip_messages(capture)
    assert tshark == ["REGISTER", "200", "INVITE", "486"]
    assert sip_messages(capture) == tshark

    calls = sorted(iter_calls(str(capture)), key=lambda r: r["start"])
    kinds = [(r["kind"], r["state"], r["final_code"], r["transports"]) for r in calls]
    assert kinds == [("registration", "answered", 200, ["ws"]), ("call", "failed", 486, ["ws"])]
    invite = calls[1]
    assert invite["caller"].startswith("sip:alice@") and invite["callee"].startswith("sip:bob@")
    assert flow["flow_id"] in invite["signaling_flows"]
    assert "kamailio" in " ".join(invite["user_agents"]).lower()


def test_compressed_sip_over_websocket(netns: str, tmp_path: Path) -> None:
    capture = tmp_path / "ws-deflate.pcapng"
    (tmp_path / "server.py").write_text(SERVER)
    (tmp_path / "client.py").write_text(CLIENT)
    with capturing(netns, capture), running(
        *in_ns(netns, sys.executable, str(tmp_path / "server.py"), "127.0.0.1", str(PORT), "25"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as server:  # fmt: skip
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        client = subprocess.run(
            in_ns(netns, sys.executable, str(tmp_path / "client.py"), "127.0.0.1", str(PORT),
                  "3"), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert client.returncode == 0, client.stderr[-800:]
        assert "permessage-deflate" in client.stdout, client.stdout  # negotiated
        print(client.stdout)  # what was negotiated, shown with -s
        time.sleep(0.5)

    # Every data frame of the connection is compressed (RSV1), both ways.
    rsv = subprocess.run(
        ["tshark", "-r", str(capture), "-Y", "websocket.opcode == 1", "-T", "fields",
         "-e", "websocket.rsv", "-e", "websocket.mask"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split("\n")  # fmt: skip
    frames = [line.split("\t") for line in rsv if line]
    assert len(frames) == 10 and {int(r, 16) for r, _ in frames} == {4}, frames
    assert sorted(m for _, m in frames) == ["0"] * 5 + ["1"] * 5  # client 5, server 5
    tshark = wireshark_sip_messages(capture)
    assert tshark == ["REGISTER", "200", "INVITE", "486", *["OPTIONS", "200"] * 3]
    assert sip_messages(capture) == tshark
    anomalies = [a["name"] for a in iter_anomaly_records(capture)]
    assert "sip_ws_compressed" not in anomalies and "sip_ws_malformed" not in anomalies
    calls = sorted(iter_calls(str(capture)), key=lambda r: r["start"])
    assert [(r["kind"], r["final_code"], r["transports"]) for r in calls][:2] == [
        ("registration", 200, ["ws"]),
        ("call", 486, ["ws"]),
    ]


def iter_anomaly_records(capture: Path) -> list[dict]:
    pipeline = FlowPipeline()
    for _ in pipeline.run([str(capture)]):
        pass
    return [{"name": r.name, "detail": r.detail} for r in pipeline.stats.anomalies.records]
