"""DTLS-SRTP is call setup: the DTLS dissector says so in its finding's category, and
the arbiter reads that category (never the evidence text), whichever DTLS datagram of
the flow showed use_srtp."""

from __future__ import annotations

import numpy as np

from tests.dissectdrive import capture_flows, context, packets, run
from tests.readback import payloads_by_frame
from voipscope.classify.arbiter import Arbiter
from voipscope.dissect.base import MEDIA, OTHER, SIGNALING, UDP, Finding, FlowContext
from voipscope.dissect.dtls import DtlsDissector
from voipscope.flows import kernels as K

# An application_data record (RFC 9147 §4: type 23, DTLS 1.2, epoch 1, sequence 1) of 16
# bytes: a datagram of a session whose handshake came before (or was not captured).
APPLICATION_DATA = bytes.fromhex("17fefd0001000000000001" + "0010") + bytes(range(16))
CLIENT_HELLO_FRAME = 3  # stun_dtls_rtp.pcapng: the ClientHello, use_srtp (14) offered


def judge(ctx: FlowContext, *more: Finding):
    ctx.findings.extend(more)
    row = np.zeros(K.NF, np.int64)
    row[K.F_PKTS_FWD] = 10
    row[K.F_BYTES_FWD] = 1000
    return Arbiter(ctx.knowledge).judge(ctx, row, None)


def dtls_then_hello(shared) -> FlowContext:
    """A flow whose first DTLS datagram shows nothing of DTLS-SRTP and whose second is a
    real ClientHello offering use_srtp."""
    hello = payloads_by_frame(shared / "stun_dtls_rtp.pcapng", 17)[CLIENT_HELLO_FRAME]
    ctx = context(UDP)
    result = run(DtlsDissector(), ctx, packets(APPLICATION_DATA, hello))
    assert result.matched_at == 1
    return ctx


def test_dtls_srtp_hello_gives_a_signalling_finding_plain_dtls_other(shared_captures):
    """Per capture, the (category, shows use_srtp) of every DTLS finding: signalling
    exactly where a hello offered or selected DTLS-SRTP (dtls.pcap: two WebRTC flows and
    an OpenSSL test handshake on loopback without it)."""
    kinds = {}
    for name in ("stun_dtls_rtp.pcapng", "dtls.pcap", "dtls2.pcap"):
        kinds[name] = set()
        for flow in capture_flows(shared_captures / name, (UDP,)):
            ctx = flow.context()
            run(DtlsDissector(), ctx, flow.packets)
            kinds[name] |= {(f.category, "use_srtp" in f.evidence) for f in ctx.findings}
    assert kinds == {
        "stun_dtls_rtp.pcapng": {(SIGNALING, True)},
        "dtls.pcap": {(SIGNALING, True), (OTHER, False)},
        "dtls2.pcap": {(OTHER, False)},
    }


def test_use_srtp_seen_after_the_first_dtls_datagram_still_keys_the_media(shared_captures):
    """The plain finding of the first datagram comes first; the DTLS-SRTP one of the
    hello after it outranks it (before: the earlier finding stood for DTLS, so RTP
    beside it stayed "RTP" and ICE checks before it named the flow STUN)."""
    ctx = dtls_then_hello(shared_captures)
    assert [f.category for f in ctx.findings] == [OTHER, SIGNALING]
    v = judge(ctx, Finding("RTP", MEDIA, 0.9, "rtp", 20))
    assert (v.category, v.protocol) == (MEDIA, "SRTP")

    ctx = dtls_then_hello(shared_captures)
    v = judge(ctx, Finding("STUN", SIGNALING, 0.95, "Binding request", 1))
    assert (v.category, v.protocol, v.detected_at_packet) == (SIGNALING, "DTLS", 2)
    assert "use_srtp" in v.evidence[0]


def test_plain_dtls_stays_other_and_leaves_rtp_alone():
    ctx = context(UDP)
    run(DtlsDissector(), ctx, packets(APPLICATION_DATA))
    assert [f.category for f in ctx.findings] == [OTHER]
    assert judge(context(UDP), *ctx.findings).category == OTHER
    v = judge(ctx, Finding("RTP", MEDIA, 0.9, "rtp", 20))
    assert v.protocol == "RTP"
