"""H.323 call tracker state machine (Q.931 §5 via H.225.0) and the Q.931/PER parsers,
from hand-built messages."""

from __future__ import annotations

import pytest

from voipscope.calls.h323_calls import H323CallTracker
from voipscope.calls.tracked_calls import CallLimits
from voipscope.dissect.base import TCP, UDP, MessageEvent
from voipscope.dissect.h225 import H323Message, parse_h323_message
from voipscope.dissect.h225_asn1 import (
    ACF,
    ARQ,
    DRQ,
    H225Body,
    RasMessage,
    parse_h323_user_info,
)
from voipscope.dissect.h245 import H245Message, LogicalChannel, parse_h245
from voipscope.dissect.per import PerReader
from voipscope.errors import DecodeError, Truncated

CALLER = ("10.0.0.1", 40000)
CALLEE = ("10.0.0.2", 1720)
GK = ("10.0.0.9", 1719)
GUID = "11111111-2222-3333-4444-555555555555"
S = 1_000_000_000
T0 = 1_700_000_000 * S


def cs(ts: int, mtype: int, *, from_caller: bool, ref: int = 7, cause: int | None = None,
       body: str | None = None, guid: str | None = GUID, raw: bytes | None = None,
       flow: int = 1, **extra: object) -> MessageEvent:  # fmt: skip
    h225 = H225Body(body or "", call_identifier=guid) if body else None
    for k, v in extra.items():
        setattr(h225, k, v)
    msg = H323Message(mtype, ref, from_caller, cause=cause, h225=h225,
                      raw=raw if raw is not None else bytes([mtype, ts % 251]))  # fmt: skip
    sender, receiver = (CALLER, CALLEE) if from_caller else (CALLEE, CALLER)
    return MessageEvent("H.323", T0 + ts, flow, TCP, sender, receiver, msg)


def run(*events: MessageEvent) -> list[dict[str, object]]:
    tracker = H323CallTracker()
    tracker.on_messages(list(events))
    return tracker.finish()


def test_answered_and_released_with_cause():
    (call,) = run(
        cs(0, 0x05, from_caller=True, body="setup", source_aliases=["alice"]),
        cs(1 * S, 0x02, from_caller=False, body="callProceeding"),
        cs(2 * S, 0x01, from_caller=False, body="alerting"),
        cs(5 * S, 0x07, from_caller=False, body="connect"),
        cs(65 * S, 0x5A, from_caller=True, body="releaseComplete", cause=16),
    )
    assert call["call_id"] == GUID and call["state"] == "answered"
    assert call["caller"] == "alice" and call["final_code"] == 16
    assert call["answer"] == pytest.approx((T0 + 5 * S) / 1e9)
    assert call["duration_s"] == 60.0
    assert call["messages"] == "setup:1 callProceeding:1 alerting:1 connect:1 releaseComplete:1"


def test_refused_by_callee_is_failed_and_caller_release_is_cancelled():
    (refused,) = run(
        cs(0, 0x05, from_caller=True, body="setup"),
        cs(S, 0x5A, from_caller=False, body="releaseComplete", cause=17),
    )
    assert refused["state"] == "failed" and refused["final_code"] == 17
    (given_up,) = run(
        cs(0, 0x05, from_caller=True, body="setup"),
        cs(S, 0x01, from_caller=False, body="alerting"),
        cs(9 * S, 0x5A, from_caller=True, body="releaseComplete"),
    )
    assert given_up["state"] == "cancelled" and given_up["end"] is not None


def test_connected_without_release_is_ongoing_and_setup_only_unanswered():
    (call,) = run(
        cs(0, 0x05, from_caller=True, body="setup"),
        cs(S, 0x07, from_caller=False, body="connect"),
    )
    assert call["state"] == "ongoing" and call["end"] is None
    (call,) = run(cs(0, 0x05, from_caller=True, body="setup"))
    assert call["state"] == "unanswered"


def test_repeated_segment_is_not_counted():
    (call,) = run(
        cs(0, 0x05, from_caller=True, body="setup", raw=b"same"),
        cs(0, 0x05, from_caller=True, body="setup", raw=b"same"),
    )
    assert call["messages"] == "setup:1" and call["packets"] == 1
    assert any("repeated TPKT" in e for e in call["evidence"])


