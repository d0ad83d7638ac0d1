"""Shared pieces of the fuzz tests: seed captures, Hypothesis settings, the checks.

The property everywhere: only voipscope's own errors (VoipscopeError) may escape a reader
or the pipeline, and every column the readers and the decoder produce stays inside the
bytes it describes (DESIGN §4). Run once more with NUMBA_BOUNDSCHECK=1 so that an
out-of-bounds read in a numba kernel raises IndexError instead of reading garbage.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests import pcapbuild as pb
from tests.readback import Rec, batch_of, check_batch
from voipscope import read_flows
from voipscope.anomalies import AnomalyLog
from voipscope.config import FlowConfig, SourceConfig
from voipscope.decode import DecodedBatch, decode_batch
from voipscope.decode import status as S
from voipscope.dissect.base import Dissector, FlowContext
from voipscope.errors import DecodeError, VoipscopeError
from voipscope.flows import FlowTable, new_assignment
from voipscope.quality.rtp_streams import RtpStreamTracker
from voipscope.source import CaptureInfo, read_capture

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "captures" / "ndpi"

# Small real captures of different formats and link types (see captures/README.md).
REAL_CAPTURES = (
    "skype_udp.pcap",  # pcap, Ethernet
    "rtcp_multiple_pkts_in_the_same_datagram.pcap",  # pcap, Linux cooked v1
    "codm.pcap",  # pcap, raw IP (101)
    "dns.pcap",  # pcapng (despite the name), Ethernet
    "openwire.pcapng",  # pcapng, BSD null/loopback
    "stun_dtls_rtp_unidir.pcapng",  # pcapng, two interfaces
)

FAST = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LONG = settings(
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def real_captures() -> dict[str, bytes]:
    """The real seed captures that exist here (empty when ../shared is absent)."""
    return {name: data for name in REAL_CAPTURES if (data := _load(name)) is not None}


@functools.cache
def _load(name: str) -> bytes | None:
    path = SHARED / name
    return path.read_bytes() if path.is_file() else None


@functools.cache
def synthetic_captures() -> dict[str, bytes]:
    """Captures built here, covering what the real seeds may not: byte orders, ns,
    Kuznetzov records, several sections, SPB/PB, odd link types, fragments."""
    sip = b"INVITE sip:a@b SIP/2.0\r\n\r\n"
    v4 = pb.ipv4(pb.udp(sip, 5060, 5060))
    v6 = pb.ipv6(pb.udp(sip, 5060, 5060), extensions=[(0, b""), (60, b"\x01\x00")])
    seg = pb.udp(sip * 8, 5060, 5062)
    frag_a = pb.ipv4(seg[:96], ident=7, more_fragments=True)
    frag_b = pb.ipv4(seg[96:], ident=7, frag_offset=96)
    tcp = pb.ipv4(pb.tcp(sip, flags=pb.TCP_SYN), proto=6)
    eth = [
        pb.ethernet(v4),
        pb.ethernet(v6, 0x86DD, vlans=[10, 20], qinq=True),
        pb.ethernet(frag_a),
        pb.ethernet(frag_b),
        pb.ethernet(tcp, vlans=[3]),
        pb.ethernet(b"\x00" * 28, 0x0806),
    ]
    ts = 1_700_000_000_000_000_000

    def pkts(frames: list[bytes], **kw: object) -> list[pb.Packet]:
        return [pb.Packet(ts + k * 1_000_000, f, **kw) for k, f in enumerate(frames)]  # type: ignore[arg-type]

    ifaces = [
        pb.Interface(1, tsresol=9),
        pb.Interface(113, snaplen=40),
        pb.Interface(0, tsresol=0x80 | 20, tsoffset_s=5),
        pb.Interface(276),
    ]
    ng_packets = [
        pb.Packet(ts, eth[0], interface=0),
        pb.Packet(ts + 1, pb.sll(v4), interface=1),
        pb.Packet(ts + 2, pb.bsd_null(v6, 24), interface=2),
        pb.Packet(ts + 3, pb.sll2(v4), interface=3),
        pb.Packet(0, eth[1], block="spb"),
        pb.Packet(ts + 4, eth[2], interface=0, block="pb"),
        pb.Packet(ts + 5, eth[3], interface=0),
    ]
    return {
        "le-usec-eth.pcap": pb.pcap(pkts(eth)),
        "be-nsec-raw.pcap": pb.pcap(pkts([v4, v6, frag_a, frag_b]), 101, True, True),
        "kuznetzov-sll.pcap": pb.pcap(pkts([pb.sll(v4), pb.sll(v6, 0x86DD)]), 113, kuznetzov=True),
        "two-sections.pcapng": pb.pcapng_section(
            ifaces, ng_packets, extra_blocks=[(4, b"\0" * 4), (5, b"\0" * 12)]
        )
        + pb.pcapng_section([pb.Interface(101)], pkts([v6, v4]), big_endian=True),
        "eth.pcap.gz": pb.gz(pb.pcap(pkts(eth), nanosecond=True)),
    }


def check_decoded(d: DecodedBatch) -> None:
    """Statuses in range; offsets and lengths inside each packet's captured bytes."""
    start = d.packets.data_offset
    end = start + d.packets.caplen
    assert (d.status < S.N_STATUS).all()
    assert np.isin(d.ip_ver, [0, 4, 6]).all()
    assert (d.l3_off >= start).all() and (d.l3_off <= end).all()
    assert (d.l4_len >= 0).all()
    # A datagram rebuilt from fragments keeps its payload outside the window, in
    # d.reassembled (its row's l4_off still points into the last fragment): its length
    # is what l4_len says. Every other row's payload lies inside its packet's bytes.
    rebuilt = np.zeros(len(d), np.bool_)
    for i, payload in d.reassembled.items():
        rebuilt[i] = True
        assert len(payload) == d.l4_len[i]
    ok = (d.status == S.OK) & ~rebuilt
    assert (d.l4_off[ok] >= start[ok]).all()
    assert (d.l4_off[ok] + d.l4_len[ok] <= end[ok]).all()
    assert ((d.sport >= 0) & (d.sport <= 0xFFFF)).all()
    assert ((d.dport >= 0) & (d.dport <= 0xFFFF)).all()
    assert ((d.vlan >= -1) & (d.vlan <= 0xFFF)).all()
    frag = d.status == S.FRAGMENT
    assert (d.l4_off[frag] + d.l4_len[frag] <= end[frag]).all()


