"""RTP whose payload type no SDP names (a capture without its signalling, SIP over TLS)
but whose payloads are Opus by their own bytes: libopus packets, each TOC's duration the
48 kHz timestamp step (RFC 6716 §3.1, RFC 7587 §4.1). The call record names the codec
from the payloads, takes the 48 kHz clock for jitter (RFC 3550 A.8, as the reference
computes it), and says MOS is unknown for the reason that holds (no published impairment
factor for Opus), not "codec unknown". The same stream with random payloads of the same
sizes keeps both unknown. Skipped where libopus is not installed (Debian: libopus0)."""

from __future__ import annotations

import random
import struct

import pytest

from tests import pcapbuild as pb
from tests.unit.activity.opus_lib import LIBOPUS, SET_BITRATE, Opus
from tests.unit.activity.test_opus_toc import audio
from tests.unit.quality.rtp_support import a8_reference
from voipscope.api import iter_calls
from voipscope.calls.assembler import CODEC_FROM_PAYLOAD
from voipscope.quality.clock_candidates import CLOCK_FROM_OPUS

pytestmark = pytest.mark.skipif(LIBOPUS is None, reason="needs libopus (apt libopus0)")

A, B = ("10.0.0.1", 4000), ("10.0.0.2", 5000)
T0_NS = 1_700_000_000 * 1_000_000_000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz
PACKETS = 100


def payloads(random_bytes: bool) -> list[bytes]:
    opus = Opus()
    opus.ctl(SET_BITRATE, 24_000)
    sound = audio(-45.0)
    out = [opus.encode(sound[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES]) for k in range(PACKETS)]
    if random_bytes:
        rng = random.Random(5)
        out = [rng.randbytes(len(p)) for p in out]
    return out


def stream(random_bytes: bool, seed: int) -> tuple[list[pb.Packet], list[int], list[int]]:
    rng = random.Random(seed)
    arrivals = [k * 20_000 + rng.randrange(6000) for k in range(PACKETS)]
    stamps = [7 + k * FRAME_SAMPLES for k in range(PACKETS)]
    packets = []
    for k, (us, payload) in enumerate(zip(arrivals, payloads(random_bytes), strict=True)):
        rtp = struct.pack("!BBHII", 0x80, 111, k + 1, stamps[k], 0xABC) + payload
        frame = pb.udp_packet(0.0, A[0], A[1], B[0], B[1], rtp).data
        packets.append(pb.Packet(T0_NS + us * 1000, frame))
    return packets, arrivals, stamps


def only_stream(write_pcap, packets):  # type: ignore[no-untyped-def]
    calls = [c for c in iter_calls(write_pcap(packets)) if c["streams"]]
    assert len(calls) == 1, calls
    (s,) = calls[0]["streams"]
    return s


def test_opus_named_and_clocked_by_its_own_payloads(write_pcap):
    packets, arrivals, stamps = stream(False, 1)
    s = only_stream(write_pcap, packets)
    assert (s["codec"], s["codec_source"]) == ("opus", CODEC_FROM_PAYLOAD)
    assert (s["clock_rate_hz"], s["clock_source"]) == (48_000, CLOCK_FROM_OPUS)
    _, mean, top = a8_reference(arrivals, stamps, 48_000)
    assert s["jitter_ms"] == pytest.approx(mean, rel=1e-9)
    assert s["max_jitter_ms"] == pytest.approx(top, rel=1e-9)
    assert s["jitter_reason"] is None
    assert s["mos"] is None and "opus" in s["mos_reason"] and "unknown" not in s["mos_reason"]


def test_random_payloads_of_the_same_sizes_stay_unknown(write_pcap):
    packets, _, _ = stream(True, 1)
    s = only_stream(write_pcap, packets)
    assert (s["codec"], s["codec_source"], s["clock_rate_hz"]) == (None, None, None)
    assert s["jitter_ms"] is None and "clock rate unknown" in s["jitter_reason"]
