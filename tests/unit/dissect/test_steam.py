"""Steam In-Home Streaming discovery: against tshark, each branch, every truncation, and
the dissector."""

from __future__ import annotations

import struct

import pytest

from tests.dissectdrive import context, golden, packets, prefix_sweep, run
from tests.readback import payloads_by_frame
from tests.unit.dissect.gameflows import matched_ports
from voipscope.dissect.base import OTHER, Probe
from voipscope.dissect.steam import (
    MAX_PROTOBUF_FIELDS,
    SIGNATURE,
    SteamDissector,
    parse_protobuf_fields,
    parse_sdr_ping,
    parse_steam_discovery,
)
from voipscope.errors import Malformed, Truncated

STEAM = SteamDissector()
HEADER = b"\x08\xfc\xd3\xf1\xe3\xb7\xbc\xbf\xcf\x76" + b"\x10\x01" + b"\x18\x05"
BODY = b"\x08\x01\x22\x04host"
DISCOVERY = (
    SIGNATURE + struct.pack("<I", len(HEADER)) + HEADER + struct.pack("<I", len(BODY)) + BODY
)


def test_discovery_and_protobuf():
    msg = parse_steam_discovery(DISCOVERY)
    assert (msg.client_id, msg.msg_type, msg.msg_name) == (8547548296283711996, 1, "Status")
    assert (msg.header_bytes, msg.body_bytes) == (len(HEADER), len(BODY))
    message = BODY + b"\x29" + b"\x01" * 8 + b"\x35" + b"\x02" * 4
    fields = parse_protobuf_fields(message, 0, len(message))
    assert fields == {1: 1, 4: b"host", 5: 0x0101010101010101, 6: 0x02020202}


def test_against_tshark(shared_captures):
    payloads = payloads_by_frame(shared_captures / "steam.pcapng", 17)
    for frame, mtype, client, hlen, blen in golden("steam.pcapng.steam.txt"):
        msg = parse_steam_discovery(payloads[int(frame)])
        assert (msg.msg_type, msg.client_id) == (int(mtype), int(client))
        assert (msg.header_bytes, msg.body_bytes) == (int(hlen), int(blen))


def test_branches():
    with pytest.raises(Malformed, match="signature"):
        parse_steam_discovery(b"\xff\xff\xff\xfe" + DISCOVERY[4:])
    with pytest.raises(Truncated, match="header length"):
        parse_steam_discovery(SIGNATURE + b"\x01")
    with pytest.raises(Truncated, match="header of 99"):
        parse_steam_discovery(SIGNATURE + struct.pack("<I", 99) + HEADER)
    with pytest.raises(Truncated, match="body of"):
        parse_steam_discovery(DISCOVERY[:-1])
    with pytest.raises(Malformed, match="after the discovery body"):
        parse_steam_discovery(DISCOVERY + b"\x00")
    with pytest.raises(Truncated, match="runs past the datagram"):
        parse_protobuf_fields(BODY, 0, len(BODY) + 1)
    with pytest.raises(Malformed, match="field number 0"):
        parse_protobuf_fields(b"\x00\x01", 0, 2)
    with pytest.raises(Malformed, match="wire type 3"):
        parse_protobuf_fields(b"\x0b", 0, 1)
    with pytest.raises(Malformed, match="longer than 10"):
        parse_protobuf_fields(b"\x08" + b"\xff" * 11, 0, 12)
    with pytest.raises(Truncated, match="varint"):
        parse_protobuf_fields(b"\x08\xff", 0, 2)
    with pytest.raises(Truncated, match="fixed-size"):
        parse_protobuf_fields(b"\x09\x00", 0, 2)
    with pytest.raises(Truncated, match="length-delimited"):
        parse_protobuf_fields(b"\x0a\x05ab", 0, 4)
    with pytest.raises(Malformed, match="more than"):
        parse_protobuf_fields(b"\x08\x01" * (MAX_PROTOBUF_FIELDS + 1), 0, 2 * 65)


def test_every_prefix():
    assert prefix_sweep(parse_steam_discovery, DISCOVERY) == 0


def test_dissector():
    ctx = context(17, ("192.168.88.231", 27036), ("192.168.88.255", 27036))
    r = run(STEAM, ctx, packets(DISCOVERY))
    f = r.finding
    assert (f.protocol, f.category, f.app, f.confidence) == ("Steam", OTHER, "Steam", 0.95)
    assert f.evidence.startswith("Steam In-Home Streaming discovery Status: signature")
    for first in (DISCOVERY[:-1], b"\xff" * 40, b"\x80" + DISCOVERY[1:]):
        ctx = context(17, ("192.168.88.231", 27036), ("192.168.88.255", 27036))
        assert run(STEAM, ctx, packets(first)).verdicts == [Probe.NO]


# steam.pcapng frame 27: 192.168.88.231:46604 -> 155.133.252.86:27045, a Steam Datagram
# Relay ping (31 bytes of content, zero padding up to 100)
SDR_PING_CONTENT = bytes.fromhex("0181736470696e677ebe627ec7288817000000000659566591d40d8c62410b")
SDR_PING = SDR_PING_CONTENT + bytes(69)


def test_sdr_ping():
    assert len(SDR_PING) == 100 and parse_sdr_ping(SDR_PING) == 0x01
    with pytest.raises(Truncated, match="fewer than 100"):
        parse_sdr_ping(SDR_PING[:99])
    with pytest.raises(Malformed, match="sdping"):
        parse_sdr_ping(SDR_PING[:2] + b"sdpong" + SDR_PING[8:])
    with pytest.raises(Malformed, match="zero padding"):
        parse_sdr_ping(SDR_PING[:-1] + b"\x01")
    assert prefix_sweep(parse_sdr_ping, SDR_PING) == 0


def test_sdr_ping_dissector(shared_captures):
    ctx = context(17, ("192.168.88.231", 46604), ("155.133.252.86", 27045))
    r = run(STEAM, ctx, packets(SDR_PING))
    f = r.finding
    assert (f.protocol, f.category, f.app, f.confidence) == ("Steam", OTHER, "Steam", 0.85)
    assert "'sdping' at offset 2 of a 100-byte datagram" in f.evidence
    for first in (SDR_PING[:99], SDR_PING[:2] + b"sdpinG" + SDR_PING[8:], SDR_PING[:-1] + b"\x01",
                  b"\x02" + SDR_PING[1:]):  # fmt: skip
        assert run(STEAM, context(), packets(first)).verdicts == [Probe.NO]
    assert matched_ports(STEAM, shared_captures / "steam.pcapng") == {
        (27036, 27036), (27045, 46604)}  # fmt: skip
