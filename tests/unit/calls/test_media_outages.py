"""Which long gaps of a stream are outages (calls.media_outages)."""

from __future__ import annotations

from typing import Any

from voipscope.calls.media_outages import outage_evidence

T0 = 1_700_000_000.0


def stream(src: str, dst: str, gap_s: float = 0.3, skipped: int = 0, **extra: Any) -> dict:  # type: ignore[type-arg]
    (src_ip, src_port), (dst_ip, dst_port) = (x.rsplit(":", 1) for x in (src, dst))
    out = {
        "src_ip": src_ip, "src_port": int(src_port), "dst_ip": dst_ip, "dst_port": int(dst_port),
        "first_seen": T0, "last_seen": T0 + 60.0,
        "longest_gap_ms": gap_s * 1000.0, "longest_gap_start": T0 + 10.0,
        "longest_gap_skipped": skipped, "longest_gap_in_capture_gap": False,
    }  # fmt: skip
    out.update(extra)
    return out


A, B = "10.0.0.1:4000", "10.0.0.2:5000"


def test_numbers_that_went_on_across_a_long_gap_are_an_outage() -> None:
    (line,) = outage_evidence([stream(A, B, 5.0, 250), stream(B, A)])
    assert line == (
        "media outage: 10.0.0.1:4000 -> 10.0.0.2:5000 lost 250 packets in one stretch of "
        "5.00 s from 2023-11-14 22:13:30.000 UTC (its sequence numbers went on: sent, never "
        "seen here), while the other direction kept sending: one-way audio"
    )


def test_a_pause_of_the_sender_is_no_outage() -> None:
    # Silence suppression or hold: numbers go on by one; a talk pause that ended with one
    # lost packet skips one number over seconds.
    assert outage_evidence([stream(A, B, 5.0, 0), stream(B, A)]) == []
    assert outage_evidence([stream(A, B, 5.0, 1), stream(B, A)]) == []
    # At 60 ms packets a 5 s outage skips ~83 numbers: still an outage.
    assert len(outage_evidence([stream(A, B, 5.0, 83), stream(B, A)])) == 1


def test_short_gaps_and_capture_gaps_are_not_reported() -> None:
    assert outage_evidence([stream(A, B, 0.8, 40), stream(B, A)]) == []
    gap = stream(A, B, 5.0, 250, longest_gap_in_capture_gap=True)
    assert outage_evidence([gap, stream(B, A)]) == []  # the capture's: capture_gap_missing


def test_what_the_other_side_did_meanwhile() -> None:
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
