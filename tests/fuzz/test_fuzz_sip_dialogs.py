"""Hypothesis over sequences of SIP messages for the calls stage: random methods, codes,
tags, branches, Call-IDs, CSeqs, bodies and times. The tracker never raises, its open
state stays under the cap, every record serialises, and time order is respected."""

from __future__ import annotations

import contextlib
import json

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.support import FAST
from voipscope.calls.sip_dialogs import SipCallsConfig, SipCallTracker
from voipscope.dissect.base import UDP, MessageEvent
from voipscope.dissect.sip import METHODS, SipMessage
from voipscope.errors import DecodeError

CODES = [
    100,
    180,
    181,
    183,
    200,
    202,
    302,
    401,
    403,
    407,
    408,
    422,
    480,
    486,
    487,
    488,
    491,
    500,
    603,
]
BODIES = [
    b"",
    b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0 8\r\na=sendonly\r\n",
    b"v=0\r\nm=audio 99999 RTP/AVP x\r\n",
    b"Signal=5\r\nDuration=160",
    b"SIP/2.0 200 OK",
    b"\xff\xfe garbage",
]  # fmt: skip
CONTENT_TYPES = [None, "application/sdp", "application/dtmf-relay", "application/dtmf",
                 "message/sipfrag", "multipart/mixed"]  # fmt: skip
text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
maybe_text = st.one_of(st.none(), text, st.sampled_from(["a", "b", "c"]))


@st.composite
def sip_message(draw: st.DrawFn) -> SipMessage:
    is_request = draw(st.booleans())
    method = draw(st.sampled_from([*sorted(METHODS), "FOO"]))
    headers: list[tuple[str, str]] = []
    call_id = draw(st.one_of(st.none(), st.sampled_from(["c1", "c2", "c3", " "]), text))
    if call_id is not None:
        headers.append(("call-id", call_id))
    cseq_n = draw(st.integers(0, 5))
    cseq_method = draw(st.sampled_from([method, "INVITE", "REGISTER", "bad"]))
    headers.append(("cseq", draw(st.sampled_from([f"{cseq_n} {cseq_method}", "x", ""]))))
    tag = draw(maybe_text)
    headers.append(("from", draw(st.sampled_from(['"A" <sip:a@h>', "sip:a@h", "<", '"']))
                    + (f";tag={tag}" if tag else "")))  # fmt: skip
    to_tag = draw(maybe_text)
    headers.append(("to", "<sip:b@h>" + (f";tag={to_tag}" if to_tag else "")))
    branch = draw(st.sampled_from(["z9hG4bK1", "z9hG4bK2", ""]))
    headers.append(("via", f"SIP/2.0/UDP h;branch={branch}"))
    for name in draw(st.lists(st.sampled_from(
        ["contact", "diversion", "history-info", "authorization", "www-authenticate",
         "refer-to", "referred-by", "event", "expires", "user-agent"]), max_size=4)):  # fmt: skip
        headers.append((name, draw(st.one_of(text, st.just("<sip:x@y>;expires=0;reason=a")))))
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    if content_type:
        headers.append(("content-type", content_type))
    return SipMessage(
        is_request,
        method if is_request else None,
        draw(st.sampled_from(["sip:b@h", "sip:x@y", "tel:123", "*"])) if is_request else None,
        None if is_request else draw(st.sampled_from(CODES)),
        None if is_request else draw(text),
        headers,
        draw(st.sampled_from(BODIES)),
    )


@st.composite
def events(draw: st.DrawFn) -> list[MessageEvent]:
    out = []
    ts = 1_700_000_000 * 10**9
    for msg in draw(st.lists(sip_message(), max_size=40)):
        ts += draw(st.sampled_from([0, 1, 10**6, 10**9, 40 * 10**9, 4000 * 10**9]))
        ends = [("10.0.0.1", 5060), ("10.0.0.2", 5060), ("10.0.0.3", 5070)]
        sender, receiver = draw(st.permutations(ends))[:2]
        out.append(MessageEvent("SIP", ts, draw(st.integers(0, 3)), UDP, sender, receiver, msg))
    return out


@FAST
@given(events(), st.integers(1, 5), st.integers(1, 4))
def test_tracker_never_raises_and_stays_bounded(
    batch: list[MessageEvent], cap: int, chunks: int
) -> None:
    tracker = SipCallTracker(
        SipCallsConfig(max_open_dialogs=cap, answered_idle_s=100, max_messages_remembered=8)
    )
    size = max(1, len(batch) // chunks)
    handed_out = []
    for i in range(0, len(batch), size):
        tracker.on_messages(list(batch[i : i + size]))
        assert tracker.open_dialogs <= cap
        handed_out += tracker.drain()
    handed_out += tracker.finish()
    assert tracker.open_dialogs == 0
    for record in handed_out:
        out = record.to_record()
        json.dumps(out)
        assert out["state"] in {"answered", "failed", "cancelled", "redirected", "unanswered",
                                "ongoing"}  # fmt: skip
        assert out["start"] <= out["last_message"]
        assert out["messages"]["packets"] >= 1


@FAST
@given(st.binary(max_size=300))
def test_header_readers_take_any_bytes(data: bytes) -> None:
    from voipscope.calls import sip_headers as h
    from voipscope.calls.sdp_media import announced_media

    value = data.decode("utf-8", "replace")
    h.parse_name_addr(value)
    h.split_list(value)
    h.uri_key(value)
    h.top_via_branch(value)
    h.contact_uris([value])
    h.contact_expires([value])
    h.digest_username(value)
    h.diversions([value])
    h.history_info([value])
    h.dtmf_from_info("application/dtmf-relay", data)
    h.dtmf_from_info("application/dtmf", data)
    h.sipfrag_status("message/sipfrag", data)
    with contextlib.suppress(DecodeError):
        announced_media(data)
