"""HTTP/1.x start lines and heads, SSDP: against tshark, each parser branch, every
truncation, and the dissector (Host learned, HTTP on the SIP port, split lines)."""

from __future__ import annotations

import pytest

from tests.dissectdrive import capture_flows, context, golden, packets, prefix_sweep, run
from tests.readback import payloads_by_frame
from voipscope.dissect.base import OTHER, TCP, UDP, Probe
from voipscope.dissect.http import (
    H2_PREFACE,
    MAX_HEADERS,
    MAX_LINE_BYTES,
    HttpDissector,
    host_name,
    looks_like_http,
    parse_http_head,
    parse_start_line,
)
from voipscope.dissect.knowledge import Knowledge
from voipscope.dissect.sip import SipDissector
from voipscope.errors import Malformed, Truncated

HTTP = HttpDissector()
REQUEST = (
    b"GET /index.m3u8?token=abc HTTP/1.1\r\n"
    b"User-Agent: exoplayer\r\n"
    b"Host: media.example.com:8888\r\n"
    b"X-Folded: one\r\n two\r\n"
    b"\r\n"
)
RESPONSE = b"HTTP/1.1 403 Forbidden\r\nServer: Flussonic\r\nContent-Length: 0\r\n\r\n"
SSDP = (
    b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\n'
    b"MX: 1\r\nST: ssdp:all\r\n\r\n"
)


# -- parsing --------------------------------------------------------------------------


def test_request_and_response_heads():
    head = parse_http_head(REQUEST)
    assert (head.is_request, head.method, head.target, head.version) == (
        True, "GET", "/index.m3u8?token=abc", "HTTP/1.1")  # fmt: skip
    assert head.header("host") == "media.example.com:8888"
    assert head.header("x-folded") == "one two" and head.complete
    assert head.head_bytes == len(REQUEST)
    resp = parse_http_head(RESPONSE)
    assert (resp.is_request, resp.status, resp.reason) == (False, 403, "Forbidden")
    assert parse_start_line(b"HTTP/1.0 204").reason == ""  # no SP, no reason
    assert parse_start_line(b"M-SEARCH * HTTP/1.1").method == "M-SEARCH"


@pytest.mark.parametrize(
    "capture", ["alexa-app.pcapng", "KakaoTalk_chat.pcap", "ookla.pcap", "steam.pcapng"]
)
def test_against_tshark(capture, shared_captures):
    payloads = payloads_by_frame(shared_captures / capture, 6)
    for frame, method, uri, host, code in golden(f"{capture}.http.txt"):
        head = parse_http_head(payloads[int(frame)])
        if method:
            assert (head.method, head.target, head.header("host")) == (method, uri, host), frame
        else:
            assert head.status == int(code), frame


