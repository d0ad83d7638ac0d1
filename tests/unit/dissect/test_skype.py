"""Classic Skype's Start-of-Message header: against tshark's skype dissector, each
function's branch, each truncation, and the evidence the dissector builds from it."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.readback import payloads_by_frame
from tests.unit.dissect.appcases import check_negatives, drive, drive_captured, prefixes, udp_flows
from voipscope.dissect.base import MEDIA, SIGNALING, Probe
from voipscope.dissect.skype import SkypeDissector, parse_skype_som
from voipscope.errors import Malformed, Truncated

GOLDENS = Path(__file__).parent / "goldens"

# skype_udp.pcap: 192.168.1.2:35990 <-> 24.224.190.149:39262 (tshark: five "Payload").
SKYPE_UDP = [
    bytes.fromhex("169702aed10087792e012b1b34b94fb4a7cf2ec4a3ef4bd9e7d21f643db7bd"),
    bytes.fromhex("169702aaf0a3e4792e012b726d0a11b3cb8e5c01fff5acaf7730d6b1fc55ae"),
    bytes.fromhex("169702beea1405792e012b9260e22445a3df19bc447ce9c2ff9d43e28f4d73"),
    bytes.fromhex("b06b02f17fb56fefb9db6bb396d046a3f310"),
]
SKYPE_UDP_REPLY = bytes.fromhex("e05702ced0320fcccc8d0eeefde06245335a")
# dnscrypt_skype_false_positive.pcapng: a DNSCrypt query (byte 2 is 0x02!) and an answer.
DNSCRYPT_QUERY = bytes.fromhex(
    "d31b02042ac406f3497e6993424b0a16c06e75586651bb4a47b500e1d021af661e16c5859f9d160f"
)
DNSCRYPT_ANSWER = bytes.fromhex(
    "7236666e76576a38796107117ec517179b83ae746033f5b47ad61b4650afcc096428ac8c5102efd2"
)
# skype-conference-call.pcap frames 8-10: RTP whose byte 2 (sequence high byte 0x5d)
# passes the function test as 0x0D.
TEAMS_RTP = [
    bytes.fromhex("90685d330c3337ffe074c700bede0001127301ef7c7b6302a22bea64f9c950014bdd55f7"),
    bytes.fromhex("90685d340c33393fe074c700bede00011273168223f11bc3b680670a6c57f612240803d0"),
    bytes.fromhex("90685d350c333a7fe074c700bede000112732f959701be059d4a6ee54b2d89e9fdc9fe1f"),
]
NAT_REQUEST = bytes.fromhex("4a1f57") + bytes([192, 168, 1, 34]) + bytes([76, 185, 207, 12])
RESEND = bytes.fromhex("77a0330199aabbcc0102030405060708") + b"\x42" * 20
KEEPALIVE = bytes.fromhex("3c1e6d")


def som(message_id: int, salt: int, function: int = 0x02, size: int = 30) -> bytes:
    """A distinct payload datagram: fresh IV and body from ``salt``."""
    body = struct.pack("!I", (salt * 2654435761) & 0xFFFFFFFF) * 8
    return struct.pack("!HB", message_id, function) + body[: size - 3]


def golden(name: str) -> list[list[str]]:
    return [line.split("|") for line in (GOLDENS / name).read_text().splitlines()]


@pytest.mark.parametrize("capture", ["skype_udp.pcap", "skype.pcap"])
def test_against_tshark(shared_captures, capture):
    rows = golden(f"{capture}.skype.txt")
    assert len(rows) >= 5
    payloads = payloads_by_frame(shared_captures / capture, 17)
    for frame, message_id, kind, iv, crc in rows:
        msg = parse_skype_som(payloads[int(frame)])
        assert msg.message_id == int(message_id, 16), frame
        assert msg.function == int(kind, 16) and msg.function_name == "payload"
        assert (msg.iv, msg.crc) == (bytes.fromhex(iv[2:]), bytes.fromhex(crc[2:]))


def test_function_bits_hide_behind_the_mask():
    # 0x72 & 0x8F == 0x02: bits 4-6 of the function byte are obfuscation (Tstat).
    msg = parse_skype_som(b"\x12\x34\x72" + bytes(8))
    assert (msg.function, msg.raw_function) == (0x02, 0x72)


@pytest.mark.parametrize(
    ("data", "function", "name"),
    [
        (RESEND, 0x03, "resend"),
        (NAT_REQUEST, 0x07, "NAT request"),
        (KEEPALIVE, 0x0D, "audio"),
        (bytes.fromhex("00010f") + b"x" * 9, 0x0F, "fragment"),
    ],
)
def test_functions(data, function, name):
    msg = parse_skype_som(data)
    assert (msg.function, msg.function_name) == (function, name)


def test_resend_and_nat_request_fields():
    assert parse_skype_som(RESEND).iv == bytes.fromhex("01020304")
    assert parse_skype_som(NAT_REQUEST).nat_addresses == ("192.168.1.34", "76.185.207.12")


@pytest.mark.parametrize(
    "data", prefixes(SKYPE_UDP[0][:11]) + prefixes(RESEND[:16]) + prefixes(NAT_REQUEST)
)
def test_every_prefix_is_truncated(data):
    with pytest.raises(Truncated):
        parse_skype_som(data)


@pytest.mark.parametrize(
    "data",
    [b"\x01\x02\x01" + bytes(20), b"\x01\x02\x82" + bytes(20), NAT_REQUEST + b"\0"],
)
def test_errors(data):
    with pytest.raises(Malformed):
        parse_skype_som(data)


def test_one_datagram_is_never_enough():
    """One SoM datagram is reported only as weak evidence (0.1), below any verdict; the
    arbiter may raise it with the socket's other flows (test_identification)."""
    result = drive(SkypeDissector(), SKYPE_UDP[0])
    assert all(f.confidence <= 0.1 for f in result.ctx.findings)


