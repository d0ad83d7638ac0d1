"""MPEG-TS over UDP: against tshark, each header branch, every truncation, the dissector."""

from __future__ import annotations

import pytest

from tests.dissectdrive import context, golden, packets, prefix_sweep, run
from tests.readback import payloads_by_frame
from voipscope.dissect.base import OTHER, Probe
from voipscope.dissect.mpegts import MpegTsDissector, looks_like_mpegts, parse_mpegts
from voipscope.errors import Malformed, Truncated

TS = MpegTsDissector()


def ts_packet(pid=0x100, afc=1, cc=0, pusi=False, adaptation=b"") -> bytes:
    head = bytes([0x47, (0x40 if pusi else 0) | pid >> 8, pid & 0xFF, afc << 4 | cc])
    return (head + adaptation + b"\xff" * 188)[:188]


def test_packets_and_adaptation_fields():
    data = ts_packet(0, pusi=True) + ts_packet(0x1FFF, cc=5) + ts_packet(afc=2, adaptation=b"\xb7")
    packets_ = parse_mpegts(data)
    assert [(p.pid, p.payload_unit_start, p.continuity_counter) for p in packets_] == [
        (0, True, 0), (0x1FFF, False, 5), (0x100, False, 0)]  # fmt: skip
    assert parse_mpegts(ts_packet(afc=3, adaptation=b"\x07"))[0].adaptation_field_control == 3


def test_against_tshark(shared_captures):
    payloads = payloads_by_frame(shared_captures / "mpegts.pcap", 17)
    for frame, pids, ccs in golden("mpegts.pcap.mpegts.txt"):
        found = parse_mpegts(payloads[int(frame)])
        assert [f"0x{p.pid:08x}" for p in found] == pids.split(",")
        assert [str(p.continuity_counter) for p in found] == ccs.split(",")


def test_branches():
    with pytest.raises(Truncated):
        parse_mpegts(b"")
    with pytest.raises(Truncated, match="not a multiple"):
        parse_mpegts(ts_packet() + b"\x47")
    with pytest.raises(Malformed, match="sync byte"):
        parse_mpegts(ts_packet() + b"\x46" + ts_packet()[1:])
    with pytest.raises(Malformed, match="reserved 00"):
        parse_mpegts(ts_packet(afc=0))
    with pytest.raises(Malformed, match="not 183"):
        parse_mpegts(ts_packet(afc=2, adaptation=b"\x10"))
    with pytest.raises(Malformed, match="leaves no payload"):
        parse_mpegts(ts_packet(afc=3, adaptation=b"\xb7"))
    assert looks_like_mpegts(ts_packet()) and not looks_like_mpegts(ts_packet()[:187])


def test_every_prefix():
    assert prefix_sweep(parse_mpegts, ts_packet() * 3) == 2  # one and two whole packets


def ts_ctx():
    return context(17, ("10.1.16.48", 40737), ("230.200.201.23", 1234))


def test_dissector():
    r = run(TS, ts_ctx(), packets(ts_packet(0) + ts_packet(0x1FFF) * 6))
    assert (r.finding.protocol, r.finding.category, r.finding.confidence) == (
        "MPEG-TS", OTHER, 0.9)  # fmt: skip
    assert r.finding.evidence == (
        "MPEG-TS: 7 x 188-byte packets in the datagram, each with sync byte 0x47; "
        "PIDs 0x0000 PAT, 0x1fff null"
    )
    single = run(TS, ts_ctx(), packets(ts_packet(), ts_packet(cc=1)))
    assert single.verdicts == [Probe.MAYBE, Probe.MATCH] and single.finding.confidence == 0.85
    rtp_ts = b"\x80\x21\x00\x01" + b"\x00" * 8 + ts_packet() * 7  # RFC 2250: RTP's business
    for first in (rtp_ts, ts_packet()[:100], ts_packet() + b"\x00" * 188):
        assert run(TS, ts_ctx(), packets(first)).verdicts == [Probe.NO]
