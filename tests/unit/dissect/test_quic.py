"""QUIC long headers and gQUIC: against tshark, each parser branch, every truncation, and
the dissector (long header first, gQUIC handshake messages and their SNI)."""

from __future__ import annotations

import struct

import pytest

from tests.dissectdrive import capture_flows, context, golden, packets, prefix_sweep, run
from tests.readback import payloads_by_frame
from voipscope.dissect.base import OTHER, Probe
from voipscope.dissect.knowledge import Knowledge
from voipscope.dissect.quic import (
    MAX_GQUIC_ENTRIES,
    QuicDissector,
    find_gquic_message,
    parse_gquic_message,
    parse_gquic_public_header,
    parse_quic_long_header,
    read_varint,
    version_name,
)
from voipscope.errors import Malformed, Truncated

QUIC = QuicDissector()
DCID = bytes(range(1, 9))


def long_packet(version=1, ptype=0, dcid=DCID, scid=b"", token=b"", payload=b"\x00" * 20,
                pad_to=0, first=None) -> bytes:  # fmt: skip
    b0 = first if first is not None else 0xC0 | (ptype << 4) | 0x03  # 4-byte packet number
    out = bytes([b0]) + struct.pack("!I", version) + bytes([len(dcid)]) + dcid
    out += bytes([len(scid)]) + scid
    if ptype == (1 if version == 0x6B3343CF else 0):
        out += bytes([len(token)]) + token  # Initial: token length (1-byte varint)
    body = b"\x00\x00\x00\x01" + payload
    if pad_to:
        body += b"\x00" * max(0, pad_to - len(out) - 2 - len(body))
    return out + struct.pack("!H", 0x4000 | len(body)) + body


INITIAL = long_packet(pad_to=1200)
HANDSHAKE = long_packet(ptype=2, scid=b"\xaa" * 4)


def gquic_message(tag: bytes, entries: dict[bytes, bytes]) -> bytes:
    out = tag + struct.pack("<HH", len(entries), 0)
    values = b""
    for key in sorted(entries, key=lambda k: int.from_bytes(k, "little")):
        values += entries[key]
        out += key + struct.pack("<I", len(values))
    return out + values


CHLO = gquic_message(b"CHLO", {b"SNI\x00": b"www.example.com", b"VER\x00": b"Q043",
                               b"UAID": b"test-agent"})  # fmt: skip
GQUIC_CLIENT = b"\x09" + DCID + b"Q043" + b"\x01" + b"\x00" * 12 + b"\xa0\x01\x00\x04" + CHLO
GQUIC_SERVER = (
    b"\x08"
    + DCID
    + b"\x01"
    + b"\x00" * 12
    + b"\xa0\x01\x00\x04"
    + gquic_message(b"REJ\x00", {b"STK\x00": b"x" * 16, b"SNO\x00": b"y" * 8})
)


# -- parsing --------------------------------------------------------------------------


def test_versions():
    assert version_name(1) == "QUIC v1" and version_name(0x6B3343CF) == "QUIC v2"
    assert version_name(0xFF00001D) == "QUIC draft-29" and version_name(0xFACEB002)
    assert version_name(int.from_bytes(b"Q046", "big")) == "gQUIC Q046"
    assert version_name(int.from_bytes(b"T051", "big")) == "gQUIC T051"
    for unknown in (0, 0xFF000000, 0x1A2A3A4A, int.from_bytes(b"Q0x1", "big")):
        assert version_name(unknown) is None


