"""The targets an inline decision takes from a call's SDP and an alert's source: only what
a packet filter can match (SDP text is the caller's, alert addresses can be forged)."""

from __future__ import annotations

from voipscope.calls.call_records import SdpExchange, SipCall
from voipscope.calls.sdp_media import announced_media
from voipscope.inline.decisions import TO, Target
from voipscope.inline.targets import blockable, sdp_targets


def _call(*bodies: bytes) -> SipCall:
    call = SipCall("r1", "c1", "call", 0, 0)
    for body in bodies:
        call.sdp.append(SdpExchange(0, "INVITE", 1, "offer", "10.0.0.1", "10.0.0.2",
                                    announced_media(body)))  # fmt: skip
    return call


def _sdp(c: str, m: str, *attrs: str) -> bytes:
    lines = ["v=0", "o=- 1 1 IN IP4 10.0.0.1", "s=-", f"c={c}", "t=0 0", f"m={m}", *attrs]
    return ("\r\n".join(lines) + "\r\n").encode()


def test_blockable_addresses() -> None:
    assert blockable("192.0.2.7") == "192.0.2.7"
    assert blockable(" 2001:db8::1 ") == "2001:db8::1"
    assert blockable("::ffff:192.0.2.7") == "192.0.2.7"  # an IPv4 host
    for bad in ("fe80::1%eth0", "127.0.0.1", "::1", "0.0.0.0", "::", "224.0.0.1",
                "255.255.255.255", "999.1.1.1", "10.0.0.1/24", "", None, 7):  # fmt: skip
        assert blockable(bad) is None, bad


def test_rtp_and_rtcp_ports_of_each_media_line() -> None:
    call = _call(_sdp("IN IP4 192.0.2.1", "audio 4000 RTP/AVP 0"),
                 _sdp("IN IP4 192.0.2.2", "audio 5000 RTP/AVP 0", "a=rtcp-mux"))  # fmt: skip
    assert sdp_targets(call, set()) == [Target(TO, "192.0.2.1", 17, 4000),
                                         Target(TO, "192.0.2.1", 17, 4001),
                                         Target(TO, "192.0.2.2", 17, 5000)]  # fmt: skip


def test_what_a_filter_cannot_take_is_left_out() -> None:
    call = _call(
        _sdp("IN IP6 fe80::1%eth0", "audio 4000 RTP/AVP 0"),  # a zone: not a filter key
        _sdp("IN IP4 0.0.0.0", "audio 4002 RTP/AVP 0"),  # RFC 2543 hold
        _sdp("IN IP4 192.0.2.3", "audio 0 RTP/AVP 0"),  # refused stream (RFC 3264 §6)
        _sdp("IN IP4 192.0.2.4", "audio 65535 RTP/AVP 0"),  # its RTCP would be 65536
        _sdp("IN IP4 192.0.2.5", "audio 6000 TCP/RTP/AVP 0", "a=rtcp-mux"),
    )
    assert sdp_targets(call, set()) == [Target(TO, "192.0.2.4", 17, 65535),
                                         Target(TO, "192.0.2.5", 6, 6000)]  # fmt: skip


def test_an_sdp_cannot_aim_a_drop_at_other_services() -> None:
    """The SDP's writer names the media endpoints: a premium-rate caller's INVITE that
    names the SBC's SIP port, a DNS server, or the call's own signalling end, gets no
    target there (a drop of the call would have dropped those)."""
    call = _call(
        _sdp("IN IP4 192.0.2.100", "audio 5060 RTP/AVP 0", "a=rtcp-mux"),  # the SBC's SIP
        _sdp(
            "IN IP4 192.0.2.100",
            "audio 7000 RTP/AVP 0",
            "a=rtcp-mux",
            "a=candidate:1 1 UDP 1 8.8.8.8 53 typ host",
            "a=candidate:2 1 UDP 1 192.0.2.100 5061 typ host",
            "a=candidate:3 1 UDP 1 192.0.2.50 5080 typ host",
        ),
    )
    signalling = {("192.0.2.50", 5080), ("192.0.2.100", 5060)}
    assert sdp_targets(call, signalling) == [Target(TO, "192.0.2.100", 17, 7000)]