def test_skype_udp_flow_builds_up():
    result = drive(SkypeDissector(), *SKYPE_UDP, (1, SKYPE_UDP_REPLY))
    assert not result.matched
    confidences = [f.confidence for f in result.ctx.findings]
    assert confidences == sorted(confidences) and confidences[-1] == 0.6
    last = result.ctx.findings[-1]
    assert (last.protocol, last.app, last.category) == ("Skype", "Skype", SIGNALING)
    assert "4+1 by direction" in last.evidence


def test_many_distinct_headers_both_ways_match():
    flow = []
    for k in range(4):
        flow += [som(0x9B90 + 2 * k, k), (1, som(0x1200 + k, 100 + k))]
    result = drive(SkypeDissector(), *flow)
    assert result.matched and result.ctx.findings[-1].confidence == 0.7


def test_function_13_datagrams_are_voice():
    flow = []
    for k in range(4):
        flow += [som(0x9B90 + 2 * k, k, 0x0D, 60), (1, som(0x1200 + k, 100 + k, 0x6D, 60))]
    result = drive(SkypeDissector(), *flow)
    last = result.ctx.findings[-1]
    assert (last.category, last.media, result.matched) == (MEDIA, "audio", True)


def test_one_direction_stays_below_half():
    result = drive(SkypeDissector(), *[som(0x9B90 + 2 * k, k) for k in range(8)])
    assert not result.matched and result.ctx.findings[-1].confidence == 0.4


def test_retransmission_is_no_new_evidence():
    result = drive(SkypeDissector(), SKYPE_UDP[0], SKYPE_UDP[0], SKYPE_UDP[0])
    assert all(f.confidence <= 0.1 and "1 Skype SoM header" in f.evidence
               for f in result.ctx.findings)  # fmt: skip


@pytest.mark.parametrize(
    "flow",
    [
        [DNSCRYPT_QUERY, DNSCRYPT_QUERY, (1, DNSCRYPT_ANSWER), DNSCRYPT_QUERY],
        [DNSCRYPT_QUERY, DNSCRYPT_QUERY[:8] + bytes(8) + DNSCRYPT_QUERY[16:]],  # same magic
        TEAMS_RTP,  # consecutive RTP of one SSRC
        [b"\x01\x02\x02" + b"\x21\x12\xa4\x42" + bytes(20)] * 2,  # STUN cookie
        [b"SIP/2.0 200 OK\r\n", b"SIP/2.0 180 Ringing\r\n"],  # text
        [som(1, 1), (1, b"\x00\x00\x00\x00" + bytes(20))],  # the peer does not speak SoM
    ],
)
def test_structure_rules_flows_out(flow):
    result = drive(SkypeDissector(), *flow)
    # At most the weak per-flow note (0.1) that only a socket's other flows can raise.
    assert all(f.confidence <= 0.1 for f in result.ctx.findings)
    assert result.verdicts[-1] in (Probe.NO, Probe.MAYBE)


def test_skypeout_port_is_recorded_not_classified():
    flow = [b"\xaa\xbb\xcc\xdd" + bytes([k]) * 30 for k in range(5)]
    result = drive(SkypeDissector(), *flow, dst=("10.0.0.2", 12340))
    assert not result.matched
    assert result.finding.confidence == 0.3 and "12340" in result.finding.evidence
    assert result.finding.app is None  # ports never name the app
    other = drive(SkypeDissector(), b"\x01" * 40, dst=("10.0.0.2", 12340))
    assert other.finding.confidence == 0.2