def test_long_header_types_and_lengths():
    h = parse_quic_long_header(INITIAL)
    assert (h.version, h.packet_type, h.dcid, h.scid) == (1, "Initial", DCID, b"")
    assert h.header_bytes + h.length == len(INITIAL) == 1200
    assert parse_quic_long_header(HANDSHAKE).packet_type == "Handshake"
    assert parse_quic_long_header(long_packet(ptype=1)).packet_type == "0-RTT"
    retry = bytes([0xF0]) + struct.pack("!I", 1) + b"\x08" + DCID + b"\x00" + b"tok" + b"\x00" * 16
    assert parse_quic_long_header(retry).length is None
    v2 = parse_quic_long_header(long_packet(version=0x6B3343CF, ptype=1, token=b"t"))
    assert v2.packet_type == "Initial"
    nibbles = b"\xc3" + struct.pack("!I", 0xFF000012) + b"\x50" + DCID + b"\x00\x05" + b"\x00" * 5
    old = parse_quic_long_header(nibbles)  # draft-18: DCIL 5 -> 8 bytes, no SCID
    assert (old.dcid, old.scid) == (DCID, b"")


def test_long_header_branches():
    with pytest.raises(Truncated):
        parse_quic_long_header(INITIAL[:6])
    with pytest.raises(Malformed, match="short header"):
        parse_quic_long_header(b"\x40" + INITIAL[1:])
    with pytest.raises(Malformed, match="version negotiation"):
        parse_quic_long_header(INITIAL[:1] + b"\x00" * 4 + INITIAL[5:])
    with pytest.raises(Malformed, match="not known"):
        parse_quic_long_header(INITIAL[:1] + b"\x1a\x2a\x3a\x4a" + INITIAL[5:])
    with pytest.raises(Malformed, match="fixed bit"):
        parse_quic_long_header(b"\x83" + INITIAL[1:])
    with pytest.raises(Malformed, match="DCID length 21"):
        parse_quic_long_header(INITIAL[:5] + b"\x15" + b"\x00" * 40)
    with pytest.raises(Malformed, match="SCID length 21"):
        parse_quic_long_header(INITIAL[:5] + b"\x00\x15" + b"\x00" * 40)
    with pytest.raises(Truncated, match="SCID length"):
        parse_quic_long_header(INITIAL[:5] + b"\x08" + DCID)
    with pytest.raises(Truncated, match="token"):
        parse_quic_long_header(INITIAL[:15] + b"\x3f")
    with pytest.raises(Malformed, match="runs past"):
        parse_quic_long_header(INITIAL[:-1])
    with pytest.raises(Malformed, match="shorter than its number"):
        parse_quic_long_header(INITIAL[:16] + b"\x02" + b"\x00" * 8)


def test_varints():
    assert read_varint(bytes.fromhex("c2197c5eff14e88c"), 0) == (151288809941952652, 8)
    assert read_varint(bytes.fromhex("9d7f3e7d"), 0) == (494878333, 4)
    assert read_varint(bytes.fromhex("7bbd"), 0) == (15293, 2)
    assert read_varint(b"\x25", 0) == (37, 1)  # RFC 9000 §A.1 examples
    with pytest.raises(Truncated):
        read_varint(b"", 0)
    with pytest.raises(Truncated):
        read_varint(b"\x7b", 0)


def test_gquic_public_header_and_messages():
    h = parse_gquic_public_header(GQUIC_CLIENT)
    assert (h.cid, h.version) == (DCID, int.from_bytes(b"Q043", "big"))
    assert parse_gquic_public_header(GQUIC_SERVER).version is None
    assert parse_gquic_public_header(b"\x0a" + DCID + b"PRST").version is None  # reset
    with pytest.raises(Truncated):
        parse_gquic_public_header(b"")
    with pytest.raises(Malformed, match="reserved"):
        parse_gquic_public_header(b"\x89" + DCID)
    with pytest.raises(Truncated):
        parse_gquic_public_header(b"\x09" + DCID[:4])
    with pytest.raises(Malformed, match="not Q0dd"):
        parse_gquic_public_header(b"\x09" + DCID + b"Q0x1")
    msg = find_gquic_message(GQUIC_CLIENT)
    assert msg is not None and msg.tag == "CHLO" and msg.entries == 3
    assert (msg.text("SNI"), msg.text("UAID"), msg.text("PAD")) == (
        "www.example.com",
        "test-agent",
        None,
    )
    assert find_gquic_message(GQUIC_SERVER).tag == "REJ"
    assert find_gquic_message(b"\x09" + DCID + b"Q043" + b"\x00" * 40) is None


