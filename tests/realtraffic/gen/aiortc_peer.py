"""One WebRTC peer (aiortc): Opus audio (and VP8 video) over DTLS-SRTP, for generated
captures. Run inside a network namespace by generate.py; the two peers exchange their
SDP over a plain TCP connection (our own, not a VoIP signalling protocol).

    python -m tests.realtraffic.gen.aiortc_peer caller|callee --signal IP:PORT
        --seconds S [--video] [--seed N] [--turn IP:PORT --relay [--turn-transport tcp]]
        [--codec opus|PCMU|PCMA|G722] [--video-codec VP8|H264] [--silent]

The audio is speech-like: the two peers take turns (talk spurts of 0.5-3 s, drawn from
the seed), voiced frames are a harmonic buzz with noise under an envelope, silence is
low noise — so Opus (VBR, application=voip) sends larger frames in spurts and smaller
ones between, as in a conversation. ``--codec PCMU`` gives G.711's constant 160-byte
frames (the case a constant-rate lookalike imitates best); ``--silent`` makes this peer
receive only, so the call's media flow is one-way (a muted side, asymmetric routing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math

import numpy as np
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from aiortc.rtcrtpsender import RTCRtpSender
from av import AudioFrame, VideoFrame

RATE_HZ = 48_000  # aiortc's AudioStreamTrack: 20 ms frames of 960 samples, s16 mono
TURN_USER, TURN_PASSWORD = "voipscope", "behaviour"


def spurt_schedule(seed: int, seconds: float, caller: bool) -> list[tuple[float, float]]:
    """Who talks when: alternating turns, each 0.5-3 s, with short pauses."""
    rng = np.random.default_rng(seed)
    spurts, t, mine = [], 0.3, caller
    while t < seconds:
        length = float(rng.uniform(0.5, 3.0))
        if mine:
            spurts.append((t, t + length))
        t += length + float(rng.uniform(0.1, 0.8))
        mine = not mine if rng.random() < 0.8 else mine
    return spurts


class SpeechLikeTrack(AudioStreamTrack):
    def __init__(self, schedule: list[tuple[float, float]], seed: int) -> None:
        super().__init__()
        self.schedule = schedule
        self.rng = np.random.default_rng(seed + 1)
        self.samples_sent = 0
        self.pitch_hz = float(self.rng.uniform(90, 220))

    async def recv(self) -> AudioFrame:
        frame = await super().recv()  # paced silence, 20 ms
        n = frame.samples
        t0 = self.samples_sent / RATE_HZ
        self.samples_sent += n
        t = t0 + np.arange(n) / RATE_HZ
        noise = self.rng.normal(0, 30, n)
        talking = any(a <= t0 < b for a, b in self.schedule)
        if talking:
            envelope = 0.5 + 0.5 * math.sin(2 * math.pi * 4 * t0)  # ~4 syllables/s
            voiced = sum(np.sin(2 * np.pi * self.pitch_hz * k * t) / k for k in range(1, 8))
            signal = envelope * 6000 * voiced + self.rng.normal(0, 800, n) + noise
        else:
            signal = noise
        pcm = np.clip(signal, -32768, 32767).astype("<i2")
        frame.planes[0].update(pcm.tobytes())
        return frame


class MovingPatternTrack(VideoStreamTrack):
    """A moving gradient with noise: VP8 has to send real frames, not a still image."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.rng = np.random.default_rng(seed + 2)
        self.k = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        self.k += 1
        y, x = np.mgrid[0:240, 0:320]
        img = np.zeros((240, 320, 3), np.uint8)
        img[..., 0] = (x + 3 * self.k) % 256
        img[..., 1] = (y + 2 * self.k) % 256
        img[..., 2] = self.rng.integers(0, 64, (240, 320), dtype=np.uint8)
        frame = VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


def _add(pc: RTCPeerConnection, kind: str, track: object | None, codec: str) -> None:
    """A transceiver that prefers ``codec`` (the offer lists it first, so the answer
    picks it); receive-only when there is no track."""
    if track is None:
        transceiver = pc.addTransceiver(kind, direction="recvonly")
    else:
        transceiver = pc.addTransceiver(track, direction="sendrecv")
    codecs = RTCRtpSender.getCapabilities(kind).codecs
    preferred = [c for c in codecs if c.mimeType.lower() == f"{kind}/{codec.lower()}"]
    rtx = [c for c in codecs if c.mimeType.lower() == f"{kind}/rtx"]
    transceiver.setCodecPreferences(preferred + (rtx if preferred and kind == "video" else []))


async def _send(writer: asyncio.StreamWriter, desc: RTCSessionDescription) -> None:
    writer.write(json.dumps({"sdp": desc.sdp, "type": desc.type}).encode() + b"\n")
    await writer.drain()


async def _receive(reader: asyncio.StreamReader) -> RTCSessionDescription:
    data = json.loads(await reader.readline())
    return RTCSessionDescription(sdp=data["sdp"], type=data["type"])


async def run(args: argparse.Namespace) -> None:
    servers = []
    if args.turn:
        servers.append(RTCIceServer(urls=f"turn:{args.turn}?transport={args.turn_transport}",
                                    username=TURN_USER, credential=TURN_PASSWORD))  # fmt: skip
    config = RTCConfiguration(
        iceServers=servers,
        iceTransportPolicy=RTCIceTransportPolicy.RELAY if args.relay else RTCIceTransportPolicy.ALL,
    )
    pc = RTCPeerConnection(config)
    caller = args.role == "caller"
    audio: AudioStreamTrack | None = None
    if not args.silent:
        audio = SpeechLikeTrack(spurt_schedule(args.seed, args.seconds, caller), args.seed)
    _add(pc, "audio", audio, args.codec)
    if args.video:
        _add(pc, "video", None if args.silent else MovingPatternTrack(args.seed), args.video_codec)

    drains: list[asyncio.Task[None]] = []  # kept: the loop holds tasks only weakly

    @pc.on("track")
    def _on_track(track) -> None:  # type: ignore[no-untyped-def]
        async def drain() -> None:
            while True:
                try:
                    await track.recv()
                except Exception:
                    return

        drains.append(asyncio.ensure_future(drain()))

    host, port = args.signal.rsplit(":", 1)
    if caller:
        reader, writer = await asyncio.open_connection(host, int(port))
        await pc.setLocalDescription(await pc.createOffer())
        await _send(writer, pc.localDescription)
        await pc.setRemoteDescription(await _receive(reader))
    else:
        ready: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

        async def accept(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await ready.put((r, w))

        server = await asyncio.start_server(accept, host, int(port))
        reader, writer = await ready.get()
        server.close()
        await pc.setRemoteDescription(await _receive(reader))
        await pc.setLocalDescription(await pc.createAnswer())
        await _send(writer, pc.localDescription)
    await asyncio.sleep(args.seconds)
    writer.close()
    await pc.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=("caller", "callee"))
    ap.add_argument("--signal", required=True, help="callee's IP:PORT for the SDP exchange")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--video", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--turn", help="TURN server IP:PORT")
    ap.add_argument("--relay", action="store_true", help="relay candidates only")
    ap.add_argument("--turn-transport", choices=("udp", "tcp"), default="udp",
                    help="to the TURN server over UDP or TCP (RFC 8656 §3.1)")  # fmt: skip
    ap.add_argument("--codec", default="opus", choices=("opus", "PCMU", "PCMA", "G722"))
    ap.add_argument("--video-codec", default="VP8", choices=("VP8", "H264"))
    ap.add_argument("--silent", action="store_true", help="receive only: one-way media")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