def test_release_with_another_guid_joins_by_call_reference():
    (call,) = run(
        cs(0, 0x05, from_caller=True, body="setup"),
        cs(S, 0x5A, from_caller=False, body="releaseComplete", guid="9" * 8 + GUID[8:]),
    )
    assert call["call_id"] == GUID and call["state"] == "failed"
    assert any("not the setup's" in e for e in call["evidence"])


def test_ras_admission_and_disengage_join_by_call_identifier():
    arq = RasMessage(ARQ, 5, call_identifier=GUID, call_reference=7, answer_call=False)
    drq = RasMessage(DRQ, 6, call_identifier=GUID, reason="normalDrop")
    (call,) = run(
        MessageEvent("H.225 RAS", T0 - S, 2, UDP, CALLER, GK, arq),
        cs(0, 0x05, from_caller=True, body="setup"),
        cs(S, 0x07, from_caller=False, body="connect"),
        MessageEvent("H.225 RAS", T0 + 30 * S, 2, UDP, GK, CALLER, drq),
    )
    assert call["start"] == pytest.approx((T0 - S) / 1e9)
    assert call["last_message"] == pytest.approx((T0 + 30 * S) / 1e9)
    assert call["signaling_flows"] == [1, 2]
    assert call["end"] == pytest.approx((T0 + 30 * S) / 1e9)  # no release: DRQ ends it
    assert call["state"] == "answered"


def admitted_and_refused() -> list[MessageEvent]:
    """ARQ and ACF with the gatekeeper, then a setup the callee refuses at once."""
    arq = RasMessage(ARQ, 5, call_identifier=GUID, call_reference=7, answer_call=False)
    return [
        MessageEvent("H.225 RAS", T0 - 2 * S, 2, UDP, CALLER, GK, arq),
        MessageEvent("H.225 RAS", T0 - S, 2, UDP, GK, CALLER, RasMessage(ACF, 5)),
        cs(0, 0x05, from_caller=True, body="setup"),
        cs(S, 0x5A, from_caller=False, body="releaseComplete", cause=21),
    ]


def later(seconds: int, ref: int) -> MessageEvent:
    """Another call's setup on another flow: capture time moving on."""
    return cs(seconds * S, 0x05, from_caller=True, body="setup", guid=None, ref=ref, flow=9)


def test_an_admitted_call_waits_for_its_disengage_request():
    """h323.pcap's refused call: the endpoint disengages 73 s after the release; the
    call waits for it (as Wireshark joins it), whatever else the capture carries meanwhile."""
    drq = RasMessage(DRQ, 6, call_identifier=GUID, reason="forcedDrop")
    calls = run(*admitted_and_refused(), later(40, 8),
                MessageEvent("H.225 RAS", T0 + 75 * S, 2, UDP, CALLER, GK, drq))  # fmt: skip
    (refused,) = [c for c in calls if c["call_id"] == GUID]
    assert refused["last_message"] == pytest.approx((T0 + 75 * S) / 1e9)
    assert refused["state"] == "failed" and "disengageRequest:1" in str(refused["messages"])


def test_a_disengage_request_the_capture_missed_does_not_hold_the_call():
    """Without the DRQ the call is let go after flows.idle_timeout_s of silence (120 s),
    not calls.answered_idle_s (2 h); a DRQ after that is RAS of its own."""
    tracker = H323CallTracker()
    tracker.on_messages([*admitted_and_refused(), later(60, 8)])
    assert tracker.drain() == []  # still waiting at 60 s
    tracker.on_messages([later(200, 9)])
    (refused,) = [c for c in tracker.drain() if c["call_id"] == GUID]
    assert refused["last_message"] == pytest.approx((T0 + S) / 1e9)


def test_ras_only_call():
    arq = RasMessage(ARQ, 5, call_identifier=GUID, source_aliases=["100"])
    (call,) = run(MessageEvent("H.225 RAS", T0, 2, UDP, CALLER, GK, arq))
    assert call["state"] == "unanswered" and call["caller"] == "100"


def test_h245_channel_media_joins_by_announced_address():
    h245_addr = ("10.0.0.2", 1300)
    ack = H245Message(1, 5, [LogicalChannel(1, "audio", False, ("10.0.0.2", 5004), None)])
    (call,) = run(
        cs(0, 0x05, from_caller=True, body="setup"),
        cs(S, 0x07, from_caller=False, body="connect", h245_address=h245_addr),
        MessageEvent("H.245", T0 + 2 * S, 3, TCP, h245_addr, CALLER, ack),
    )
    assert call["media_endpoints"][0]["port"] == 5004
    assert 3 in call["signaling_flows"]


