"""The lookalike dissectors never claim VoIP: every SIP, RTP/RTCP, STUN/TURN, IAX2, MGCP,
H.323, SCCP and T.38 packet of the shared VoIP captures, offered as the first packet of a
flow on the VoIP port and on each lookalike's own port, is refused by every one of them;
and the real VoIP flows, run whole, are never matched."""

from __future__ import annotations

import itertools

import pytest

from tests.dissectdrive import capture_flows, context, packets, run
from tests.readback import payloads_by_frame
from voipscope.dissect.base import TCP, UDP, Probe
from voipscope.dissect.bittorrent import BitTorrentDissector
from voipscope.dissect.dns import DnsDissector
from voipscope.dissect.http import HttpDissector
from voipscope.dissect.mpegts import MpegTsDissector
from voipscope.dissect.ntp import NtpDissector
from voipscope.dissect.quic import QuicDissector
from voipscope.dissect.rtps import RtpsDissector
from voipscope.dissect.steam import SteamDissector
from voipscope.dissect.tls import TlsDissector
from voipscope.dissect.wireguard import WireGuardDissector

LOOKALIKES = [DnsDissector(), NtpDissector(), RtpsDissector(), SteamDissector(),
              WireGuardDissector(), MpegTsDissector(), QuicDissector(), TlsDissector(),
              HttpDissector(), BitTorrentDissector()]  # fmt: skip
VOIP_CAPTURES = ["sip.pcap", "rtp.pcapng", "stun.pcap", "stun_classic.pcap",
                 "rtcp_multiple_pkts_in_the_same_datagram.pcap", "iax.pcap", "mgcp.pcap",
                 "h323.pcap", "sccp_hw_conf_register.pcapng",
                 "FAX-Call-t38-CA-TDM-SIP-FB-1.pcap"]  # fmt: skip
# Each lookalike's own ports, and the VoIP ones: a port must never be enough.
PORTS = [5060, 5061, 53, 5353, 5355, 123, 1900, 443, 27036, 7400]
PER_CAPTURE = 120  # packets per capture and transport (the fax call has 1,500 alike)


def voip_payloads(shared, transport: int) -> list[tuple[str, bytes]]:
    out = []
    for name in VOIP_CAPTURES:
        frames = payloads_by_frame(shared / name, transport)
        out += [(f"{name}#{frame}", data) for frame, data in list(frames.items())[:PER_CAPTURE]]
    return out


@pytest.mark.parametrize("transport", [UDP, TCP], ids=["udp", "tcp"])
def test_no_voip_packet_is_claimed_on_any_port(transport, shared_captures):
    payloads = voip_payloads(shared_captures, transport)
    assert len(payloads) > (500 if transport == UDP else 40)
    claimed = []
    for (where, data), port in itertools.product(payloads, PORTS):
        for dissector in LOOKALIKES:
            if transport not in dissector.transports:
                continue
            ctx = context(transport, ("192.0.2.1", 40000), ("192.0.2.2", port))
            verdicts = run(dissector, ctx, packets(data)).verdicts
            if Probe.MATCH in verdicts:
                claimed.append((where, port, dissector.name))
    assert claimed == []


def test_sip_rtp_and_stun_named_in_the_brief(shared_captures):
    sip = payloads_by_frame(shared_captures / "sip.pcap", UDP)[1]
    rtp = next(d for d in payloads_by_frame(shared_captures / "rtp.pcapng", UDP).values()
               if d[0] >> 6 == 2)  # fmt: skip
    stun = next(d for d in payloads_by_frame(shared_captures / "stun.pcap", UDP).values()
                if d[:2] == b"\x00\x01")  # fmt: skip
    assert sip.startswith(b"REGISTER sip:") and stun[4:8] == bytes.fromhex("2112a442")
    for data, dissector in itertools.product((sip, rtp, stun), LOOKALIKES):
        for transport in dissector.transports:
            ctx = context(transport, ("192.0.2.1", 5060), ("192.0.2.2", 5060))
            assert run(dissector, ctx, packets(data, data)).verdicts[0] == Probe.NO, (
                dissector.name, data[:12])  # fmt: skip


def test_whole_voip_flows_are_never_matched(shared_captures):
    for name in VOIP_CAPTURES[:-1]:
        for flow in capture_flows(shared_captures / name):
            for dissector in LOOKALIKES:
                if flow.transport in dissector.transports:
                    r = run(dissector, flow.context(), flow.packets)
                    assert not r.matched, (name, flow.src, flow.dst, dissector.name)
