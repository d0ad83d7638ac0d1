"""Real SIP exchanges made by sipp inside a network namespace this test creates — an
answered call, a busy callee (486), a caller who hangs up while it rings (CANCEL/487), a
302 redirect followed to the new Contact, a REGISTER answering a digest challenge — then
the calls stage over the capture gives each its state.

Traffic stays on the namespace's loopback; the namespace is deleted afterwards. Skipped,
with the reason, when not root or when sipp/dumpcap/ip are missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.realtraffic.livens import loopback_netns
from tests.realtraffic.media import dumpcap_on_lo, in_ns
from voipscope.calls.sip_dialogs import SipCallTracker
from voipscope.pipeline import FlowPipeline

TOOLS = ("sipp", "dumpcap", "ip")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or any(shutil.which(t) is None for t in TOOLS),
    reason="needs root, sipp (apt sip-tester), dumpcap and ip",
)

# Message pieces of the scenarios. The INVITE's Via branch is fixed per call so that CANCEL
# and the ACK of a failure can repeat it (RFC 3261 §9.1, §17.1.1.3).
_FROM = 'From: "Alice" <sip:alice@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]'
_INVITE = """<send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-inv1-[call_number]
{from}
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:alice@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=alice 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
""".format(**{"from": _FROM})
_ACK_FAILURE = """<send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-inv1-[call_number]
{from}
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0
]]></send>
""".format(**{"from": _FROM})
_UAS_REPLY = """<send><![CDATA[
SIP/2.0 {status}
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
{cseq}
{extra}Content-Length: 0
]]></send>
"""


def _scenario(name: str, body: str) -> str:
    head = '<?xml version="1.0" encoding="ISO-8859-1" ?>'
    return f'{head}\n<scenario name="{name}">\n{body}</scenario>\n'


def _reply(status: str, cseq: str = "[last_CSeq:]", extra: str = "") -> str:
    return _UAS_REPLY.format(status=status, cseq=cseq, extra=extra)


SCENARIOS = {
    "uac_busy.xml": _scenario(
        "busy caller",
        _INVITE + '<recv response="100" optional="true"/>\n<recv response="486"/>\n' + _ACK_FAILURE,
    ),
    "uas_busy.xml": _scenario(
        "busy callee",
        '<recv request="INVITE"/>\n' + _reply("486 Busy Here") + '<recv request="ACK"/>\n',
    ),
    "uac_cancel.xml": _scenario(
        "caller hangs up while it rings",
        _INVITE
        + '<recv response="100" optional="true"/>\n<recv response="180"/>\n'
        + """<send><![CDATA[
CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-inv1-[call_number]
{from}
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 CANCEL
Max-Forwards: 70
Content-Length: 0
]]></send>
""".format(**{"from": _FROM})
        + '<recv response="200"/>\n<recv response="487"/>\n'
        + _ACK_FAILURE,
    ),
    "uas_cancel.xml": _scenario(
        "ringing callee",
        '<recv request="INVITE"/>\n'
        + _reply("180 Ringing")
        + '<recv request="CANCEL"/>\n'
        + _reply("200 OK")
        + _reply("487 Request Terminated", cseq="CSeq: 1 INVITE")
        + '<recv request="ACK"/>\n',
    ),
    "uas_redirect.xml": _scenario(
        "redirecting server",
        '<recv request="INVITE"/>\n'
        + _reply("302 Moved Temporarily", extra="Contact: <sip:bob@127.0.0.1:5070>\n")
        + '<recv request="ACK"/>\n',
    ),
    # RFC 3261 §8.1.3.4: follow the Contact with the same Call-ID and a higher CSeq.
    "uac_redirect.xml": _scenario(
        "caller follows a redirect",
        _INVITE
        + '<recv response="100" optional="true"/>\n<recv response="302"/>\n'
        + _ACK_FAILURE
        + '<nop><action><setdest host="127.0.0.1" port="5070" protocol="udp"/></action></nop>\n'
        + """<send retrans="500"><![CDATA[
INVITE sip:bob@127.0.0.1:5070 SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-inv2-[call_number]
{from}
To: <sip:[service]@127.0.0.1:5060>
Call-ID: [call_id]
CSeq: 2 INVITE
Contact: <sip:alice@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0
]]></send>
<recv response="100" optional="true"/>
<recv response="180" optional="true"/>
<recv response="200"/>
<send><![CDATA[
ACK sip:bob@127.0.0.1:5070 SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-ack2-[call_number]
{from}
[last_To:]
Call-ID: [call_id]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0
]]></send>
<pause milliseconds="300"/>
<send retrans="500"><![CDATA[
BYE sip:bob@127.0.0.1:5070 SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-bye2-[call_number]
{from}
[last_To:]
Call-ID: [call_id]
CSeq: 3 BYE
Max-Forwards: 70
Content-Length: 0
]]></send>
<recv response="200"/>
""".format(**{"from": _FROM}),
    ),
    "uac_register.xml": _scenario(
        "phone registers with digest credentials",
        """<send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-reg1-[call_number]
