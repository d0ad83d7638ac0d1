"""SIP calls and registrations of real captures, against Wireshark's VoIP Calls view.

``peer_calls.csv`` (shared captures) is the VoIP Calls dialog of tshark 4.0 rebuilt for
each capture: a peer's opinion. Where we disagree we decide from the bytes
(``tshark -r FILE -Y sip -V``) and say why next to the expectation.

Wireshark's states map to ours: COMPLETED -> answered, CANCELLED -> cancelled, REJECTED ->
failed, IN CALL -> answered or ongoing. Its Start/Stop are the first and the last SIP
packet of the call, which is our ``start`` and ``end`` (``last_message`` while ongoing).
Its comments count packets per request method, retransmissions included: our
``requests[m] + repeated_requests[m]``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from voipscope.calls.sip_dialogs import SipCallTracker
from voipscope.pipeline import FlowPipeline

SHARED = Path(__file__).resolve().parents[3] / "shared" / "captures"
CAPTURES = SHARED / "ndpi"
STATES = {
    "COMPLETED": {"answered"},
    "CANCELLED": {"cancelled"},
    "REJECTED": {"failed"},
    "IN CALL": {"answered", "ongoing"},
}


def records(name: str) -> list[dict[str, Any]]:
    path = CAPTURES / name
    if not path.exists():
        pytest.skip(f"{name} not in the shared captures")
    tracker = SipCallTracker()
    for _ in FlowPipeline(hooks=[tracker]).run([str(path)]):
        pass
    return [r.to_record() for r in tracker.finish()]


def peer_calls(name: str) -> dict[str, dict[str, str]]:
    table = SHARED / "peer_calls.csv"
    if not table.exists():
        pytest.skip("peer_calls.csv not in the shared captures")
    with table.open(newline="") as f:
        return {
            row["call_id"]: row
            for row in csv.DictReader(f)
            if row["capture"] == name and row["protocol"] == "SIP"
        }


def comments(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in (item.split(":") for item in text.split())}


# Calls where we know more than the peer, decided from the bytes. Call-ID -> (field, ours).
VERDICTS: dict[str, dict[str, object]] = {
    # sip.pcap frames 22-41: INVITE (x3), 100 Trying, CANCEL (x11), then the server answers
    # the INVITE with 408 Request Timeout — not the 487 of RFC 3261 §9.2 — and the CANCEL
    # with another 408. Wireshark says CANCELLED; so do we (the caller gave up before any
    # final answer), and we also keep the code the server really sent.
    "105090259-446faf7a@192.168.1.2": {"final_code": 408},
}


@pytest.mark.parametrize("name", ["sip.pcap", "FAX-Call-t38-CA-TDM-SIP-FB-1.pcap"])
def test_calls_match_wireshark_voip_calls(name: str) -> None:
    peer = peer_calls(name)
    ours = {r["call_id"]: r for r in records(name) if r["kind"] == "call"}
    assert sorted(ours) == sorted(peer)
    for call_id, row in peer.items():
        rec = ours[call_id]
        assert rec["caller"] == row["from"], call_id
        assert rec["callee"] == row["to"], call_id
        assert rec["state"] in STATES[row["state"]], (call_id, rec["state"], row["state"])
        assert rec["caller_ip"] == row["initial_speaker"], call_id
        assert rec["start"] == pytest.approx(float(row["start_ts"]), abs=5e-7), call_id
        stop = rec["end"] if rec["end"] is not None else rec["last_message"]
        assert stop == pytest.approx(float(row["stop_ts"]), abs=5e-7), call_id
        assert rec["messages"]["packets"] == int(row["packets"]), call_id
        counts = rec["messages"]
        seen = {
            m: counts["requests"].get(m, 0) + counts["repeated_requests"].get(m, 0)
            for m in set(counts["requests"]) | set(counts["repeated_requests"])
        }
        assert seen == comments(row["comments"]), call_id
        for field, value in VERDICTS.get(call_id, {}).items():
            assert rec[field] == value, (call_id, field)


def test_sip_pcap_call_details() -> None:
    calls = {r["call_id"]: r for r in records("sip.pcap") if r["kind"] == "call"}
    cancelled = calls["105090259-446faf7a@192.168.1.2"]
    assert cancelled["cancelled_at"] == 1120470083.308013  # frame 27, the first CANCEL
    # 2 INVITE and 10 CANCEL retransmissions, all on the same hop.
    assert cancelled["messages"]["retransmissions"] == 12
    # Frames 46-54: 407, then the INVITE again with credentials (CSeq 2) answered 403.
    rejected = calls["85216695-42dcdb1d@192.168.1.2"]
    assert (rejected["final_code"], rejected["auth_challenges"]) == (403, 1)
    # Frames 87-94: 407, retry, 183 Session Progress, then 480 Temporarily Unavailable.
    unavailable = calls["11894297-4432a9f8@192.168.1.2"]
    assert (unavailable["final_code"], unavailable["ringing"]) == (480, 1120470984.28995)


# sip.pcap's REGISTERs, read from the bytes (tshark -Y 'sip.CSeq.method == REGISTER'):
# (first frame's CSeq, To user, result, final code, challenges, credentials rejected,
# digest user names). The Nero softphone reuses one Call-ID for three accounts; a
# REGISTER without credentials starts a new attempt.
CID1 = "578222729-4665d775@578222732-4665d772"
CID2 = "29858147-465b0752@29858051-465b07b2"
REGISTRATIONS = [
    (CID1, 68, "voi18063", "forbidden", 403, 1, 1, ["voi18063"]),
    (CID1, 70, "voi18063", "challenged", 401, 2, 1, ["voi18063"]),
    (CID1, 72, "voi18062", "challenged", 401, 2, 1, ["voi18062"]),
    (CID1, 74, "voi18062", "registered", 200, 1, 0, ["voi18062"]),
    # Frames 61-64: an un-REGISTER (Expires: 0) whose credentials were refused.
    (CID1, 76, "voi18062", "challenged", 401, 2, 1, ["voi18062"]),
    # Frames 65-68: account 35104723 authenticates as voi18062 (the phone's setting).
    (CID1, 78, "35104723", "challenged", 401, 2, 1, ["voi18062"]),
    (CID2, 1, "35104723", "registered", 200, 1, 0, ["voi18062"]),
    # Frames 74-80: the retry came 34 s after the challenge and was challenged again.
    (CID2, 3, "35104723", "challenged", 401, 2, 1, ["voi18062"]),
    (CID2, 5, "35104723", "registered", 200, 1, 0, ["voi18062"]),
]  # fmt: skip


def test_sip_pcap_registrations() -> None:
    regs = [r for r in records("sip.pcap") if r["kind"] == "registration"]
    got = [
        (r["call_id"], r["callee_user"], r["result"], r["final_code"], r["challenges"],
         r["credentials_rejected"], r["auth_usernames"])
        for r in regs
    ]  # fmt: skip
    assert got == [
        (c, u, res, code, ch, rej, names) for c, _, u, res, code, ch, rej, names in REGISTRATIONS
    ]
    assert all(r["registrar"] == "sip:sip.cybercity.dk" for r in regs)
    assert all(r["registrar_ip"] == "212.242.33.35" for r in regs)
    assert all(r["realm"] == "sip.cybercity.dk" for r in regs)
    assert regs[3]["expires_s"] == 1200 and regs[4]["expires_s"] == 0
    assert regs[0]["start"] == 1120469572.844249 and regs[0]["end"] == 1120469590.455801


def test_fax_call_legs_media_and_t38_switch() -> None:
    calls = {r["call_id"]: r for r in records("FAX-Call-t38-CA-TDM-SIP-FB-1.pcap")}
    a = calls["00e9d4a500e9d48-0015-0001-0000-0000@10.35.40.25"]
    b = calls["SD4909701-9ff11bf72eb4a347c92974d8fbbc2668-ao8o3i1"]
    # The SBC's legs: same From/To, INVITEs 6 ms apart (frames 23 and 27).
    assert a["related_calls"][0]["record_id"] == b["record_id"]
    assert a["related_calls"][0]["relation"] == "b2bua-leg"
    # Leg A's messages were captured on two hops (10.35.60.72-.100 and 10.35.40.25-.200,
    # same Via branch on both) and the second hop mostly twice: 46 repeats, 23 of them on
    # a hop that had already carried the message. Each message counts once.
    counts = a["messages"]
    assert counts["requests"] == {"ACK": 4, "BYE": 1, "INVITE": 4, "OPTIONS": 2}
    assert sum(counts["repeated_requests"].values()) + counts["repeated_responses"] == 46
    assert counts["retransmissions"] == 23
    # The offer/answer of leg B: G.711A (plus G.726 offered), then T.38 offered by a
    # re-INVITE (CSeq 3) refused 488, then audio again (CSeq 4).
    sdp = [(s["message"], s["role"], s["media"][0]["media"], s["media"][0]["ip"],
            s["media"][0]["port"]) for s in b["sdp"]]  # fmt: skip
    assert sdp == [
        ("INVITE", "offer", "audio", "138.132.169.101", 15580),
        ("200 INVITE", "answer", "audio", "192.168.100.219", 5002),
        ("re-INVITE", "offer", "audio", "192.168.100.219", 5002),
        ("200 re-INVITE", "answer", "audio", "138.132.169.101", 15580),
        ("re-INVITE", "offer", "image", "138.132.169.101", 15580),
        ("re-INVITE", "offer", "audio", "138.132.169.101", 15580),
        ("200 re-INVITE", "answer", "audio", "192.168.100.219", 5002),
    ]
    assert b["sdp"][0]["media"][0]["codecs"] == [
        "PCMA/8000", "G726-32/8000", "telephone-event/8000/1"
    ]  # fmt: skip
    assert b["sdp"][4]["media"][0]["codecs"] == ["t38"]
    assert any("re-INVITE (CSeq 3) refused: 488" in e for e in b["evidence"])
    assert (a["ended_by"], b["ended_by"]) == ("caller", "caller")
    assert a["answer"] == 1228468965.492834 and b["answer"] == 1228468965.488757
