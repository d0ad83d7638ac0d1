"""Verdicts from flow counters alone (flow-record input: NetFlow, IPFIX).

A flow record has no payload, so no protocol can be *recognised*; what the counters can
say is whether a flow moves like interactive voice. Voice codecs send one packet per
frame: 20 ms framing is 50 packets/s per direction, 30 ms 33/s, 60 ms 17/s, 10 ms 100/s,
so a talking direction sends 12-110 packets/s; an RTP/UDP/IP voice packet is 60 B
(G.729, 20 ms) to ~450 B (wideband codecs, long frames, SRTP with extensions). Video
moves larger packets at media rates. These bounds come from what voice is, not from any
one capture (docs/flow_records.md gives the evaluation). Trammell et al. (2011) showed
flow features separate VoIP this way.

What the verdicts are worth, and say:

* ``voip-media`` (audio) when a UDP direction has enough packets at a voice rate and
  size: confidence 0.5 when both directions do, 0.3 for one direction only, + 0.15 when
  a flow on port+1 of the same two hosts looks like its RTCP (RFC 3550 §11 pairs them).
  Always below byte evidence (a dissector's match is 0.8-1.0). ``protocol`` stays null:
  pacing is not RTP, and "voice-like pacing" is what the evidence says.
* ``voip-media`` (video) for larger packets at media rates with the other direction
  alive; a flow on port-1 of a voice-like flow as its RTCP-like companion.
* ``other`` only where the counters prove it: bulk TCP, one-shot DNS/NTP-sized
  exchanges on their ports.
* ``unknown`` otherwise. A VoIP signalling port (SIP 5060/5061, IAX2 4569, ...) is named
  in the evidence but decides nothing: anything can use a port.
* ``app`` from the published address tables (``classify/apps.py``), media flows only.
"""

from __future__ import annotations

from dataclasses import dataclass

from voipscope.classify.apps import app_for_address
from voipscope.classify.verdict import Verdict

MEDIA, OTHER, UNKNOWN = "voip-media", "other", "unknown"
UDP, TCP = 17, 6

# Per-direction voice pacing: 60 ms framing (17/s) with some DTX still above 12/s; 10 ms
# framing is 100/s, with jitter a little more.
VOICE_MIN_PPS = 12.0
VOICE_MAX_PPS = 110.0
# IP bytes of one voice packet: 40 B of IP/UDP/RTP headers + 20 B of G.729 is the least;
# wideband codecs with 60 ms frames and SRTP reach ~450.
VOICE_MIN_MEAN_BYTES = 60.0
VOICE_MAX_MEAN_BYTES = 450.0
# A rate needs a few intervals to be a rate: 8 packets of 20 ms voice are 140 ms.
MEDIA_MIN_PACKETS = 8
# Video: larger packets at media rates (a frame is several packets up to the MTU).
VIDEO_MIN_MEAN_BYTES = 450.0
VIDEO_MAX_MEAN_BYTES = 1500.0
VIDEO_MIN_PPS = 12.0
VIDEO_MAX_PPS = 2000.0
# RTCP (RFC 3550 §6.2): ~5 % of session bandwidth, a report every few seconds.
RTCP_MAX_PPS = 10.0

BOTH_WAYS_CONFIDENCE = 0.5
ONE_WAY_CONFIDENCE = 0.3
VIDEO_CONFIDENCE = 0.4
RTCP_BONUS = 0.15
RTCP_LIKE_CONFIDENCE = 0.3

# Bulk TCP: this much one way at near-MTU packets is a transfer, not voice or signalling.
BULK_MIN_BYTES = 1_000_000
BULK_MIN_MEAN_BYTES = 1000.0
# One-shot exchanges on ports whose protocols answer in one datagram.
ONE_SHOT_MAX_PACKETS = 2
ONE_SHOT_PORTS = {53: ("DNS", 512.0), 123: ("NTP", 90.0)}  # port -> (name, max mean bytes)

