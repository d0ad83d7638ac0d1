"""timing-channel: data smuggled out in the send times of a call's RTP packets.

The stream's transits against its own RTP clock (activity.timing, judged as the stream
ends) sit on two or more sharp levels, in an order that cannot be predicted from one
packet to the next: a sender holding packets back by chosen delays, the audio untouched
(FIELD §5.8 "steganographic timing"). Severity high when the levels decode to printable
text, medium otherwise; the decoded bytes and the levels are in the alert's data.
Network jitter (a continuous spread) and bursty delivery (levels in a fixed order) are
not coded; see activity.timing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voipscope.activity.timing import TIMING_PACKETS
from voipscope.detect.alerts import Alert, AlertBook
from voipscope.detect.base import Detector

KIND = "timing-channel"


@dataclass(frozen=True, slots=True)
class TimingChannelConfig:
    """Thresholds (config keys ``detect.timing_channel.*``)."""

    # Packets judged (of the coded windows of activity.timing.TIMING_PACKETS sequence
    # numbers): two levels over fewer could be a few seconds of a link changing its mind.
    min_packets: int = 128


class TimingChannelDetector(Detector):
    """Finished Call records in (``on_call``), one alert per coded stream."""

    name = "timing_channel"

    def __init__(self, book: AlertBook, config: TimingChannelConfig | None = None) -> None:
        super().__init__(book)
        self.config = config or TimingChannelConfig()

    def on_call(self, record: dict[str, Any]) -> None:
        for stream in record.get("streams") or []:
            if not isinstance(stream, dict):
                continue
            alert = self.check_stream(stream, record)
            if alert is not None:
                self.book.raise_alert(alert, f"{record.get('call_id')}/{stream.get('ssrc')}")

    def check_stream(self, stream: dict[str, Any], call: dict[str, Any]) -> Alert | None:
        timing = stream.get("timing")
        if not isinstance(timing, dict) or not timing.get("coded"):
            return None
        if int(timing.get("packets") or 0) < self.config.min_packets:
            return None
        levels = timing.get("levels_ms") or []
        shares = timing.get("level_shares") or []
        where = (
            f"{stream.get('src_ip')}:{stream.get('src_port')} -> "
            f"{stream.get('dst_ip')}:{stream.get('dst_port')} (SSRC {stream.get('ssrc')})"
        )
        text = timing.get("decoded_text")
        evidence = [
            f"transits of {timing['packets']} packets against the RTP clock sit on "
            f"{len(levels)} levels "
            + ", ".join(f"{lv:g} ms ({sh:.0%})" for lv, sh in zip(levels, shares, strict=False))
            + f", spread {timing.get('spread_ms')} ms, {timing.get('separation_ms')} ms apart",
            f"the next level is unpredictable from the last: {timing.get('entropy_bits')} bits "
            "per packet (a bursty link repeats a pattern: ~0)",
        ]
        windows = timing.get("coded_windows") or []
        if len(windows) > 1 or (windows and windows[0] > 0):
            evidence.append(
                f"coded in {len(windows)} window(s) of {TIMING_PACKETS} packets, from packet "
                f"{windows[0] * TIMING_PACKETS} of the stream"
            )
        if timing.get("decoded_hex"):
            evidence.append(
                f"decoded {timing.get('bits_per_packet')} bit(s) per packet from packet "
                f"{timing.get('first_packet')}: "
                + (repr(text) if text else f"0x{str(timing['decoded_hex'])[:64]}")
            )
        first = float(stream.get("first_seen") or call.get("start") or 0.0)
        return Alert(
            ts=first,
            last_ts=float(stream.get("last_seen") or first),
            kind=KIND,
            severity="high" if text else "medium",
            src_ip=stream.get("src_ip"),
            dst_ip=stream.get("dst_ip"),
            summary=f"data in the send times of RTP packets {where}",
            evidence=evidence,
            count=int(timing["packets"]),
            data={
                "call_id": call.get("call_id"),
                "ssrc": stream.get("ssrc"),
                "levels_ms": levels,
                "level_shares": shares,
                "spread_ms": timing.get("spread_ms"),
                "entropy_bits": timing.get("entropy_bits"),
                "bits_per_packet": timing.get("bits_per_packet"),
                "decoded_hex": timing.get("decoded_hex"),
                "decoded_text": text,
                "erasures": timing.get("erasures"),
                "coded_windows": windows,
                "first_packet": timing.get("first_packet"),
            },
        )
