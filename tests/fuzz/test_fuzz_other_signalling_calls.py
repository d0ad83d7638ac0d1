"""Hypothesis over the H.323 (Q.931, H.225.0 PER, RAS, H.245), IAX2, MGCP and SCCP
message parsers and their call trackers.

Seeds are the real payloads of h323.pcap, iax.pcap, mgcp.pcap and the Skinny capture,
damaged; plus hand-built call messages and random bytes. A parser may raise only
DecodeError; a tracker fed whatever parsed must not raise at all, and its records keep
the DESIGN §3 states.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.support import FAST, SHARED, damaged
from tests.readback import payloads_by_frame
from voipscope.calls.h323_calls import H323CallTracker
from voipscope.calls.iax2_calls import Iax2CallTracker
from voipscope.calls.mgcp_calls import MgcpCallTracker
from voipscope.calls.sccp_calls import SccpCallTracker
from voipscope.dissect.base import TCP, UDP, MessageEvent
from voipscope.dissect.h225 import parse_h323_message
from voipscope.dissect.h225_asn1 import parse_h323_user_info, parse_ras
from voipscope.dissect.h245 import parse_h245, parse_open_logical_channel
from voipscope.dissect.iax2 import parse_iax2_message
from voipscope.dissect.mgcp import parse_mgcp_all
from voipscope.dissect.skinny import parse_sccp_call_message, parse_skinny
from voipscope.errors import DecodeError

STATES = {"answered", "failed", "cancelled", "redirected", "unanswered", "ongoing"}
HAND_BUILT = (
    # Q.931 SETUP with cause, calling/called numbers, display and a user-user element.
    b"\x03\x00\x00\x1e\x08\x02\x00\x07\x05\x08\x02\x80\x90\x6c\x02\x80\x31\x70\x02\x80\x32"
    b"\x7e\x00\x04\x05\x20\x00\x06",
    # IAX2 NEW with called/calling number, then HANGUP with a cause code.
    b"\x80\x04\x00\x00\x00\x00\x00\x01\x00\x00\x06\x01\x01\x03555\x02\x03100",
    b"\x80\x04\x00\x17\x00\x00\x00\x09\x01\x01\x06\x05\x2a\x01\x10",
    # MGCP CRCX with SDP, then DLCX.
    b"CRCX 1 aaln/1@gw MGCP 1.0\r\nC: 1\r\nM: sendrecv\r\n\r\nv=0\r\nc=IN IP4 10.0.0.1\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n",
    b"DLCX 2 aaln/1@gw MGCP 1.0\r\nC: 1\r\n",
    # Skinny CallState Connected.
    b"\x10\x00\x00\x00\x00\x00\x00\x00\x11\x01\x00\x00\x05\x00\x00\x00\x01\x00\x00\x00\x07\x00"
    b"\x00\x00",
)


@functools.cache
def seeds() -> tuple[bytes, ...]:
    out: list[bytes] = list(HAND_BUILT)
    for name, proto in (("h323.pcap", TCP), ("h323.pcap", UDP), ("iax.pcap", UDP),
                        ("mgcp.pcap", UDP), ("sccp_hw_conf_register.pcapng", TCP)):  # fmt: skip
        path = SHARED / name
        if path.is_file():
            out.extend(list(payloads_by_frame(path, proto).values())[:40])
    return tuple(out)


@st.composite
def payload(draw: st.DrawFn) -> bytes:
    return draw(st.one_of(st.binary(max_size=300), damaged(seeds())))


def _uu(data: bytes) -> object:
    return parse_h323_user_info(data[4 + 8 :] if data[:1] == b"\x03" else data)


def _skinny(data: bytes) -> list[object]:
    return [parse_sccp_call_message(m) for m in parse_skinny(data)]


PARSERS: dict[str, Callable[[bytes], object]] = {
    "q931": parse_h323_message,
    "h225": _uu,
    "ras": parse_ras,
    "h245": lambda d: parse_h245(d[4:] if d[:1] == b"\x03" else d),
    "olc": parse_open_logical_channel,
    "iax2": parse_iax2_message,
    "mgcp": parse_mgcp_all,
    "sccp": _skinny,
}


@FAST
@given(data=payload(), which=st.sampled_from(sorted(PARSERS)))
def test_parsers_raise_only_decode_errors(data: bytes, which: str) -> None:
    with contextlib.suppress(DecodeError):
        PARSERS[which](data)


def _events(packets: list[tuple[int, bytes]]) -> list[MessageEvent]:
    """Whatever parses, as message events between two endpoints, in order."""
    a, b = ("10.0.0.1", 1720), ("10.0.0.2", 2000)
    out = []
    for i, (direction, data) in enumerate(packets):
        sender, receiver = (a, b) if direction == 0 else (b, a)
        for name, parse in PARSERS.items():
            if name in ("h225", "olc"):
                continue
            try:
                parsed = parse(data)
            except DecodeError:
                continue
            items = parsed if isinstance(parsed, list) else [parsed]
            for msg in items:
                out.append(MessageEvent(name, i * 1_000_000, direction, TCP, sender, receiver, msg))
    return out


@FAST
@given(
    packets=st.lists(
        st.tuples(st.integers(0, 1), st.one_of(st.sampled_from(HAND_BUILT), payload())),
        max_size=12,
    )
)
def test_trackers_take_any_parsed_messages(packets: list[tuple[int, bytes]]) -> None:
    events = _events(packets)
    for tracker in (H323CallTracker(), Iax2CallTracker(), MgcpCallTracker(), SccpCallTracker()):
        tracker.on_messages(list(events))
        for record in tracker.finish():
            assert record["state"] in STATES
            assert record["start"] is not None and record["call_id"]