# Well-known VoIP signalling ports (IANA service names), weak evidence only.
SIGNALLING_PORTS = {
    (UDP, 5060): "SIP", (TCP, 5060): "SIP", (TCP, 5061): "SIP-TLS", (UDP, 5061): "SIP-TLS",
    (UDP, 4569): "IAX2", (UDP, 2427): "MGCP", (UDP, 2727): "MGCP", (TCP, 1720): "H.323",
    (TCP, 2000): "SCCP", (UDP, 3478): "STUN/TURN", (TCP, 3478): "STUN/TURN",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Direction:
    """One direction's counters. Times in ns since the epoch; None when no record of that
    direction said (a biflow's reverse side without reverse times takes the flow's)."""

    packets: int
    octets: int
    first_ns: int | None = None
    last_ns: int | None = None

    @property
    def mean_bytes(self) -> float:
        return self.octets / self.packets if self.packets else 0.0


@dataclass(frozen=True, slots=True)
class FlowCounters:
    proto: int
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    first_ns: int
    last_ns: int
    fwd: Direction
    rev: Direction
    sampled: bool = False  # counters cover 1 in N packets: rates are not the wire's

    @property
    def duration_s(self) -> float:
        return (self.last_ns - self.first_ns) / 1e9


def packets_per_s(d: Direction, flow: FlowCounters) -> float | None:
    """Packets per second of one direction over its own span ((n - 1) intervals), or
    None when it has too few packets or no span to say."""
    if d.packets < MEDIA_MIN_PACKETS:
        return None
    first = flow.first_ns if d.first_ns is None else d.first_ns
    last = flow.last_ns if d.last_ns is None else d.last_ns
    span_s = (last - first) / 1e9
    if span_s <= 0:
        return None
    return (d.packets - 1) / span_s


def _describe(name: str, d: Direction, pps: float | None) -> str:
    rate = "no rate" if pps is None else f"{pps:.1f} pkt/s"
    return f"{name}: {d.packets} pkts, {rate}, mean {d.mean_bytes:.0f} B"


def is_voice_direction(d: Direction, flow: FlowCounters) -> bool:
    pps = packets_per_s(d, flow)
    return (
        pps is not None
        and VOICE_MIN_PPS <= pps <= VOICE_MAX_PPS
        and VOICE_MIN_MEAN_BYTES <= d.mean_bytes <= VOICE_MAX_MEAN_BYTES
    )


def is_video_direction(d: Direction, flow: FlowCounters) -> bool:
    pps = packets_per_s(d, flow)
    return (
        pps is not None
        and VIDEO_MIN_PPS <= pps <= VIDEO_MAX_PPS
        and VIDEO_MIN_MEAN_BYTES < d.mean_bytes <= VIDEO_MAX_MEAN_BYTES
    )


def is_voice_like(flow: FlowCounters) -> bool:
    """At least one direction paced and sized like voice (UDP)."""
    return flow.proto == UDP and (
        is_voice_direction(flow.fwd, flow) or is_voice_direction(flow.rev, flow)
    )


def is_rtcp_like(flow: FlowCounters) -> bool:
    """Few, small packets at a report's pace: what an RTCP flow's counters look like."""
    if flow.proto != UDP:
        return False
    packets = flow.fwd.packets + flow.rev.packets
    if packets == 0:
        return False
    mean = (flow.fwd.octets + flow.rev.octets) / packets
    rate = packets / max(flow.duration_s, 1.0)
    return rate <= RTCP_MAX_PPS and 36.0 <= mean <= 1500.0


def judge(
    flow: FlowCounters,
    rtcp_neighbour: FlowCounters | None = None,
    rtp_neighbour: FlowCounters | None = None,
) -> Verdict:
    """The verdict of one flow from its counters. ``rtcp_neighbour``: the flow between
    the same hosts on both ports + 1, if any; ``rtp_neighbour``: the one on ports - 1."""
    verdict = _media_verdict(flow, rtcp_neighbour)
    if (
        verdict is None
        and rtp_neighbour is not None
        and is_rtcp_like(flow)
        and is_voice_like(rtp_neighbour)
    ):
        verdict = Verdict(
            MEDIA,
            confidence=RTCP_LIKE_CONFIDENCE,
            evidence=[
                "rtcp-like: few small packets on ports + 1 of a voice-like flow between "
                f"the same hosts ({rtp_neighbour.src_port}/{rtp_neighbour.dst_port}); "
                "from flow counters only",
                _describe("fwd", flow.fwd, None),
                _describe("rev", flow.rev, None),
            ],
        )
    if verdict is None:
        verdict = _other_verdict(flow) or Verdict()
    if verdict.category == MEDIA:
        _attach_app(verdict, flow)
    hint = _port_hint(flow)
    if hint:
        verdict.evidence.append(hint)
    if flow.sampled:
        verdict.evidence.append("sampled counters: rates and sizes are of the sampled packets")
        if verdict.category == MEDIA:
            verdict.confidence = round(verdict.confidence * 0.5, 3)
    return verdict


def _media_verdict(flow: FlowCounters, rtcp: FlowCounters | None) -> Verdict | None:
    if flow.proto != UDP:
        return None
    fwd_pps = packets_per_s(flow.fwd, flow)
    rev_pps = packets_per_s(flow.rev, flow)
    fwd_voice = is_voice_direction(flow.fwd, flow)
    rev_voice = is_voice_direction(flow.rev, flow)
    fwd_video = is_video_direction(flow.fwd, flow)
    rev_video = is_video_direction(flow.rev, flow)
    details = [_describe("fwd", flow.fwd, fwd_pps), _describe("rev", flow.rev, rev_pps)]
    details.append(f"duration {flow.duration_s:.1f} s")
    if (fwd_video and (rev_voice or rev_video)) or (rev_video and (fwd_voice or fwd_video)):
        return Verdict(
            MEDIA,
            media="video",
            confidence=VIDEO_CONFIDENCE,
            evidence=[
                f"video-like: packets above {VIDEO_MIN_MEAN_BYTES:.0f} B at a media rate "
                "with media the other way; from flow counters only",
                *details,
            ],
        )
    if not (fwd_voice or rev_voice):
        return None
    both = fwd_voice and rev_voice
    confidence = BOTH_WAYS_CONFIDENCE if both else ONE_WAY_CONFIDENCE
    ways = "both directions" if both else "one direction"
    evidence = [
        f"voice-like pacing in {ways}: {VOICE_MIN_PPS:.0f}-{VOICE_MAX_PPS:.0f} pkt/s of "
        f"{VOICE_MIN_MEAN_BYTES:.0f}-{VOICE_MAX_MEAN_BYTES:.0f} B packets; from flow "
        "counters only",
        *details,
    ]
    if rtcp is not None and is_rtcp_like(rtcp):
        confidence = round(confidence + RTCP_BONUS, 3)
        evidence.append(
            f"rtcp-like flow on ports + 1 ({rtcp.src_port}/{rtcp.dst_port}, "
            f"{rtcp.fwd.packets + rtcp.rev.packets} pkts)"
        )
    return Verdict(MEDIA, media="audio", confidence=confidence, evidence=evidence)


def _other_verdict(flow: FlowCounters) -> Verdict | None:
    if flow.proto == TCP:
        for name, d in (("fwd", flow.fwd), ("rev", flow.rev)):
            if d.octets >= BULK_MIN_BYTES and d.mean_bytes >= BULK_MIN_MEAN_BYTES:
                return Verdict(
                    OTHER,
                    confidence=0.6,
                    evidence=[
                        f"bulk TCP transfer: {d.octets} B {name} in packets of mean "
                        f"{d.mean_bytes:.0f} B (not voice, not signalling)"
                    ],
                )
        return None
    if flow.proto != UDP:
        return None
    for port in (flow.dst_port, flow.src_port):
        known = ONE_SHOT_PORTS.get(port)
        if known is None:
            continue
        name, max_mean = known
        one_shot = (
            flow.fwd.packets <= ONE_SHOT_MAX_PACKETS and flow.rev.packets <= ONE_SHOT_MAX_PACKETS
        )
        sizes_fit = all(d.packets == 0 or d.mean_bytes <= max_mean for d in (flow.fwd, flow.rev))
        if one_shot and sizes_fit:
            return Verdict(
                OTHER,
                confidence=0.4,
                evidence=[
                    f"one-shot {name}-sized exchange on port {port} "
                    f"({flow.fwd.packets}+{flow.rev.packets} pkts, at most {max_mean:.0f} B "
                    "mean): not media; port and sizes only"
                ],
            )
    return None


def _attach_app(verdict: Verdict, flow: FlowCounters) -> None:
    for ip in (flow.dst_ip, flow.src_ip):
        match = app_for_address(ip)
        if match is not None:
            verdict.app = match.app
            when = f", list of {match.retrieved}" if match.retrieved else ""
            verdict.evidence.append(
                f"app: {ip} in {match.app}'s published range {match.matched}{when}"
            )
            return


def _port_hint(flow: FlowCounters) -> str | None:
    for port in (flow.dst_port, flow.src_port):
        name = SIGNALLING_PORTS.get((flow.proto, port))
        if name is not None:
            transport = "udp" if flow.proto == UDP else "tcp"
            return (
                f"port {port}/{transport} is {name}'s well-known port (a port alone is weak "
                "evidence; no payload to confirm)"
            )
    return None
