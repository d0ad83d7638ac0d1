"""FlowContext.as_of: a flow still going on, as its findings and hints stood at a time."""

from __future__ import annotations

from voipscope.anomalies import AnomalyLog
from voipscope.dissect.base import MAX_EVIDENCE_MARKS, SIGNALING, UDP, Finding, FlowContext
from voipscope.dissect.knowledge import Knowledge


def flow() -> FlowContext:
    return FlowContext(7, UDP, "192.0.2.1", 40000, "192.0.2.2", 3478, 0, Knowledge(), AnomalyLog())


def test_findings_and_hints_after_the_time_are_left_out() -> None:
    ctx = flow()
    ctx.report(Finding("STUN", SIGNALING, 0.95, "binding", 1))
    ctx.mark(100)
    ctx.hint("realm", "signal.org")
    ctx.mark(300)
    assert ctx.as_of(99).findings == [] and ctx.as_of(99).hints == []
    early = ctx.as_of(200)
    assert [f.protocol for f in early.findings] == ["STUN"] and early.hints == []
    assert early.flow_id == 7 and ctx.hints == [("realm", "signal.org")]  # a view, no change
    assert ctx.as_of(300) is ctx


def test_past_the_cap_a_time_between_marks_reads_the_earlier_never_more() -> None:
    ctx = flow()
    for k in range(MAX_EVIDENCE_MARKS + 5):
        ctx.hint("sni", f"h{k}.example")
        ctx.mark(1000 * (k + 1))
    assert len(ctx.marks) == MAX_EVIDENCE_MARKS
    last_kept = MAX_EVIDENCE_MARKS - 1  # marks 0..14 as made, then the moving last one
    assert len(ctx.as_of(1000 * last_kept).hints) == last_kept
    # Times whose own mark was overwritten read the last kept one: fewer hints, not more.
    assert len(ctx.as_of(1000 * (MAX_EVIDENCE_MARKS + 2)).hints) == last_kept
    assert ctx.as_of(1000 * (MAX_EVIDENCE_MARKS + 5)) is ctx
