"""Hypothesis over the decode kernel and the fragment reassembler.

Random bytes under every supported link type, near-valid frames with random damage, and
random fragment streams: statuses stay in range, offsets stay inside each packet, and
nothing but VoipscopeError escapes (DESIGN §4).
"""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests import pcapbuild as pb
from tests.fuzz.support import FAST, LONG, check_decoded
from tests.readback import batch_of
from voipscope.anomalies import AnomalyLog
from voipscope.config import DecodeConfig
from voipscope.decode import FragmentReassembler, decode_batch
from voipscope.decode import status as S
from voipscope.decode.kernel import decode_l4
from voipscope.source.linktypes import SUPPORTED_LINKTYPES

LINKS = sorted(SUPPORTED_LINKTYPES)
linktypes = st.one_of(st.sampled_from(LINKS), st.integers(0, 0xFFFF))

random_frames = st.lists(st.tuples(linktypes, st.binary(max_size=300)), max_size=40)


def check_frames(frames: list[tuple[int, bytes]]) -> None:
    d = decode_batch(batch_of(frames))
    check_decoded(d)
    for i, (link, _) in enumerate(frames):
        if link not in SUPPORTED_LINKTYPES:
            assert d.status[i] == S.UNSUPPORTED_LINK
        if d.status[i] == S.OK:
            assert len(d.payload(i)) == d.l4_len[i]


@FAST
@given(frames=random_frames)
def test_random_bytes_under_every_link_type(frames):
    check_frames(frames)


@pytest.mark.slow
@LONG
@given(frames=random_frames)
def test_random_bytes_under_every_link_type_fuzz_long(frames):
    check_frames(frames)


# ---- near-valid frames with damage --------------------------------------------------


@st.composite
def l4_segment(draw: st.DrawFn) -> tuple[int, bytes]:
    payload = draw(st.binary(max_size=40))
    kind = draw(st.sampled_from([17, 6, 132, 136, 1, 58, 47, 2152]))
    if kind == 2152:  # GTP-U with an inner packet, its header flags and lengths at random
        inner = pb.ipv4(pb.udp(payload, 1000, 5060))
        if draw(st.booleans()):
            inner = pb.ipv6(pb.udp(payload, 1000, 5060), "2001:db8::1", "2001:db8::2")
        flags = draw(st.sampled_from([0x30, 0x32, 0x34, 0x37, 0x50, draw(st.integers(0, 255))]))
        optional = draw(st.binary(min_size=4, max_size=12)) if flags & 0x07 else b""
        body = optional + inner
        length = draw(st.one_of(st.just(len(body)), st.integers(0, 0xFFFF)))
        gtp = struct.pack("!BBHI", flags, draw(st.sampled_from([0xFF, 1, 26])), length, 7)
        return 17, pb.udp(gtp + body, 2152, draw(st.sampled_from([2152, 40000])))
    if kind in (17, 136):
        return kind, pb.udp(payload, draw(st.integers(0, 0xFFFF)), 5060)
    if kind == 6:
        words = draw(st.integers(0, 15))
        header = struct.pack(
            "!HHIIBBHHH", 1, 2, 3, 4, words << 4, draw(st.integers(0, 255)), 0, 0, 0
        )
        return kind, header + payload
    if kind == 132:
        return kind, struct.pack("!HHII", 2905, 2905, 1, 0) + payload
    return kind, payload


@st.composite
def ip_packet(draw: st.DrawFn) -> tuple[int, bytes]:
    proto, seg = draw(l4_segment())
    if draw(st.booleans()):
        frag = draw(st.sampled_from([(0, False), (0, True), (8, False), (1480, True)]))
        ip = pb.ipv4(
            seg,
            proto=proto,
            ihl=draw(st.integers(5, 15)),
            frag_offset=frag[0],
            more_fragments=frag[1],
            total_length=draw(st.one_of(st.none(), st.integers(0, 0xFFFF))),
        )
        return 4, ip
    ext_choices = [
        (0, b""),
        (60, b"\x01\x02\x00\x00"),
        (43, b"\x00" * 6),
        (51, b"\x00" * 10),
        (44, pb.ipv6_fragment_body(0, False, 1)),
        (44, pb.ipv6_fragment_body(8, True, 2)),
        (135, b""),
    ]
    exts = draw(st.lists(st.sampled_from(ext_choices), max_size=5))
    return 6, pb.ipv6(seg, next_header=proto, extensions=exts)


def _mpls(ip: bytes) -> bytes:
    return struct.pack("!II", 16 << 12, (17 << 12) | 0x100) + ip


def _pppoe(ip: bytes, version: int) -> bytes:
    return struct.pack("!BBHHH", 0x11, 0, 1, len(ip) + 2, 0x21 if version == 4 else 0x57) + ip


