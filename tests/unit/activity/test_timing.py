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
