"""Hypothesis over classic Skype's TCP sample and its judges: random flows through the
dissector on TCP and UDP (port 12340 too), then the CSC, NBC and host-context verdict
(classify.skype_verdict) and the E2E/SkypeOut split. The property: nothing raises, the
sample stays bounded, and any finding is well-formed."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tests.dissectdrive import T0, context, run
from tests.fuzz.support import FAST
from voipscope.classify import skype_csc as CSC
from voipscope.classify import skype_verdict as SV
from voipscope.classify.skype_nbc import shipped_model
from voipscope.dissect.base import MEDIA, SIGNALING, TCP, UDP, Packet
from voipscope.dissect.knowledge import Knowledge
from voipscope.dissect.skype import MAX_SAMPLES, OPENING_BYTES, SkypeDissector

MODEL = shipped_model()
flows = st.lists(
    st.tuples(st.integers(0, 1), st.binary(min_size=1, max_size=300), st.integers(0, 10**10)),
    min_size=1,
    max_size=40,
)


def drive(transport: int, dst_port: int, flow, knowledge: Knowledge):  # type: ignore[no-untyped-def]
    ctx = context(transport, ("192.168.1.34", 40000), ("20.0.0.1", dst_port), knowledge)
    ts = T0
    pkts = []
    for k, (direction, payload, gap) in enumerate(flow):
        ts += gap
        pkts.append(Packet(payload, ts, k + 1, direction))
    run(SkypeDissector(), ctx, pkts)
    return ctx, ts


@FAST
@given(flow=flows, som_flow=flows, transport=st.sampled_from([TCP, UDP]),
       port=st.sampled_from([12340, 443, 33033]))  # fmt: skip
def test_random_flows_through_the_skype_judges(flow, som_flow, transport, port):
    knowledge = Knowledge()
    drive(UDP, 13021, som_flow, knowledge)  # maybe host context, maybe not
    ctx, last = drive(transport, port, flow, knowledge)
    SV.weigh(ctx, last, MODEL)
    state = ctx.state.get("Skype")
    if state is not None:
        for side in state.dirs:
            assert len(side.heads) <= MAX_SAMPLES and len(side.sizes) <= MAX_SAMPLES
            assert len(side.opening) <= OPENING_BYTES
    for f in ctx.findings:
        assert 0.0 < f.confidence <= 1.0 and f.category in (MEDIA, SIGNALING)
        assert f.protocol == "Skype" and f.evidence
    evidence = ["Skype: x"]
    SV.split(ctx, evidence, MODEL)
    assert len(evidence) <= 2


@FAST
@given(heads=st.lists(st.binary(max_size=12), max_size=80))
def test_csc_on_any_heads(heads):
    result = CSC.csc(heads, MODEL.csc_random_max_chi2)
    assert result.chi2.shape == (16,) and np.all(result.chi2 >= 0)
    assert result.udp_kind() in (None, "E2E", "E2O")
    result.text()
