"""Tone exfiltration (detect.tone_exfil): data encoded as tones in G.711 RTP, decoded
through the real tracker (activity.tones in the RTP kernel) and judged; benign audio
(music, noise-free IVR digits, call progress tones, speech) raises nothing.

The audio comes from an encoder written apart from the decoder (tests/realtraffic/tones.py):
random bytes, one C-major tone per half-byte, 1/8 s symbols, high nibble first.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.realtraffic.tones import ALPHABET_HZ, dtmf, encode_tones, music, nibbles
from tests.unit.activity.g711 import encode
from tests.unit.quality.rtp_support import only_stats, rtp, run, udp_at
from voipscope.detect.alerts import AlertBook
from voipscope.detect.tone_exfil import (
    KIND,
    KIND_NON_SPEECH,
    DecoderConfig,
    ToneExfil,
    ToneExfilDetector,
    decode_tone_runs,
)

FRAME = 160  # 20 ms of 8 kHz G.711


def stream_of(
    write_pcap: Callable[..., Path], audio: np.ndarray, loss: float = 0.0, seed: int = 0,
    pt: int = 8, extra: list[bytes] = (),  # type: ignore[assignment]
) -> dict[str, Any]:  # fmt: skip
    """The stream record of ``audio`` sent as 20 ms G.711 packets (with 0-3 ms of arrival
    jitter and ``loss`` of them dropped at random), as Call records carry it."""
    rng = np.random.default_rng(seed)
    packets = []
    for k in range(len(audio) // FRAME):
        if rng.random() < loss:
            continue
        payload = encode(audio[k * FRAME : (k + 1) * FRAME], "alaw" if pt == 8 else "ulaw")
        at_ms = k * 20 + rng.uniform(0, 3)
        packets.append(udp_at(at_ms, rtp(k, 9000 + k * FRAME, pt=pt, payload=payload)))
    for j, payload in enumerate(extra):
        packets.append(udp_at(len(audio) / 8 + 20 * j, payload))
    (stream,) = only_stats(run(write_pcap, packets)).streams
    return stream.to_dict()


def random_bytes(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n).astype(np.uint8).tobytes()


@pytest.mark.parametrize("pt", [0, 8])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_bytes_round_trip_bit_exact(write_pcap, pt: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    data = random_bytes(48, seed)
    stream = stream_of(write_pcap, encode_tones(data, lead_s=0.3), pt=pt, seed=seed)
    (alert,) = ToneExfilDetector().check_call({"call_id": "c1", "streams": [stream]})
    assert (alert.kind, alert.severity) == (KIND, "high")
    assert alert.data["decoded_hex"] == data.hex()
    assert alert.data["symbol_s"] == pytest.approx(0.125, abs=1e-4)
    assert alert.data["alphabet_hz"] == pytest.approx(ALPHABET_HZ, rel=0.01)
    assert alert.data["call_id"] == "c1" and alert.src_ip == "10.0.0.1"


def test_nibbles_survive_two_percent_frame_loss(write_pcap) -> None:  # type: ignore[no-untyped-def]
    right = total = 0
    for seed in range(6):
        data = random_bytes(64, 100 + seed)
        stream = stream_of(write_pcap, encode_tones(data), loss=0.02, seed=seed)
        assert stream["lost"] > 0 or seed > 0
        decoded = decode_tone_runs(stream["tone_runs"])
        assert decoded is not None and len(decoded.data) == len(data)
        got, want = nibbles(decoded.data), nibbles(data)
        right += sum(a == b for a, b in zip(got, want, strict=True))
        total += len(want)
    print(f"2 % loss: {right}/{total} nibbles right ({100 * right / total:.2f} %)")
    assert right >= 0.99 * total


def test_a_short_message_uses_the_scale_for_tones_it_never_sent(write_pcap) -> None:  # type: ignore[no-untyped-def]
    data = b"\x01\x23\x45\x67\x9a\xbc"  # no 8, d, e, f: 12 tones of 16
    stream = stream_of(write_pcap, encode_tones(data * 2))
    decoded = decode_tone_runs(stream["tone_runs"])
    assert decoded is not None and decoded.data == data * 2
    assert decoded.alphabet_source == "hint" and decoded.alphabet_complete
    # Without the hint the tones are numbered in order: wrong above the first gap, and said.
    blind = decode_tone_runs(stream["tone_runs"], DecoderConfig(alphabet_hint_hz=()))
    assert blind is not None and not blind.alphabet_complete and blind.data != data * 2


def test_nibble_order_is_a_parameter(write_pcap) -> None:  # type: ignore[no-untyped-def]
    data = random_bytes(20, 9)
    stream = stream_of(write_pcap, encode_tones(data))
    swapped = bytes((b >> 4) | (b & 0x0F) << 4 for b in data)
    low = decode_tone_runs(stream["tone_runs"], DecoderConfig(nibble_order="low-first"))
    assert low is not None and low.data == swapped
    with pytest.raises(ValueError, match="nibble_order"):
        decode_tone_runs(stream["tone_runs"], DecoderConfig(nibble_order="middle"))


def test_another_alphabet_and_symbol_time_are_learned(write_pcap) -> None:  # type: ignore[no-untyped-def]
    alphabet = tuple(600.0 * 1.08**k for k in range(16))  # 600-3050 Hz, 8 % steps
    data = random_bytes(40, 4)
    stream = stream_of(write_pcap, encode_tones(data, symbol_s=0.08, alphabet_hz=alphabet))
    decoded = decode_tone_runs(stream["tone_runs"])
    assert decoded is not None and decoded.data == data
    assert decoded.symbol_s == pytest.approx(0.08, abs=1e-4)


def test_runs_without_a_grid_decode_to_nothing() -> None:
    assert decode_tone_runs([]) is None
    assert decode_tone_runs([[0.0, 1.0, 440.0, 50, 1.0], [2.0, 3.0, 440.0, 50, 1.0]]) is None


# -- what must not alert ---------------------------------------------------------------


def test_music_raises_nothing(write_pcap) -> None:  # type: ignore[no-untyped-def]
    stream = stream_of(write_pcap, music(30.0))
    assert stream["tones"]["tone_share"] < 0.05
    assert ToneExfilDetector().check_call({"streams": [stream]}) == []


def test_ringback_and_busy_tones_raise_nothing(write_pcap) -> None:  # type: ignore[no-untyped-def]
    t = np.arange(8000) / 8000
    ring = np.concatenate([4000 * np.sin(2 * np.pi * 425 * t), np.zeros(32000)] * 3)
    busy = np.concatenate([4000 * np.sin(2 * np.pi * 425 * t[:4000]), np.zeros(4000)] * 12)
    for audio in (ring, busy):
        stream = stream_of(write_pcap, audio)
        assert stream["tones"]["tone_share"] > 0.9  # all tone, but one frequency
        assert ToneExfilDetector().check_call({"streams": [stream]}) == []


def test_ivr_digits_raise_nothing(write_pcap) -> None:  # type: ignore[no-untyped-def]
    audio = np.concatenate([music(4.0), dtmf("1234#"), np.zeros(8000), dtmf("42")])
    stream = stream_of(write_pcap, audio)
    assert "".join(d["digit"] for d in stream["inband_dtmf"]) == "1234#42"
    assert ToneExfilDetector().check_call({"streams": [stream]}) == []


def test_machine_speed_dtmf_is_tone_exfiltration(write_pcap) -> None:  # type: ignore[no-untyped-def]
    data = random_bytes(24, 5)
    digits = "".join("0123456789*#ABCD"[n] for n in nibbles(data))
    stream = stream_of(write_pcap, dtmf(digits, on_s=0.06, off_s=0.04))
    (alert,) = ToneExfilDetector().check_call({"streams": [stream]})
    assert (alert.kind, alert.severity) == (KIND, "medium")
    assert alert.data["dtmf_digits"] == digits and alert.data["decoded_hex"] == data.hex()


def test_noise_like_audio_is_non_speech_media(write_pcap) -> None:  # type: ignore[no-untyped-def]
    noise = np.random.default_rng(8).normal(0, 4000, 8000 * 12)  # modem-like, not speech
    (alert,) = ToneExfilDetector().check_call({"streams": [stream_of(write_pcap, noise)]})
    assert (alert.kind, alert.severity) == (KIND_NON_SPEECH, "low")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_speech_raises_nothing(write_pcap, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.realtraffic.media import spoken_call

    audio, _ = spoken_call(
        [(0.5, "Good morning, you are through to the network operations centre."),
         (5.0, "The trunk to the branch office is up again, thank you.")],
        10.0, tmp_path,
    )  # fmt: skip
    stream = stream_of(write_pcap, audio)
    assert stream["tones"]["tone_share"] < 0.1
    assert ToneExfilDetector().check_call({"streams": [stream]}) == []


def test_the_stage_face_raises_into_the_book(write_pcap) -> None:  # type: ignore[no-untyped-def]
    data = random_bytes(16, 11)
    stream = stream_of(write_pcap, encode_tones(data))
    book = AlertBook()
    detector = ToneExfil(book)
    detector.on_call({"call_id": "x", "streams": [stream]})
    detector.on_call({"call_id": "x", "streams": [stream]})  # the same again: one alert
    (alert,) = book.finish()
    assert alert.count == 2 and alert.data["decoded_hex"] == data.hex()
    assert alert.to_record()["data"]["decoded_hex"] == data.hex()


SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "captures" / "ndpi"


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/captures/ndpi")
def test_no_alert_on_the_shared_captures() -> None:
    """Every shared capture (those with RTP among them: G.711, fax, SRTP, app media)."""
    from voipscope.api import iter_calls

    detector = ToneExfilDetector()
    analysed = 0
    for path in sorted(p for p in SHARED.iterdir() if p.suffix in (".pcap", ".pcapng")):
        for call in iter_calls(path):
            analysed += sum(bool(s.get("tones")) for s in call.get("streams") or [])
            assert detector.check_call(call) == [], path.name
    assert analysed >= 3  # G.711 streams whose frames were analysed
