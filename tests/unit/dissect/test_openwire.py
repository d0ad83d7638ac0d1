"""OpenWire (ActiveMQ): the real WireFormatInfo of both sides, each branch, the
dissector, and the shared capture against the labels."""

from __future__ import annotations

import pytest

from tests.dissectdrive import context, packets, prefix_sweep, run
from tests.unit.dissect.labelled import labelled, matched
from voipscope.dissect.base import OTHER, TCP, Probe
from voipscope.dissect.openwire import OpenWireDissector, parse_wireformat_info
from voipscope.errors import Malformed, Truncated

OPENWIRE = OpenWireDissector()
# openwire.pcapng frame 4: the client's WireFormatInfo, version 10
CLIENT_INFO = bytes.fromhex(
    "000000da014163746976654d510000000a01000000c800000008000c4361636865456e61626c6564"
    "010000154d6178496e61637469766974794475726174696f6e060000000000007530000943616368"
    "6553697a65050000000000145469676874456e636f64696e67456e61626c6564010000214d617849"
    "6e61637469766974794475726174696f6e496e697469616c44656c61790600000000000027100011"
    "5463704e6f44656c6179456e61626c65640101001253697a6550726566697844697361626c656401"
    "000011537461636b5472616365456e61626c65640100"
)
# frame 6: the broker's WireFormatInfo, version 12
BROKER_INFO = bytes.fromhex(
    "00000151014163746976654d510000000c010000013f0000000d0011537461636b5472616365456e"
    "61626c65640101000f506c6174666f726d44657461696c730900044a617661000c4361636865456e"
    "61626c6564010100115463704e6f44656c6179456e61626c65640101001253697a65507265666978"
    "44697361626c656401000009436163686553697a650500000400000c50726f76696465724e616d65"
    "0900084163746976654d5100145469676874456e636f64696e67456e61626c65640101000c4d6178"
    "4672616d6553697a6506000000000640000000154d6178496e61637469766974794475726174696f"
    "6e06000000000000753000204d6178496e61637469766974794475726174696f6e496e6974616c44"
    "656c617906000000000000271000134d61784672616d6553697a65456e61626c65640101000f5072"
    "6f766964657256657273696f6e090005362e312e32"
)


def test_real_wireformat_info():
    client = parse_wireformat_info(CLIENT_INFO)
    assert (client.version, client.size) == (10, len(CLIENT_INFO) - 4)
    assert parse_wireformat_info(BROKER_INFO).version == 12


def test_branches():
    with pytest.raises(Truncated):
        parse_wireformat_info(CLIENT_INFO[:4])
    with pytest.raises(Malformed, match="type 3"):
        parse_wireformat_info(CLIENT_INFO[:4] + b"\x03" + CLIENT_INFO[5:])
    with pytest.raises(Malformed, match="size 4 "):
        parse_wireformat_info(b"\x00\x00\x00\x04" + CLIENT_INFO[4:])
    with pytest.raises(Malformed, match="size"):
        parse_wireformat_info(b"\x01\x00\x00\x00" + CLIENT_INFO[4:])
    with pytest.raises(Malformed, match="magic"):
        parse_wireformat_info(CLIENT_INFO.replace(b"ActiveMQ", b"ActiveMX"))
    with pytest.raises(Truncated, match="version"):
        parse_wireformat_info(CLIENT_INFO[:16])
    with pytest.raises(Malformed, match="version 0"):
        parse_wireformat_info(CLIENT_INFO[:13] + bytes(4) + CLIENT_INFO[17:])


def test_every_prefix():
    assert prefix_sweep(parse_wireformat_info, CLIENT_INFO) == len(CLIENT_INFO) - 17


def test_dissector():
    ctx = context(TCP, ("::1", 51157), ("::1", 61616))
    f = run(OPENWIRE, ctx, packets(CLIENT_INFO, (1, BROKER_INFO))).finding
    assert (f.protocol, f.category, f.app, f.confidence) == ("OpenWire", OTHER, None, 0.95)
    assert f.evidence == (
        "OpenWire WireFormatInfo: magic ActiveMQ, version 10, 218-byte command filling the segment"
    )
    # Any port: the magic is the evidence. Other length-prefixed TCP is refused.
    ctx = context(TCP, ("10.0.0.1", 40000), ("10.0.0.2", 5000))
    assert run(OPENWIRE, ctx, packets(BROKER_INFO)).matched
    for payload in (b"\x00\x00\x00\x0a\x1e" + bytes(9), b"\x00\x1c" + bytes(28), CLIENT_INFO[:12]):
        ctx = context(TCP, ("::1", 51157), ("::1", 61616))
        assert run(OPENWIRE, ctx, packets(payload)).verdicts == [Probe.NO]


def test_capture_matches_the_labels(shared_captures):
    name = "openwire.pcapng"
    assert matched(OPENWIRE, shared_captures / name) == labelled(name, "OpenWire")
