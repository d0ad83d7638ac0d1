"""BitTorrent: uTP headers and DHT messages against tshark, bencode and handshake
branches, every truncation, and the dissector (consistent uTP headers only; the DHCP and
Zoom packets that look like one uTP header are not enough)."""

from __future__ import annotations

import struct

import pytest

from tests.dissectdrive import capture_flows, context, golden, packets, prefix_sweep, run
from tests.readback import payloads_by_frame
from voipscope.dissect.base import OTHER, TCP, Packet, Probe
from voipscope.dissect.bittorrent import (
    HANDSHAKE_PREFIX,
    MAX_BENCODE_DEPTH,
    MAX_BENCODE_ITEMS,
    BitTorrentDissector,
    is_tracker_connect,
    looks_like_utp,
    parse_bencode,
    parse_handshake,
    parse_krpc,
    parse_utp,
)
from voipscope.errors import Malformed, Truncated

BT = BitTorrentDissector()
T0 = 1_700_000_000_000_000_000


def utp(ptype, conn, seq, ack, ts_us=1_000_000, ext=b"", payload=b"", first_ext=0) -> bytes:
    return (bytes([ptype << 4 | 1, first_ext]) + struct.pack("!HIIIHH", conn, ts_us, 0, 65536,
            seq, ack) + ext + payload)  # fmt: skip


HANDSHAKE = HANDSHAKE_PREFIX + b"\x00" * 8 + b"\xab" * 20 + b"-UT3550-" + b"x" * 12
KRPC = (
    b"d1:ad2:id20:" + b"i" * 20 + b"9:info_hash20:" + b"h" * 20 + b"e1:q9:get_peers1:t2:aa1:y1:qe"
)
TRACKER = struct.pack("!QII", 0x41727101980, 0, 0x1234)


# -- parsing --------------------------------------------------------------------------


def test_utp_against_tshark(shared_captures):
    payloads = payloads_by_frame(shared_captures / "bittorrent_utp.pcap", 17)
    rows = golden("bittorrent_utp.pcap.utp.txt")
    assert len(rows) > 50
    for frame, ptype, conn, seq, ack, ts in rows:
        h = parse_utp(payloads[int(frame)])
        assert (h.packet_type, h.connection_id, h.seq_nr, h.ack_nr, h.timestamp_us) == (
            int(ptype), int(conn), int(seq), int(ack), int(ts)), frame  # fmt: skip


def test_dht_against_tshark(shared_captures):
    payloads = payloads_by_frame(shared_captures / "bittorrent_utp.pcap", 17)
    for frame, strings in golden("bittorrent_utp.pcap.dht.txt"):
        msg = parse_krpc(payloads[int(frame)])
        items = strings.split(",")
        assert (msg.kind, msg.query) == ("query", items[items.index("q") + 1])
        assert msg.transaction_id.hex() == items[items.index("t") + 1]


def test_utp_branches():
    h = parse_utp(utp(2, 7, 1, 2, ext=b"\x00\x04\x01\x02\x03\x04", first_ext=1))
    assert (h.type_name, h.extensions, h.payload_offset) == ("ST_STATE", (1,), 26)
    with pytest.raises(Truncated):
        parse_utp(utp(0, 1, 1, 1)[:19])
    with pytest.raises(Malformed, match="version 2"):
        parse_utp(b"\x02" + utp(0, 1, 1, 1)[1:])
    with pytest.raises(Malformed, match="type 5"):
        parse_utp(b"\x51" + utp(0, 1, 1, 1)[1:])
    with pytest.raises(Malformed, match="extension type 9"):
        parse_utp(utp(0, 1, 1, 1, first_ext=9, ext=b"\x00\x00"))
    with pytest.raises(Malformed, match="more than 8"):
        parse_utp(utp(0, 1, 1, 1, first_ext=1, ext=b"\x01\x00" * 9))
    with pytest.raises(Truncated, match="extension header"):
        parse_utp(utp(0, 1, 1, 1, first_ext=1, ext=b"\x00"))
    with pytest.raises(Truncated, match="runs past"):
        parse_utp(utp(0, 1, 1, 1, first_ext=1, ext=b"\x00\x08\x00"))
    with pytest.raises(Malformed, match="ST_SYN carries 3 payload bytes"):
        parse_utp(utp(4, 1, 1, 0, payload=b"abc"))
    assert looks_like_utp(utp(4, 1, 1, 0)) and not looks_like_utp(b"\x80" + utp(4, 1, 1, 0)[1:])


