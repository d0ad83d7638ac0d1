"""Hypothesis over attacker-written text on the signalling -> calls -> detect path.

The other fuzz tests damage real payloads and draw random bytes; neither writes the
values a hostile SIP peer would: Unicode digits and superscripts ("²" is ``isdigit`` but
not ``int``), 5000-digit numbers (over ``int``'s 4300-digit limit), signs, NUL and
control bytes, invalid UTF-8, very long and duplicated headers. Here well-formed SIP
dialogs (every method the trackers handle) and MGCP, IAX2 and SCCP messages carry such
values in their numeric and textual fields and in their SDP, sipfrag and DTMF bodies, and
go through the real dissectors, call trackers, assembler and detectors:

- directly (parsed messages into ``CallsStage`` and ``DetectStage``): fast;
- as UDP datagrams of a capture through ``FlowPipeline.run_all``: the whole path.

Nothing may raise, every Call and Alert record converts to its Arrow schema, and no
dissector reports ``dissector_internal_error`` (DESIGN §4).
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import pcapbuild as pb
from tests.fuzz.support import FAST, LONG
from voipscope.anomalies import AnomalyLog
from voipscope.calls.iax2_calls import Iax2CallTracker
from voipscope.calls.mgcp_calls import MgcpCallTracker
from voipscope.calls.sccp_calls import SccpCallTracker
from voipscope.calls.stage import CallsStage
from voipscope.config import Config
from voipscope.detect.stage import DetectStage
from voipscope.dissect.base import TCP, UDP, MessageEvent
from voipscope.dissect.iax2 import parse_iax2_message
from voipscope.dissect.mgcp import parse_mgcp_all
from voipscope.dissect.sip import parse_sip
from voipscope.dissect.skinny import parse_sccp_call_message, parse_skinny
from voipscope.errors import DecodeError
from voipscope.inline import Event, drop, shape
from voipscope.inline.nft import NftVerdicts
from voipscope.inline.runner import inline_pipeline
from voipscope.output.alert_records import alerts_to_batch
from voipscope.output.call_records import calls_to_batch, streams_to_batch
from voipscope.pipeline import FlowPipeline

# -- adversarial values ---------------------------------------------------------------------

ODD_NUMBERS = (
    "²", "³", "¹²", "٣", "١٢٣", "１２３", "𝟗", "߁", "Ⅻ", "½", "᠑", "5" * 5000, "9" * 4301,
    "0" * 30, "-1", "-0", "+5", "- 1", "", " ", "0", "00", "65535", "65536", "99999",
    "4294967295", "4294967296", "9223372036854775807", "9223372036854775808",
    "18446744073709551616", "1" * 20, "1e3", "0x10", "1.5", "nan", "inf", "-inf", "1_000",
    "\x00", "1\x00", "\x1f1", "7\x0b", "\t60\t", "60;x", "3600 ; comment", "1 2", "٣600",
)  # fmt: skip
ODD_TEXT = (
    "", " ", "\x00", "\x00\x01\x02\x7f", "\x1b[31m", "a\x0bb", '"', '\\"', "<", ">", ";",
    ",", "=", "%", "%00", "%3D", "%ZZ", "@", ":", "\u202e", "\ufeff", "\U0001f600", "ǅ",
    "x" * 5000, "<sip:a@b>" * 50, ";tag=", "tag=a;tag=b", "sip:", "tel:+", "?Replaces=",
)  # fmt: skip
ODD_BYTES = (
    b"\xb2", b"\xff\xfe", b"\xc2", b"\xed\xa0\x80", b"\xe2\x82", b"\x80", b"\xf4\x90\x80\x80",
    b"\xc0\xaf", b"\x00", b"\r", b"\n", b"\r\n", b"\r\n\r\n", b"\r\n ", b"\\",
)  # fmt: skip
IPS = ("10.0.0.1", "10.0.0.2", "0.0.0.0", "255.255.255.255", "::1", "2001:db8::2",
       "999.1.1.1", "1.2.3", "1.2.3.4.5", "10.0.0.1/24", "fe80::1%eth0", "", "[::1]")  # fmt: skip

digit_chars = st.characters(categories=["Nd", "No", "Nl"])
numbers: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(ODD_NUMBERS),
    st.integers(-(2**70), 2**70).map(str),
    st.integers(0, 200).map(str),
    st.text(digit_chars, min_size=1, max_size=6),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6),
)
texts: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(ODD_TEXT),
    st.sampled_from(["a", "b", "alice", "bob", "100", "+4930123"]),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30),
    numbers,
)


def _enc(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")


@st.composite
def slot(draw: st.DrawFn, kind: st.SearchStrategy[str]) -> bytes:
    """A value for one place in a template: text, or raw bytes (invalid UTF-8, CR/LF)."""
    value = _enc(draw(kind))
    if draw(st.integers(0, 9)) == 0:
        value += draw(st.sampled_from(ODD_BYTES))
    if draw(st.integers(0, 19)) == 0:
        value = draw(st.binary(max_size=24))
    return value


PLAIN = {
    "{N}": (b"0", b"1", b"8", b"101", b"4000", b"3600"),
    "{T}": (b"a", b"b1", b"alice", b"100"),
    "{IP}": (b"10.0.0.1", b"10.0.0.2"),
}


@st.composite
def filled(draw: st.DrawFn, template: str) -> bytes:
    """``template`` with each ``{N}`` an odd number, ``{T}`` odd text, ``{IP}`` an
    address (mostly plausible)."""
    out = b""
    rest = template
    while True:
        at = [(rest.find(k), k) for k in ("{N}", "{T}", "{IP}") if rest.find(k) >= 0]
        if not at:
            return out + _enc(rest)
        pos, key = min(at)
        out += _enc(rest[:pos])
        rest = rest[pos + len(key) :]
        if draw(st.booleans()):  # half the places keep a plausible value
            out += draw(st.sampled_from(PLAIN[key]))
        elif key == "{N}":
            out += draw(slot(numbers))
        elif key == "{T}":
            out += draw(slot(texts))
        else:
            out += draw(slot(st.sampled_from(IPS)))


# -- SIP ----------------------------------------------------------------------------------

SIP_METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "INFO", "REFER",
               "NOTIFY", "UPDATE", "PRACK", "MESSAGE", "SUBSCRIBE")  # fmt: skip
CODES = (100, 180, 181, 183, 200, 202, 301, 302, 401, 403, 404, 407, 408, 422, 423, 480,
         481, 484, 486, 487, 488, 491, 500, 503, 603, 604, 699)  # fmt: skip
HEADER_TEMPLATES: dict[str, tuple[str, ...]] = {
    "Via": (
        "SIP/2.0/UDP {IP}:{N};branch=z9hG4bK{T};rport={N};received={IP}",
        "SIP/2.0/{T} {T}",
        "{T}",
    ),
    "CSeq": ("{N} {T}", "{N}", "{T}"),
    "Call-ID": ("{T}", "{T}@{IP}"),
    "From": ('"{T}" <sip:{T}@{IP}>;tag={T}', "<sip:{T}@h>;tag={T};tag={T}", "{T}"),
    "To": ("<sip:{T}@{IP}>;tag={T}", "<tel:{T}>", "{T}"),
    "Contact": ("<sip:{T}@{IP}:{N}>;expires={N}", "*", "<sip:a@h>;expires={N}, <{T}>", "{T}"),
    "Expires": ("{N}",),
    "Min-Expires": ("{N}",),
    "Max-Forwards": ("{N}",),
    "Content-Length": ("{N}",),
    "RSeq": ("{N}",),
    "RAck": ("{N} {N} {T}", "{N}"),
    "Session-Expires": ("{N};refresher={T}", "{N}"),
    "Min-SE": ("{N}",),
    "Retry-After": ("{N} ({T});duration={N}", "{N}"),
    "Timestamp": ("{N} {N}",),
    "Event": ("refer;id={N}", "dialog", "{T}"),
    "Subscription-State": ("active;expires={N}", "terminated;reason={T};retry-after={N}", "{T}"),
    "Diversion": ("<sip:{T}@{IP}>;reason={T};counter={N};privacy=off", "{T}"),
    "History-Info": (
        "<sip:{T}@h?Reason=SIP%3Bcause%3D{N}>;index={N}",
        "<sip:{T}@h>;index={T}, <{T}>",
        "{T}",
    ),
    "Refer-To": (
        "<sip:{T}@{IP}?Replaces={T}%3Bto-tag%3D{T}%3Bfrom-tag%3D{T}>",
        "<sip:{T}@h>",
        "{T}",
    ),
    "Referred-By": ("<sip:{T}@h>", "{T}"),
    "Replaces": ("{T};to-tag={T};from-tag={T}", "{T};early-only", "{T}"),
    "Reason": ('SIP;cause={N};text="{T}"', "Q.850;cause={N}", "{T}"),
    "Authorization": (
        'Digest username="{T}", realm="{T}", nonce="{T}", uri="sip:{T}", '
        'response="{T}", nc={N}, qop=auth',
        "Digest username={T}",
        "{T}",
    ),
    "Proxy-Authorization": ('Digest username="{T}", realm="{T}"', "{T}"),
    "WWW-Authenticate": ('Digest realm="{T}", nonce="{T}", stale={T}, algorithm={T}', "{T}"),
    "Proxy-Authenticate": ('Digest realm="{T}", nonce="{T}", stale=TRUE', "{T}"),
    "Content-Type": (
        "application/sdp",
        "application/dtmf-relay",
        "application/dtmf",
        "message/sipfrag;version=2.0",
        "multipart/mixed;boundary={T}",
        "{T}",
    ),
    "User-Agent": ("{T}", "friendly-scanner", "sipcli/v{N}"),
    "Server": ("{T}",),
    "P-Asserted-Identity": ('"{T}" <sip:{T}@h>', "<tel:{T}>"),
    "Remote-Party-ID": ("<sip:{T}@h>;party=calling;screen={T};privacy={T}",),
    "Privacy": ("{T}",),
    "Require": ("100rel, timer", "{T}"),
    "Supported": ("replaces, {T}",),
    "Allow": ("INVITE, ACK, {T}",),
    "Accept": ("application/sdp, {T}",),
    "Record-Route": ("<sip:{IP};lr>", "{T}"),
    "Route": ("<sip:{IP}:{N};lr>",),
    "Warning": ('{N} {T} "{T}"',),
    "X-{T}": ("{T}",),
}
SDP_LINES = (
    "o={T} {N} {N} IN IP4 {IP}", "o=- {N} {N} IN IP6 {IP}", "s={T}", "c=IN IP4 {IP}",
    "c=IN IP4 {IP}/{N}/{N}", "c=IN IP6 {IP}", "c={T}", "t={N} {N}", "b=AS:{N}",
    "m=audio {N} RTP/AVP {N} {N}", "m=audio {N}/{N} RTP/SAVP {N}", "m=video {N} {T} {T}",
    "m=image {N} udptl t38", "m={T} {N} {T}", "m=audio {N} RTP/AVP {T}",
    "a=rtpmap:{N} {T}/{N}", "a=rtpmap:{N} {T}/{N}/{N}", "a=rtpmap:{T}", "a=fmtp:{N} {T}",
    "a=fmtp:{N} {N}-{N}", "a=ssrc:{N} cname:{T}", "a=ssrc:{N}", "a=ssrc-group:FID {N} {N}",
    "a=candidate:{T} {N} {T} {N} {IP} {N} typ {T}", "a=candidate:{T}",
    "a=candidate:1 1 UDP {N} {IP} {N} typ host", "a=rtcp:{N} IN IP4 {IP}", "a=rtcp:{N}",
    "a=rtcp-mux", "a=sendonly", "a=recvonly", "a=inactive", "a={T}", "a=ptime:{N}",
    "a=crypto:{N} {T} inline:{T}", "a=mid:{T}", "a=setup:{T}", "a=fingerprint:{T} {T}",
    "a=T38FaxVersion:{N}", "{T}",
)  # fmt: skip


@st.composite
def sdp_body(draw: st.DrawFn) -> bytes:
    lines = [b"v=0", draw(filled("o=- {N} 1 IN IP4 {IP}")), b"s=-", draw(filled("c=IN IP4 {IP}")),
             b"t=0 0", draw(filled("m=audio {N} RTP/AVP 0 8 {N}"))]  # fmt: skip
    for template in draw(st.lists(st.sampled_from(SDP_LINES), max_size=12)):
        lines.append(draw(filled(template)))
    if draw(st.integers(0, 9)) == 0:
        lines = draw(st.permutations(lines))
    return b"\r\n".join(lines) + draw(st.sampled_from([b"\r\n", b"", b"\n", b"\r\n\x00"]))


@st.composite
def sip_body(draw: st.DrawFn) -> tuple[bytes, bytes | None]:
    """(body, Content-Type) — the type sometimes lies."""
    kind = draw(st.sampled_from(["none", "sdp", "sipfrag", "dtmf-relay", "dtmf", "multipart",
                                 "bytes"]))  # fmt: skip
    if kind == "none":
        return b"", None
    if kind == "sdp":
        body, ctype = draw(sdp_body()), b"application/sdp"
    elif kind == "sipfrag":
        body = draw(filled(draw(st.sampled_from(["SIP/2.0 {N} {T}", "SIP/2.0 {N}", "{T}"]))))
        ctype = b"message/sipfrag;version=2.0"
    elif kind == "dtmf-relay":
        body = draw(filled("Signal={T}\r\nDuration={N}\r\n"))
        if draw(st.booleans()):
            body = draw(filled("Signal={N}\r\nDuration={N}\r\nSignal={T}\r\nDuration=\r\n"))
        ctype = b"application/dtmf-relay"
    elif kind == "dtmf":
        body, ctype = draw(filled("{N}")), b"application/dtmf"
    elif kind == "multipart":
        sdp = draw(sdp_body())
        body = b"--b1\r\nContent-Type: application/sdp\r\n\r\n" + sdp + b"\r\n--b1--\r\n"
        ctype = b"multipart/mixed;boundary=b1"
    else:
        body, ctype = draw(st.binary(max_size=200)), draw(filled("{T}"))
    if draw(st.integers(0, 5)) == 0:
        ctype = draw(filled(draw(st.sampled_from(HEADER_TEMPLATES["Content-Type"]))))
    return body, ctype


CALL_IDS = ("c1@10.0.0.1", "c2@10.0.0.1", "c3")
TAGS = ("a1", "b1", "b2")


@st.composite
def sip_message(draw: st.DrawFn) -> bytes:
    """One SIP request or response: a plausible skeleton (so the trackers get past their
    first checks) with adversarial values in some of its headers and its body."""
    method = draw(st.sampled_from(SIP_METHODS))
    if draw(st.booleans()):
        uri = draw(st.sampled_from([b"sip:bob@10.0.0.2", b"sip:+4930123@h", b"tel:100"]))
        if draw(st.integers(0, 4)) == 0:
            uri = draw(filled("sip:{T}@{IP}:{N}")).replace(b" ", b"%20")
            uri = bytes(c for c in uri if c not in b"\r\n\t\x0b\x0c\x1c\x1d\x1e\x1f\x85") or b"x"
        start = method.encode() + b" " + uri + b" SIP/2.0"
    else:
        start = b"SIP/2.0 %d " % draw(st.sampled_from(CODES)) + draw(filled("{T}"))
    cseq_n = draw(st.integers(1, 4))
    skeleton: list[tuple[str, bytes]] = [
        ("Via", b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK" + draw(st.sampled_from([b"1", b"2"]))),
        ("From", b"<sip:alice@10.0.0.1>;tag=" + draw(st.sampled_from(TAGS[:1])).encode()),
        ("To", b"<sip:bob@10.0.0.2>" + draw(st.sampled_from([b"", b";tag=b1", b";tag=b2"]))),
        ("Call-ID", draw(st.sampled_from(CALL_IDS)).encode()),
        ("CSeq", b"%d %s" % (cseq_n, method.encode())),
        ("Contact", b"<sip:alice@10.0.0.1:5060>"),
    ]
    headers = []
    for name, value in skeleton:
        if draw(st.integers(0, 7)) == 0:  # replace the value
            value = draw(filled(draw(st.sampled_from(HEADER_TEMPLATES[name]))))
        headers.append((name.encode(), value))
    for name in draw(st.lists(st.sampled_from(sorted(HEADER_TEMPLATES)), max_size=8)):
        value = draw(filled(draw(st.sampled_from(HEADER_TEMPLATES[name]))))
        headers.append((draw(filled(name)) if "{" in name else name.encode(), value))
    if draw(st.integers(0, 9)) == 0:  # a very long header, or very many duplicates
        big = draw(st.sampled_from(["Via", "Contact", "Diversion", "History-Info", "Route"]))
        value = draw(filled(HEADER_TEMPLATES[big][0]))
        if draw(st.booleans()):
            headers.append((big.encode(), b", ".join([value] * 300)))
        else:
            headers += [(big.encode(), value)] * draw(st.integers(2, 300))
    headers = draw(st.permutations(headers)) if draw(st.integers(0, 3)) == 0 else headers
    body, ctype = draw(sip_body())
    if ctype is not None:
        headers.append((b"Content-Type", ctype))
    length = draw(st.sampled_from([b"%d" % len(body), b"%d" % len(body), None]))
    if length is None and draw(st.booleans()):
        length = draw(filled("{N}"))
    if length is not None:
        headers.append((b"Content-Length", length))
    head = b"\r\n".join([start, *(k + b": " + v for k, v in headers)])
    return head + b"\r\n\r\n" + body


ENDS = (("10.0.0.1", 5060), ("10.0.0.2", 5060), ("10.0.0.9", 5060))


@st.composite
def sip_datagrams(draw: st.DrawFn) -> list[tuple[int, tuple[str, int], tuple[str, int], bytes]]:
    """(ts_ns, sender, receiver, datagram) in time order."""
    ts = 1_700_000_000 * 10**9
    out = []
    for data in draw(st.lists(sip_message(), min_size=1, max_size=12)):
        ts += draw(st.sampled_from([1, 10**6, 10**8, 10**9, 40 * 10**9]))
        sender, receiver = draw(st.permutations(ENDS))[:2]
        out.append((ts, sender, receiver, data))
    return out


# -- checks -------------------------------------------------------------------------------


def check_records(calls: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> None:
    """Every record converts to its Arrow schema (types as the schema says)."""
    batch = calls_to_batch(calls)
    assert batch.num_rows == len(calls)
    streams_to_batch(calls)
    assert alerts_to_batch(alerts).num_rows == len(alerts)


def run_stages(events: list[MessageEvent]) -> None:
    """Messages through the calls and detect stages as the pipeline hands them out."""
    log = AnomalyLog()
    calls = CallsStage(Config(), log)
    detect = DetectStage(None, log)
    half = len(events) // 2
    records = []
    for part in (events[:half], events[half:]):
        calls.on_messages(list(part))
        detect.on_messages(list(part))
        if part:
            detect.tick(part[-1].ts_ns / 1e9)
        records += calls.drain()
    records += calls.finish()
    detect.add_calls(records)
    alerts = detect.ready() + detect.finish()
    check_records(records, alerts)


def sip_events(
    datagrams: list[tuple[int, tuple[str, int], tuple[str, int], bytes]],
) -> list[MessageEvent]:
    out = []
    for ts, sender, receiver, data in datagrams:
        try:
            msg = parse_sip(data)
        except DecodeError:
            continue
        out.append(MessageEvent("SIP", ts, 1, UDP, sender, receiver, msg))
    return out


def run_capture(packets: list[pb.Packet], path: str) -> None:
    """The whole pipeline over a capture: no exception, records in schema, no internal
    error of a dissector."""
    pipeline = FlowPipeline()
    with open(path, "wb") as f:
        f.write(pb.pcap(packets))
    calls: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    for kind, records in pipeline.run_all(path):
        if kind == "calls":
            calls += records  # type: ignore[arg-type]
        elif kind == "alerts":
            alerts += records  # type: ignore[arg-type]
    check_records(calls, alerts)
    internal = [a for a in pipeline.stats.anomalies.records if a.name == "dissector_internal_error"]
    assert not internal, internal
    assert pipeline.stats.anomalies.counts["dissector_internal_error"] == 0


def sip_packets(
    datagrams: list[tuple[int, tuple[str, int], tuple[str, int], bytes]], rtp_pt: int | None
) -> list[pb.Packet]:
    """The datagrams, and with ``rtp_pt`` RTP both ways between the ports the plausible
    SDPs announce (10.0.0.1 and 10.0.0.2, port 4000), so calls get streams with codecs."""
    packets = [
        pb.udp_packet(ts / 1e9, s[0], s[1], r[0], r[1], data[:65000])
        for ts, s, r, data in datagrams
    ]
    if rtp_pt is not None:
        t0 = datagrams[0][0] / 1e9
        for k in range(60):
            for src, dst, ssrc in (("10.0.0.1", "10.0.0.2", 0xA), ("10.0.0.2", "10.0.0.1", 0xB)):
                head = struct.pack("!BBHII", 0x80, rtp_pt, k, k * 160, ssrc)
                packets.append(
                    pb.udp_packet(t0 + k * 0.02, src, 4000, dst, 4000, head + bytes(160))
                )
    return sorted(packets, key=lambda p: p.ts_ns)


RTP_PT = st.sampled_from([None, 0, 8, 18, 96, 101, 127])

# -- SIP tests ------------------------------------------------------------------------------


def _sip_direct(datagrams: list[tuple[int, tuple[str, int], tuple[str, int], bytes]]) -> None:
    run_stages(sip_events(datagrams))


@FAST
@given(sip_datagrams())
def test_adversarial_sip_through_calls_and_detect(datagrams: list[Any]) -> None:
    _sip_direct(datagrams)


@pytest.mark.slow
@LONG
@given(sip_datagrams())
def test_adversarial_sip_through_calls_and_detect_long(datagrams: list[Any]) -> None:
    _sip_direct(datagrams)


@settings(FAST, max_examples=25)
@given(datagrams=sip_datagrams(), rtp_pt=RTP_PT)
def test_adversarial_sip_through_the_pipeline(
    datagrams: list[Any], rtp_pt: int | None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("adv") / "sip.pcap"
    run_capture(sip_packets(datagrams, rtp_pt), str(path))


@pytest.mark.slow
@settings(LONG, max_examples=600)
@given(datagrams=sip_datagrams(), rtp_pt=RTP_PT)
def test_adversarial_sip_through_the_pipeline_long(
    datagrams: list[Any], rtp_pt: int | None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("adv") / "sip.pcap"
    run_capture(sip_packets(datagrams, rtp_pt), str(path))


# Every line an inline decision can put into an nft script: set names, numbers, addresses.
NFT_ELEMENT = re.compile(
    r"^add element inet voipscope_inline [a-z0-9_]+ \{ [0-9a-f.: ]+( timeout [0-9]+s)?"
    r"(, [0-9a-f.: ]+( timeout [0-9]+s)?)* \}$"
)


def run_inline(packets: list[pb.Packet], path: str) -> None:
    """The pipeline with a hook that drops every call and shapes every flow and alert:
    no exception, targets a packet filter can take, and nft lines of nothing but names,
    numbers and addresses (SDP addresses and ports are the attacker's)."""
    with open(path, "wb") as f:
        f.write(pb.pcap(packets))

    def decide(event: Event) -> Any:
        return drop("fuzz") if event.kind == "call" else shape(64, "fuzz")

    pipeline = inline_pipeline(decide)
    actions: list[Any] = []
    for kind, payload in pipeline.run_all(path):
        if kind == "actions":
            actions += payload  # type: ignore[arg-type]
    assert pipeline.inline.hook_errors == 0
    for action in actions:
        assert action.packets_after >= 0 and action.bytes_after >= 0
        for t in action.targets:
            assert t.scope in ("flow", "to", "from")
            ipaddress.ip_address(t.ip)  # a plain address: no zone, no junk
            assert "%" not in t.ip
            if t.scope != "from":
                assert t.proto in (6, 17) and t.port is not None and 0 < t.port < 65536
    script = NftVerdicts().script(actions)
    for line in script.splitlines():
        if line.startswith("add element"):
            assert NFT_ELEMENT.match(line), line


@settings(FAST, max_examples=25)
@given(datagrams=sip_datagrams(), rtp_pt=RTP_PT)
def test_adversarial_sip_through_inline_hooks(
    datagrams: list[Any], rtp_pt: int | None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("adv") / "sip.pcap"
    run_inline(sip_packets(datagrams, rtp_pt), str(path))


@pytest.mark.slow
@settings(LONG, max_examples=600)
@given(datagrams=sip_datagrams(), rtp_pt=RTP_PT)
def test_adversarial_sip_through_inline_hooks_long(
    datagrams: list[Any], rtp_pt: int | None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("adv") / "sip.pcap"
    run_inline(sip_packets(datagrams, rtp_pt), str(path))


# -- MGCP -----------------------------------------------------------------------------------

MGCP_VERBS = ("CRCX", "MDCX", "DLCX", "RQNT", "NTFY", "AUEP", "AUCX", "RSIP", "EPCF", "MESG")
MGCP_PARAMS = (
    "C: {T}", "C: {N}", "I: {T}", "M: {T}", "M: sendrecv", "M: recvonly", "L: p:{N}, a:{T}",
    "X: {T}", "R: {T}", "S: {T}", "O: {T}", "O: L/{T}, D/{N}", "N: {T}@{IP}:{N}",
    "E: {N} {T}", "RM: {T}", "P: PS={N}, OS={N}, PR={N}, OR={N}, PL={N}, JI={N}, LA={N}",
    "K: {N}-{N}, {N}", "Z: {T}", "{T}: {T}",
)  # fmt: skip


@st.composite
def mgcp_datagram(draw: st.DrawFn) -> bytes:
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            tid = (
                draw(st.sampled_from([b"1", b"2", b"3"]))
                if draw(st.booleans())
                else draw(filled("{N}"))
            )
            first = draw(st.sampled_from(MGCP_VERBS)).encode() + b" " + tid
            first += b" " + draw(st.sampled_from([b"aaln/1@gw", b"*@gw"]))
            if draw(st.integers(0, 4)) == 0:
                first = first.rsplit(b" ", 1)[0] + b" " + draw(filled("{T}@{IP}"))
            first += b" MGCP " + draw(st.sampled_from([b"1.0", b"1.0 NCS 1.0"]))
        else:
            code = draw(st.sampled_from([b"200", b"250", b"400", b"510", b"000", b"999"]))
            tid = (
                draw(st.sampled_from([b"1", b"2"])) if draw(st.booleans()) else draw(filled("{N}"))
            )
            first = code + b" " + tid + b" " + draw(filled("{T}"))
        lines = [first]
        lines += [draw(filled(p)) for p in draw(st.lists(st.sampled_from(MGCP_PARAMS), max_size=6))]
        msg = b"\r\n".join(lines) + b"\r\n"
        if draw(st.booleans()):
            msg += b"\r\n" + draw(sdp_body())
        parts.append(msg)
    return b".\r\n".join(parts)


def mgcp_events(datagrams: list[tuple[int, bytes]]) -> list[MessageEvent]:
    a, b = ("10.0.0.1", 2427), ("10.0.0.2", 2727)
    out = []
    for i, (direction, data) in enumerate(datagrams):
        try:
            messages = parse_mgcp_all(data)
        except DecodeError:
            continue
        sender, receiver = (a, b) if direction == 0 else (b, a)
        ts = 1_700_000_000 * 10**9 + i * 10**8
        out += [MessageEvent("MGCP", ts, 1, UDP, sender, receiver, m) for m in messages]
    return out


mgcp_datagrams = st.lists(st.tuples(st.integers(0, 1), mgcp_datagram()), min_size=1, max_size=8)


def _mgcp(datagrams: list[tuple[int, bytes]]) -> None:
    events = mgcp_events(datagrams)
    tracker = MgcpCallTracker()
    tracker.on_messages(list(events))
    records = [dict(r) for r in tracker.finish()]
    run_stages(events)
    check_records(records, [])


@FAST
@given(mgcp_datagrams)
def test_adversarial_mgcp_through_calls(datagrams: list[tuple[int, bytes]]) -> None:
    _mgcp(datagrams)


@pytest.mark.slow
@LONG
@given(mgcp_datagrams)
def test_adversarial_mgcp_through_calls_long(datagrams: list[tuple[int, bytes]]) -> None:
    _mgcp(datagrams)


@settings(FAST, max_examples=15)
@given(datagrams=mgcp_datagrams)
def test_adversarial_mgcp_through_the_pipeline(
    datagrams: list[tuple[int, bytes]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    a, b = ("10.0.0.1", 2427), ("10.0.0.2", 2727)
    packets = [
        pb.udp_packet(1.0 + i * 0.1, *(a if d == 0 else b), *(b if d == 0 else a), data[:65000])
        for i, (d, data) in enumerate(datagrams)
    ]
    run_capture(packets, str(tmp_path_factory.mktemp("adv") / "mgcp.pcap"))


# -- IAX2 information elements and SCCP strings -----------------------------------------------

IAX2_TEXT_IES = (1, 2, 3, 4, 5, 6, 7, 10, 13, 22, 23)  # numbers, names, context, cause ...


@st.composite
def iax2_frame(draw: st.DrawFn) -> bytes:
    """A full frame (type IAX, subclass NEW/ACCEPT/HANGUP/...) with text IEs."""
    subclass = draw(st.sampled_from([1, 4, 5, 6, 7, 8, 13, 34]))
    head = struct.pack("!HHIBBB", 0x8000 | draw(st.integers(1, 3)), 0, 1000, 0, 0, 6)
    ies = b""
    for ie in draw(st.lists(st.sampled_from([*IAX2_TEXT_IES, 0, 9, 42, 255]), max_size=8)):
        value = draw(slot(texts))[:255]
        ies += bytes([ie, len(value)]) + value
    return head + bytes([subclass]) + ies


def _iax2(frames: list[bytes]) -> None:
    a, b = ("10.0.0.1", 4569), ("10.0.0.2", 4569)
    events = []
    for i, data in enumerate(frames):
        with contextlib.suppress(DecodeError):
            msg = parse_iax2_message(data)
            events.append(MessageEvent("iax2", i * 10**6, i % 2, UDP, a, b, msg))
    tracker = Iax2CallTracker()
    tracker.on_messages(events)
    check_records([dict(r) for r in tracker.finish()], [])


@FAST
@given(st.lists(iax2_frame(), min_size=1, max_size=8))
def test_adversarial_iax2_ies(frames: list[bytes]) -> None:
    _iax2(frames)


@st.composite
def sccp_message(draw: st.DrawFn) -> bytes:
    """Skinny messages whose fixed-width string fields (numbers, names) hold odd text."""
    msg_id = draw(st.sampled_from([0x8F, 0x111, 0x143, 0x116, 0x105, 0x106, 0x110, 0x22]))
    fields = b""
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            fields += struct.pack("<I", draw(st.integers(0, 2**32 - 1)))
        else:
            fields += draw(slot(texts))[:40].ljust(40, b"\x00")
    body = struct.pack("<I", msg_id) + fields
    return struct.pack("<II", len(body), 0) + body


def _sccp(messages: list[bytes]) -> None:
    a, b = ("10.0.0.1", 2000), ("10.0.0.2", 51000)
    events = []
    for i, data in enumerate(messages):
        with contextlib.suppress(DecodeError):
            for raw in parse_skinny(data):
                with contextlib.suppress(DecodeError):
                    msg = parse_sccp_call_message(raw)
                    events.append(MessageEvent("sccp", i * 10**6, 0, TCP, a, b, msg))
    tracker = SccpCallTracker()
    tracker.on_messages(events)
    check_records([dict(r) for r in tracker.finish()], [])


@FAST
@given(st.lists(sccp_message(), min_size=1, max_size=8))
def test_adversarial_sccp_strings(messages: list[bytes]) -> None:
    _sccp(messages)
