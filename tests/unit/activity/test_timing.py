"""activity.timing: transit levels against the RTP clock, judged and decoded; the
kernel's share (account) through the RTP tracker on built packets."""

from __future__ import annotations

import numpy as np
import pytest

from tests import pcapbuild as pb
from voipscope.activity import timing as TM
from voipscope.detect.alerts import AlertBook
from voipscope.detect.timing_channel import KIND, TimingChannelDetector
from voipscope.pipeline import FlowPipeline

MESSAGE = b"exfil: db password is hunter2; "  # 31 bytes
RNG = np.random.default_rng(11)


def kept(delays_ms: np.ndarray) -> np.ndarray:
    """The kernel's row for transits ``delays_ms`` (one per sequence number)."""
    row = TM.new_state(1)[0]
    n = min(len(delays_ms), TM.TIMING_PACKETS)
    row[:n] = np.round(np.asarray(delays_ms[:n]) * TM.UNITS_PER_MS).astype(np.int16)
    return row


def coded(message: bytes = MESSAGE, hold_ms: float = 10.0) -> np.ndarray:
    return np.unpackbits(np.frombuffer(message, np.uint8)).astype(np.float64) * hold_ms


def test_a_two_level_code_is_found_and_read_despite_jitter_and_drift() -> None:
    base = coded()
    drift = np.linspace(0.0, 4.0, base.size)  # sender and capture clocks 0.8 ms/s apart
    out = TM.analyse(kept(base + RNG.uniform(-1.5, 1.5, base.size) + drift))
    assert out is not None and out["coded"] is True
    assert out["decoded_text"] == MESSAGE.decode() and out["bits_per_packet"] == 1
    assert abs(out["separation_ms"] - 10.0) < 0.5 and len(out["levels_ms"]) == 2


