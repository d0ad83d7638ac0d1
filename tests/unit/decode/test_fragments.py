"""decode/fragments.py: bounded IP reassembly (RFC 791 §3.2, RFC 8200 §4.5)."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from tests import pcapbuild as pb
from tests.readback import batch_of
from voipscope import read_flows
from voipscope.anomalies import AnomalyLog
from voipscope.config import DecodeConfig
from voipscope.decode import DecodedBatch, FragmentReassembler, decode_batch
from voipscope.decode import status as S

ETH, RAW = 1, 101
SIP = (b"INVITE sip:bob@example.com SIP/2.0\r\n" + bytes(range(256)) * 12)[:3000]
SEC = 1_000_000_000


def v4_fragments(
    payload: bytes = SIP, ident: int = 0x4242, sizes: tuple[int, ...] = (1480, 1480), **kw
) -> tuple[list[bytes], bytes]:
    """An IPv4 UDP datagram cut into fragments whose data sizes are ``sizes`` + the rest."""
    segment = pb.udp(payload, 5060, 5062)
    cuts = [0]
    for size in sizes:
        cuts.append(cuts[-1] + size)
    cuts.append(len(segment))
    out = []
    for n, (a, b) in enumerate(itertools.pairwise(cuts)):
        more = n < len(cuts) - 2
        out.append(
            pb.ethernet(
                pb.ipv4(segment[a:b], ident=ident, frag_offset=a, more_fragments=more, **kw)
            )
        )
    return out, segment


def v6_fragments(payload: bytes = SIP, ident: int = 0xABCDEF01) -> tuple[list[bytes], bytes]:
    segment = pb.udp(payload, 5060, 5062)
    cuts = [0, 1232, 2464, len(segment)]
    out = []
    for n, (a, b) in enumerate(itertools.pairwise(cuts)):
        body = pb.ipv6_fragment_body(a, n < 2, ident)
        out.append(pb.ethernet(pb.ipv6(segment[a:b], extensions=[(44, body)]), 0x86DD))
    return out, segment


def ip_len(frame: bytes) -> int:
    """IP-layer bytes of an Ethernet frame (IPv4 total length or IPv6 plen + 40)."""
    if frame[12:14] == b"\x86\xdd":
        return int.from_bytes(frame[18:20], "big") + 40
    return int.from_bytes(frame[16:18], "big")


def run(
    batches: list[list[bytes]],
    config: DecodeConfig | None = None,
    ts: list[list[int]] | None = None,
    flush: bool = True,
) -> tuple[list[DecodedBatch], FragmentReassembler, AnomalyLog]:
    log = AnomalyLog()
    reassembler = FragmentReassembler(config or DecodeConfig(), log)
    out = []
    t = 0
    for k, frames in enumerate(batches):
        stamps = ts[k] if ts is not None else [SEC * (t + j + 1) for j in range(len(frames))]
        t += len(frames)
        d = decode_batch(batch_of([(ETH, f) for f in frames], stamps))
        reassembler.process(d)
        out.append(d)
    if flush:
        reassembler.flush()
    return out, reassembler, log


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0), (0, 2, 1)], ids=str)
@pytest.mark.parametrize("family", ["v4", "v6"])
def test_three_fragments_become_one_datagram(order, family):
    frags, segment = v4_fragments() if family == "v4" else v6_fragments()
    assert len(frags) == 3
    (d,), reassembler, log = run([[frags[k] for k in order]])
    statuses = d.status.tolist()
    assert statuses[:2] == [S.FRAGMENT_HELD] * 2
    assert statuses[2] == S.OK  # the fragment that completes it carries the datagram
    assert (int(d.sport[2]), int(d.dport[2])) == (5060, 5062)
    assert int(d.ip_bytes[2]) == sum(ip_len(f) for f in frags)
    assert int(d.l4_len[2]) == len(SIP)
    assert d.payload(2) == SIP
    assert int(d.proto[2]) == 17
    assert reassembler.datagrams_reassembled == 1
    assert log.as_dict() == {}
    assert len(segment) == 3008


def test_fragments_across_batches():
    frags, _ = v4_fragments()
    ds, _, log = run([[f] for f in [frags[1], frags[0], frags[2]]])
    assert [int(d.status[0]) for d in ds] == [S.FRAGMENT_HELD, S.FRAGMENT_HELD, S.OK]
    assert ds[2].payload(0) == SIP
    assert log.as_dict() == {}


def test_unfragmented_packets_in_between_are_untouched():
    frags, _ = v4_fragments()
    plain = pb.ethernet(pb.ipv4(pb.udp(b"plain", 1, 2)))
    (d,), _, log = run([[frags[0], plain, frags[1], plain, frags[2]]])
    assert d.status.tolist() == [S.FRAGMENT_HELD, S.OK, S.FRAGMENT_HELD, S.OK, S.OK]
    assert d.payload(1) == d.payload(3) == b"plain"
    assert d.payload(4) == SIP
    assert log.as_dict() == {}


def test_tcp_in_fragments_keeps_its_flags():
    segment = pb.tcp(SIP[:1000], 40000, 5060, flags=pb.TCP_PSH | pb.TCP_ACK)
    frags = [
        pb.ethernet(pb.ipv4(segment[:512], proto=6, ident=9, more_fragments=True)),
        pb.ethernet(pb.ipv4(segment[512:], proto=6, ident=9, frag_offset=512)),
    ]
    (d,), _, _ = run([frags])
    assert int(d.status[1]) == S.OK
    assert int(d.tcp_flags[1]) == pb.TCP_PSH | pb.TCP_ACK
    assert (int(d.sport[1]), int(d.dport[1])) == (40000, 5060)
    assert d.payload(1) == SIP[:1000]


def test_a_datagram_too_short_for_its_tcp_header_has_no_payload():
    """8 bytes of TCP in two fragments: TRUNCATED_L4, and the row's payload is what
    l4_len says (none), not the 8 header bytes (found by tests/fuzz/test_fuzz_decode)."""
    frags = [
        pb.ethernet(pb.ipv4(bytes(8), proto=6, ident=9, more_fragments=True)),
        pb.ethernet(pb.ipv4(b"", proto=6, ident=9, frag_offset=8)),
    ]
    (d,), _, _ = run([frags])
    assert int(d.status[1]) == S.TRUNCATED_L4
    assert int(d.l4_len[1]) == 0 and d.payload(1) == b""


def test_same_id_from_different_sources_are_different_datagrams():
    a, _ = v4_fragments(src="10.0.0.1")
    b, _ = v4_fragments(payload=SIP[::-1], src="10.0.0.9")
    (d,), reassembler, log = run([[a[0], b[0], a[1], b[1], b[2], a[2]]])
    assert reassembler.datagrams_reassembled == 2
    assert d.payload(4) == SIP[::-1]
    assert d.payload(5) == SIP
    assert log.as_dict() == {}


def test_incomplete_datagram_is_reported_at_flush():
    frags, _ = v4_fragments()
    (d,), reassembler, log = run([[frags[0], frags[2]]], flush=False)
    assert d.status.tolist() == [S.FRAGMENT_HELD, S.FRAGMENT_HELD]
    assert log.as_dict() == {}
    reassembler.flush()
    assert log.as_dict() == {"ip_fragments_incomplete": 2}  # counted per fragment
    assert "2 fragments" in log.records[0].detail
    assert reassembler.datagrams_reassembled == 0


def test_incomplete_datagram_times_out():
    old, _ = v4_fragments(ident=1)
    new, _ = v4_fragments(ident=2)
    config = DecodeConfig(fragment_timeout_s=30.0)
    ts = [[SEC, 2 * SEC], [40 * SEC, 41 * SEC, 42 * SEC]]
    (_, d2), reassembler, log = run([[old[0], old[1]], new], config, ts, flush=False)
    assert log.as_dict() == {"ip_fragments_incomplete": 2}
    assert log.records[0].ts == 1.0
    assert int(d2.status[2]) == S.OK
    assert reassembler.datagrams_reassembled == 1


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_duplicate_fragment_is_an_overlap(family):
    frags, _ = v4_fragments() if family == "v4" else v6_fragments()
    (d,), reassembler, log = run([[frags[0], frags[1], frags[1], frags[2]]])
    assert log.as_dict() == {"ip_fragments_overlap": 1}
    assert int(d.status[3]) == S.OK
    assert d.payload(3) == SIP  # the first copy is kept
    assert reassembler.datagrams_reassembled == 1


def test_partially_overlapping_fragment_is_an_overlap():
    segment = pb.udp(SIP, 5060, 5062)
    rewrite = b"EVIL" * 2 + segment[1480:2960]
    frames = [
        pb.ethernet(pb.ipv4(segment[:1480], ident=5, more_fragments=True)),
        # Starts 8 bytes before the first one ends, with other data there (a rewrite).
        pb.ethernet(pb.ipv4(rewrite, ident=5, frag_offset=1472, more_fragments=True)),
        pb.ethernet(pb.ipv4(segment[2960:], ident=5, frag_offset=2960)),
    ]
    (d,), _, log = run([frames])
    assert log.as_dict() == {"ip_fragments_overlap": 1}
    # Whatever the policy for the data, the first copy of every byte is the one kept.
    assert int(d.status[2]) == S.OK
    assert d.payload(2) == SIP


def test_pending_cap_evicts_the_oldest():
    config = DecodeConfig(max_pending_datagrams=2)
    datagrams = [v4_fragments(ident=k)[0] for k in range(3)]
    batch = [datagrams[0][0], datagrams[0][1], datagrams[1][0], datagrams[2][0]]
    _, reassembler, log = run([batch], config, flush=False)
    assert log.as_dict() == {"ip_fragments_evicted": 2}
    assert log.records[0].ts == 1.0  # the oldest: datagram 0, first seen at t=1 s
    # Datagram 1 is still pending and completes.
    d2 = decode_batch(batch_of([(ETH, f) for f in datagrams[1][1:]], [9 * SEC, 10 * SEC]))
    reassembler.process(d2)
    assert int(d2.status[1]) == S.OK
    assert d2.payload(1) == SIP


def test_oversized_datagram():
    config = DecodeConfig(max_datagram_bytes=2000)
    frags, _ = v4_fragments()
    (d,), reassembler, log = run([frags], config)
    assert log.as_dict() == {"ip_fragments_oversized": 3}
    assert S.OK not in d.status.tolist()
    assert reassembler.datagrams_reassembled == 0


def test_a_fragment_reaching_past_the_limit_is_oversized_at_once():
    config = DecodeConfig(max_datagram_bytes=65535 + 40)
    far = pb.ethernet(pb.ipv4(b"x" * 1480, ident=3, frag_offset=65528, more_fragments=True))
    (_,), _, log = run([[far]], config, flush=False)
    assert log.as_dict() == {"ip_fragments_oversized": 1}


def test_reassembly_disabled_reports_each_fragment():
    frags, _ = v4_fragments()
    (d,), reassembler, log = run([frags], DecodeConfig(reassemble_fragments=False))
    assert d.status.tolist() == [S.FRAGMENT] * 3
    assert log.as_dict() == {"ip_fragment": 3}
    assert reassembler.datagrams_reassembled == 0


def test_random_orders_and_sizes_always_reassemble():
    rnd = random.Random(5)
    for _ in range(30):
        payload = rnd.randbytes(rnd.randrange(1, 5000))
        seg_len = len(payload) + 8
        sizes, total = [], 0
        while total + 8 < seg_len - 8:
            size = min(rnd.randrange(1, 200) * 8, seg_len - 8 - total)
            size -= size % 8
            if size == 0:
                break
            sizes.append(size)
            total += size
        frags, _ = v4_fragments(payload, sizes=tuple(sizes))
        order = list(range(len(frags)))
        rnd.shuffle(order)
        (d,), _, log = run([[frags[k] for k in order]])
        ok = [i for i, s in enumerate(d.status.tolist()) if s == S.OK]
        assert ok == [len(frags) - 1]
        assert d.payload(ok[0]) == payload
        assert log.as_dict() == {}


def test_read_flows_counts_a_reassembled_datagram_once(tmp_path):
    frags, _ = v4_fragments()
    ping = pb.ethernet(pb.ipv4(pb.udp(b"ok", 5060, 5062)))
    other = pb.ethernet(pb.ipv4(pb.udp(b"other", 7000, 7001), "10.9.9.9", "10.9.9.8"))
    frames = [other, frags[0], frags[1], frags[2], ping]
    packets = [pb.Packet(SEC * (k + 1), f) for k, f in enumerate(frames)]
    path = tmp_path / "frag.pcap"
    path.write_bytes(pb.pcap(packets))
    table = read_flows(path).to_pylist()
    flows = {(f["src_port"], f["dst_port"]): f for f in table}
    assert len(table) == 2
    sip = flows[(5060, 5062)]
    assert sip["src2dst_packets"] == 2  # the datagram once, then the small packet
    assert sip["src2dst_bytes"] == sum(ip_len(f) for f in frags) + ip_len(ping)
    assert sip["first_seen"] == 4.0  # a datagram is seen when its last fragment is
    stats = json.loads(read_flows(path).schema.metadata[b"voipscope.stats"])
    assert stats["datagrams_reassembled"] == 1
    assert stats["packets_by_status"] == {"decoded": 3, "fragment": 2}
    assert stats["anomalies"] == {}


def test_overlapping_fragment_flood_is_capped_per_datagram():
    """Overlapping pieces at ever new offsets must not grow one datagram without end."""
    config = DecodeConfig(max_datagram_bytes=4000)
    chunk = b"x" * 1000
    # 8-byte steps, each 1000 bytes long: every fragment overlaps the previous one.
    frames = [
        pb.ethernet(pb.ipv4(chunk, ident=9, frag_offset=8 * k, more_fragments=True))
        for k in range(20)
    ]
    _, reassembler, log = run([frames], config, flush=False)
    counts = log.as_dict()
    # A datagram is dropped at its 9th piece (9000 held > 2 x 4000); the next fragments
    # start a new one, dropped at its 9th piece too; the last two are still held.
    assert counts["ip_fragments_oversized"] == 18
    assert reassembler._held_bytes == 2 * len(chunk)


def test_byte_cap_over_all_datagrams_evicts_the_oldest():
    config = DecodeConfig(max_pending_fragment_bytes=5000)
    frames = [v4_fragments(ident=k)[0][0] for k in range(6)]  # 1480 bytes held each
    _, reassembler, log = run([frames], config, flush=False)
    assert log.as_dict() == {"ip_fragments_evicted": 3}
    assert reassembler._held_bytes <= 5000
