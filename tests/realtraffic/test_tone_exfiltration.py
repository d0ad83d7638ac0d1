"""Data smuggled out as tones in a real SIP call, and calls that must not look like it.

sipp's uac_pcap scenario plays our PCMA RTP (tests/realtraffic/tones.py turns random bytes
into one tone per half-byte, 1/8 s each) between two network namespaces this test
creates; dumpcap captures; ``iter_calls`` and the tone-exfiltration detector read the
capture:

- no loss: the bytes come back bit-exact in ``data.decoded_hex``;
- 2 % loss on the caller's RTP (netem where the kernel has it, else an nftables egress
  drop, as test_media_quality does): at least 99 % of the half-bytes right;
- an espeak-ng spoken call, music (chords and a melody with harmonics and vibrato, a
  stand-in for music on hold) and an IVR-like call (a spoken prompt, in-band DTMF digits
  and sipp's RFC 2833 digit) raise no alert.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.realtraffic.media import (
    espeak,
    have,
    netem_available,
    netem_on_rtp,
    netns_pair,
    nft_loss_on_rtp,
    write_rtp_pcap,
)
from tests.realtraffic.test_media_quality import sipp_call, the_stream
from tests.realtraffic.tones import dtmf, encode_tones, music, nibbles
from voipscope.detect.tone_exfil import KIND, ToneExfilDetector
from voipscope.pipeline import FlowPipeline

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not have("sipp", "dumpcap", "ip", "tc"),
    reason="needs root, sipp (apt sip-tester), dumpcap, ip and tc",
)

LOSS_PCT = 2.0
DATA_BYTES = 64  # 128 symbols: 16 s of tones


def tone_call(
    tmp_path: Path, audio: np.ndarray, impair: Callable[[str, str], None] | None = None
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """One sipp call playing ``audio`` over a veth pair; (call, our stream, packets sent)."""
    sent = write_rtp_pcap(tmp_path / "pcap" / "g711a.pcap", audio)
    seconds = len(audio) / 8000
    with netns_pair("10.98.0") as (ns_a, ns_b, ip_a, ip_b, dev_a):
        if impair is not None:
            impair(ns_a, dev_a)
        capture = sipp_call(tmp_path, ns_a, ns_b, ip_a, ip_b, ns_b, "vb" + dev_a[2:], seconds)
    call, stream = the_stream(capture)
    assert call["state"] == "answered"
    return call, stream, sent


def alerts_of(call: dict[str, Any]) -> list[Any]:
    return ToneExfilDetector().check_call(call)


def no_alert_at_all(call: dict[str, Any]) -> None:
    """The benign calls raise nothing: the tone detector, and every detector of
    `voipscope alerts` over the whole capture."""
    assert alerts_of(call) == []
    assert [a for batch in FlowPipeline().run_alerts(call["capture"]) for a in batch] == []


def test_tones_decode_bit_exact_without_loss(tmp_path: Path) -> None:
    data = np.random.default_rng(71).integers(0, 256, DATA_BYTES).astype(np.uint8).tobytes()
    call, stream, sent = tone_call(tmp_path, encode_tones(data, lead_s=0.5))
    assert (stream["packets"], stream["lost"]) == (sent, 0)
    (alert,) = alerts_of(call)
    print(f"decoded {alert.data['decoded_hex'][:32]}... sent {data.hex()[:32]}...")
    assert (alert.kind, alert.severity) == (KIND, "high")
    assert alert.data["decoded_hex"] == data.hex()
    assert alert.data["call_id"] == call["call_id"]
    # The same through `voipscope alerts` (the detect stage beside the calls stage).
    found = [a for batch in FlowPipeline().run_alerts(call["capture"]) for a in batch]
    tone = [a for a in found if a["kind"] == KIND]
    assert len(tone) == 1 and tone[0]["data"]["decoded_hex"] == data.hex()
    assert tone[0]["src_ip"] == stream["src_ip"]
    assert not [a for a in found if a["kind"] != KIND]  # nothing else in a plain call


def test_tones_decode_through_two_percent_loss(tmp_path: Path) -> None:
    if netem_available():
        impair = functools.partial(netem_on_rtp, loss_pct=LOSS_PCT)
    elif have("nft"):
        impair = functools.partial(nft_loss_on_rtp, loss_pct=LOSS_PCT)
    else:
        pytest.skip("no netem qdisc and no nft: cannot drop packets")
    data = np.random.default_rng(72).integers(0, 256, DATA_BYTES).astype(np.uint8).tobytes()
    call, stream, sent = tone_call(tmp_path, encode_tones(data, lead_s=0.5), impair)
    (alert,) = alerts_of(call)
    got = bytes.fromhex(alert.data["decoded_hex"])
    right = sum(a == b for a, b in zip(nibbles(got), nibbles(data), strict=False))
    print(
        f"{impair.func.__name__}: sent {sent}, lost {stream['lost']} ({stream['loss_pct']:.2f} %); "
        f"{right}/{2 * len(data)} half-bytes right, {alert.data['erasure_count']} erasures"
    )
    assert stream["lost"] > 0
    assert len(got) == len(data) and right >= 0.99 * 2 * len(data)


@pytest.mark.skipif(not have("espeak-ng"), reason="needs espeak-ng (apt espeak-ng)")
def test_a_spoken_call_raises_nothing(tmp_path: Path) -> None:
    audio = np.random.default_rng(1).normal(0, 8, 8000 * 10)
    for at, text in ((0.5, "Hello, this is the network operations centre."),
                     (5.0, "Please confirm the trunk to the branch office is up.")):  # fmt: skip
        speech = espeak(text, tmp_path)[: len(audio) - int(at * 8000)]
        audio[int(at * 8000) : int(at * 8000) + len(speech)] += speech
    call, stream, _ = tone_call(tmp_path, audio)
    print("speech:", stream["tones"])
    no_alert_at_all(call)


def test_music_on_hold_raises_nothing(tmp_path: Path) -> None:
    call, stream, _ = tone_call(tmp_path, music(12.0))
    print("music:", stream["tones"])
    no_alert_at_all(call)


@pytest.mark.skipif(not have("espeak-ng"), reason="needs espeak-ng (apt espeak-ng)")
def test_an_ivr_call_with_dtmf_digits_raises_nothing(tmp_path: Path) -> None:
    prompt = espeak("For sales, press one. For support, press two.", tmp_path)
    audio = np.concatenate([prompt, np.zeros(4000), dtmf("2"), np.zeros(8000), dtmf("1234#")])
    audio = np.concatenate([audio, np.zeros(8000)])
    call, stream, _ = tone_call(tmp_path, audio)
    digits = "".join(d["digit"] for d in stream["inband_dtmf"])
    rfc4733 = [d["digit"] for s in call["streams"] for d in s["dtmf"]]
    print(f"IVR: in-band {digits!r}, RFC 4733 {rfc4733}")
    assert digits == "21234#" and rfc4733 == ["1"]
    no_alert_at_all(call)
