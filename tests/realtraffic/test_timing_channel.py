"""Data in the send times of a real SIP call's RTP, and calls whose timing must not look
like it (activity.timing, detect.timing_channel).

sipp's uac_pcap scenario replays our PCMA RTP with the pcap's timing between two network
namespaces this test creates; dumpcap captures at the callee; the pipeline reads the
capture. The coded calls hold a packet back by 10 ms for each 1 bit of a message (RTP
timestamps and audio untouched):

- replayed as it is: the message comes back from the alert's data (all but at most two
  bytes: sipp's pacing under load may send a packet late);
- through a relay adding 5 +- 2 ms of network delay (the jitter relay; netem where the
  kernel has it): at least 97 % of the bytes right;
- the same frames as a dynamic payload type (111, 48 kHz timestamps, opus/48000/2 in
  the SDP): read as from PCMA;
- the same audio uncoded through 20 +- 8 ms of jitter, and a sender that sends its
  frames in pairs every 40 ms (two levels, in a fixed order): no alert.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.realtraffic.media import have, netns_pair, relay_jitter_on_rtp, write_rtp_pcap
from tests.realtraffic.test_media_quality import sipp_call, the_stream
from voipscope.detect.timing_channel import KIND
from voipscope.pipeline import FlowPipeline

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not have("sipp", "dumpcap", "ip", "nft"),
    reason="needs root, sipp (apt sip-tester), dumpcap, ip and nft",
)

MESSAGE = b"AKIA5EXAMPLE7KEY: wire 40k to 7781, today!"  # 43 bytes: 344 packets
HOLD_S = 0.010  # a 1 bit is sent this much late
FRAME_S = 0.020


def bits_of(message: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(message, np.uint8))


def call_with_delays(
    tmp_path: Path,
    delays_s: np.ndarray,
    jitter: tuple[float, float] | None = None,
    opus: bool = False,
) -> tuple[dict[str, Any], list[dict]]:
    """A sipp call whose packet k is sent delays_s[k] late; ``jitter``: (delay, jitter) ms
    of the relay on the way; ``opus``: the frames go as dynamic payload type 111 with
    48 kHz timestamps, the SDP offer saying opus/48000/2. (our stream, alerts of the
    capture)."""
    packets = len(delays_s) + 25  # half a second of uncoded tail
    audio = np.random.default_rng(7).normal(0, 2500, packets * 160)
    form = {"payload_type": 111, "ticks_per_frame": 960} if opus else {}
    write_rtp_pcap(tmp_path / "pcap" / "g711a.pcap", audio, send_delays_s=list(delays_s), **form)
    sdp_media = (
        "m=audio [auto_media_port] RTP/AVP 111 101\n      a=rtpmap:111 opus/48000/2\n"
        if opus
        else None
    )
    seconds = packets * FRAME_S
    with netns_pair("10.97.0") as (ns_a, ns_b, ip_a, ip_b, dev_a):
        stop = None
        if jitter is not None:
            stop = relay_jitter_on_rtp(ns_a, dev_a, ip_a, ip_b, 0.0, jitter[0], jitter[1])
        try:
            capture = sipp_call(
                tmp_path, ns_a, ns_b, ip_a, ip_b, ns_b, "vb" + dev_a[2:], seconds, sdp_media
            )
        finally:
            if stop is not None:
                print(stop())
    call, stream = the_stream(capture)
    assert call["state"] == "answered"
    alerts = [a for batch in FlowPipeline().run_alerts(str(capture)) for a in batch]
    print(stream["timing"])  # shown with -s
    return stream, alerts


def test_a_message_in_the_send_times_is_found_and_read(tmp_path: Path) -> None:
    stream, alerts = call_with_delays(tmp_path, bits_of(MESSAGE) * HOLD_S)
    (alert,) = [a for a in alerts if a["kind"] == KIND]
    assert alert["severity"] == "high" and alert["data"]["ssrc"] == stream["ssrc"]
    # sipp paces the replay with its own timer: on a loaded machine a packet can leave
    # 10 ms late and flip a bit (a CI run: "wi?e"), so the text is compared byte by byte.
    text = alert["data"]["decoded_text"]
    right = sum(a == b for a, b in zip(text, MESSAGE.decode(), strict=False))
    assert len(text) == len(MESSAGE) and right >= len(MESSAGE) - 2, alert["data"]
    low, high = alert["data"]["levels_ms"]
    assert abs((high - low) - HOLD_S * 1000) < 1.0
    assert stream["timing"]["coded"] is True


def test_a_message_in_a_dynamic_payload_types_send_times(tmp_path: Path) -> None:
    """The frames as payload type 111 at 48 kHz (Opus's labels; no clock while the flow
    runs): the transits are taken against the clock the timestamps show, which the SDP
    then confirms, and the message comes back as from PCMA."""
    stream, alerts = call_with_delays(tmp_path, bits_of(MESSAGE) * HOLD_S, opus=True)
    assert (stream["payload_type"], stream["clock_rate_hz"]) == (111, 48000)
    (alert,) = [a for a in alerts if a["kind"] == KIND]
    text = alert["data"]["decoded_text"]
    right = sum(a == b for a, b in zip(text, MESSAGE.decode(), strict=False))
    assert len(text) == len(MESSAGE) and right >= len(MESSAGE) - 2, alert["data"]
    assert stream["timing"]["clock_hz"] == 48000 and stream["timing"]["clock_provisional"]


def test_a_message_survives_network_jitter(tmp_path: Path) -> None:
    _, alerts = call_with_delays(tmp_path, bits_of(MESSAGE) * HOLD_S, jitter=(5.0, 2.0))
    (alert,) = [a for a in alerts if a["kind"] == KIND]
    got = bytes.fromhex(alert["data"]["decoded_hex"])[: len(MESSAGE)]
    right = sum(a == b for a, b in zip(got, MESSAGE, strict=False))
    assert right >= 0.97 * len(MESSAGE), (got, alert["data"])


def test_jitter_alone_is_not_a_channel(tmp_path: Path) -> None:
    stream, alerts = call_with_delays(tmp_path, np.zeros(344), jitter=(20.0, 8.0))
    assert stream["timing"] is not None and stream["timing"]["coded"] is False
    assert [a for a in alerts if a["kind"] == KIND] == []


def test_frames_sent_in_pairs_are_not_a_channel(tmp_path: Path) -> None:
    """Every even frame waits for the next (a sender batching two frames per 40 ms): two
    transit levels 20 ms apart, but in a fixed order."""
    delays = np.tile([FRAME_S, 0.0], 172)
    stream, alerts = call_with_delays(tmp_path, delays)
    timing = stream["timing"]
    assert len(timing["levels_ms"]) == 2 and timing["coded"] is False, timing
    assert [a for a in alerts if a["kind"] == KIND] == []


def test_a_message_sent_late_in_the_call_is_found_and_read(tmp_path: Path) -> None:
    """The sender waits 14 s (700 frames) before it signals: the message starts 188
    packets into the stream's second window of 512 and runs 20 packets into the third,
    where the sender then idles on level 0 (the tail is read on the code's levels)."""
    idle = 700
    stream, alerts = call_with_delays(
        tmp_path, np.concatenate([np.zeros(idle), bits_of(MESSAGE) * HOLD_S, np.zeros(60)])
    )
    (alert,) = [a for a in alerts if a["kind"] == KIND]
    assert alert["severity"] == "high" and alert["data"]["coded_windows"][0] == 1
    text = alert["data"]["decoded_text"]
    assert text is not None, alert["data"]
    right = max(  # sipp's timer may flip a bit or two (see the first test)
        sum(a == b for a, b in zip(text[k:], MESSAGE.decode(), strict=False))
        for k in range(len(text))
    )
    assert right >= len(MESSAGE) - 2, alert["data"]
    timing = stream["timing"]
    assert timing["text_bit_offset"] == (idle - 512) % 8
    assert timing.get("continued_windows") == [2], timing