def test_gquic_message_branches():
    with pytest.raises(Truncated):
        parse_gquic_message(CHLO[:7])
    with pytest.raises(Malformed, match="tag"):
        parse_gquic_message(b"XXXX" + CHLO[4:])
    with pytest.raises(Malformed, match="0 entries"):
        parse_gquic_message(b"CHLO\x00\x00\x00\x00")
    with pytest.raises(Malformed, match=f"{MAX_GQUIC_ENTRIES + 1} entries"):
        parse_gquic_message(b"CHLO" + struct.pack("<HH", MAX_GQUIC_ENTRIES + 1, 0))
    with pytest.raises(Truncated, match="tag table"):
        parse_gquic_message(CHLO[:20])
    swapped = CHLO[:8] + CHLO[16:24] + CHLO[8:16] + CHLO[24:]
    with pytest.raises(Malformed, match="ascending"):
        parse_gquic_message(swapped)
    backwards = CHLO[:12] + struct.pack("<I", 50) + CHLO[16:]
    with pytest.raises(Malformed, match="backwards"):
        parse_gquic_message(backwards)
    cut = parse_gquic_message(CHLO[:-3])  # a REJ may go on in the next packet
    assert set(cut.values) == {"SNI", "VER"}  # UAID sorts last and is cut off


@pytest.mark.parametrize(
    "capture", ["quic.pcap", "wechat.pcap", "telegram.pcap", "snapchat_call.pcapng"]
)
def test_gquic_against_tshark(capture, shared_captures):
    payloads = payloads_by_frame(shared_captures / capture, 17)
    for frame, version, tag, sni, uaid in golden(f"{capture}.gquic.txt"):
        data = payloads[int(frame)]
        if data[0] & 0x80:
            header = parse_quic_long_header(data)
            start = header.header_bytes
        else:
            header = parse_gquic_public_header(data)
            start = 9
        if header.version is not None:  # server packets carry none: tshark remembers it
            assert version_name(header.version) == f"gQUIC {version}", frame
        msg = find_gquic_message(data, start)
        assert msg is not None and msg.tag == tag.rstrip("\x00"), frame
        assert (msg.text("SNI") or "", msg.text("UAID") or "") == (sni, uaid), frame


def test_ietf_quic_against_tshark(shared_captures):
    payloads = payloads_by_frame(shared_captures / "google_meet.pcapng", 17)
    types = {"0": "Initial", "1": "0-RTT", "2": "Handshake", "3": "Retry"}
    for frame, version, ptype, dcil, scil in golden("google_meet.pcapng.quic.txt"):
        h = parse_quic_long_header(payloads[int(frame)])
        assert (h.version, h.packet_type) == (int(version, 16), types[ptype.split(",")[0]])
        assert (len(h.dcid), len(h.scid)) == (int(dcil.split(",")[0]), int(scil.split(",")[0]))


@pytest.mark.parametrize("data", [INITIAL[:80], HANDSHAKE], ids=["initial", "handshake"])
def test_every_prefix_of_a_long_header(data):
    prefix_sweep(parse_quic_long_header, data)


@pytest.mark.parametrize("data", [GQUIC_CLIENT, GQUIC_SERVER, CHLO], ids=["chlo", "rej", "msg"])
def test_every_prefix_of_gquic(data):
    prefix_sweep(parse_gquic_public_header, data)
    prefix_sweep(parse_gquic_message, data[data.find(b"CHLO") :] if b"CHLO" in data else data)
    for cut in range(len(data)):
        find_gquic_message(data[:cut])


# -- the dissector --------------------------------------------------------------------


def quic_ctx(knowledge=None):
    return context(17, ("192.0.2.20", 51000), ("203.0.113.9", 443), knowledge)


