"""WireGuard messages: against tshark, each size and type branch, every truncation, and
the dissector (handshakes at once, transport data by its climbing counter)."""

from __future__ import annotations

import struct

import pytest

from tests.dissectdrive import capture_flows, context, golden, packets, prefix_sweep, run
from tests.readback import payloads_by_frame
from voipscope.dissect.base import OTHER, Probe
from voipscope.dissect.wireguard import (
    COOKIE_REPLY,
    INITIATION,
    RESPONSE,
    TRANSPORT_DATA,
    WireGuardDissector,
    looks_like_wireguard,
    parse_wireguard,
)
from voipscope.errors import Malformed, Truncated

WG = WireGuardDissector()
INIT = struct.pack("<BxxxI", INITIATION, 0x30D037D8) + b"\x11" * 140
RESP = struct.pack("<BxxxII", RESPONSE, 0xAB7DF406, 0x30D037D8) + b"\x22" * 80
COOKIE = struct.pack("<BxxxI", COOKIE_REPLY, 0x30D037D8) + b"\x33" * 56


def data(receiver: int, counter: int, blocks: int = 1) -> bytes:
    return struct.pack("<BxxxIQ", TRANSPORT_DATA, receiver, counter) + b"\x44" * (16 * blocks)


def test_each_message_type():
    assert (parse_wireguard(INIT).message_type, parse_wireguard(INIT).sender) == (1, 0x30D037D8)
    r = parse_wireguard(RESP)
    assert (r.name, r.sender, r.receiver) == ("handshake response", 0xAB7DF406, 0x30D037D8)
    assert parse_wireguard(COOKIE).receiver == 0x30D037D8
    d = parse_wireguard(data(7, 2**40, blocks=3))
    assert (d.receiver, d.counter, d.sender) == (7, 2**40, None)
    assert parse_wireguard(data(7, 0, blocks=1)).counter == 0  # a keepalive: 32 bytes


@pytest.mark.parametrize("capture", ["wireguard.pcap", "mullvad_wireguard.pcap"])
def test_against_tshark(capture, shared_captures):
    payloads = payloads_by_frame(shared_captures / capture, 17)
    rows = golden(f"{capture}.wireguard.txt")
    for frame, mtype, sender, receiver, counter in rows:
        msg = parse_wireguard(payloads[int(frame)])
        assert msg.message_type == int(mtype), frame
        assert (f"0x{msg.sender:08x}" if msg.sender is not None else "") == sender, frame
        assert (f"0x{msg.receiver:08x}" if msg.receiver is not None else "") == receiver, frame
        assert (str(msg.counter) if msg.counter is not None else "") == counter, frame


def test_branches():
    with pytest.raises(Truncated):
        parse_wireguard(b"\x01\x00\x00")
    with pytest.raises(Malformed, match="type 5"):
        parse_wireguard(b"\x05\x00\x00\x00" + b"\x00" * 60)
    with pytest.raises(Malformed, match="reserved"):
        parse_wireguard(b"\x01\x00\x01\x00" + INIT[4:])
    with pytest.raises(Malformed, match="not 148"):
        parse_wireguard(INIT + b"\x00")
    with pytest.raises(Truncated, match="not 92"):
        parse_wireguard(RESP[:-1])
    assert not parse_wireguard(data(1, 1) + b"\x00" * 12).aligned  # cut at the MTU
    with pytest.raises(Truncated, match="below 32"):
        parse_wireguard(data(1, 1)[:31])
    assert looks_like_wireguard(INIT) and not looks_like_wireguard(b"\x01\x01\x00\x00")


@pytest.mark.parametrize("message", [INIT, RESP, COOKIE, data(9, 9, 4)], ids=["1", "2", "3", "4"])
def test_every_prefix_is_a_decode_error(message):
    # Transport data: every prefix from 32 bytes on is a (possibly MTU-cut) message.
    parsed = len(message) - 32 if message[0] == TRANSPORT_DATA else 0
    assert prefix_sweep(parse_wireguard, message) == parsed


def wg_ctx():
    return context(17, ("192.168.122.11", 22595), ("198.54.131.98", 5060))


def test_handshake_matches_at_once():
    r = run(WG, wg_ctx(), packets(INIT))
    f = r.finding
    assert (f.protocol, f.category, f.confidence) == ("WireGuard", OTHER, 0.9)
    assert f.evidence == (
        "WireGuard handshake initiation: exact 148 bytes, reserved zeros, index 0x30d037d8"
    )
    assert run(WG, wg_ctx(), packets(COOKIE)).finding.confidence == 0.8


def test_transport_data_needs_a_climbing_counter():
    r = run(WG, wg_ctx(), packets(data(5, 19), (1, data(6, 15)), data(5, 20)))
    assert r.verdicts == [Probe.MAYBE, Probe.MAYBE, Probe.MATCH]
    assert r.finding.evidence.endswith("receiver 0x00000005, counter 19 -> 20")
    full_mtu = data(5, 20, blocks=88) + b"\x00" * 12  # 1452 bytes
    cut = run(WG, wg_ctx(), packets(full_mtu, data(5, 21)))
    assert cut.verdicts == [Probe.MAYBE, Probe.MAYBE]
    assert run(WG, wg_ctx(), packets(data(5, 19), data(6, 20))).verdicts[-1] == Probe.NO
    assert run(WG, wg_ctx(), packets(data(5, 19), data(5, 5000))).verdicts[-1] == Probe.NO
    reordered = run(WG, wg_ctx(), packets(data(5, 19), data(5, 18), data(5, 20)))
    assert reordered.verdicts == [Probe.MAYBE, Probe.MAYBE, Probe.MATCH]


def test_not_wireguard():
    rtp = b"\x80\x00\x00\x01" + b"\x00" * 168
    stun = bytes.fromhex("000100002112a442") + b"\x00" * 12
    for first in (rtp, stun, INIT[:-1], b"\x04\x00\x00\x00" + b"\x00" * 20):
        assert run(WG, wg_ctx(), packets(first)).verdicts == [Probe.NO]


def test_mullvad_on_port_5060(shared_captures):
    (flow,) = capture_flows(shared_captures / "mullvad_wireguard.pcap")
    r = run(WG, flow.context(), flow.packets)
    assert r.matched_at == 3 and flow.dst[1] == 5060
