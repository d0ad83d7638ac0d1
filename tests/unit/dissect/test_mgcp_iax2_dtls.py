"""MGCP, IAX2 and DTLS parsing on the shared captures, against what tshark reads in them."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.readback import payloads_by_frame
from voipscope.dissect.dtls import RECORD_HEADER_BYTES, parse_dtls_records, parse_hello
from voipscope.dissect.iax2 import parse_iax2
from voipscope.dissect.mgcp import looks_like_mgcp, parse_mgcp
from voipscope.errors import DecodeError, Malformed, Truncated

GOLDENS = Path(__file__).parent / "goldens"


def golden(name: str, minimum: int = 10) -> list[list[str]]:
    rows = [line.split("|") for line in (GOLDENS / name).read_text().splitlines()]
    assert len(rows) >= minimum, "a short golden proves little"
    return rows


def test_mgcp_against_tshark(shared_captures):
    payloads = payloads_by_frame(shared_captures / "mgcp.pcap", 17)
    for frame, verb, code, transid, endpoint in golden("mgcp.pcap.mgcp.txt"):
        data = payloads[int(frame)]
        assert looks_like_mgcp(data)
        msg = parse_mgcp(data)
        assert (msg.verb or "", str(msg.response_code or "")) == (verb, code), frame
        assert msg.transaction_id == int(transid) and (msg.endpoint or "") == endpoint


def test_iax2_against_tshark(shared_captures):
    payloads = payloads_by_frame(shared_captures / "iax.pcap", 17)
    for frame, packet_type, src, dst, ftype, oseq, iseq in golden("iax.pcap.iax2.txt"):
        f = parse_iax2(payloads[int(frame)])
        assert f.full == (packet_type == "1") and f.source_call == int(src), frame
        if f.full:
            assert (f.destination_call, f.frame_type) == (int(dst), int(ftype))
            assert (f.oseqno, f.iseqno) == (int(oseq), int(iseq))


@pytest.mark.parametrize(
    "name",
    [
        "dtls2.pcap",
        "stun_dtls_rtp.pcapng",
        "dtls_old_version.pcapng",  # OpenSSL's pre-RFC 4347 version 0x0100: 7 datagrams
        "dtls_mid_sessions.pcapng",  # 0x0100 and 1.2 records mid-session
    ],
)
def test_dtls_against_tshark(name, shared_captures):
    payloads = payloads_by_frame(shared_captures / name, 17)
    # dtls_old_version holds 7 DTLS datagrams in all: every one is in its golden.
    minimum = 7 if name == "dtls_old_version.pcapng" else 10
    for frame, ctypes, versions, epochs, lengths in golden(f"{name}.dtls.txt", minimum):
        records = parse_dtls_records(payloads[int(frame)])
        assert [str(r.content_type) for r in records] == ctypes.split(","), frame
        assert [f"0x{r.version:04x}" for r in records] == versions.split(",")
        assert [str(r.epoch) for r in records] == epochs.split(",")
        assert [str(r.length) for r in records] == lengths.split(",")


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_dtls_hello_extensions_against_tshark(shared_captures):
    """Every unfragmented ClientHello and ServerHello: the extensions tshark lists, in
    order. Servers select DTLS-SRTP by echoing use_srtp (14) in theirs (RFC 5764)."""
    compared = servers_with_srtp = 0
    for name in ("stun_zoom.pcapng", "stun_dtls_unidirectional_server.pcap",
                 "stun_dtls_rtp.pcapng", "dtls.pcap", "dtls2.pcap"):  # fmt: skip
        path = shared_captures / name
        out = subprocess.run(
            ["tshark", "-r", str(path), "-Y", "dtls.handshake.type==1 || dtls.handshake.type==2",
             "-T", "fields", "-E", "separator=|", "-e", "frame.number",
             "-e", "dtls.handshake.extension.type"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        payloads = payloads_by_frame(path, 17)
        for line in out.splitlines():
            frame, types = line.split("|")
            want = [int(t) for t in types.split(",") if t]
            got: list[int] = []
            data, offset, whole = payloads[int(frame)], 0, True
            for record in parse_dtls_records(data):
                at = offset + RECORD_HEADER_BYTES
                body = data[at : at + record.length]
                offset = at + record.length
                if record.handshake_type in (1, 2):
                    # A hello in fragments: tshark lists it where it reassembles it.
                    if body[1:4] != body[9:12]:
                        whole = False
                        continue
                    hello = parse_hello(body)
                    got += hello.extensions
                    servers_with_srtp += hello.kind == 2 and 14 in hello.extensions
            if whole:
                assert got == want, (name, frame)
                compared += 1
    assert compared >= 10 and servers_with_srtp >= 2


def test_mgcp_errors():
    with pytest.raises(Malformed):
        parse_mgcp(b"CRCX 1 ep@gw SIP 1.0\r\n")
    with pytest.raises(Malformed):
        parse_mgcp(b"HELLO 1 ep@gw MGCP 1.0\r\n")
    with pytest.raises(Malformed):
        parse_mgcp(b"200 abc OK\r\n")


def test_dtls_and_iax2_errors():
    hello = bytes.fromhex("16feff00000000000000000002") + b"\x01\x00"
    with pytest.raises(Truncated):
        parse_dtls_records(hello[:-1])
    with pytest.raises(Malformed):
        parse_dtls_records(b"\x17\x03\x03" + hello[3:])
    with pytest.raises(Truncated):
        parse_iax2(b"\x80\x01\x00\x00\x00")
    with pytest.raises(Malformed):
        parse_iax2(b"\x80\x01\x00\x00\x00\x00\x00\x00\x00\x00\x63\x00")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_only_decode_errors(data):
    for parse in (parse_mgcp, parse_iax2, parse_dtls_records, parse_hello):
        with contextlib.suppress(DecodeError):
            parse(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([1, 2]), st.integers(0, 400), st.integers(0, 3), st.binary(max_size=300))
def test_fuzz_hello_with_lying_lengths(kind, length, offset, body):
    """A hello header that tells any message and fragment length over any body: the
    parser says DecodeError or reads what is there, never raises anything else."""
    header = bytes([kind]) + length.to_bytes(3, "big") + b"\0\0" + offset.to_bytes(3, "big")
    with contextlib.suppress(DecodeError):
        hello = parse_hello(header + min(length, 0xFFFFFF).to_bytes(3, "big") + body)
        assert hello.kind == kind and all(0 <= e <= 0xFFFF for e in hello.extensions)