@st.composite
def near_valid_frame(draw: st.DrawFn) -> tuple[int, bytes]:
    version, ip = draw(ip_packet())
    et = 0x0800 if version == 4 else 0x86DD
    link = draw(
        st.sampled_from(
            ["eth", "vlan", "qinq", "mpls", "pppoe", "sll", "sll2", "null", "loop", "raw", "fixed"]
        )
    )
    if link == "eth":
        linktype, frame = 1, pb.ethernet(ip, et)
    elif link == "vlan":
        linktype, frame = 1, pb.ethernet(ip, et, vlans=[draw(st.integers(0, 0xFFFF))])
    elif link == "qinq":
        linktype, frame = (
            1,
            pb.ethernet(ip, et, vlans=[1, 2, 3][: draw(st.integers(1, 3))], qinq=True),
        )
    elif link == "mpls":
        linktype, frame = 1, pb.ethernet(_mpls(ip), 0x8847)
    elif link == "pppoe":
        linktype, frame = 1, pb.ethernet(_pppoe(ip, version), 0x8864)
    elif link == "sll":
        linktype, frame = 113, pb.sll(ip, et)
    elif link == "sll2":
        linktype, frame = 276, pb.sll2(ip, et)
    elif link in ("null", "loop"):
        family = 2 if version == 4 else draw(st.sampled_from([24, 28, 30]))
        big = link == "loop" or draw(st.booleans())
        linktype, frame = (0 if link == "null" else 108), pb.bsd_null(ip, family, big)
    elif link == "raw":
        linktype, frame = draw(st.sampled_from([12, 14, 101])), ip
    else:
        linktype, frame = (228 if version == 4 else 229), ip
    buf = bytearray(frame)
    for _ in range(draw(st.integers(0, 4))):
        if buf:
            buf[draw(st.integers(0, len(buf) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        buf += draw(st.binary(max_size=30))  # Ethernet padding or trailer
    cut = draw(st.integers(0, len(buf)))
    return linktype, bytes(buf[:cut] if draw(st.booleans()) else buf)


@FAST
@given(frames=st.lists(near_valid_frame(), min_size=1, max_size=20))
def test_damaged_valid_frames(frames):
    check_frames(frames)


@pytest.mark.slow
@LONG
@given(frames=st.lists(near_valid_frame(), min_size=1, max_size=20))
def test_damaged_valid_frames_fuzz_long(frames):
    check_frames(frames)


# ---- fragment streams ---------------------------------------------------------------


@st.composite
def fragment(draw: st.DrawFn) -> bytes:
    data = draw(st.binary(max_size=64))
    offset = draw(st.integers(0, 40)) * 8
    more = draw(st.booleans())
    ident = draw(st.integers(1, 3))
    proto = draw(st.sampled_from([17, 6, 1]))
    src = draw(st.sampled_from(["10.0.0.1", "10.0.0.2"]))
    if draw(st.booleans()):
        return pb.ethernet(
            pb.ipv4(
                data, src=src, proto=proto, ident=ident, frag_offset=offset, more_fragments=more
            )
        )
    body = pb.ipv6_fragment_body(offset, more, ident)
    return pb.ethernet(pb.ipv6(data, next_header=proto, extensions=[(44, body)]), 0x86DD)


fragment_configs = st.builds(
    DecodeConfig,
    fragment_timeout_s=st.sampled_from([0.5, 30.0]),
    max_pending_datagrams=st.integers(1, 4),
    max_datagram_bytes=st.sampled_from([0, 100, 65535 + 40]),
)


def check_fragments(config: DecodeConfig, batches: list[list[bytes]]) -> None:
    log = AnomalyLog(max_records_per_name=5)
    reassembler = FragmentReassembler(config, log)
    t = 0
    for frames in batches:
        ts = [1_000_000_000 * (t + k) for k in range(len(frames))]
        t += len(frames)
        d = decode_batch(batch_of([(1, f) for f in frames], ts))
        reassembler.process(d)
        check_decoded(d)
        # Every fragment was taken: held, or the row of a completed datagram.
        assert (d.status != S.FRAGMENT).all()
        for i in range(len(d)):
            if i in d.reassembled:
                assert d.status[i] in (S.OK, S.TRUNCATED_L4)
                assert len(d.payload(i)) == d.l4_len[i]
        assert len(reassembler._pending) <= config.max_pending_datagrams
    reassembler.flush()
    assert not reassembler._pending
    assert all(count > 0 for count in log.counts.values())
    assert set(log.counts) <= {
        "ip_fragments_incomplete",
        "ip_fragments_evicted",
        "ip_fragments_overlap",
        "ip_fragments_oversized",
    }
    assert len(log.records) <= 5 * len(log.counts)


fragment_batches = st.lists(st.lists(fragment(), max_size=12), min_size=1, max_size=3)


@FAST
@given(config=fragment_configs, batches=fragment_batches)
def test_random_fragment_streams(config, batches):
    check_fragments(config, batches)


@pytest.mark.slow
@LONG
@given(config=fragment_configs, batches=fragment_batches)
def test_random_fragment_streams_fuzz_long(config, batches):
    check_fragments(config, batches)


# ---- the bounds-check run checks bounds ---------------------------------------------


@pytest.mark.skipif(
    os.environ.get("NUMBA_BOUNDSCHECK") != "1", reason="only meaningful under NUMBA_BOUNDSCHECK=1"
)
def test_boundscheck_is_in_effect():
    """Under NUMBA_BOUNDSCHECK=1 an out-of-bounds read must raise, or this run proves
    nothing (see tests/fuzz/conftest.py about numba's cache)."""
    buf = np.zeros(8, np.uint8)
    i64, i32, u8 = np.zeros(1, np.int64), np.zeros(1, np.int32), np.zeros(1, np.uint8)
    with pytest.raises(IndexError):
        # A UDP header claimed at bytes 6..13 of an 8-byte buffer: the caller's lie.
        decode_l4(buf, 0, 17, 6, 14, i32, i32, u8, i64, i32)
