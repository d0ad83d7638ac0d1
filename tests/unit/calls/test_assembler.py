"""Calls meet their media: pairing by SDP address, by announced port behind NAT, media
that ends before its call's record, and what is left to the app-call grouper."""

from __future__ import annotations

from typing import Any

import pytest

from voipscope.calls.assembler import (
    CALL_ID_PAIRING_CONFIDENCE,
    PORT_PAIRING_CONFIDENCE,
    CallAssembler,
    flow_streams,
    parties,
)

IDLE_S = 60.0


def call(call_id: str = "c1@host", start: float = 100.0, end: float = 160.0) -> dict[str, Any]:
    return {
        "record_id": call_id, "call_id": call_id, "kind": "call", "protocol": "SIP",
        "start": start, "answer": start + 2.0, "end": end, "evidence": [],
        "sdp": [{"media": [{"ip": "10.0.0.1", "port": 4000, "payload_types": [0],
                            "codecs": ["PCMU/8000"], "candidates": [["10.0.0.1", 4002, "host"]]}]}],
    }  # fmt: skip


def media(flow_id: int, first: float, last: float, *, call_id: str | None = None,
          src: tuple[str, int] = ("198.51.100.7", 4000),
          dst: tuple[str, int] = ("203.0.113.5", 30000)) -> dict[str, Any]:  # fmt: skip
    return {
        "flow_id": flow_id, "category": "voip-media", "protocol": "RTP", "app": None,
        "media": "audio", "call_id": call_id, "src_ip": src[0], "src_port": src[1],
        "dst_ip": dst[0], "dst_port": dst[1], "first_seen": first, "last_seen": last,
        "src2dst_packets": 100, "dst2src_packets": 100,
    }  # fmt: skip


def stream(flow_id: int, first: float, ssrc: str = "0x1", loss_pct: float = 0.0) -> dict[str, Any]:
    return {
        "flow_id": flow_id, "src_ip": "198.51.100.7", "src_port": 4000,
        "dst_ip": "203.0.113.5", "dst_port": 30000, "ssrc": ssrc, "payload_type": 0,
        "codec": "PCMU", "packets": 100, "loss_pct": loss_pct, "first_seen": first,
        "last_seen": first + 50, "talk_spurts": None, "mos": None, "mos_reason": None,
    }  # fmt: skip


def everything(a: CallAssembler) -> list[dict[str, Any]]:
    return a.ready() + a.finish()


def test_sdp_address_pairing_and_mos_from_the_sdp_codec() -> None:
    a = CallAssembler(IDLE_S)
    a.add_call(call())
    a.add_media(media(7, 102.0, 160.0, call_id="c1@host"), [stream(7, 102.0, loss_pct=1.0)])
    (record,) = everything(a)
    assert record["media_flows"] == [7]
    (s,) = record["streams"]
    assert s["pairing"] == "sdp-address" and s["pairing_confidence"] == CALL_ID_PAIRING_CONFIDENCE
    assert s["codec"] == "PCMU/8000" and 3.0 < s["mos"] < 4.41


def test_media_that_ends_before_its_call_record_waits_for_it() -> None:
    a = CallAssembler(IDLE_S)
    a.add_media(media(7, 102.0, 160.0, call_id="c1@host"), [stream(7, 102.0)])
    assert a.ready() == []
    a.add_call(call())
    (record,) = everything(a)
    assert record["media_flows"] == [7]


def test_nat_media_pairs_by_announced_port_and_time() -> None:
    a = CallAssembler(IDLE_S)
    a.add_call(call())
    # From the NAT's public address, keeping the announced source port 4000.
    a.add_media(media(8, 103.0, 150.0), [stream(8, 103.0)])
    # The ICE candidate's port too.
    a.add_media(media(9, 104.0, 150.0, src=("198.51.100.7", 4002)), [stream(9, 104.0)])
    (record,) = everything(a)
    assert record["media_flows"] == [8, 9]
    assert {s["pairing"] for s in record["streams"]} == {"sdp-port+time (NAT)"}
    assert {s["pairing_confidence"] for s in record["streams"]} == {PORT_PAIRING_CONFIDENCE}


def test_same_port_outside_the_call_time_is_not_paired() -> None:
    a = CallAssembler(IDLE_S)
    a.add_call(call())
    a.add_media(media(8, 500.0, 560.0), [stream(8, 500.0)])
    records = everything(a)
    sip = next(r for r in records if r["kind"] == "call")
    assert sip["media_flows"] == []
    assert any(r["kind"] == "media-only" and r["media_flows"] == [8] for r in records)


def test_calls_are_held_until_their_media_can_no_longer_come() -> None:
    a = CallAssembler(IDLE_S)
    a.add_call(call(end=160.0))
    a.advance(160.0 + IDLE_S)
    assert a.ready() == []  # a media flow may still end (idle timeout + margin)
    a.advance(160.0 + IDLE_S + 10.0)
    assert [r["call_id"] for r in a.ready()] == ["c1@host"]


A, B, C = ("198.51.100.7", 4000), ("203.0.113.5", 30000), ("192.0.2.9", 5000)


def sent(src: tuple[str, int], dst: tuple[str, int], first: float, last: float,
         ssrc: str | None) -> dict[str, Any]:  # fmt: skip
    return {"src_ip": src[0], "src_port": src[1], "dst_ip": dst[0], "dst_port": dst[1],
            "ssrc": ssrc, "first_seen": first, "last_seen": last}  # fmt: skip