def test_open_calls_are_capped():
    tracker = H323CallTracker(CallLimits(max_open_calls=2))
    tracker.on_messages(
        [cs(i, 0x05, from_caller=True, body="setup", ref=i, guid=None) for i in range(3)]
    )
    calls = tracker.finish()
    assert len(calls) == 3
    early = [
        c["call_reference"] for c in calls if any("handed out early" in e for e in c["evidence"])
    ]
    assert early == ["0x0000"]  # the least recently active
    assert tracker.book.anomalies.counts["h323_call_table_full"] == 1


# -- parsers ----------------------------------------------------------------------------


def q931(mtype: int, ies: bytes, ref: bytes = b"\x00\x07") -> bytes:
    q = bytes([0x08, len(ref)]) + ref + bytes([mtype]) + ies
    return b"\x03\x00" + (len(q) + 4).to_bytes(2, "big") + q


def test_q931_elements():
    ies = (b"\x08\x02\x80\x90"  # cause: location, cause 16
           + b"\x6c\x04\x00\x80" + b"12"  # calling: type/plan, presentation, digits
           + b"\x70\x03\x80" + b"34"  # called
           + b"\x28\x03abc")  # fmt: skip
    msg = parse_h323_message(q931(0x5A, ies))
    assert (msg.cause, msg.calling_number, msg.called_number, msg.display) == (
        16,
        "12",
        "34",
        "abc",
    )
    assert msg.call_reference == 7 and msg.name == "RELEASE COMPLETE"


@pytest.mark.parametrize("ies", [b"\x08", b"\x08\x05\x80", b"\x08\x01\x80", b"\x7e\x00"])
def test_q931_truncated_elements_raise_decode_error(ies):
    with pytest.raises(DecodeError):
        parse_h323_message(q931(0x05, ies))


def test_bad_user_user_body_is_kept_as_error():
    msg = parse_h323_message(q931(0x05, b"\x7e\x00\x02\x05\xff"))
    assert msg.h225 is None and msg.h225_error


def test_per_reader_named_errors():
    with pytest.raises(Truncated):
        PerReader(b"").bits(1)
    with pytest.raises(Truncated):
        PerReader(b"\x05ab").octet_string()
    with pytest.raises(DecodeError):
        parse_h323_user_info(b"\x00")
    with pytest.raises(DecodeError):
        parse_h245(b"\x03")


def test_h245_open_logical_channel_ack_from_h323_pcap():
    # h323.pcap frame 41 (tshark: mediaChannel 10.1.3.143:5000, control 5001).
    msg = parse_h245(bytes.fromhex("22c0003c0280135c00000a01038f1388000a01038f1389010100"))
    assert msg.name == "openLogicalChannelAck"
    assert msg.channels[0].rtp == ("10.1.3.143", 5000)
    assert msg.channels[0].rtcp == ("10.1.3.143", 5001)


def test_full_ras_and_request_tables_are_named_not_silent(monkeypatch):
    """Attacker-sized side state is capped (DESIGN §4) and the cap says so."""
    from voipscope.calls import h323_calls

    monkeypatch.setattr(h323_calls, "MAX_RAS_CALLS", 2)
    monkeypatch.setattr(h323_calls, "MAX_PENDING_REQUESTS", 2)
    tracker = H323CallTracker()
    guids = [f"{k:08d}-2222-3333-4444-555555555555" for k in range(3)]
    tracker.on_messages([
        MessageEvent("H.225 RAS", T0 + k * S, 2, UDP, CALLER, GK,
                     RasMessage(ARQ, 10 + k, call_identifier=g, answer_call=False))
        for k, g in enumerate(guids)
    ])  # fmt: skip
    assert sorted(tracker.ras) == guids[:2]  # the third RAS call is not followed
    assert len(tracker.ras_requests) == 2
    assert tracker.book.anomalies.counts["h323_side_table_full"] == 1
    # A known call's request past the pending-request cap: followed, the request not kept.
    tracker.on_messages([MessageEvent("H.225 RAS", T0 + 5 * S, 2, UDP, CALLER, GK,
                                      RasMessage(DRQ, 20, call_identifier=guids[0]))])  # fmt: skip
    assert tracker.ras[guids[0]].counts["disengageRequest"] == 1
    assert tracker.book.anomalies.counts["h323_side_table_full"] == 2