def test_bencode_branches():
    assert parse_bencode(b"i-42e") == (-42, 5)
    assert parse_bencode(b"li0e3:abcdee") == ([0, b"abc", {}], 12)
    with pytest.raises(Malformed, match="canonical"):
        parse_bencode(b"i03e")
    with pytest.raises(Malformed, match="canonical"):
        parse_bencode(b"i-0e")
    with pytest.raises(Malformed, match="canonical"):
        parse_bencode(b"i-e")
    with pytest.raises(Truncated, match="integer has no end"):
        parse_bencode(b"i12")
    with pytest.raises(Malformed, match="integer is too long"):
        parse_bencode(b"i" + b"1" * 30 + b"e")
    with pytest.raises(Truncated, match="no colon"):
        parse_bencode(b"12")
    with pytest.raises(Malformed, match="length is too long"):
        parse_bencode(b"1" * 12 + b":")
    with pytest.raises(Malformed, match="not a number"):
        parse_bencode(b"1x:")
    with pytest.raises(Truncated, match="runs past"):
        parse_bencode(b"5:abc")
    with pytest.raises(Truncated, match="no end"):
        parse_bencode(b"li1e")
    with pytest.raises(Malformed, match="without a value"):
        parse_bencode(b"d1:ae")
    with pytest.raises(Malformed, match="not a string"):
        parse_bencode(b"di1ei2ee")
    with pytest.raises(Malformed, match="deeper"):
        parse_bencode(b"l" * (MAX_BENCODE_DEPTH + 1) + b"e" * (MAX_BENCODE_DEPTH + 1))
    with pytest.raises(Malformed, match="items"):
        parse_bencode(b"l" + b"i1e" * MAX_BENCODE_ITEMS + b"e")
    with pytest.raises(Malformed, match="starts with"):
        parse_bencode(b"x")
    with pytest.raises(Truncated):
        parse_bencode(b"")


def test_krpc_handshake_and_tracker_branches():
    msg = parse_krpc(KRPC)
    assert (msg.kind, msg.query, msg.transaction_id) == ("query", "get_peers", b"aa")
    assert parse_krpc(b"d1:rd2:id2:xxe1:t2:aa1:y1:re").kind == "response"
    with pytest.raises(Malformed, match="after the bencoded"):
        parse_krpc(KRPC + b"x")
    with pytest.raises(Malformed, match="not a bencoded dictionary"):
        parse_krpc(b"li1ee")
    with pytest.raises(Malformed, match="no y"):
        parse_krpc(b"d1:t2:aa1:y1:xe")
    with pytest.raises(Malformed, match="transaction"):
        parse_krpc(b"d1:y1:qe")
    hs = parse_handshake(HANDSHAKE)
    assert hs.info_hash == b"\xab" * 20 and hs.peer_id.startswith(b"-UT3550-")
    with pytest.raises(Truncated):
        parse_handshake(HANDSHAKE[:67])
    with pytest.raises(Malformed):
        parse_handshake(b"\x13BitTorrent protocoX" + HANDSHAKE[20:])
    assert is_tracker_connect(TRACKER) and not is_tracker_connect(TRACKER + b"\x00")


@pytest.mark.parametrize(
    "data,parse",
    [(utp(2, 7, 1, 2, ext=b"\x00\x04\x01\x02\x03\x04", first_ext=1), parse_utp),
     (KRPC, parse_krpc), (KRPC, parse_bencode), (HANDSHAKE, parse_handshake)],
    ids=["utp", "krpc", "bencode", "handshake"],
)  # fmt: skip
def test_every_prefix(data, parse):
    prefix_sweep(parse, data)


# -- the dissector --------------------------------------------------------------------


def bt_ctx(transport=17):
    return context(transport, ("192.168.1.5", 40959), ("82.243.113.43", 64969))


def timed(*items: tuple[int, int, bytes]) -> list[Packet]:
    """Packets at (direction, milliseconds, payload)."""
    return [Packet(p, T0 + ms * 1_000_000, k + 1, d) for k, (d, ms, p) in enumerate(items)]


