"""A call between two real softphones: baresip (Debian's baresip-core) calls baresip over
SIP/UDP with Opus (with and without DTX) or G.722, each playing espeak-ng phrases at known
times, from one network namespace to another over a veth pair this test creates (baresip
takes its media address from a network interface, and loopback is none), captured with
dumpcap on the callee's side, then read by ``voipscope calls``.

What a real Opus sender puts on the wire is what the conversation meter has to read.
Measured here (libopus through baresip 1.0): for digital silence it sends 3-byte frames
(TOC + 2 bytes), with DTX 1-byte frames and a 3-byte update every ~400 ms; for anything
else full frames around 250 bytes (120-440) whatever the sound, so sizes show pauses only
where the sender's input is silent (a muted microphone, noise suppression, these files).
The truth of who talks when comes from the audio (first and last non-zero sample of each
phrase) for the starts, and for the ends from the wire as tshark reads it (the last
full frame before the sender's silence frames): libopus goes on sending full frames
for 90-330 ms after the sound stopped (its own hangover), which no reader of the wire can
undo, and which is checked to stay behind the audio end by less than half a second.
G.722 sends a full frame every 20 ms whatever the sound: there the frames' decoded energy
(the lower sub-band) says who talks, and both ends are held to the audio's own.

Traffic stays on the veth between the two namespaces, which are deleted afterwards. Skipped,
with the reason, when not root or when baresip (with its opus and aufile modules),
dumpcap, tshark, espeak-ng or ip are missing.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.realtraffic import tshark_streams
from tests.realtraffic.livens import (
    CLIENT_IF,
    CLIENT_IP,
    SERVER_IF,
    SERVER_IP,
    VethPair,
    stop_process,
    veth_pair,
)
from tests.realtraffic.media import in_ns
from tests.realtraffic.tones import encode_tones
from voipscope.api import iter_calls
from voipscope.detect.tone_exfil import KIND, ToneExfilDetector

TOOLS = ("baresip", "dumpcap", "tshark", "espeak-ng", "ip")
MODULES = Path("/usr/lib/baresip/modules")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0
    or any(shutil.which(t) is None for t in TOOLS)
    or not all((MODULES / m).exists() for m in ("opus.so", "g722.so", "aufile.so", "account.so")),
    reason="needs root, baresip (apt baresip-core), dumpcap, tshark, espeak-ng and ip",
)


@dataclass(frozen=True)
class Codec:
    name: str  # as baresip's audio_codecs names it
    module: str
    rate_hz: int  # what baresip's aufile source must be given
    channels: int
    dtx: bool
    sdp_name: str  # what the call's streams must say
    clock_hz: int
    clock_source: str
    by_energy: bool  # silence from the decoded frames, not from the sender's frames
    method: str  # the stream's activity_method
    noise_dbfs: float | None = None  # background noise under everything each side plays
    settings: str = ""  # more of baresip's config

    @property
    def ends_from_audio(self) -> bool:
        """Spurt ends held to the audio's, not to the sender's last full frame."""
        return self.by_energy or self.noise_dbfs is not None


OPUS = Codec(
    name="opus/48000/2",
    module="opus.so",
    rate_hz=48_000,
    channels=2,
    dtx=False,
    sdp_name="opus/48000/2",
    clock_hz=48_000,
    clock_source="SDP rtpmap",
    by_energy=False,
    # Its full frames are CELT at baresip's default rate (no flags), its silence frames
    # of <= 3 bytes are silence by size alone.
    method="packet gaps (DTX)",
)
PCMU = Codec(
    name="PCMU/8000/1",
    module="g711.so",
    rate_hz=8_000,
    channels=1,
    dtx=False,
    sdp_name="PCMU/8000",
    clock_hz=8_000,
    clock_source="payload type table (RFC 3551)",
    by_energy=True,
    method="payload energy (G.711)",
)
CODECS = {
    "opus": OPUS,
    "opus-dtx": replace(OPUS, dtx=True),
    # Background noise at -45 dBFS, at a voice rate (libopus codes SILK or hybrid frames,
    # noise at nearly the size of speech): the encoder's VAD flags say who talks.
    "opus-noise": replace(
        OPUS,
        noise_dbfs=-45.0,
        settings="opus_bitrate 24000\nopus_application voip\n",
        method="Opus voice-activity flags (SILK)",
    ),
    # G.722's RTP clock is 8000 although it samples at 16 kHz (RFC 3551 §4.5.2).
    "g722": Codec(
        name="G722/16000/1",
        module="g722.so",
        rate_hz=16_000,
        channels=1,
        dtx=False,
        sdp_name="G722/8000",
        clock_hz=8_000,
        clock_source="payload type table (RFC 3551)",
        by_energy=True,
        method="payload energy (G.722 lower band)",
    ),
}
CALL_S = 10.0  # the caller's file: baresip hangs up when it ends
CALLER_PHRASES = [(0.8, "Hello, this is the network operations centre."), (7.0, "Thank you.")]
CALLEE_PHRASES = [(4.0, "Please confirm the trunk is up.")]
TOLERANCE_S = 0.100  # issue 5: talk spurts within 100 ms of the truth
WIRE_END_TOLERANCE_S = 0.060  # against the sender's last full frame: three frames
MAX_ENCODER_HANGOVER_S = 0.5
SILENCE_FRAME_MAX_BYTES = 3


def phrase_audio(
    phrases: list[tuple[float, str]], seconds: float, rate_hz: int, noise_dbfs: float | None = None
) -> tuple[np.ndarray, list]:
    """Samples at ``rate_hz``, exact zeros outside the phrases (or white noise at
    ``noise_dbfs`` under everything); the truth as (start, end) s."""
    audio = np.zeros(int(seconds * rate_hz))
    truth = []
    for at, text in phrases:
        said = subprocess.run(["espeak-ng", "-s", "150", "--stdout", text],
                              capture_output=True, check=True).stdout  # fmt: skip
        with wave.open(io.BytesIO(said)) as w:
            rate = w.getframerate()
            speech = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64)
        t = np.arange(int(len(speech) * rate_hz / rate)) / rate_hz
        speech = np.round(np.interp(t, np.arange(len(speech)) / rate, speech))
        start = int(at * rate_hz)
        audio[start : start + len(speech)] = speech[: len(audio) - start]
        sounding = np.flatnonzero(speech)
        truth.append((at + sounding[0] / rate_hz, at + (sounding[-1] + 1) / rate_hz))
    if noise_dbfs is not None:
        rng = np.random.default_rng(len(phrases))
        audio += np.round(rng.normal(0, 32768 * 10 ** (noise_dbfs / 20), len(audio)))
    return audio, truth


def write_wav(path: Path, audio: np.ndarray, codec: Codec) -> None:
    """baresip's aufile source wants the codec's own rate and channels."""
    samples = np.clip(audio, -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(codec.channels)
        w.setsampwidth(2)
        w.setframerate(codec.rate_hz)
        w.writeframes(np.repeat(samples, codec.channels).tobytes())


def baresip_dir(
    workdir: Path,
    user: str,
    ip: str,
    interface: str,
    rtp_ports: str,
    wav: Path,
    codec: Codec,
    account: str = "",
) -> Path:
    """``account``: more account parameters (";medianat=turn;...")."""
    conf = workdir / user
    conf.mkdir()
    (conf / "config").write_text(
        f"poll_method epoll\nnet_interface {interface}\nsip_listen {ip}:5060\n"
        f"audio_source aufile,{wav}\naudio_player aufile,{workdir / (user + '-heard.wav')}\n"
        f"rtp_ports {rtp_ports}\nmodule_path {MODULES}\n"
        f"module {codec.module}\nmodule aufile.so\nmodule_app account.so\nmodule_app menu.so\n"
        f"opus_dtx {'yes' if codec.dtx else 'no'}\n{codec.settings}"
    )
    # No registrar: the caller dials the callee's address; the callee answers at once.
    (conf / "accounts").write_text(
        f"<sip:{user}@{ip}>;regint=0;answermode=auto;audio_codecs={codec.name}{account}\n"
    )
    return conf


@pytest.fixture
def pair() -> Iterator[VethPair]:
    yield from veth_pair()


def baresip_call(
    pair: VethPair,
    workdir: Path,
    codec: Codec,
    caller_audio: np.ndarray,
    callee_audio: np.ndarray,
    caller_account: str = "",
    callee_account: str = "",
) -> Path:
    """A call from the client namespace's baresip to the server's, each playing its audio
    (at ``codec.rate_hz``); the caller hangs up when its audio ends. The capture."""
    seconds = len(caller_audio) / codec.rate_hz
    write_wav(workdir / "caller.wav", caller_audio, codec)
    write_wav(workdir / "callee.wav", callee_audio, codec)
    a = baresip_dir(workdir, "alice", CLIENT_IP, CLIENT_IF, "20000-20049",
                    workdir / "caller.wav", codec, caller_account)  # fmt: skip
    b = baresip_dir(workdir, "bob", SERVER_IP, SERVER_IF, "20050-20099",
                    workdir / "callee.wav", codec, callee_account)  # fmt: skip
    capture = workdir / "call.pcapng"
    dumpcap = subprocess.Popen(
        in_ns(pair.server, "dumpcap", "-q", "-i", SERVER_IF, "-a",
              f"duration:{seconds + 25:.0f}", "-w", str(capture)),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    callee = None
    try:
        time.sleep(1.0)  # dumpcap needs a moment before the first packet
        with (workdir / "bob.log").open("wb") as log:
            callee = subprocess.Popen(in_ns(pair.server, "baresip", "-f", str(b),
                                            "-t", f"{seconds + 30:.0f}"),
                                      stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        time.sleep(1.0)
        caller = subprocess.run(
            in_ns(pair.client, "baresip", "-f", str(a), "-t", f"{seconds + 4:.0f}",
                  "-e", f"/dial sip:bob@{SERVER_IP}"),
            capture_output=True, timeout=seconds + 30, check=False,
        )  # fmt: skip
        said = caller.stdout.decode(errors="replace")
        assert "Call established" in said, said[-800:]
        time.sleep(0.5)
    finally:
        if callee is not None:
            stop_process(callee)
        dumpcap.terminate()
        dumpcap.wait(timeout=10)
    return capture


def tshark_frames(capture: Path) -> tuple[dict[int, list[tuple[float, int]]], dict[int, int]]:
    """(arrival s, RTP payload bytes) and the payload type per source port, as tshark
    reads them (the SDP tells it which flows are RTP)."""
    out = subprocess.run(
        ["tshark", "-n", "-r", str(capture), "-Y", "rtp", "-T", "fields",
         "-e", "udp.srcport", "-e", "frame.time_epoch", "-e", "udp.length", "-e", "rtp.p_type"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    frames: dict[int, list[tuple[float, int]]] = {}
    payload_types: dict[int, int] = {}
    for line in out.splitlines():
        port, at, udp_length, payload_type = line.split("\t")
        frames.setdefault(int(port), []).append((float(at), int(udp_length) - 8 - 12))
        payload_types[int(port)] = int(payload_type)
    return frames, payload_types


def wire_end(frames: list[tuple[float, int]], after_s: float) -> float:
    """The end of the full frames the sender sent from ``after_s`` on: one frame after
    the last one before its first silence frame."""
    last = None
    for at, size in frames:
        if at < after_s:
            continue
        if size <= SILENCE_FRAME_MAX_BYTES and last is not None:
            break
        if size > SILENCE_FRAME_MAX_BYTES:
            last = at
    assert last is not None
    return last + 0.020


def check_spurts(
    stream: dict[str, Any],
    truth: list[tuple[float, float]],
    frames: list[tuple[float, int]],
    codec: Codec,
) -> None:
    # The file's first frame is the stream's first packet (baresip starts the source
    # with the media); Opus's 6.5 ms look-ahead is inside the tolerance.
    origin = stream["first_seen"]
    found = [(s - origin, e - origin) for s, e in stream["talk_spurts"]]
    print(stream["src_port"], stream["activity_method"], "found", found, "truth", truth)
    assert len(found) == len(truth), (found, truth)
    for (s, e), (ts, te) in zip(found, truth, strict=True):
        assert abs(s - ts) <= TOLERANCE_S, (found, truth)
        if codec.ends_from_audio:
            assert abs(e - te) <= TOLERANCE_S, (found, truth)
            continue
        sent_until = wire_end(frames, origin + ts) - origin
        print(f"  phrase {ts:.3f}-{te:.3f}: sender's hangover {sent_until - te:.3f} s")
        assert 0 <= sent_until - te <= MAX_ENCODER_HANGOVER_S
        assert abs(e - sent_until) <= WIRE_END_TOLERANCE_S, (found, truth, sent_until)


@pytest.mark.parametrize("codec", CODECS.values(), ids=CODECS.keys())
def test_a_softphone_call(pair: VethPair, tmp_path: Path, codec: Codec) -> None:
    caller_audio, caller_truth = phrase_audio(
        CALLER_PHRASES, CALL_S, codec.rate_hz, codec.noise_dbfs
    )
    callee_audio, callee_truth = phrase_audio(
        CALLEE_PHRASES, CALL_S + 5, codec.rate_hz, codec.noise_dbfs
    )
    capture = baresip_call(pair, tmp_path, codec, caller_audio, callee_audio)
    calls = [c for c in iter_calls(capture) if c["kind"] == "call"]
    assert len(calls) == 1, calls
    (call,) = calls
    assert call["state"] == "answered" and call["final_code"] == 200
    assert (call["caller"], call["callee"]) == (f"sip:alice@{CLIENT_IP}", f"sip:bob@{SERVER_IP}")
    assert (call["caller_ip"], call["callee_ip"]) == (CLIENT_IP, SERVER_IP)
    assert any(ua.startswith("baresip") for ua in call["user_agents"]), call["user_agents"]
    assert call["ended_by"] == "caller", call["evidence"]  # the caller's file ran out
    assert not [e for e in call["evidence"] if "media" in e], call["evidence"]

    theirs = tshark_streams.listed(capture)
    assert len(call["streams"]) == len(theirs) == 2, (call["streams"], theirs)
    frames, payload_types = tshark_frames(capture)
    by_port = {s["src_port"]: s for s in call["streams"]}
    for stream in call["streams"]:
        tshark_streams.assert_as_tshark(stream, theirs[tshark_streams.key(stream)])
        # Opus: a dynamic payload type whose clock only the SDP names (RFC 7587: always
        # 48 kHz); G.722: the static type 9.
        assert (stream["payload_type"], stream["codec"], stream["clock_rate_hz"]) == (
            payload_types[stream["src_port"]],
            codec.sdp_name,
            codec.clock_hz,
        )
        assert stream["clock_source"] == codec.clock_source
        assert stream["pairing"] == "sdp-address"
        # No verified E-model impairment factor for either codec: unknown, with the reason.
        assert stream["mos"] is None and stream["mos_reason"], stream
        assert stream["activity_method"] == codec.method

    (caller_port,) = [s["src_port"] for s in call["streams"] if s["src_ip"] == CLIENT_IP]
    (callee_port,) = [s["src_port"] for s in call["streams"] if s["src_ip"] == SERVER_IP]
    check_spurts(by_port[caller_port], caller_truth, frames[caller_port], codec)
    check_spurts(by_port[callee_port], callee_truth, frames[callee_port], codec)
    # Turns taken, never both at once.
    assert call["double_talk_pct"] == pytest.approx(0.0, abs=0.5)
    assert call["participants"] == 2


def test_data_sent_as_tones_in_a_g722_call_is_decoded(pair: VethPair, tmp_path: Path) -> None:
    """The covert channel of tests/realtraffic/test_tone_exfiltration.py (one tone per
    half-byte, 1/8 s each) through a wideband softphone: G.722 carries it in the lower
    band, which the kernel decodes (activity.g722_lowband), and the bytes come back."""
    codec = CODECS["g722"]
    data = np.random.default_rng(73).integers(0, 256, 32).astype(np.uint8).tobytes()
    tones = encode_tones(data, rate_hz=codec.rate_hz, lead_s=0.5)
    quiet = np.zeros(len(tones) + 5 * codec.rate_hz)
    capture = baresip_call(pair, tmp_path, codec, tones, quiet)
    (call,) = [c for c in iter_calls(capture) if c["kind"] == "call"]
    (alert,) = ToneExfilDetector().check_call(call)
    print(f"decoded {alert.data['decoded_hex'][:32]}... sent {data.hex()[:32]}...")
    assert (alert.kind, alert.severity) == (KIND, "high")
    assert alert.data["decoded_hex"] == data.hex()
    (stream,) = [s for s in call["streams"] if s["src_ip"] == CLIENT_IP]
    # A frame straddling a symbol edge holds two tones: ~1 frame in 6.25 (measured 0.85).
    assert stream["codec"] == "G722/8000" and stream["tones"]["tone_share"] > 0.8, stream


@pytest.mark.parametrize(("module", "mediaenc"), [("srtp.so", "srtp-mand"),
                                                 ("dtls_srtp.so", "dtls_srtp")])  # fmt: skip
def test_an_srtp_call_is_measured_from_its_headers(
    pair: VethPair, tmp_path: Path, module: str, mediaenc: str
) -> None:
    """baresip calls baresip with SRTP, keyed by SDES in an RTP/SAVP SDP (RFC 4568) or by a
    DTLS handshake on the media ports (RFC 5764, UDP/TLS/RTP/SAVPF), and G.711: the payload
    is ciphertext, the header is not (RFC 3711 §3.1). Loss, jitter and MOS come from the
    headers and equal tshark's; nothing is read from the payload (G.711 energy of random
    bytes is loud white noise, which made a call where nobody talked), and the record
    says why."""
    if not (MODULES / module).exists():
        pytest.skip(f"baresip module {module} missing")
    g711 = replace(PCMU, settings=f"module {module}\n")
    caller_audio, _ = phrase_audio(CALLER_PHRASES, CALL_S, g711.rate_hz)
    callee_audio, _ = phrase_audio(CALLEE_PHRASES, CALL_S + 5, g711.rate_hz)
    srtp = f";mediaenc={mediaenc}"
    capture = baresip_call(pair, tmp_path, g711, caller_audio, callee_audio, srtp, srtp)
    (call,) = [c for c in iter_calls(capture) if c["kind"] == "call"]
    assert call["state"] == "answered"
    theirs = tshark_streams.listed(capture)
    assert len(call["streams"]) == len(theirs) == 2, (call["streams"], theirs)
    for s in call["streams"]:
        tshark_streams.assert_as_tshark(s, theirs[tshark_streams.key(s)])
        assert (s["codec"], s["pairing"]) == ("PCMU/8000", "sdp-address")
        assert s["mos"] is not None and s["mos"] > 4.0  # a clean path, from the headers
        assert s["talk_spurts"] is None and "encrypted (SRTP)" in s["activity_reason"]
        assert s["tones"] is None and s["inband_dtmf"] == []
    assert call.get("caller_talk_pct") is None
    # Ciphertext decoded as G.711 is noise-like audio: before, every SRTP call of 10 s
    # or more raised non-speech-media twice. Announced encryption is no covert channel.
    assert ToneExfilDetector().check_call(call) == []
