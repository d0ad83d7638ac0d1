"""The evidence line of a media outage (calls.media_outages); which gaps are outages is
the RTP kernel's rule (tests/unit/quality/test_loss_runs.py)."""

from __future__ import annotations

from typing import Any

from voipscope.calls.media_outages import missing_media_evidence, outage_evidence, outage_span

T0 = 1_700_000_000.0


def stream(src: str, dst: str, longest_s: float = 0.0, lost: int = 0, **extra: Any) -> dict:  # type: ignore[type-arg]
    """A minute-long stream; with ``longest_s`` one outage of that length 10 s in."""
    (src_ip, src_port), (dst_ip, dst_port) = (x.rsplit(":", 1) for x in (src, dst))
    out = {
        "src_ip": src_ip, "src_port": int(src_port), "dst_ip": dst_ip, "dst_port": int(dst_port),
        "first_seen": T0, "last_seen": T0 + 60.0,
        "longest_gap_ms": max(longest_s * 1000.0, 300.0), "longest_gap_start": T0 + 10.0,
        "outages": 1 if longest_s else 0, "outage_s": longest_s,
        "longest_outage_ms": longest_s * 1000.0,
        "longest_outage_start": T0 + 10.0 if longest_s else None, "longest_outage_lost": lost,
    }  # fmt: skip
    out.update(extra)
    return out


A, B = "10.0.0.1:4000", "10.0.0.2:5000"


def test_an_outage_while_the_other_direction_went_on_is_one_way_audio() -> None:
    (line,) = outage_evidence([stream(A, B, 5.0, 250), stream(B, A)])
    assert line == (
        "media outage: 10.0.0.1:4000 -> 10.0.0.2:5000 lost 250 packets in one stretch of "
        "5.00 s from 2023-11-14 22:13:30.000 UTC (its sequence numbers went on: sent, never "
        "seen here), while the other direction kept sending: one-way audio"
    )
    assert outage_span(stream(A, B, 5.0, 250)) == (T0 + 10.0, T0 + 15.0)
    assert outage_span(stream(A, B)) is None
    assert outage_evidence([stream(A, B), stream(B, A)]) == []


def test_what_the_other_side_did_meanwhile() -> None:
    # The other direction's own outage covers most of this one: both went quiet.
    both = outage_evidence([stream(A, B, 5.0, 250), stream(B, A, 4.0, 200)])
    assert len(both) == 2 and all("no other stream of the call went on" in x for x in both)
    late = stream(B, A, first_seen=T0 + 12.0)  # started inside the outage
    assert "no other stream" in outage_evidence([stream(A, B, 5.0, 250), late])[0]
    third = stream("10.0.0.3:6000", A)  # a conference bridge's stream, not the reverse
    assert (
        "another stream of the call kept sending"
        in outage_evidence([stream(A, B, 5.0, 250), third])[0]
    )
    assert "[2001:db8::1]:4000 ->" in outage_evidence([stream("2001:db8::1:4000", B, 5.0, 250)])[0]


def test_more_outages_of_the_stream_are_counted_in_the_line() -> None:
    (line,) = outage_evidence([stream(A, B, 5.0, 250, outages=3, outage_s=7.5), stream(B, A)])
    assert line.endswith("one-way audio; 2 more outages, 7.50 s in all")
    (one,) = outage_evidence([stream(A, B, 5.0, 250), stream(B, A)])
    assert one.endswith("one-way audio")


def sip_call(streams: list[dict], sdp: list[dict] | None = None, **fields: Any) -> dict:  # type: ignore[type-arg]
    """An answered SIP call, 30 s of conversation, offer and answer of two-way audio."""
    two_way = [
        sdp_body("10.0.0.1", "10.0.0.1", 4000),
        sdp_body("10.0.0.2", "10.0.0.2", 5000, role="answer"),
    ]
    return {
        "protocol": "SIP", "kind": "call", "state": "answered",
        "answer": T0, "end": T0 + 30.0, "sdp": two_way if sdp is None else sdp,
        "streams": streams, **fields,
    }  # fmt: skip


def sdp_body(
    sender: str,
    ip: str,
    port: int,
    direction: str = "sendrecv",
    hold: bool = False,
    role: str = "offer",
) -> dict:  # type: ignore[type-arg]
    media = {"media": "audio", "ip": ip, "port": port, "direction": direction}
    return {"sender_ip": sender, "hold": hold, "media": [media], "role": role}


def missing(record: dict) -> list[str]:  # type: ignore[type-arg]
    return missing_media_evidence(record, record["streams"])


def test_one_way_media_when_both_sides_announced_two_way() -> None:
    (line,) = missing(sip_call([stream(A, B)]))
    assert line == (
        "one-way media: only 10.0.0.1:4000 -> 10.0.0.2:5000 for 60.0 s; nothing came back "
        "although both sides announced two-way media (10.0.0.1:4000, 10.0.0.2:5000) (not "
        "sent, or on a path this capture does not see)"
    )
    assert missing(sip_call([stream(A, B), stream(B, A)])) == []
    # Behind NAT the reply goes to where the media came from: still "came back".
    assert missing(sip_call([stream("203.0.113.5:31000", B), stream(B, "203.0.113.5:31000")])) == []


def test_no_media_at_all() -> None:
    (line,) = missing(sip_call([]))
    assert line.startswith("no media seen: answered and up for 30.0 s, both sides announced")
    assert "(10.0.0.1:4000, 10.0.0.2:5000)" in line
    # Caller and callee on one host (sipp on loopback): offer and answer are two sides.
    same_host = [sdp_body("127.0.0.1", "127.0.0.1", 6100),
                 sdp_body("127.0.0.1", "127.0.0.1", 6000, role="answer")]  # fmt: skip
    assert len(missing(sip_call([], same_host))) == 1


def test_nothing_is_said_where_the_signalling_explains_it() -> None:
    answer = sdp_body("10.0.0.2", "10.0.0.2", 5000, role="answer")
    hold = [sdp_body("10.0.0.1", "10.0.0.1", 4000), answer,
            sdp_body("10.0.0.1", "10.0.0.1", 4000, "sendonly", hold=True)]  # fmt: skip
    listen = [sdp_body("10.0.0.1", "10.0.0.1", 4000, "recvonly"),
              sdp_body("10.0.0.2", "10.0.0.2", 5000, "sendonly", role="answer")]  # fmt: skip
    offer_only = [sdp_body("10.0.0.1", "10.0.0.1", 4000)]
    for sdp in (hold, listen, offer_only):
        assert missing(sip_call([stream(A, B)], sdp)) == []
        assert missing(sip_call([], sdp)) == []
    assert missing(sip_call([], end=T0 + 4.0)) == []  # over before media could matter
    assert missing(sip_call([], end=None)) == []  # no BYE seen: the capture may have ended
    assert missing(sip_call([], state="failed")) == []
    assert missing(sip_call([], protocol="H.323")) == []
    short = stream(A, B, last_seen=T0 + 3.0)
    assert missing(sip_call([short])) == []  # 3 s of media: too little to judge
    # A T.38 flow paired to the call is media too; T.38 or video offered beside the audio
    # leaves the RTP streams short of the whole story.
    assert missing(sip_call([], media_flows=[7])) == []
    fax = sip_call([stream(A, B)])
    fax["sdp"][1]["media"].append({"media": "image", "ip": "10.0.0.2", "port": 5004,
                                   "direction": "sendrecv"})  # fmt: skip
    assert missing(fax) == []
