"""A SIP call whose caller sends its media through a TURN relay: baresip (medianat=turn)
allocates a relayed address on coturn and offers it in its SDP; the callee sends its RTP
there, and the relay hands it on to the caller inside ChannelData (RFC 8656 §12.4). On
the wire between them, nothing of the media flow touches an address the SDP names: the
caller talks only to the relay's port 3478. The flow is the call's because its TURN
allocation was given the address the SDP announced (classify.arbiter ``_relayed_call``),
and its streams are measured inside ChannelData like any others.

Two network namespaces joined by a veth (tests.realtraffic.livens), coturn in the
callee's, the capture on the callee's side of the veth; deleted afterwards. Skipped
without root, baresip (with its g711, aufile and turn modules), coturn, dumpcap, tshark,
espeak-ng or ip."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.realtraffic import tshark_streams
from tests.realtraffic.gen.generate import TURN_PORT, turn_server
from tests.realtraffic.livens import CLIENT_IP, SERVER_IP, VethPair, veth_pair
from tests.realtraffic.test_baresip_call import (
    CALL_S,
    CALLEE_PHRASES,
    CALLER_PHRASES,
    MODULES,
    TOOLS,
    baresip_call,
    phrase_audio,
)
from tests.realtraffic.test_baresip_call import PCMU as BARE_PCMU
from voipscope.api import iter_calls

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0
    or any(shutil.which(t) is None for t in (*TOOLS, "turnserver"))
    or not all((MODULES / m).exists() for m in ("g711.so", "turn.so", "aufile.so")),
    reason="needs root, baresip (apt baresip-core), coturn, dumpcap, tshark, espeak-ng and ip",
)

PCMU = replace(BARE_PCMU, settings="module turn.so\n")
# coturn's long-term credentials as tests.realtraffic.gen.generate starts it.
ACCOUNT = (f";medianat=turn;stunserver=turn:{SERVER_IP}:{TURN_PORT}"
           ";stunuser=voipscope;stunpass=behaviour")  # fmt: skip


@pytest.fixture
def pair() -> Iterator[VethPair]:
    yield from veth_pair()


def test_a_sip_call_through_a_turn_relay_keeps_its_media(pair: VethPair, tmp_path: Path) -> None:
    caller_audio, _ = phrase_audio(CALLER_PHRASES, CALL_S, PCMU.rate_hz)
    callee_audio, _ = phrase_audio(CALLEE_PHRASES, CALL_S + 5, PCMU.rate_hz)
    with turn_server(pair.server, SERVER_IP, tmp_path):
        capture = baresip_call(pair, tmp_path, PCMU, caller_audio, callee_audio, ACCOUNT)
    records = list(iter_calls(capture))
    calls = [c for c in records if c["kind"] == "call"]
    assert len(calls) == 1, records
    (call,) = calls
    assert call["state"] == "answered" and call["final_code"] == 200
    # The media is the SIP call's, not a call of its own: also the RTCP through the relay
    # and the last RTCP BYE the caller sends straight to the callee's announced port.
    assert [c["kind"] for c in records] == ["call"], records
    assert not call["rtcp_only_streams"], call["rtcp_only_streams"]
    theirs = tshark_streams.listed(capture, TURN_PORT)
    relayed = [s for s in call["streams"] if TURN_PORT in (s["src_port"], s["dst_port"])]
    print([(s["src_ip"], s["src_port"], s["dst_port"], s["packets"], s["pairing"])
           for s in call["streams"]])  # fmt: skip
    assert len(relayed) == 2, call["streams"]
    for s in relayed:
        tshark_streams.assert_as_tshark(s, theirs[tshark_streams.key(s)])
        assert (s["pairing"], s["pairing_confidence"]) == ("sdp-relayed (TURN)", 0.9)
        assert (s["codec"], s["clock_rate_hz"]) == ("PCMU/8000", 8000)
        assert s["mos"] is not None
        # The far end's RTCP reports came through the relay on a flow of their own. (No
        # round trip asserted: it needs a block whose LSR names a sender report the
        # capture saw, and a 10 s call has two reports each way, the first often LSR 0.)
        assert s["rtcp_reports"], s
    assert {s["src_ip"] for s in relayed} == {CLIENT_IP, SERVER_IP}