def test_skype_port_in_evidence_when_soms_are_seen():
    result = drive(SkypeDissector(), *SKYPE_UDP, dst=("10.0.0.2", 12340))
    assert "12340" in result.ctx.findings[-1].evidence


@pytest.mark.parametrize(
    ("capture", "expected"),
    [
        ("skype_udp.pcap", {(35990, 39262): 0.6}),
        ("skype.pcap", {(13021, 63773): 0.4, (13021, 45493): 0.4}),
        ("skype-conference-call.pcap", {}),  # Skype for Business: STUN + RTP, not classic
        ("dnscrypt_skype_false_positive.pcapng", {}),
    ],
)
def test_skype_captures(shared_captures, capture, expected):
    found = {}
    for flow in udp_flows(shared_captures / capture):
        result = drive_captured(SkypeDissector(), flow)
        assert not result.matched
        strong = [f for f in result.ctx.findings if f.confidence > 0.1]
        if strong:
            found[(flow.src[1], flow.dst[1])] = strong[-1].confidence
    assert found == expected


def test_tcp_is_sampled_never_claimed():
    """Skype over TCP is random from byte 0: the dissector keeps a bounded sample for
    classify (skype_verdict) and reports nothing itself; plaintext framing is refused."""
    from tests.dissectdrive import context, packets, run

    flow = [bytes([k]) + bytes(range(200, 255)) for k in range(100)]
    result = run(SkypeDissector(), context(6), packets(*flow))
    state = result.ctx.state["Skype"]
    assert not result.ctx.findings and state.framing is None
    assert len(state.dirs[0].heads) == state.offered == 24  # TCP_BUDGET_PACKETS
    assert result.verdicts[-1] == Probe.NO
    tls = run(SkypeDissector(), context(6), packets(b"\x16\x03\x01\x00\x05hello"))
    assert tls.verdicts == [Probe.NO] and "Skype" not in tls.ctx.state  # TLS framing


def test_negatives(shared_captures):
    check_negatives(SkypeDissector(), shared_captures)


# skype.pcap, flow 192.168.1.34:50111 <-> 91.190.216.125:443: the opening segments.
LOOKALIKE_OPEN = bytes.fromhex("1603010000")
LOOKALIKE_ANSWER = bytes.fromhex("1703010000")
LOOKALIKE_LOGIN = bytes.fromhex("16030100eb42cdefe740d72f1dcb1839fbc8f3d2f8224daa4d57800611bdd514")


def test_tls_lookalike_answered_is_skype():
    """Classic Skype's TLS look-alike: zero-length handshake and application-data
    records before any hello, which TLS forbids (RFC 5246 §6.2.1, §7)."""
    from tests.dissectdrive import context, packets, run

    flow = packets(LOOKALIKE_OPEN, (1, LOOKALIKE_ANSWER), LOOKALIKE_OPEN, LOOKALIKE_LOGIN)
    result = run(SkypeDissector(), context(6, dst=("91.190.216.125", 443)), flow)
    assert result.verdicts == [Probe.MAYBE, Probe.MATCH] and result.matched_at == 2
    (finding,) = result.ctx.findings
    assert (finding.protocol, finding.category, finding.app) == ("Skype", SIGNALING, "Skype")
    assert finding.confidence == 0.9 and "zero-length" in finding.evidence


def test_tls_lookalike_without_answer_is_weaker():
    from tests.dissectdrive import context, packets, run

    dissector = SkypeDissector()
    result = run(dissector, context(6), packets(LOOKALIKE_OPEN))
    dissector.on_expire(result.ctx)
    (finding,) = result.ctx.findings
    assert (finding.protocol, finding.confidence, finding.at_packet) == ("Skype", 0.6, 1)


@pytest.mark.parametrize(
    "answer",
    [
        bytes.fromhex("150301000202 0a".replace(" ", "")),  # a real server: fatal alert
        bytes.fromhex("160301003a020000360301") + bytes(51),  # a ServerHello
        bytes.fromhex("1703010005") + b"hello",  # application data with a body
    ],
)
def test_tls_lookalike_needs_the_empty_answer(answer):
    from tests.dissectdrive import context, packets, run

    dissector = SkypeDissector()
    result = run(dissector, context(6), packets(LOOKALIKE_OPEN, (1, answer)))
    dissector.on_expire(result.ctx)
    assert result.verdicts[-1] == Probe.NO and not result.ctx.findings


def test_real_tls_hello_is_no_lookalike():
    from tests.dissectdrive import context, packets, run

    hello = bytes.fromhex("16030100c8010000c40303") + bytes(32)
    result = run(SkypeDissector(), context(6), packets(hello))
    assert result.verdicts == [Probe.NO] and "Skype" not in result.ctx.state
