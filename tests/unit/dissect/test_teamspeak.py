"""TeamSpeak 3: the packet header, the Init1 handshake, and the dissector.

tshark 4.0 dissects TeamSpeak 2 and TSDNS but not TeamSpeak 3 voice, so the fixtures
from teamspeak3.pcap are checked against the "TS3 PROTOCOL PAPER" layouts; the other
handshake steps are built from that paper (the capture has the client's side only).
"""

from __future__ import annotations

import contextlib
import struct

import pytest

from tests.unit.dissect.appcases import check_negatives, drive, drive_captured, prefixes, udp_flows
from voipscope.dissect.base import MEDIA, SIGNALING
from voipscope.dissect.teamspeak import (
    TeamSpeakDissector,
    parse_ts3_header,
    parse_ts3_init,
)
from voipscope.errors import DecodeError, Malformed, Truncated

# teamspeak3.pcap frame 1: 10.0.0.1:53187 -> 10.0.0.2:9987, Init1 step 0.
INIT0 = bytes.fromhex("545333494e49543100650000880dd05766005f5916e0ade76b610000000000000000")
# frame 2: a client Command (type 0x22 = new protocol | Command), packet id 0, client id 0.
COMMAND = bytes.fromhex(  # all 188 bytes
    "797463e893ba7e6000000000229d748b45aa7befb99efead0819bacf41e016a21573daf093e24b5ed1f09d"
    "220e4bda953e71029f291a2dc246f215f4f16be77ed06a7099aa46a64c7ad9232d1719e7a41bd32afbc370"
    "c3f738b4d95539c7b97e016c7e902b6ec6c00b6dd0ca53e837bbdfbb33f47493787a0a3d9d82a54733062b"
    "24bf3089c5bc0192bf29f3ceb44a0a891a4db989313bd596bd949da9d0195591a5e17eaf0cd048c2b0eeee"
    "4965e53b852063478e949af6d75f0fa3"
)
INIT_C = b"TS3INIT1" + b"\x00\x65\x00\x00\x88"
INIT_S = b"TS3INIT1" + b"\x00\x65\x88"
A0, A1 = bytes.fromhex("ade76b61"), bytes(range(16))
INIT1 = INIT_S + b"\x01" + A1 + A0[::-1]
INIT2 = INIT_C + bytes.fromhex("0dd05766") + b"\x02" + A1 + A0[::-1]
INIT3 = INIT_S + b"\x03" + bytes(64) + bytes(64) + struct.pack("!I", 10000) + bytes(100)
INIT4 = INIT_C + bytes.fromhex("0dd05766") + b"\x04" + bytes(64 + 64 + 4 + 100 + 64) + b"x"
RESTART = INIT_S + b"\x7f"


def c2s(pid, ptype, client_id=7, flags=0x00, data=b"\x11" * 40, mac=b"\xa5" * 8):
    return mac + struct.pack("!HHB", pid, client_id, flags | ptype) + data


def s2c(pid, ptype, flags=0x00, data=b"\x22" * 40, mac=b"\x5a" * 8):
    return mac + struct.pack("!HB", pid, flags | ptype) + data


def test_init0_fields():
    init = parse_ts3_init(INIT0)
    assert (init.from_client, init.step, init.version) == (True, 0, 0x0DD05766)
    header = parse_ts3_header(INIT0, from_client=True)
    assert (header.mac, header.packet_id, header.client_id) == (b"TS3INIT1", 101, 0)
    assert (header.type_name, header.flags) == ("Init1", 0x80)


@pytest.mark.parametrize(
    ("data", "from_client", "step"),
    [
        (INIT1, False, 1),
        (INIT2, True, 2),
        (INIT3, False, 3),
        (INIT4, True, 4),
        (RESTART, False, 127),
    ],
)
def test_handshake_steps(data, from_client, step):
    init = parse_ts3_init(data)
    assert (init.from_client, init.step) == (from_client, step)


def test_command_header():
    header = parse_ts3_header(COMMAND, from_client=True)
    assert (header.packet_id, header.client_id, header.type_name, header.flags) == (
        0,
        0,
        "Command",
        0x20,
    )
    assert header.header_bytes == 13


def test_server_header():
    header = parse_ts3_header(s2c(9, 5, 0x80, b"\x00\x09"), from_client=False)
    assert (header.packet_id, header.client_id, header.type_name, header.header_bytes) == (
        9,
        None,
        "Pong",
        11,
    )


@pytest.mark.parametrize(
    "data",
    prefixes(INIT0) + prefixes(INIT1) + prefixes(INIT2) + prefixes(INIT3) + prefixes(INIT4)[:-1],
)
def test_init_prefixes_are_truncated(data):
    with pytest.raises(Truncated):
        parse_ts3_init(data)