def test_a_third_party_joining_is_named() -> None:
    a = CallAssembler(IDLE_S)
    a.add_call(call())
    back = {"src_ip": B[0], "src_port": B[1], "dst_ip": A[0], "dst_port": A[1]}
    # A barge-in from a third address, heard by A while A goes on talking to B.
    third = {"src_ip": C[0], "src_port": C[1], "dst_ip": A[0], "dst_port": A[1]}
    streams = [stream(7, 102.0, "0x1"), stream(7, 102.1, "0x2") | back,
               stream(8, 130.0, "0x3") | third]  # fmt: skip
    a.add_media(media(7, 102.0, 160.0, call_id="c1@host"), streams)
    (record,) = everything(a)
    assert record["participants"] == 3
    joined = [e for e in record["evidence"] if "another party joined" in e]
    assert joined == [
        "another party joined at 130.000: 192.0.2.9:5000 SSRC 0x3, heard by 198.51.100.7:4000 "
        "while its own stream went on"
    ]


def test_a_call_set_up_again_after_a_pause_joins_nobody() -> None:
    streams = [sent(A, B, 100.0, 110.0, "0x1"), sent(B, A, 100.1, 110.0, "0x2"),
               sent(A, B, 140.0, 160.0, "0x4"), sent(B, A, 140.2, 160.0, "0x5")]  # fmt: skip
    assert parties({"kind": "call"}, streams) == (2, [])


def test_a_phones_own_new_ssrc_is_the_same_party() -> None:
    # RFC 4733 events on an SSRC of their own, or a new SSRC after a re-INVITE, sent
    # from the caller's media endpoint while the callee goes on talking.
    streams = [sent(A, B, 100.0, 160.0, "0x1"), sent(B, A, 100.1, 160.0, "0x2"),
               sent(A, B, 130.0, 131.0, "0x7")]  # fmt: skip
    assert parties({"kind": "call"}, streams) == (2, [])


def test_an_app_users_own_new_stream_is_no_party_but_a_new_speaker_is() -> None:
    user, sfu = ("192.168.1.7", 50000), ("66.22.196.173", 50004)
    record = {"kind": "app-call", "caller": user[0]}
    streams = [sent(user, sfu, 0.0, 60.0, "0x1"), sent(sfu, user, 0.1, 60.0, "0x2"),
               sent(user, sfu, 20.0, 60.0, "0x3")]  # the user turns the camera on  # fmt: skip
    assert parties(record, streams) == (2, [])
    # The SFU forwards a new speaker while the user's own stream goes on.
    count, joined = parties(record, [*streams, sent(sfu, user, 30.0, 60.0, "0x9")])
    assert count == 3 and len(joined) == 1 and "66.22.196.173:50004 SSRC 0x9" in joined[0]


def test_streams_without_ssrc_and_relay_moves_join_nobody() -> None:
    user, relay1, relay2 = ("192.168.1.77", 23174), ("91.108.8.7", 521), ("91.108.8.8", 529)
    record = {"kind": "app-call", "caller": user[0]}
    streams = [sent(user, relay1, 0.0, 4.6, None), sent(relay1, user, 0.0, 4.6, None),
               # the client moves to another relay (and socket) after a pause
               sent((user[0], 28150), relay2, 21.5, 38.4, None),
               sent(relay2, (user[0], 28150), 21.5, 38.4, None)]  # fmt: skip
    assert parties(record, streams) == (2, [])
    # A relay and the peer directly at once: without SSRCs, one far end.
    peer = ("192.168.1.52", 31480)
    both = [*streams[:2], sent(user, peer, 1.0, 12.0, None), sent(peer, user, 1.0, 12.0, None)]
    assert parties(record, both) == (2, [])
    # Nor does a new relay's SSRC-less stream while the old one goes on.
    streams[0]["last_seen"] = streams[1]["last_seen"] = 38.4
    assert parties(record, streams) == (2, [])


def test_registrations_pass_straight_through() -> None:
    a = CallAssembler(IDLE_S)
    a.add_call({"record_id": "r1", "call_id": "r1", "kind": "registration", "start": 1.0})
    assert [r["kind"] for r in a.ready()] == ["registration"]


def test_streams_without_rtp_say_why_quality_is_unknown() -> None:
    (fwd, rev) = flow_streams(media(3, 0.0, 10.0) | {"protocol": "Telegram"})
    assert (fwd["src_port"], rev["src_port"]) == (4000, 30000)
    assert "no RTP sequence numbers" in fwd["mos_reason"]


def test_conversation_shape_from_the_first_two_streams() -> None:
    a = CallAssembler(IDLE_S)
    a.add_call(call(start=0.0, end=10.0))
    one = stream(7, 2.0) | {"talk_spurts": [[2.0, 6.0]]}
    two = stream(7, 2.0, "0x2") | {"talk_spurts": [[5.0, 8.0]]}
    a.add_media(media(7, 2.0, 10.0, call_id="c1@host"), [one, two])
    (record,) = everything(a)
    # answer at 2.0, end 10.0: an 8 s window.
    assert record["caller_talk_pct"] == pytest.approx(50.0)
    assert record["callee_talk_pct"] == pytest.approx(37.5)
    assert record["double_talk_pct"] == pytest.approx(12.5)
    assert record["silence_pct"] == pytest.approx(25.0)


def test_an_announced_ssrc_pairs_a_flow_from_anywhere() -> None:
    """RFC 5576 a=ssrc: a relayed flow (other addresses and ports) carrying the SSRC."""
    a = CallAssembler(IDLE_S)
    record = call()
    record["sdp"][0]["media"][0]["ssrcs"] = [0x1234]
    a.add_call(record)
    relayed = media(11, 103.0, 150.0, src=("192.0.2.50", 61000), dst=("203.0.113.5", 49170))
    a.add_media(relayed, [stream(11, 103.0, ssrc="0x00001234")])
    (out,) = everything(a)
    assert out["media_flows"] == [11]
    assert out["streams"][0]["pairing"] == "sdp-ssrc"