def test_initial_and_other_long_headers():
    r = run(QUIC, quic_ctx(), packets(INITIAL))
    f = r.finding
    assert (f.protocol, f.category, f.confidence) == ("QUIC", OTHER, 0.95)
    assert f.evidence == ("QUIC v1 Initial long header, DCID 8 bytes, SCID 0 bytes, "
                          "padded to 1200 bytes")  # fmt: skip
    assert run(QUIC, quic_ctx(), packets((1, HANDSHAKE))).finding.confidence == 0.85


def test_short_header_first_and_lookalikes_are_refused():
    short = b"\x41" + DCID + b"\x00" * 30
    assert run(QUIC, quic_ctx(), packets(short, INITIAL)).verdicts == [Probe.NO]
    rtp = b"\x80\x00\x00\x01" + b"\x00" * 168
    stun = bytes.fromhex("000100002112a442") + b"\x00" * 12
    for data in (rtp, stun, b"\xc0\x00\x00\x00\x01" + b"\x00" * 30, b"\x08" + DCID):
        assert run(QUIC, quic_ctx(), packets(data)).verdicts == [Probe.NO], data[:8]


def test_gquic_mid_flow_needs_a_repeated_connection_id():
    def pkt(pn: bytes, flags=0x0C, cid=DCID) -> bytes:
        return bytes([flags]) + cid + pn + b"\x5a" * 40

    server = (1, b"\x00\x37" + b"\x00" * 30)  # the server's packets carry no CID
    r = run(QUIC, quic_ctx(), packets(pkt(b"\x22"), server, pkt(b"\x23")))
    assert r.verdicts == [Probe.MAYBE, Probe.MAYBE, Probe.MATCH] and r.finding.confidence == 0.7
    assert run(QUIC, quic_ctx(), packets(server)).verdicts == [Probe.NO]
    assert r.finding.evidence == (
        "gQUIC public header mid-flow: flags 0x0c, connection ID 0102030405060708 repeated, "
        "packet number +1"
    )
    two_byte = run(QUIC, quic_ctx(), packets(pkt(b"\x01\xff", 0x1C), pkt(b"\x02\x00", 0x1C)))
    assert two_byte.matched  # big-endian +1 (Q039+)
    for second in (pkt(b"\x23", cid=DCID[::-1]), pkt(b"\x22"), pkt(b"\x99"), pkt(b"\x23", 0x08)):
        assert run(QUIC, quic_ctx(), packets(pkt(b"\x22"), second)).verdicts == [
            Probe.MAYBE, Probe.NO]  # fmt: skip


def test_gquic_client_hello_names_the_server():
    k = Knowledge()
    r = run(QUIC, quic_ctx(k), packets(GQUIC_CLIENT))
    assert r.finding.confidence == 0.95
    assert r.finding.evidence == (
        "gQUIC Q043 public header with version and 8-byte connection ID, CHLO in the clear "
        "(3 tags), SNI www.example.com, UAID test-agent"
    )
    assert (k.name_of("203.0.113.9").name, k.name_of("203.0.113.9").how) == (
        "www.example.com", "QUIC SNI")  # fmt: skip
    assert ("sni", "www.example.com") in r.ctx.hints
    server = run(QUIC, quic_ctx(), packets((1, GQUIC_SERVER)))
    assert server.finding.confidence == 0.85 and "REJ in the clear" in server.finding.evidence


def test_real_flows(shared_captures):
    k = Knowledge()
    for capture in ("quic.pcap", "gquic_only_from_server.pcap", "google_meet.pcapng"):
        for flow in capture_flows(shared_captures / capture, (17,)):
            r = run(QUIC, flow.context(k), flow.packets)
            assert r.matched, flow.src
            if flow.packets[0].payload[:1] == b"\x0c":  # mid-flow gQUIC (quic.pcap :40461)
                assert "mid-flow" in r.finding.evidence
            else:
                assert r.matched_at == flow.packets[0].seq, flow.src
    assert k.name_of("216.58.212.101").name == "mail.google.com"