def test_start_line_and_head_branches():
    with pytest.raises(Truncated):
        parse_http_head(b"GET / HTTP/1.1")
    with pytest.raises(Malformed, match="longer than"):
        parse_http_head(b"GET /" + b"a" * MAX_LINE_BYTES)
    with pytest.raises(Malformed, match="longer than"):
        parse_http_head(b"GET /" + b"a" * MAX_LINE_BYTES + b" HTTP/1.1\r\n")
    for line in (b"INVITE sip:a@b SIP/2.0", b"OPTIONS rtsp://x RTSP/1.0", b"get / HTTP/1.1",
                 b"GET / HTTP/2.0", b"HTTP/1.1 99 Low", b"GET  / HTTP/1.1"):  # fmt: skip
        with pytest.raises(Malformed, match=r"not an HTTP/1\.x start line"):
            parse_start_line(line)
    with pytest.raises(Malformed, match="without a name"):
        parse_http_head(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n")
    with pytest.raises(Malformed, match="without a name"):
        parse_http_head(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n")
    with pytest.raises(Malformed, match="more than"):
        parse_http_head(b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * (MAX_HEADERS + 1) + b"\r\n")
    partial = parse_http_head(b"GET / HTTP/1.1\nHost: a\nUser-Agent: x")  # bare LF, cut
    assert not partial.complete and partial.headers == [("host", "a")]


def test_host_names():
    assert host_name("media.example.com:8888") == ("media.example.com", False)
    assert host_name("45.58.148.2") == ("45.58.148.2", True)
    assert host_name("[2001:db8::1]:80") == ("2001:db8::1", True)
    assert host_name("example.org") == ("example.org", False)


@pytest.mark.parametrize("data", [REQUEST, RESPONSE, SSDP], ids=["request", "response", "ssdp"])
def test_every_prefix(data):
    prefix_sweep(parse_http_head, data)
    for cut in range(len(data)):
        looks_like_http(data[:cut])


# -- the dissector --------------------------------------------------------------------


def http_ctx(transport=TCP, server=("203.0.113.7", 8888), knowledge=None, client_port=5060):
    return context(transport, ("192.0.2.30", client_port), server, knowledge)


def test_request_learns_the_host():
    k = Knowledge()
    r = run(HTTP, http_ctx(knowledge=k), packets(REQUEST, (1, RESPONSE)))
    f = r.finding
    assert (f.protocol, f.category, f.confidence) == ("HTTP", OTHER, 0.95)
    assert f.evidence == ("HTTP/1.1 GET request line over TCP to port 8888, Host media.example.com")
    assert (k.name_of("203.0.113.7").name, k.name_of("203.0.113.7").how) == (
        "media.example.com", "HTTP Host")  # fmt: skip
    assert ("http-host", "media.example.com") in r.ctx.hints
    assert ("user-agent", "exoplayer") in r.ctx.hints


def test_host_in_a_later_segment_and_split_start_line():
    k = Knowledge()
    flow = packets(b"GE", b"T / HTTP/1.1\r\nUser-Agent: x\r\n", b"Host: late.example\r\n\r\n")
    r = run(HTTP, http_ctx(knowledge=k), flow)
    # A GET is HTTP once its head has ended: it may upgrade to another protocol (sip_ws).
    assert r.verdicts == [Probe.MAYBE, Probe.MAYBE, Probe.MATCH]
    assert k.name_of("203.0.113.7").name == "late.example"
    assert r.finding.evidence.endswith("Host late.example")


def test_a_get_head_that_never_ends_is_still_http_at_the_budget():
    flow = packets(b"GET / HTTP/1.1\r\n", b"Cookie: a=1\r\n", b"Cookie: b=2\r\n")
    assert run(HTTP, http_ctx(), flow).verdicts == [Probe.MAYBE, Probe.MAYBE, Probe.MATCH]


def test_ip_literal_host_is_evidence_not_a_name():
    k = Knowledge()
    r = run(HTTP, http_ctx(knowledge=k), packets(b"GET / HTTP/1.0\r\nHost: 45.58.148.2\r\n\r\n"))
    assert r.finding.evidence.endswith("Host 45.58.148.2") and k.name_of("203.0.113.7") is None


def test_response_first_unknown_method_and_h2():
    r = run(HTTP, http_ctx(), packets((1, RESPONSE)))
    assert r.finding.evidence == "HTTP/1.1 403 status line over TCP to port 8888"
    assert r.finding.confidence == 0.9
    assert run(HTTP, http_ctx(), packets(b"BREW /pot HTTP/1.1\r\n\r\n")).finding.confidence == 0.8
    h2 = run(HTTP, http_ctx(), packets(H2_PREFACE[:10], H2_PREFACE[10:] + b"\x00\x00"))
    assert h2.verdicts == [Probe.MAYBE, Probe.MATCH] and h2.finding.protocol == "HTTP/2"


def test_not_http():
    for first in (b"INVITE sip:bob@b SIP/2.0\r\nVia: x\r\n\r\n", b"\x16\x03\x01\x00\x10",
                  b"hello world\r\n", b"SSH-2.0-OpenSSH_9.0\r\n", b""):  # fmt: skip
        assert run(HTTP, http_ctx(), packets(first)).verdicts == [Probe.NO], first
    assert run(HTTP, http_ctx(), packets(b"X" * (MAX_LINE_BYTES + 10))).verdicts == [Probe.NO]


def test_bad_headers_after_a_good_start_line_are_an_anomaly():
    r = run(HTTP, http_ctx(), packets(b"GET / HTTP/1.1\r\nbroken\r\n\r\n"))
    assert r.matched and r.ctx.anomalies.counts == {"http_malformed": 1}


def test_ssdp_and_http_over_udp():
    r = run(HTTP, http_ctx(UDP, ("239.255.255.250", 1900)), packets(SSDP))
    assert (r.finding.protocol, r.finding.confidence) == ("SSDP", 0.95)
    assert r.finding.evidence == "HTTP/1.1 M-SEARCH request line over UDP"
    other = run(HTTP, http_ctx(UDP, ("192.0.2.9", 8080)), packets(b"GET / HTTP/1.1\r\n\r\n"))
    assert other.finding.protocol == "HTTP"
    sip = b"OPTIONS sip:a@b SIP/2.0\r\n\r\n"
    assert run(HTTP, http_ctx(UDP, ("192.0.2.9", 1900)), packets(sip)).verdicts == [Probe.NO]


def test_http_on_the_sip_port_is_http_not_sip(shared_captures):
    (flow,) = capture_flows(shared_captures / "http_on_sip_port.pcap")
    assert flow.src[1] == 5060  # the client's source port
    k = Knowledge()
    r = run(HTTP, flow.context(k), flow.packets)
    assert r.matched and r.finding.evidence == (
        "HTTP/1.1 GET request line over TCP to port 8888, Host 45.58.148.2"
    )
    assert run(SipDissector(), flow.context(), flow.packets).verdicts == [Probe.NO]


def test_lines_split_over_segments(shared_captures):
    (flow,) = capture_flows(shared_captures / "http-lines-split.pcap")
    k = Knowledge()
    r = run(HTTP, flow.context(k), flow.packets)
    assert r.matched and k.name_of("192.168.0.20").name == "toni.lan"
