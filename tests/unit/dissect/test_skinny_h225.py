"""SCCP/Skinny and TPKT/Q.931 on the shared captures, against what tshark reads in them."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.readback import payloads_by_frame
from voipscope.dissect.h225 import parse_tpkt_q931
from voipscope.dissect.skinny import parse_skinny
from voipscope.errors import DecodeError, Malformed, Truncated

GOLDENS = Path(__file__).parent / "goldens"


def rows(name: str) -> list[list[str]]:
    return [line.split("|") for line in (GOLDENS / name).read_text().splitlines()]


def test_skinny_against_tshark(shared_captures):
    payloads = payloads_by_frame(shared_captures / "sccp_hw_conf_register.pcapng", 6)
    golden = rows("sccp_hw_conf_register.pcapng.skinny.txt")
    assert len(golden) == 7
    for frame, ids, lengths in golden:
        messages = parse_skinny(payloads[int(frame)])
        assert [str(m.message_id) for m in messages] == ids.split(","), frame
        assert [str(m.data_length) for m in messages] == lengths.split(",")
    assert parse_skinny(payloads[4])[0].name == "RegisterReq"


def test_q931_against_tshark(shared_captures):
    payloads = payloads_by_frame(shared_captures / "h323.pcap", 6)
    golden = rows("h323.pcap.q931.txt")
    assert len(golden) == 8
    # Frame 50's 4-byte TPKT header came alone in frame 48 (tshark reassembles the PDU;
    # TCP reassembly belongs to the dissector stage, not to this parser).
    payloads[50] = payloads[48] + payloads[50]
    for frame, length, mtype, call_ref in golden:
        msg = parse_tpkt_q931(payloads[int(frame)])
        assert (msg.tpkt_length, msg.message_type) == (int(length), int(mtype, 16)), frame
        assert msg.call_reference.hex() == call_ref
    setup, proceeding = parse_tpkt_q931(payloads[6]), parse_tpkt_q931(payloads[10])
    assert setup.name == "SETUP" and setup.from_originator
    assert proceeding.name == "CALL PROCEEDING" and not proceeding.from_originator


def test_errors():
    with pytest.raises(Truncated):
        parse_skinny(b"\x80\x00\x00\x00" + b"\x00" * 12)
    with pytest.raises(Malformed):
        parse_skinny(b"\x00\x00\x00\x00" + b"\x00" * 8)
    with pytest.raises(Malformed):
        parse_tpkt_q931(b"\x04\x00\x00\x10" + b"\x00" * 12)
    with pytest.raises(Malformed):
        parse_tpkt_q931(b"\x03\x00\x00\x08\x09\x01\x01\x05")
    with pytest.raises(Truncated):
        parse_tpkt_q931(b"\x03\x00\x00\x20\x08\x02\x77\xf4\x05")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_only_decode_errors(data):
    for parse in (parse_skinny, parse_tpkt_q931):
        with contextlib.suppress(DecodeError):
            parse(data)
