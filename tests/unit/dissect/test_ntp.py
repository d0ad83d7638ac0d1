"""NTP modes 1-5, control and private: against tshark, each branch, every truncation,
and the dissector (port 123 and the structure, both)."""

from __future__ import annotations

import struct

import pytest

from tests.dissectdrive import context, golden, packets, prefix_sweep, run
from tests.readback import payloads_by_frame
from voipscope.dissect.base import OTHER, Probe
from voipscope.dissect.ntp import MAX_EXTENSIONS, NtpDissector, looks_like_ntp, parse_ntp
from voipscope.errors import Malformed, Truncated

NTP = NtpDissector()


def base(li=0, vn=4, mode=3, stratum=2) -> bytes:
    return (
        bytes([li << 6 | vn << 3 | mode, stratum, 6, 0xEC])
        + b"\x00" * 8
        + b"GPS\x00"
        + (b"\x11" * 32)
    )


CLIENT = base()
MONLIST = bytes([0x17, 0x00, 0x03, 0x2A]) + b"\x00" * 44  # the amplification request
CONTROL = bytes([0x16, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04]) + (
    b"abcd"
)


def extension(ftype: int, body: bytes) -> bytes:
    return struct.pack("!HH", ftype, 4 + len(body)) + body


def test_modes():
    p = parse_ntp(CLIENT)
    assert (p.version, p.mode_name, p.stratum, p.reference_id) == (4, "client", 2, b"GPS\x00")
    assert (p.extension_fields, p.mac_bytes) == (0, 0)
    assert parse_ntp(CLIENT + b"\x00" * 20).mac_bytes == 20
    assert parse_ntp(CLIENT + b"\x00" * 4).mac_bytes == 4  # crypto-NAK
    nts = parse_ntp(CLIENT + extension(0x0104, b"\x01" * 32) + extension(0x0204, b"\x02" * 12))
    assert nts.extension_fields == 2
    both = parse_ntp(CLIENT + extension(0x0104, b"\x01" * 28) + b"\x00" * 24)
    assert (both.extension_fields, both.mac_bytes) == (1, 24)
    assert parse_ntp(base(vn=1, mode=0)).mode == 0  # NTPv1 had no mode
    m = parse_ntp(MONLIST)
    assert (m.mode_name, m.version, m.opcode, m.response) == ("private", 2, 42, False)
    c = parse_ntp(CONTROL)
    assert (c.mode_name, c.opcode) == ("control", 2)


@pytest.mark.parametrize("capture", ["NTPv4.pcap", "skype.pcap", "wechat.pcap"])
def test_against_tshark(capture, shared_captures):
    payloads = payloads_by_frame(shared_captures / capture, 17)
    for frame, version, mode, stratum in golden(f"{capture}.ntp.txt"):
        p = parse_ntp(payloads[int(frame)])
        assert (str(p.version), str(p.mode), str(p.stratum)) == (version, mode, stratum)


def test_branches():
    with pytest.raises(Truncated):
        parse_ntp(b"")
    with pytest.raises(Malformed, match="version 5"):
        parse_ntp(base(vn=5))
    with pytest.raises(Malformed, match="mode 0"):
        parse_ntp(base(mode=0))
    with pytest.raises(Truncated, match="fewer than 48"):
        parse_ntp(CLIENT[:47])
    with pytest.raises(Malformed, match="stratum 17"):
        parse_ntp(base(stratum=17))
    with pytest.raises(Malformed, match="NTPv3 packet has 16 bytes"):
        parse_ntp(base(vn=3) + b"\x00" * 16)
    with pytest.raises(Truncated, match="not a field"):
        parse_ntp(CLIENT + b"\x00" * 8)
    with pytest.raises(Malformed, match="not 16\\+"):
        parse_ntp(CLIENT + struct.pack("!HH", 1, 18) + b"\x00" * 14)
    with pytest.raises(Truncated, match="runs past"):
        parse_ntp(CLIENT + struct.pack("!HH", 1, 64) + b"\x00" * 28)
    with pytest.raises(Malformed, match="more than"):
        parse_ntp(CLIENT + extension(1, b"\x00" * 12) * (MAX_EXTENSIONS + 1))
    with pytest.raises(Truncated, match="control message"):
        parse_ntp(CONTROL[:11])
    with pytest.raises(Malformed, match="opcode 20"):
        parse_ntp(CONTROL[:1] + b"\x14" + CONTROL[2:])
    with pytest.raises(Malformed, match="exceeds 468"):
        parse_ntp(CONTROL[:10] + struct.pack("!H", 500) + b"\x00" * 500)
    with pytest.raises(Truncated, match="control data"):
        parse_ntp(CONTROL[:-1])
    with pytest.raises(Truncated, match="private message"):
        parse_ntp(MONLIST[:7])
    with pytest.raises(Malformed, match="implementation 9"):
        parse_ntp(MONLIST[:2] + b"\x09" + MONLIST[3:])
    with pytest.raises(Truncated, match="private data"):
        parse_ntp(MONLIST[:4] + b"\x00\x02\x00\x30" + b"\x00" * 40)
    with pytest.raises(Truncated, match="private request"):
        parse_ntp(MONLIST[:40])
    reply = bytes([0x97, 0x00, 0x03, 0x2A]) + b"\x00\x02\x00\x10" + b"\x00" * 32
    assert parse_ntp(reply).response
    with pytest.raises(Malformed, match="after its items"):
        parse_ntp(reply + b"\x00")
    with pytest.raises(Malformed, match="error or more bit"):
        parse_ntp(CONTROL[:1] + b"\x42" + CONTROL[2:])
    with pytest.raises(Malformed, match="bytes after 4 bytes of data"):
        parse_ntp(CONTROL + b"\x00" * 5)
    assert parse_ntp(CONTROL + b"\x00" * 20).mode == 6  # a MAC after the data
    assert looks_like_ntp(CLIENT) and not looks_like_ntp(b"\x80" + CLIENT[1:])


@pytest.mark.parametrize("data", [CLIENT + b"\x00" * 20, CONTROL, MONLIST],
                         ids=["client", "control", "private"])  # fmt: skip
def test_every_prefix(data):
    prefix_sweep(parse_ntp, data)


def ntp_ctx(port=123):
    return context(17, ("192.0.2.1", 40000), ("198.51.100.123", port))


def test_dissector():
    r = run(NTP, ntp_ctx(), packets(CLIENT))
    assert (r.finding.protocol, r.finding.category, r.finding.confidence) == ("NTP", OTHER, 0.9)
    assert r.finding.evidence == "NTPv4 client, stratum 2, 48-byte base"
    mac = run(NTP, ntp_ctx(), packets(CLIENT + b"\x00" * 20)).finding.evidence
    assert mac.endswith("+ 20-byte MAC")
    monlist = run(NTP, ntp_ctx(), packets(MONLIST)).finding
    assert monlist.evidence == "NTPv2 private message (MON_GETLIST_1 (monlist)), item sizes fit"
    assert run(NTP, ntp_ctx(), packets(CONTROL)).finding.confidence == 0.8
    assert run(NTP, ntp_ctx(port=1234), packets(CLIENT)).verdicts == [Probe.NO]
    rtp = b"\x80\x00\x00\x01" + b"\x00" * 44
    assert run(NTP, ntp_ctx(), packets(rtp)).verdicts == [Probe.NO]