@pytest.mark.parametrize("data", prefixes(COMMAND[:13]))
def test_header_prefixes_are_truncated(data):
    with pytest.raises(Truncated):
        parse_ts3_header(data, from_client=True)
    if len(data) < 11:
        with pytest.raises(Truncated):
            parse_ts3_header(data, from_client=False)


@pytest.mark.parametrize(
    "data",
    [
        b"TS3INIT2" + INIT0[8:],  # wrong MAC
        INIT0[:8] + b"\x00\x66" + INIT0[10:],  # packet id 102
        INIT0[:10] + b"\x00\x01" + INIT0[12:],  # client id 1
        INIT0[:12] + b"\x82" + INIT0[13:],  # type 2 behind TS3INIT1
        INIT0[:17] + b"\x01" + INIT0[18:],  # client step 1
        INIT0 + b"\0",  # step 0 one byte long
        INIT_S + b"\x05" + bytes(20),  # server step 5
    ],
)
def test_init_errors(data):
    with pytest.raises(Malformed):
        parse_ts3_init(data)


def test_header_errors():
    with pytest.raises(Malformed):
        parse_ts3_header(c2s(1, 0x09), from_client=True)
    with pytest.raises(Malformed):
        parse_ts3_header(c2s(1, 0, data=bytes(500)), from_client=True)


SERVER = ("10.0.0.2", 9987)


def test_handshake_matches_then_voice_is_reported():
    voice = c2s(1, 0, flags=0x00)
    result = drive(
        TeamSpeakDissector(), INIT0, (1, INIT1), INIT2, (1, s2c(1, 2)), voice, dst=SERVER
    )
    assert result.matched_at == 1
    init, audio = result.ctx.findings
    assert (init.category, init.confidence, init.app) == (SIGNALING, 0.95, "TeamSpeak")
    assert "Init1 step 0" in init.evidence and "9987" in init.evidence
    assert (audio.category, audio.media, audio.at_packet) == (MEDIA, "audio", 5)


def test_server_init_alone_matches():
    result = drive(TeamSpeakDissector(), (1, INIT1))
    assert result.matched and "server Init1 step 1" in result.finding.evidence


def test_mid_flow_run_of_client_headers():
    flow = [c2s(pid, ptype) for pid, ptype in [(10, 0), (11, 0), (5, 4), (12, 0), (13, 0)]]
    result = drive(TeamSpeakDissector(), *flow)
    assert not result.matched  # behaviour only: never a MATCH
    assert result.finding.media == "audio" and result.finding.confidence == 0.45
    on_port = drive(TeamSpeakDissector(), *flow, dst=SERVER)
    assert on_port.finding.confidence == 0.6


@pytest.mark.parametrize(
    "flow",
    [
        [c2s(10, 0), c2s(10, 0), c2s(10, 0), c2s(10, 0)],  # packet ids do not count up
        [c2s(10, 0), c2s(11, 0, client_id=8), c2s(12, 0), c2s(13, 0)],  # client id changes
        [c2s(10, 0, client_id=0)] * 4,  # no client id
    ],
)
def test_inconsistent_headers_say_nothing(flow):
    result = drive(TeamSpeakDissector(), *flow)
    assert not result.ctx.findings and not result.matched


def test_malformed_handshake_after_match_is_an_anomaly():
    result = drive(TeamSpeakDissector(), INIT0, (1, INIT_S + b"\x09" + bytes(20)))
    assert result.ctx.anomalies.counts["teamspeak_malformed"] == 1


def test_port_alone_is_weak():
    result = drive(TeamSpeakDissector(), b"\x00" * 5, dst=SERVER)
    assert result.finding.confidence <= 0.3 and "9987" in result.finding.evidence
    assert result.finding.app is None  # ports never name the app


def test_teamspeak3_capture(shared_captures):
    runs = {
        (f.src[1], f.dst[1]): drive_captured(TeamSpeakDissector(), f)
        for f in udp_flows(shared_captures / "teamspeak3.pcap")
    }
    assert runs[(53187, 9987)].matched
    # The 2010/2011 server-list exchange carries no documented TeamSpeak signature.
    assert not runs[(2011, 2010)].ctx.findings


def test_negatives(shared_captures):
    check_negatives(TeamSpeakDissector(), shared_captures)


def test_only_decode_errors_on_damaged_fixtures():
    for base in (INIT0, INIT1, INIT3, COMMAND):
        for i in range(len(base)):
            damaged = base[:i] + bytes([base[i] ^ 0x5A]) + base[i + 1 :]
            for fn in (parse_ts3_init, lambda d: parse_ts3_header(d, True)):
                with contextlib.suppress(DecodeError):
                    fn(damaged)