def read_checked(path: str | os.PathLike[str], config: SourceConfig) -> list[Rec] | None:
    """Read and decode a capture, checking every batch. None when voipscope refused it
    with its own error; any other exception propagates and fails the test."""
    info = CaptureInfo(path=os.fspath(path))
    records: list[Rec] = []
    try:
        for batch in read_capture(os.fspath(path), config, info):
            check_batch(batch, len(records), config.batch_packets)
            check_decoded(decode_batch(batch))
            for i in range(len(batch)):
                off, caplen = int(batch.data_offset[i]), int(batch.caplen[i])
                records.append(
                    Rec(
                        int(batch.ts_ns[i]),
                        caplen,
                        int(batch.wirelen[i]),
                        int(batch.linktype[i]),
                        bytes(batch.buf[off : off + caplen]),
                    )
                )
    except VoipscopeError:
        return None
    assert info.packets == len(records)
    assert info.truncated_at is None or info.truncated_at >= 0
    assert info.corrupt_at is None or info.corrupt_at >= 0
    assert isinstance(info.warnings(), list)
    return records


def flows_checked(path: str | os.PathLike[str]) -> None:
    """The whole pipeline: only VoipscopeError may escape."""
    try:
        table = read_flows(path)
    except VoipscopeError:
        return
    assert table.num_rows >= 0


@st.composite
def damaged(draw: st.DrawFn, seeds: Sequence[bytes]) -> bytes:
    """One of ``seeds`` (real payloads) with a few bytes changed, cut short or extended."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    tail = draw(st.binary(max_size=8)) if draw(st.booleans()) else b""
    return bytes(data[:cut]) + tail


def check_parsers(parsers: Iterable[Callable[[bytes], object]], data: bytes) -> None:
    """A parser returns or raises a DecodeError, nothing else (DESIGN §4)."""
    for parse in parsers:
        with contextlib.suppress(DecodeError):
            parse(data)


def check_run(dissector: Dissector, ctx: FlowContext, matched_at: int | None, packets: int) -> None:
    """What any dissector's run over a flow of ``packets`` must show, whatever its protocol:
    findings with a confidence in (0, 1], evidence and a packet of the flow; only the
    anomalies it declares; a match inside the flow. (Each fuzz file adds what its
    protocols' findings must say.)"""
    for f in ctx.findings:
        assert 0.0 < f.confidence <= 1.0 and f.evidence
        assert 1 <= f.at_packet <= packets
    assert set(ctx.anomalies.counts) <= set(dissector.ANOMALIES), ctx.anomalies.counts
    assert matched_at is None or 1 <= matched_at <= packets


def drive_tracker(
    tracker: RtpStreamTracker,
    config: FlowConfig,
    frames: list[tuple[int, bytes]],
    stamps: list[int],
    batch: int,
) -> list[int]:
    """Run ``frames`` through the real decoder and a flow table of ``config`` in batches
    of ``batch`` with ``tracker`` as its hook, flushing at the end; the ended flow ids
    in the order they ended."""
    table = FlowTable(config, AnomalyLog())
    ended_ids: list[int] = []
    for start in range(0, len(frames), batch):
        d = decode_batch(batch_of(frames[start : start + batch], stamps[start : start + batch]))
        a = new_assignment(len(d))
        ended = list(table.update(d, a))
        tracker.on_init(d, a, np.flatnonzero(a.seq == 1))
        tracker.on_update(d, a)
        for rows in ended:
            tracker.on_expire(rows)
            ended_ids += rows[:, 0].tolist()
    for rows in table.flush():
        tracker.on_expire(rows)
        ended_ids += rows[:, 0].tolist()
    return ended_ids
