"""dissect/ike.py, dhcp.py, whatsapp_chat.py: the bytes from the shared captures."""

from __future__ import annotations

import contextlib

import pytest

from voipscope.anomalies import AnomalyLog
from voipscope.dissect.base import TCP, UDP, FlowContext, Packet, Probe
from voipscope.dissect.dhcp import DhcpDissector, check_dhcp
from voipscope.dissect.ike import IkeDissector, parse_ike
from voipscope.dissect.knowledge import Knowledge
from voipscope.dissect.whatsapp_chat import WhatsAppChatDissector
from voipscope.errors import DecodeError

# ipsec_isakmp_esp.pcap: IKEv2 INFORMATIONAL (37)... on UDP 4500 behind the non-ESP marker.
IKE_4500 = bytes.fromhex(
    "00000000b64ef32131a4895286babd39048869552e20232000000001000000cc"
) + bytes(0xCC - 28)
DHCP_DISCOVER = bytes([1, 1, 6, 0]) + bytes(232) + b"\x63\x82\x53\x63" + b"\x35\x01\x01\xff"


def ctx(transport: int, sport: int, dport: int) -> FlowContext:
    return FlowContext(1, transport, "10.0.0.1", sport, "10.0.0.2", dport, 0, Knowledge(),
                       AnomalyLog())  # fmt: skip


def test_ike_v2_behind_the_non_esp_marker() -> None:
    header = parse_ike(IKE_4500[4:])
    assert (header.version, header.exchange, header.length) == (0x20, 35, 0xCC)
    c = ctx(UDP, 14500, 4500)
    assert IkeDissector().probe(c, Packet(IKE_4500, 0, 1, 0)) == Probe.MATCH
    assert c.findings[0].protocol == "IPsec" and c.findings[0].category == "other"


def test_ike_needs_its_port_and_an_exact_length() -> None:
    assert IkeDissector().probe(ctx(UDP, 1000, 2000), Packet(IKE_4500, 0, 1, 0)) == Probe.NO
    with pytest.raises(DecodeError):
        parse_ike(IKE_4500[4:] + b"\x00")


def test_dhcp() -> None:
    assert check_dhcp(DHCP_DISCOVER) == 1
    c = ctx(UDP, 68, 67)
    assert DhcpDissector().probe(c, Packet(DHCP_DISCOVER, 0, 1, 0)) == Probe.MATCH
    with pytest.raises(DecodeError):
        check_dhcp(DHCP_DISCOVER[:200])
    with pytest.raises(DecodeError):
        check_dhcp(DHCP_DISCOVER[:236] + b"abcd")


def test_whatsapp_chat_prologue_from_the_client_only() -> None:
    c = ctx(TCP, 44804, 5222)
    assert WhatsAppChatDissector().probe(c, Packet(b"ED\x00\x01", 0, 4, 0)) == Probe.MATCH
    assert c.findings[0].app == "WhatsApp"
    d = WhatsAppChatDissector()
    assert d.probe(ctx(TCP, 1, 2), Packet(b"ED\x00\x01", 0, 4, 1)) == Probe.NO
    assert d.probe(ctx(TCP, 1, 2), Packet(b"EDIT /x HTTP/1.1", 0, 4, 0)) == Probe.NO


def test_prefixes_raise_only_decode_errors() -> None:
    for data, parse in ((IKE_4500[4:], parse_ike), (DHCP_DISCOVER, check_dhcp)):
        for cut in range(len(data)):
            with contextlib.suppress(DecodeError):
                parse(data[:cut])
