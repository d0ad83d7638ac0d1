"""rtp_injection: RTP from an unexpected source into a call (injection, media bleed).

Opinion, from finished Call records: a media stream of a signalled call whose source
address is none of the call's known media parties — not an address its SDP offers or
answers named (media, ICE candidates), not the address of a party that signalled (phones
behind NAT send media from the address their SIP came from), and not paired by the NAT
rule (announced port, other address) — yet the stream was sent *to* an announced media
address. An attacker who learned the port injects audio (RTP injection, "RTP bleed"
style insertion); a misrouted trunk bleeds someone else's call in.

A stream needs ``min_packets`` so a stray packet or a late copy is no alert. Calls without
SDP (app calls, other signalling) are not judged: nothing says who the parties are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voipscope.detect.alerts import Alert, AlertBook
from voipscope.detect.base import Detector

KIND = "rtp-injection"
NAT_PAIRING = "sdp-port+time (NAT)"


@dataclass(frozen=True, slots=True)
class RtpInjectionConfig:
    """Thresholds (config keys ``detect.rtp_injection.*``)."""

    min_packets: int = 10


class RtpInjectionDetector(Detector):
    name = "rtp_injection"

    def __init__(self, book: AlertBook, config: RtpInjectionConfig | None = None) -> None:
        super().__init__(book)
        self.config = config or RtpInjectionConfig()

    def on_call(self, record: dict[str, Any]) -> None:
        if record.get("kind") != "call" or not record.get("sdp"):
            return
        announced: set[tuple[str, int]] = set()
        parties: set[str] = set()
        for exchange in record.get("sdp") or []:
            if not isinstance(exchange, dict):
                continue
            for ip in (exchange.get("sender_ip"), exchange.get("receiver_ip")):
                if isinstance(ip, str):
                    parties.add(ip)
            for media in exchange.get("media") or []:
                if not isinstance(media, dict):
                    continue
                ip, port = media.get("ip"), media.get("port")
                if isinstance(ip, str) and isinstance(port, int) and port:
                    announced.add((ip, port))
                    parties.add(ip)
                for candidate in media.get("candidates") or []:
                    if isinstance(candidate, list | tuple) and len(candidate) >= 2:
                        parties.add(str(candidate[0]))
        for name in ("caller_ip", "callee_ip"):
            if isinstance(record.get(name), str):
                parties.add(record[name])
        for stream in record.get("streams") or []:
            self._judge(record, stream, announced, parties)

    def _judge(
        self,
        record: dict[str, Any],
        stream: dict[str, Any],
        announced: set[tuple[str, int]],
        parties: set[str],
    ) -> None:
        src, dst = stream.get("src_ip"), (stream.get("dst_ip"), stream.get("dst_port"))
        packets = stream.get("packets")
        if not isinstance(src, str) or src in parties or dst not in announced:
            return
        if stream.get("pairing") == NAT_PAIRING:
            return  # the NAT rule chose it: the party's public address, not a stranger
        if not isinstance(packets, int) or packets < self.config.min_packets:
            return
        first = stream.get("first_seen")
        ts = float(first) if isinstance(first, int | float) else float(record.get("start") or 0.0)
        alert = Alert(
            ts=ts,
            last_ts=stream.get("last_seen") or ts,
            kind=KIND,
            severity="medium",
            src_ip=src,
            dst_ip=str(dst[0]),
            summary=f"{packets} RTP packets from {src} into call {record.get('call_id')} "
            f"at {dst[0]}:{dst[1]}, which signalling gave only to "
            f"{', '.join(sorted(parties))}",
            evidence=[
                f"SSRC {stream.get('ssrc')} from {src}:{stream.get('src_port')}, "
                f"{packets} packets, to the announced media address {dst[0]}:{dst[1]}",
                f"the call's parties by signalling and SDP: {', '.join(sorted(parties))}",
            ],
            data={
                "call_id": record.get("call_id"),
                "ssrc": stream.get("ssrc"),
                "src_port": stream.get("src_port"),
                "dst_port": dst[1],
                "packets": packets,
            },
        )
        self.book.raise_alert(alert, f"{record.get('call_id')}/{stream.get('ssrc')}")