From: <sip:alice@[remote_ip]>;tag=[pid]R[call_number]
To: <sip:alice@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:alice@[local_ip]:[local_port]>
Expires: 300
Max-Forwards: 70
Content-Length: 0
]]></send>
<recv response="401" auth="true"/>
<send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-reg2-[call_number]
From: <sip:alice@[remote_ip]>;tag=[pid]R[call_number]
To: <sip:alice@[remote_ip]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:alice@[local_ip]:[local_port]>
[authentication username=alice password=secret]
Expires: 300
Max-Forwards: 70
Content-Length: 0
]]></send>
<recv response="200"/>
""",
    ),
    "uas_register.xml": _scenario(
        "registrar with a digest challenge",
        '<recv request="REGISTER"/>\n'
        + _reply(
            "401 Unauthorized",
            extra='WWW-Authenticate: Digest realm="test.local", nonce="4a3b2c1d", algorithm=MD5\n',
        )
        + '<recv request="REGISTER"/>\n'
        + _reply("200 OK", extra="[last_Contact:];expires=300\n"),
    ),
}


@pytest.fixture
def netns() -> Iterator[str]:
    yield from loopback_netns("vsc")


def _sipp(ns: str, cwd: Path, *args: str) -> list[str]:
    return in_ns(ns, "sipp", "-i", "127.0.0.1", "-m", "1", "-timeout", "15s", "-nostdin", *args)


def _exchange(
    ns: str, cwd: Path, uas: list[str], uac: list[str], uas2: list[str] | None = None
) -> None:
    """Start the server side(s), run the client to its end, then wait for the servers."""
    quiet = {"cwd": cwd, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    servers = [subprocess.Popen(_sipp(ns, cwd, *uas), **quiet)]  # type: ignore[call-overload]
    if uas2 is not None:
        servers.append(subprocess.Popen(_sipp(ns, cwd, *uas2), **quiet))  # type: ignore[call-overload]
    try:
        time.sleep(0.5)
        client = subprocess.run(
            _sipp(ns, cwd, *uac), cwd=cwd, capture_output=True, timeout=40, check=False
        )
        assert client.returncode == 0, (uac, client.stderr.decode(errors="replace")[-800:])
        for server in servers:
            server.wait(timeout=20)
    finally:
        for server in servers:
            if server.poll() is None:
                server.kill()
                server.wait(timeout=5)


_RINGING = """      SIP/2.0 180 Ringing"""
_FORWARDED_1XX = """      SIP/2.0 181 Call Is Being Forwarded
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>

  <send>
    <![CDATA[

      SIP/2.0 180 Ringing"""


def _forwarding_scenarios() -> dict[str, str]:
    """sipp's own uas/uac, the UAS saying 181 Call Is Being Forwarded before it rings
    (RFC 3261 §21.1.3) and the UAC accepting it."""
    uas = subprocess.run(["sipp", "-sd", "uas"], capture_output=True, text=True).stdout
    uac = subprocess.run(["sipp", "-sd", "uac"], capture_output=True, text=True).stdout
    assert _RINGING in uas and '<recv response="180" optional="true">' in uac
    return {
        "uas_forward.xml": uas.replace(_RINGING, _FORWARDED_1XX, 1),
        "uac_forward.xml": uac.replace(
            '<recv response="180" optional="true">',
            '<recv response="181" optional="true">\n  </recv>\n\n'
            '  <recv response="180" optional="true">',
            1,
        ),
    }


def test_sipp_call_states(netns: str, tmp_path: Path) -> None:
    for name, text in {**SCENARIOS, **_forwarding_scenarios()}.items():
        (tmp_path / name).write_text(text)
    capture = tmp_path / "calls.pcapng"
    dumpcap = dumpcap_on_lo(netns, capture, 90)
    try:
        time.sleep(1.0)  # dumpcap needs a moment before the first packet
        uas = ["-p", "5060"]
        peer = ["127.0.0.1:5060", "-p", "5062"]
        _exchange(netns, tmp_path, [*uas, "-sn", "uas"], [*peer, "-sn", "uac", "-s", "answer"])
        _exchange(netns, tmp_path, [*uas, "-sf", "uas_busy.xml"],
                  [*peer, "-sf", "uac_busy.xml", "-s", "busy"])  # fmt: skip
        _exchange(netns, tmp_path, [*uas, "-sf", "uas_cancel.xml"],
                  [*peer, "-sf", "uac_cancel.xml", "-s", "cancel"])  # fmt: skip
        _exchange(netns, tmp_path, [*uas, "-sf", "uas_redirect.xml"],
                  [*peer, "-sf", "uac_redirect.xml", "-s", "redirect"],
                  uas2=["-p", "5070", "-sn", "uas"])  # fmt: skip
        _exchange(netns, tmp_path, [*uas, "-sf", "uas_register.xml"],
                  [*peer, "-sf", "uac_register.xml", "-s", "alice"])  # fmt: skip
        _exchange(netns, tmp_path, [*uas, "-sf", "uas_forward.xml"],
                  [*peer, "-sf", "uac_forward.xml", "-s", "forwarded"])  # fmt: skip
        time.sleep(0.5)
    finally:
        dumpcap.terminate()
        dumpcap.wait(timeout=10)

    tracker = SipCallTracker()
    for _ in FlowPipeline(hooks=[tracker]).run([str(capture)]):
        pass
    records = [r.to_record() for r in tracker.finish()]
    calls: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        if rec["kind"] == "call":
            calls.setdefault(rec["callee_user"], []).append(rec)

    (answered,) = calls["answer"]
    assert (answered["state"], answered["final_code"], answered["ended_by"]) == (
        "answered", 200, "caller",
    )  # fmt: skip
    assert answered["answer"] is not None and answered["bye"] is not None
    assert answered["sdp"][0]["media"][0]["codecs"] == ["PCMU/8000"]

    (busy,) = calls["busy"]
    assert (busy["state"], busy["final_code"]) == ("failed", 486)

    (cancelled,) = calls["cancel"]
    assert (cancelled["state"], cancelled["final_code"]) == ("cancelled", 487)
    assert cancelled["ringing"] is not None and cancelled["cancelled_at"] is not None

    redirected, followed = calls["redirect"]
    assert (redirected["state"], redirected["final_code"]) == ("redirected", 302)
    assert redirected["redirected_to"] == ["sip:bob@127.0.0.1:5070"]
    assert followed["record_id"] == f"{redirected['call_id']}#2"
    assert followed["state"] == "answered" and followed["forwarded_from"] == redirected["record_id"]
    assert redirected["related_calls"][0]["relation"] == "redirected-to"

    (registration,) = [r for r in records if r["kind"] == "registration"]
    assert (registration["state"], registration["result"]) == ("answered", "registered")
    assert registration["challenges"] == 1 and registration["auth_usernames"] == ["alice"]
    assert registration["realm"] == "test.local" and registration["credentials_rejected"] == 0
    assert not tracker.anomalies.counts
    (forwarded,) = calls["forwarded"]
    assert (forwarded["state"], forwarded["final_code"]) == ("answered", 200)
    assert forwarded["forwarded"] is True  # the 181 made it one story with its answer