def test_missing_packets_are_erasures_in_place() -> None:
    transits = kept(coded())
    lost = [40, 41, 100]
    transits[lost] = TM.EMPTY
    out = TM.analyse(transits)
    assert out is not None and out["coded"] and out["erasures"] == lost
    data = bytes.fromhex(out["decoded_hex"])
    wrong = [k for k in range(len(MESSAGE)) if data[k] != MESSAGE[k]]
    assert set(wrong) <= {k // 8 for k in lost}  # only the bytes holding a lost bit


def test_four_levels_carry_two_bits_each() -> None:
    symbols = np.frombuffer(MESSAGE, np.uint8)
    pairs = np.stack([(symbols >> s) & 3 for s in (6, 4, 2, 0)], axis=1).ravel()
    out = TM.analyse(kept(pairs * 6.0 + RNG.uniform(-0.5, 0.5, pairs.size)))
    assert out is not None and out["coded"] and out["bits_per_packet"] == 2
    assert out["decoded_text"] == MESSAGE.decode()


@pytest.mark.parametrize(
    "name, transits",
    [
        ("normal jitter 5 ms", np.abs(RNG.normal(0, 5, 512))),
        ("uniform jitter +-8 ms", RNG.uniform(-8, 8, 512)),
        ("queueing, exponential 3 ms", RNG.exponential(3, 512)),
        ("frames sent in pairs", np.tile([20.0, 0.0], 256) + RNG.uniform(-1, 1, 512)),
        (
            "power-save bursts every 102.4 ms",
            np.ceil(np.arange(512) * 20 / 102.4) * 102.4 - np.arange(512) * 20.0,
        ),
        ("steady", np.zeros(512)),
        (
            "Wi-Fi power save: 30 % of frames held up to 100 ms",
            np.where(RNG.random(512) < 0.3, RNG.uniform(0, 100, 512), RNG.uniform(0, 2, 512)),
        ),
        (
            "congestion on and off in runs of 16 frames",
            np.repeat(np.where(RNG.random(32) < 0.5, 0.0, 15.0), 16) + RNG.normal(0, 0.5, 512),
        ),
    ],
)
def test_what_networks_and_senders_do_is_not_coded(name: str, transits: np.ndarray) -> None:
    out = TM.analyse(kept(transits))
    assert out is not None and out["coded"] is False, (name, out)


def test_too_few_packets_say_nothing() -> None:
    assert TM.analyse(kept(coded()[: TM.MIN_PACKETS - 1])) is None


def stream(timing: dict | None) -> dict:
    return {"ssrc": "0x00000001", "src_ip": "10.0.0.1", "src_port": 6100,
            "dst_ip": "10.0.0.2", "dst_port": 6000, "first_seen": 100.0,
            "last_seen": 110.0, "timing": timing}  # fmt: skip


def test_the_detector_raises_one_alert_per_coded_stream() -> None:
    book = AlertBook()
    detector = TimingChannelDetector(book)
    plain = TM.analyse(kept(np.abs(RNG.normal(0, 2, 400))))
    detector.on_call({"call_id": "c1", "streams": [stream(TM.analyse(kept(coded()))),
                                                   stream(plain), stream(None)]})  # fmt: skip
    (alert,) = book.finish()
    assert (alert.kind, alert.severity, alert.src_ip) == (KIND, "high", "10.0.0.1")
    assert alert.data["decoded_text"] == MESSAGE.decode() and alert.data["call_id"] == "c1"
    assert "unpredictable" in alert.evidence[1]


def test_the_tracker_keeps_transits_by_sequence_number(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Built RTP (PCMA, 20 ms) whose packets are held back by a code: the stream of the
    media-only call carries the judgement; a late (reordered) packet's place is empty."""
    bits = np.unpackbits(np.frombuffer(MESSAGE, np.uint8))
    packets = []
    for k, bit in enumerate(bits):
        header = bytes([0x80, 8]) + k.to_bytes(2, "big") + (k * 160).to_bytes(4, "big")
        header += (0x0BADCAFE).to_bytes(4, "big")
        t = 1_700_000_000 + k * 0.02 + bit * 0.008
        packets.append(pb.udp_packet(t, "10.0.0.1", 6100, "10.0.0.2", 6000, header + b"\xd5" * 160))
    packets[50], packets[51] = packets[51], packets[50]  # seq 50 arrives after 51
    path = tmp_path / "coded.pcap"
    path.write_bytes(pb.pcap(packets))
    streams = [s for batch in FlowPipeline().run_calls(str(path)) for c in batch
               for s in c.get("streams") or []]  # fmt: skip
    (only,) = streams
    timing = only["timing"]
    assert timing["coded"] and timing["erasures"] == [50]
    assert timing["packets"] == len(bits) - 1


def test_a_route_change_and_a_stall_do_not_hide_the_code() -> None:
    """A +30 ms step in the network's delay over packets 200-349 (the floor follows it on
    both sides), and a 1.2 s stall of a few packets (off every level, not a reason to
    give up on the rest)."""
    base = coded()
    step = base + np.where((np.arange(base.size) >= 200) & (np.arange(base.size) < 350), 30, 0)
    out = TM.analyse(kept(step))
    assert out is not None and out["coded"] and out["decoded_text"] == MESSAGE.decode()
    stalled = base.copy()
    stalled[100:104] += [1200.0, 1180.0, 1160.0, 1140.0]  # held, then sent in a burst
    out = TM.analyse(kept(stalled))
    assert out is not None and out["coded"] and len(out["levels_ms"]) == 2
    assert out["decoded_text"] is not None and out["decoded_text"].startswith("exfil: db")


def coded_stream(
    pt: int, ticks_per_packet: int, sport: int = 6100, jitter_ms: float = 0.0
) -> list[pb.Packet]:
    """RTP of a dynamic payload type (no rtpmap, random payload as SRTP's), one packet
    per 20 ms frame, each held back by 8 ms where MESSAGE has a 1 bit."""
    bits = np.unpackbits(np.frombuffer(MESSAGE, np.uint8))
    rng = np.random.default_rng(pt)
    packets = []
    for k, bit in enumerate(bits):
        header = bytes([0x80, pt]) + k.to_bytes(2, "big")
        header += (1000 + k * ticks_per_packet).to_bytes(4, "big") + (0xFEED).to_bytes(4, "big")
        t = 1_700_000_000 + k * 0.02 + bit * 0.008 + rng.uniform(0, jitter_ms) / 1000
        body = rng.bytes(90)
        packets.append(pb.udp_packet(t, "10.0.0.1", sport, "10.0.0.2", 6000, header + body))
    return packets


def calls_of(tmp_path, packets: list[pb.Packet]) -> list[dict]:  # type: ignore[no-untyped-def]
    path = tmp_path / "coded.pcap"
    path.write_bytes(pb.pcap(sorted(packets, key=lambda p: p.ts_ns)))
    return [c for batch in FlowPipeline().run_calls(str(path)) for c in batch]


@pytest.mark.parametrize("ticks, clock", [(960, 48000), (320, 16000), (160, 8000)])
def test_a_dynamic_payload_type_is_judged_against_the_clock_its_timestamps_show(
    tmp_path,
    ticks: int,
    clock: int,  # type: ignore[no-untyped-def]
) -> None:
    """No SDP names payload type 111 (WebRTC's Opus, an app's SRTP): the transits are
    taken against the candidate clock the timestamps advance at, and the code is read
    from the first packet on, 1.5 ms of jitter beside it."""
    (call,) = calls_of(tmp_path, coded_stream(111, ticks, jitter_ms=1.5))
    (stream,) = call["streams"]
    timing = stream["timing"]
    assert timing["coded"] and timing["decoded_text"] == MESSAGE.decode()
    assert timing["first_packet"] == 0 and timing["packets"] == 8 * len(MESSAGE)
    assert (timing["clock_hz"], timing["clock_provisional"]) == (clock, True)


def test_a_plain_dynamic_stream_is_judged_not_coded(tmp_path) -> None:  # type: ignore[no-untyped-def]
    packets = coded_stream(111, 960)
    rng = np.random.default_rng(5)
    plain = [  # the same stream sent on its clock, with up to 6 ms of network jitter
        pb.Packet(1_700_000_000 * 10**9 + k * 20_000_000 + int(rng.uniform(0, 6e6)), p.data)
        for k, p in enumerate(packets)
    ]
    (call,) = calls_of(tmp_path, plain)
    timing = call["streams"][0]["timing"]
    assert timing is not None and timing["coded"] is False and timing["clock_hz"] == 48000


def sip_call(rtpmap: str, media: list[pb.Packet]) -> list[pb.Packet]:
    """An INVITE / 200 / ACK before ``media`` (Alice 10.0.0.1:6100 to Bob 10.0.0.2:6000)
    whose SDP names payload type 111 as ``rtpmap``, a BYE after it."""

    def sip(first: str, cseq: str, ip: str, port: int, to_tag: str = "") -> bytes:
        body = (
            f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 111\r\na=rtpmap:111 {rtpmap}\r\n"
        )
        return (
            f"{first}\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK7\r\n"
            f"From: <sip:alice@10.0.0.1>;tag=a\r\nTo: <sip:bob@10.0.0.2>{to_tag}\r\n"
            f"Call-ID: tm@10.0.0.1\r\nCSeq: {cseq}\r\nContact: <sip:alice@10.0.0.1>\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}"
        ).encode()

    t0 = media[0].ts_ns / 1e9
    bye = (b"BYE sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK8\r\n"
           b"From: <sip:alice@10.0.0.1>;tag=a\r\nTo: <sip:bob@10.0.0.2>;tag=b\r\n"
           b"Call-ID: tm@10.0.0.1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n")  # fmt: skip
    return [
        pb.udp_packet(t0 - 2, "10.0.0.1", 5060, "10.0.0.2", 5060,
                      sip("INVITE sip:bob@10.0.0.2 SIP/2.0", "1 INVITE", "10.0.0.1", 6100)),
        pb.udp_packet(t0 - 1, "10.0.0.2", 5060, "10.0.0.1", 5060,
                      sip("SIP/2.0 200 OK", "1 INVITE", "10.0.0.2", 6000, ";tag=b")),
        *media,
        pb.udp_packet(media[-1].ts_ns / 1e9 + 1, "10.0.0.1", 5060, "10.0.0.2", 5060, bye),
    ]  # fmt: skip


def test_the_sdp_clock_confirms_or_voids_the_provisional_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The same 48 kHz stream in a SIP call: an SDP saying opus/48000 keeps the judgement,
    one saying the type runs at 16 kHz voids it (the transits measured nothing then)."""
    (call,) = [c for c in calls_of(tmp_path, sip_call("opus/48000/2", coded_stream(111, 960)))
               if c.get("streams")]  # fmt: skip
    (stream,) = call["streams"]
    assert stream["clock_rate_hz"] == 48000 and stream["timing"]["coded"]
    (call,) = [c for c in calls_of(tmp_path, sip_call("AMR-WB/16000", coded_stream(111, 960)))
               if c.get("streams")]  # fmt: skip
    (stream,) = call["streams"]
    assert stream["clock_rate_hz"] == 16000 and stream["timing"] is None


def test_a_wrong_first_clock_with_irregular_timestamps_drops_only_the_early_transits(
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    """The first gap (a 1 bit: 28 ms for a 20 ms frame) points at 32 kHz; the longer
    measure then says 48 kHz. With a timestamp jump before that (a frame left out,
    discontinuous transmission) the transits so far cannot be moved to the new clock:
    they are dropped (erasures), and the rest is judged and read."""
    packets = coded_stream(111, 960, jitter_ms=0.5)
    jumped = []
    for k, p in enumerate(packets):
        data = bytearray(p.data)
        if k >= 2:  # 42 = Ethernet 14 + IPv4 20 + UDP 8: the RTP timestamp at 4..7
            ts = int.from_bytes(data[46:50], "big") + 960
            data[46:50] = ts.to_bytes(4, "big")
        jumped.append(pb.Packet(p.ts_ns, bytes(data)))
    (call,) = calls_of(tmp_path, jumped)
    timing = call["streams"][0]["timing"]
    assert timing["coded"] and timing["clock_hz"] == 48000
    early = [e for e in timing["erasures"] if e < 64]
    assert early[0] == 0 and len(early) >= 10, timing["erasures"]  # 0: off every level
    data = bytes.fromhex(timing["decoded_hex"])
    assert data[8:] == MESSAGE[8:]  # past the dropped packets, read as sent


# -- windows: a message sent late in a long call ---------------------------------------


def late_stream(
    message: bytes, idle_packets: int, pt: int = 8, drift_ms_per_s: float = 0.0
) -> list[pb.Packet]:
    """PCMA (or payload type ``pt`` at 8 kHz, 20 ms frames) sent on its clock for
    ``idle_packets`` frames, then with each frame of ``message``'s 1 bits held back 8 ms,
    then 300 more frames on the clock; 1 ms of jitter and, optionally, sender/capture clock
    drift throughout."""
    bits = np.unpackbits(np.frombuffer(message, np.uint8))
    holds = np.concatenate([np.zeros(idle_packets), bits * 8.0, np.zeros(300)])
    rng = np.random.default_rng(idle_packets)
    packets = []
    for k, hold_ms in enumerate(holds):
        seq = k & 0xFFFF
        header = bytes([0x80, pt]) + seq.to_bytes(2, "big") + (k * 160).to_bytes(4, "big")
        header += (0x0BADCAFE).to_bytes(4, "big")
        t_ms = k * 20 + hold_ms + rng.uniform(0, 1.0) + drift_ms_per_s * k * 0.02
        packets.append(pb.udp_packet(1_700_000_000 + t_ms / 1000, "10.0.0.1", 6100,
                                     "10.0.0.2", 6000, header + b"\xd5" * 160))  # fmt: skip
    return packets


@pytest.mark.parametrize("idle_packets", [1536, 1536 + 100, 30_000])
def test_a_message_sent_late_in_a_long_call_is_read(tmp_path, idle_packets: int) -> None:  # type: ignore[no-untyped-def]
    """The sender waits 30.7 s (1536 frames: three whole windows), 32.7 s (the message
    starts 100 packets into a window and spans two) or 10 minutes (0.5 ms/s of clock drift
    by then 300 ms, past what one 16-bit window of transits from the stream's start
    holds) before it signals: the code is found and the message read from where it
    starts, the windows before it judged not coded."""
    drift = 0.5 if idle_packets > 10_000 else 0.0
    (call,) = calls_of(tmp_path, late_stream(MESSAGE, idle_packets, drift_ms_per_s=drift))
    (stream,) = call["streams"]
    timing = stream["timing"]
    assert timing["coded"], timing
    start_window = idle_packets // TM.TIMING_PACKETS
    assert timing["coded_windows"][0] == start_window
    text = timing["decoded_text"]
    assert text is not None and MESSAGE.decode() in text, timing
    # Bytes count from the first coded window's start: the message sits where it was
    # sent, at its own bit alignment (4 bits into a byte where it started 100 packets in).
    offset = idle_packets - start_window * TM.TIMING_PACKETS
    assert timing["text_bit_offset"] == offset % 8
    if offset % 8 == 0:
        data = bytes.fromhex(timing["decoded_hex"])
        assert data[offset // 8 : offset // 8 + len(MESSAGE)] == MESSAGE
    assert timing["windows"] >= idle_packets // TM.TIMING_PACKETS
    # Where the message runs into the next window (30000: bits 304-551 of window 58),
    # that window, mostly idle, is read on the levels of the code before it.
    spans = (offset + 8 * len(MESSAGE)) > TM.TIMING_PACKETS
    assert timing.get("continued_windows") == ([start_window + 1] if spans else None)


def test_a_long_plain_call_is_not_coded_in_any_window(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (call,) = calls_of(tmp_path, late_stream(b"", 5000))
    timing = call["streams"][0]["timing"]
    assert timing["coded"] is False and "coded_windows" not in timing
    assert timing["windows"] == (5000 + 300) // TM.TIMING_PACKETS + 1


def test_windows_combine_into_one_message() -> None:
    """Two coded windows back to back: the first one's bytes padded to its full 64 bytes
    (1 bit per packet) so the second's start at byte 64; positions from the stream start."""
    head, tail = MESSAGE + MESSAGE[:29], MESSAGE * 2  # 60 and 62 bytes
    first = TM.analyse(kept(np.concatenate([np.zeros(512 - 8 * len(head)), coded(head)])))
    second = TM.analyse(kept(np.concatenate([coded(tail), np.zeros(512 - 8 * len(tail))])))
    plain = TM.analyse(kept(RNG.uniform(0, 1, 512)))
    assert first is not None and second is not None and plain is not None
    out = TM.combine([(0, plain), (3, first), (4, second)], judged=5)
    assert out is not None and out["coded"] and out["coded_windows"] == [3, 4]
    data = bytes.fromhex(out["decoded_hex"])
    assert data[4:64] == head and data[64 : 64 + len(tail)] == tail
    assert out["first_packet"] >= 3 * 512 and out["windows"] == 5
    assert TM.combine([(0, plain)], judged=9) == {**plain, "windows": 9}
    assert TM.combine([], judged=0) is None


def test_coded_windows_kept_are_bounded() -> None:
    window = TM.analyse(kept(coded()))
    assert window is not None and window["coded"]
    windows: list = []
    kept_all = [TM.keep_window(windows, w, window) for w in range(TM.MAX_CODED_WINDOWS + 5)]
    assert len(windows) == TM.MAX_CODED_WINDOWS + 1 and kept_all.count(False) == 4


def test_a_late_message_raises_the_alert_with_where_it_starts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "late.pcap"
    path.write_bytes(pb.pcap(late_stream(MESSAGE, 2048)))
    alerts = [a for batch in FlowPipeline().run_alerts(str(path)) for a in batch]
    (alert,) = [a for a in alerts if a["kind"] == KIND]
    assert alert["severity"] == "high" and alert["data"]["coded_windows"] == [4]
    assert alert["data"]["decoded_text"] == MESSAGE.decode()
    assert any("from packet 2048 of the stream" in e for e in alert["evidence"])


def test_a_bit_flipped_in_the_idle_after_the_message_leaves_the_text_readable() -> None:
    """What CI's real sipp call decoded once (tests/realtraffic/test_timing_channel.py,
    the late message): the text 4 bits into a byte, then level 0, and one packet of the
    idle tail sent late -- a stray 1 bit seven bytes after the text. Before IDLE_BYTES the
    zero bytes up to it counted as unprintable text (43 of 52 bytes: 83 %) and no text
    was read."""
    late = bytes.fromhex(
        "00000000000000000000000000000000000000000000000414b4941354558414d504c45374b45593a"
        "20776972652034306b20746f20373738312c20746f64617921000000000000000010000"
    )
    assert TM._text(late) == ("AKIA5EXAMPLE7KEY: wire 40k to 7781, today!", 4)
    # Two texts between idles: the longer one is the message.
    two = b"\0" * 6 + b"hi" + b"\0" * 5 + b"exfil: the real message" + b"\0" * 3
    assert TM._text(two) == ("exfil: the real message", 0)
    # Three zero bytes inside are not idle: they stay part of what is read (and fail it).
    assert TM._text(b"abc\0\0\0def" * 3)[0] is None
