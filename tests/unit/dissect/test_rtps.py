"""RTPS (DDS): against tshark, each parser branch, every truncation, and the dissector."""

from __future__ import annotations

import pytest

from tests.dissectdrive import context, golden, packets, prefix_sweep, run
from tests.readback import payloads_by_frame
from voipscope.dissect.base import OTHER, Probe
from voipscope.dissect.rtps import MAX_SUBMESSAGES, RtpsDissector, looks_like_rtps, parse_rtps
from voipscope.errors import Malformed, Truncated

RTPS = RtpsDissector()
HEADER = b"RTPS\x02\x03\x01\x10" + bytes(range(12))  # RTPS 2.3 from Cyclone DDS
INFO_TS = b"\x09\x01\x08\x00" + b"\x00" * 8  # little-endian length 8
DATA_BE = b"\x15\x00\x00\x08" + b"\x00" * 8  # big-endian length 8
LAST = b"\x07\x01\x00\x00" + b"\x00" * 28  # HEARTBEAT with length 0: runs to the end
MESSAGE = HEADER + INFO_TS + DATA_BE + LAST


def test_header_and_submessage_chain():
    msg = parse_rtps(MESSAGE)
    assert (msg.version, msg.vendor, msg.guid_prefix) == ((2, 3), "01.10 (Eclipse Cyclone DDS)",
                                                          bytes(range(12)))  # fmt: skip
    assert msg.submessages == [(0x09, 1, 8), (0x15, 0, 8), (0x07, 1, 28)]
    assert msg.submessage_names == ["INFO_TS", "DATA", "HEARTBEAT"]
    ping = parse_rtps(b"RTPS\x02\x01\x01\x01NDDSPING")
    assert ping.ping and ping.vendor == "01.01 (RTI Connext)" and ping.submessages == []
    assert parse_rtps(b"RTPS\x02\x05\xaa\xbb" + bytes(12)).vendor == "aa.bb"


def test_against_tshark(shared_captures):
    payloads = payloads_by_frame(shared_captures / "rtps.pcap", 17)
    for frame, version, vendor, ids in golden("rtps.pcap.rtps.txt"):
        msg = parse_rtps(payloads[int(frame)])
        assert f"0x{msg.version[0]:02x}{msg.version[1]:02x}" == version.split(",")[0]
        assert f"0x{msg.vendor_id:04x}" == vendor.split(",")[0]
        assert [f"0x{sid:02x}" for sid, _, _ in msg.submessages] == [x for x in ids.split(",") if x]


def test_branches():
    with pytest.raises(Truncated):
        parse_rtps(b"RTPS\x02")
    with pytest.raises(Malformed, match="magic"):
        parse_rtps(b"RTPX" + MESSAGE[4:])
    with pytest.raises(Malformed, match="version 3"):
        parse_rtps(b"RTPS\x03\x00" + MESSAGE[6:])
    with pytest.raises(Truncated, match="fewer than 20"):
        parse_rtps(HEADER[:19])
    with pytest.raises(Truncated, match="submessage header"):
        parse_rtps(HEADER + b"\x09\x01")
    with pytest.raises(Truncated, match="runs past"):
        parse_rtps(HEADER + b"\x15\x00\x00\x40" + b"\x00" * 8)
    with pytest.raises(Malformed, match="more than"):
        parse_rtps(HEADER + b"\x01\x00\x00\x00" * (MAX_SUBMESSAGES + 1))  # PAD, length 0
    assert looks_like_rtps(MESSAGE) and not looks_like_rtps(b"RTPS\x09\x00\x00\x00")


def test_every_prefix():
    assert prefix_sweep(parse_rtps, MESSAGE) >= 1  # the header alone, then whole submessages


def ctx():
    return context(17, ("10.0.0.5", 7410), ("239.255.0.1", 7400))


def test_dissector():
    r = run(RTPS, ctx(), packets(MESSAGE))
    assert (r.finding.protocol, r.finding.category, r.finding.confidence) == ("RTPS", OTHER, 0.95)
    assert r.finding.evidence == (
        "RTPS 2.3 header from 01.10 (Eclipse Cyclone DDS), submessages INFO_TS+DATA+HEARTBEAT "
        "chain to the datagram's end"
    )
    ping = run(RTPS, ctx(), packets(b"RTPS\x02\x01\x01\x01NDDSPING"))
    assert ping.finding.evidence.endswith("RTI liveliness ping")
    for first in (b"\x80\x00" + MESSAGE, MESSAGE[:30], b"RTPS"):
        assert run(RTPS, ctx(), packets(first)).verdicts == [Probe.NO]