def test_tcp_handshake_dht_and_tracker():
    r = run(BT, bt_ctx(TCP), packets(HANDSHAKE))
    assert (r.finding.protocol, r.finding.category, r.finding.confidence) == (
        "BitTorrent", OTHER, 0.99)  # fmt: skip
    assert r.finding.evidence.endswith("info_hash " + "ab" * 20)
    assert run(BT, bt_ctx(TCP), packets(b"GET / HTTP/1.1\r\n")).verdicts == [Probe.NO]
    dht = run(BT, bt_ctx(), packets(KRPC)).finding
    assert dht.evidence.startswith("BitTorrent DHT KRPC query get_peers (BEP 5)")
    assert run(BT, bt_ctx(), packets(KRPC[:-1])).verdicts == [Probe.NO]
    assert run(BT, bt_ctx(), packets(TRACKER)).finding.confidence == 0.95


def test_utp_syn_answered():
    flow = timed((0, 0, utp(4, 21250, 59381, 0)), (1, 5, utp(2, 21250, 18887, 59381, ts_us=7)))
    r = run(BT, bt_ctx(), flow)
    assert r.verdicts == [Probe.MAYBE, Probe.MATCH]
    assert "ST_SYN answered by ST_STATE: connection id 21250" in r.finding.evidence
    wrong_ack = timed((0, 0, utp(4, 21250, 59381, 0)), (1, 5, utp(2, 21250, 18887, 1, ts_us=7)))
    assert run(BT, bt_ctx(), wrong_ack).verdicts == [Probe.MAYBE, Probe.MAYBE]


def test_utp_mid_flow():
    one_way = timed((0, 0, utp(0, 9, 100, 50, ts_us=1_000_000, payload=b"x" * 100)),
                    (0, 40, utp(0, 9, 101, 50, ts_us=1_040_500, payload=b"x" * 100)))  # fmt: skip
    r = run(BT, bt_ctx(), one_way)
    assert r.verdicts == [Probe.MAYBE, Probe.MATCH]
    assert r.finding.evidence.endswith("seq_nr +1, sender clock +40500 us over 40000 us of capture")
    both_ways = timed((0, 0, utp(0, 10, 100, 500, payload=b"x")), (1, 1, utp(2, 9, 501, 100)))
    assert run(BT, bt_ctx(), both_ways).verdicts == [Probe.MAYBE, Probe.MATCH]


def test_single_utp_lookalikes_are_not_enough():
    # DHCP requests: op 1, htype 1 read as ST_DATA version 1 with selective ack; the
    # transaction id (the "timestamp") does not move with the clock.
    dhcp = bytes([1, 1, 6, 0]) + b"\x39\x03\xf3\x26" + b"\x00" * 4 + b"\x00" * 228
    r = run(BT, bt_ctx(), timed((0, 0, dhcp), (0, 3000, dhcp)))
    assert not r.matched
    # Zoom media: a retransmitted first packet with a constant "timestamp".
    zoom = bytes.fromhex("010003c84ac4528718cda2b8477a1b899f33830000000000000002006f613f00")
    assert not run(
        BT, bt_ctx(), timed((0, 0, zoom + b"z" * 90), (0, 101, zoom + b"z" * 90))
    ).matched
    frozen_clock = timed((0, 0, utp(0, 9, 100, 50, ts_us=5, payload=b"x")),
                         (0, 3000, utp(0, 9, 101, 50, ts_us=5, payload=b"x")))  # fmt: skip
    assert run(BT, bt_ctx(), frozen_clock).verdicts == [Probe.MAYBE, Probe.MAYBE]
    assert run(BT, bt_ctx(), packets(utp(0, 1, 1, 1))).verdicts == [Probe.NO]  # no data
    assert run(BT, bt_ctx(), packets(b"\x80" + b"\x00" * 30)).verdicts == [Probe.NO]


def test_real_flows(shared_captures):
    for flow in capture_flows(shared_captures / "bittorrent_utp.pcap"):
        assert run(BT, flow.context(), flow.packets).matched
    (dht_flow, _) = capture_flows(shared_captures / "bittorrent_utp.pcap")
    utp_only = [p for p in dht_flow.packets if p.payload[:1] != b"d"][4:]  # mid-flow uTP
    assert run(BT, dht_flow.context(), utp_only).matched_at == utp_only[1].seq
