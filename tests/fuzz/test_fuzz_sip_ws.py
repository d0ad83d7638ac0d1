"""Hypothesis over SIP over WebSocket (RFC 7118): the frame parser on random bytes and
on real frames with random damage, and the dissector on flows of an upgrade followed by
random, damaged and well-formed frames in random segment cuts.

The property: the parser returns or raises a DecodeError; the dissector, driven as the
stage drives it, raises nothing, reports only SIP findings and only the anomalies it
declares (DESIGN §4)."""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from tests.dissectdrive import packets, run
from tests.fuzz.support import FAST, check_run, damaged
from tests.unit.dissect.test_sip_ws import (
    BINARY_256,
    HEL,
    HELLO_MASKED,
    LO,
    PING_HELLO,
    SWITCHED,
    UPGRADE,
    Deflater,
    mask,
    ok,
    plain,
    rsv1,
    sip,
    ws_context,
)
from voipscope.dissect.sip_ws import SipWsDissector, parse_ws_frame
from voipscope.errors import DecodeError

_deflate = Deflater()
# permessage-deflate (RFC 7692): two compressed messages of one stream (the second refers
# back to the first), a fragment of one, and a frame that only claims to be compressed.
COMPRESSED = [
    rsv1(mask(_deflate(sip("INVITE")))),
    rsv1(mask(_deflate(sip("INVITE")))),
    rsv1(mask(Deflater()(sip("BYE"))[:12], fin=False)),
    rsv1(mask(b"\x00\xffjunk")),
]
FRAMES = [HELLO_MASKED, HEL, LO, PING_HELLO, BINARY_256, mask(sip("INVITE")),
          plain(ok()), mask(sip("REGISTER")[:40], fin=False), *COMPRESSED]  # fmt: skip


@FAST
@given(st.binary(max_size=300))
def test_frame_parser_on_random_bytes(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        parse_ws_frame(data, 1 << 16)


@FAST
@given(damaged(FRAMES))
def test_frame_parser_on_damaged_frames(frame: bytes) -> None:
    with contextlib.suppress(DecodeError):
        parse_ws_frame(frame, 1 << 16)


@FAST
@given(st.data())
def test_dissector_on_damaged_streams(data: st.DataObject) -> None:
    frames = data.draw(st.lists(st.one_of(st.sampled_from(FRAMES), damaged(FRAMES),
                                          st.binary(max_size=64)), max_size=8))  # fmt: skip
    client = b"".join(frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(client)), max_size=4)))
    pieces = [client[a:b] for a, b in zip([0, *cuts], [*cuts, len(client)], strict=True)]
    flow = packets(UPGRADE, (1, SWITCHED), *[p for p in pieces if p], (1, plain(ok())))
    ctx = ws_context()
    result = run(SipWsDissector(), ctx, flow)
    check_run(SipWsDissector(), ctx, result.matched_at, len(flow))
    assert all(f.protocol == "SIP" for f in ctx.findings)


@FAST
@given(damaged([UPGRADE]), damaged([SWITCHED]), st.lists(damaged(FRAMES), max_size=4))
def test_dissector_on_damaged_handshakes(
    request: bytes, answer: bytes, frames: list[bytes]
) -> None:
    flow = packets(*[p for p in (request, (1, answer), *frames) if p and p != (1, b"")])
    if not flow:
        return
    ctx = ws_context()
    result = run(SipWsDissector(), ctx, flow)
    check_run(SipWsDissector(), ctx, result.matched_at, len(flow))
