"""The evidence line of a media outage (calls.media_outages); which gaps are outages is
the RTP kernel's rule (tests/unit/quality/test_loss_runs.py)."""

from __future__ import annotations

from typing import Any

from voipscope.calls.media_outages import outage_evidence, outage_span

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
