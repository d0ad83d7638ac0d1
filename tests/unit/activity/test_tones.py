"""Frame analysis (activity.tones) on synthesized audio: dominant frequency, tone share,
flatness, in-band DTMF, L16 decoding, and runs placed by RTP time through the tracker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.realtraffic.tones import ALPHABET_HZ, DTMF_HZ, dtmf, music
from tests.unit.activity.g711 import encode
from tests.unit.quality.rtp_support import only_stats, rtp, run, udp_at
from voipscope.activity import tones as TN

RATE_HZ = 8000
FRAME = 160
CODECS = TN.codec_table()
EVENT_OF_DIGIT = {d: k for k, d in enumerate("0123456789*#ABCD")}  # RFC 4733 §3.2


def analyse(audio: np.ndarray, pt: int = 8, frame: int = FRAME) -> list[tuple]:  # type: ignore[type-arg]
    """analyse_frame over each frame of ``audio`` sent as payload type ``pt``."""
    if pt in (0, 8):
        payload = np.frombuffer(encode(audio, "ulaw" if pt == 0 else "alaw"), np.uint8)
    else:
        payload = np.frombuffer(np.clip(audio, -32768, 32767).astype(">i2").tobytes(), np.uint8)
    x = np.zeros(TN.MAX_FRAME_SAMPLES)
    out = []
    for k in range(len(payload) // frame):
        n, _ = TN.frame_samples(payload, k * frame, frame, CODECS, pt, x)
        out.append(TN.analyse_frame(x, n, CODECS[pt, TN.TC_RATE_HZ]))
    return out


def tone(hz: float, seconds: float, rate: int = RATE_HZ, amplitude: float = 8000.0) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate)


@pytest.mark.parametrize("pt", [0, 8])
@pytest.mark.parametrize("hz", [*ALPHABET_HZ, 425.0, 1800.0])
def test_a_pure_tone_is_one_tone_at_its_frequency(pt: int, hz: float) -> None:
    for power, found_hz, share, flatness, key in analyse(tone(hz, 0.2), pt):
        assert power > TN.SILENT_POWER
        assert abs(found_hz - hz) <= 0.01 * hz  # a semitone is 5.9 %
        assert share >= 0.95 and flatness < 0.05 and key == -1


def test_a_frame_straddling_two_tones_is_not_one_tone() -> None:
    audio = np.concatenate([tone(ALPHABET_HZ[3], 0.01), tone(ALPHABET_HZ[9], 0.01)])
    (_, _, share, _, _) = analyse(audio)[0]
    assert share < TN.TONE_MIN_SHARE


def test_noise_is_flat_and_silence_is_silent() -> None:
    noise = np.random.default_rng(1).normal(0, 3000, RATE_HZ)
    frames = analyse(noise)
    assert all(f[3] >= 0.8 and f[2] < 0.2 for f in frames)
    quiet = np.random.default_rng(2).normal(0, 8, RATE_HZ)  # -72 dBov line noise
    assert all(f[0] < TN.SILENT_POWER and f[1:] == (0.0, 0.0, 0.0, -1) for f in analyse(quiet))


def test_music_with_harmonics_and_vibrato_has_no_tone_frames() -> None:
    frames = analyse(music(6.0))
    loud = [f for f in frames if f[0] >= TN.SILENT_POWER]
    assert len(loud) > 0.9 * len(frames)
    assert sum(f[2] >= TN.TONE_MIN_SHARE for f in loud) <= 0.02 * len(loud)


@pytest.mark.parametrize("digit", list(DTMF_HZ))
def test_every_dtmf_key_is_found_in_band(digit: str) -> None:
    frames = analyse(dtmf(digit, on_s=0.1, off_s=0.0))
    assert [f[4] for f in frames] == [EVENT_OF_DIGIT[digit]] * 5


@pytest.mark.parametrize(("pt", "channels"), [(11, 1), (10, 2)])
def test_l16_at_44100_hz_is_read_big_endian_first_channel(pt: int, channels: int) -> None:
    hz = ALPHABET_HZ[7]
    first = tone(hz, 0.2, rate=44100)
    audio = np.zeros(len(first) * channels)
    audio[::channels] = first  # a second channel, if any, is silent: the first is read
    frames = analyse(audio, pt, frame=882 * 2 * channels)  # 20 ms of 16-bit samples
    assert len(frames) == 10
    assert all(abs(f[1] - hz) <= 0.01 * hz and f[2] >= 0.95 for f in frames)
    assert CODECS[pt, TN.TC_RATE_HZ] == 44100 / 6  # block means of 6 samples


def test_codec_table_static_types_and_sdp_rtpmap() -> None:
    assert CODECS[0, TN.TC_CODEC] == TN.CODEC_ULAW and CODECS[8, TN.TC_CODEC] == TN.CODEC_ALAW
    assert CODECS[11, TN.TC_CLOCK_HZ] == 44100 and CODECS[10, TN.TC_CHANNELS] == 2
    assert CODECS[96, TN.TC_CODEC] == TN.CODEC_NONE  # dynamic: only with an rtpmap
    table = TN.codec_table({96: ("L16", 16000), 8: ("opus", 48000), 97: ("PCMU", 8000)})
    assert table[96, TN.TC_CODEC] == TN.CODEC_L16 and table[96, TN.TC_RATE_HZ] == 8000
    assert table[8, TN.TC_CODEC] == TN.CODEC_NONE  # SDP redefined the number
    assert table[97, TN.TC_CODEC] == TN.CODEC_ULAW


def _tone_stream(write_pcap, audio: np.ndarray, drop: set[int] = frozenset()):  # type: ignore[no-untyped-def, assignment]
    packets = []
    for k in range(len(audio) // FRAME):
        if k in drop:
            continue
        payload = encode(audio[k * FRAME : (k + 1) * FRAME], "alaw")
        packets.append(udp_at(k * 20, rtp(k, 5000 + k * FRAME, pt=8, payload=payload)))
    (stream,) = only_stats(run(write_pcap, packets)).streams
    return stream


def test_runs_are_placed_by_rtp_time_across_a_lost_packet(write_pcap) -> None:  # type: ignore[no-untyped-def]
    audio = np.concatenate([tone(ALPHABET_HZ[0], 0.2), tone(ALPHABET_HZ[15], 0.2)])
    stream = _tone_stream(write_pcap, audio, drop={4})  # frame 4: 80-100 ms
    runs = stream.tone_runs
    assert [round(r[2] / 10) for r in runs] == [26, 117]
    assert runs[0][:2] == [0.0, 0.2] and runs[0][3] == 9  # 9 frames, one lost, no break
    assert runs[1][:2] == [0.2, 0.4] and runs[1][3] == 10
    tones = stream.tones
    assert tones is not None and tones["tone_frames"] == 19 and tones["tone_share"] == 1.0


def test_tone_analysis_can_be_turned_off(write_pcap, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from voipscope.config import Config
    from voipscope.quality.rtp_streams import RtpStreamTracker

    packets = [
        udp_at(k * 20, rtp(k, k * FRAME, pt=8, payload=encode(tone(440, 0.02), "alaw")))
        for k in range(20)
    ]
    tracker = RtpStreamTracker(Config().flows.max_flows, tones=False)
    (stream,) = only_stats(run(write_pcap, packets, tracker=tracker)).streams
    assert stream.tones is None and stream.tone_runs == [] and stream.packets == 20
