"""skype-supernode: a host that serves the classic Skype overlay for other people.

Classic Skype (2003-2017) was a two-tier peer-to-peer network. Besides the ordinary
clients there were **supernodes** (SN): "any node with a public IP address having
sufficient CPU, memory, and network bandwidth is a candidate to become a super node", and
the client had no say in it (Baset & Schulzrinne, "An analysis of the Skype peer-to-peer
Internet telephony protocol", INFOCOM 2006). Clients keep a host cache of SN
addresses, log in through one SN, send it their searches and let it help them through
NATs (ibid.); Skype's Network Administrator's Guide (3.0, 2006) calls it the
client's "upstream" supernode. When two clients cannot reach each other directly, their
call is **relayed** through a third Skype node with open connectivity: media in from one
party and out to the other (Baset & Schulzrinne; Kho, Baset & Schulzrinne,
"Skype relay calls: measurements and experiments", INFOCOM workshops 2008, found over
9,000 such relay nodes). Guha, Daswani & Jain ("An experimental study of the Skype
peer-to-peer VoIP system", IPTPS 2006) ran a supernode at Cornell: its bandwidth load was
low, "even if the supernode is relaying VoIP traffic". So the finding is about policy,
not about harm: a machine on the monitored network carries strangers' signalling or
calls. Both roles are one alert kind, told apart by ``data.role``; severity is ``low``.

Opinion, from finished Flow records of classic Skype (``protocol == "Skype"``: the UDP
Start-of-Message flows and the TCP flows ``classify.skype_verdict`` named), never packets:

* **supernode** — at least ``min_inbound_peers`` distinct peer hosts *opened* Skype flows
  to the host (the peer sent the first packet: Flow ``src`` is the side that did) within
  ``window_s`` of capture time. Clients register with and query their supernode, so an SN
  is contacted; an ordinary client does the contacting. In the shared ``skype.pcap`` the
  client 192.168.1.34 opens Skype flows to 172 distinct peers within three minutes of
  logging in (its host-cache probing) and is opened by none: outbound contacts never
  count, however many.
* **relay** — two voice legs of the host, with different peers A and B, that are one
  relayed call: each carries Skype voice (SoM function 0x0D data, Flow ``media ==
  "audio"``) with at least ``min_voice_packets`` packets (Tstat ``skype.h``
  ``MIN_SKYPE_E2E_NUM``: 100 E2E packets before Tstat calls a flow an E2E call); the legs
  overlap for at least ``min_overlap_share`` of the longer one (a relay sets up and tears
  down both legs with the call); the packet rate in from A matches the rate out to B and
  the rate in from B the rate out to A, within ``rate_tolerance`` (a relay forwards every
  datagram); and the peers opened both legs (``require_inbound_legs``: the host did not
  originate them, so neither is its own call — caller and callee both connect *to* the
  relay, Kho et al.). The host's own call is one voice peer and pairs with nothing.

Evidence lists the peer counts, the paired flows with their times and rates; ``data``
holds ``confidence`` (0..1). Memory: hosts in an LRU table of ``max_hosts``, per host at
most ``max_peers_per_host`` peers in the window and the last ``max_legs_per_host`` voice
legs; evictions are counted in ``overflow`` (DESIGN §4).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from voipscope.bounded import CappedTable, SlidingDistinct, add_capped
from voipscope.detect.alerts import Alert, AlertBook
from voipscope.detect.base import Detector, finite_float

KIND = "skype-supernode"
ROLE_SUPERNODE = "supernode"
ROLE_RELAY = "relay"
SKYPE = "Skype"  # the Flow record's protocol for classic Skype (dissect.skype, classify)
MAX_LISTED = 16  # peers, ports and pairs listed in an alert's data
# A relay forwards each datagram unchanged in size, so mean IP bytes per packet in from A
# and out to B agree closely; independent streams of one codec agree only by chance.
SIZE_TOLERANCE = 0.10
# Confidence: the relay rule alone, + a size match, + each further relayed pair; the
# supernode rule at its threshold, + per doubling of the peers, + TCP clients too (a
# client logs in over TCP to its SN, Baset & Schulzrinne). Capped below 1: no
# flow-level rule sees inside the RC4 layer.
RELAY_CONFIDENCE = 0.6
SUPERNODE_CONFIDENCE = 0.5
CONFIDENCE_STEP = 0.1
MAX_CONFIDENCE = 0.9


@dataclass(frozen=True, slots=True)
class SkypeSupernodeConfig:
    """Thresholds (config keys ``detect.skype_supernode.*``)."""

    # supernode: distinct peers that opened Skype flows to the host within the window. No
    # paper gives a count; 20 in 10 minutes is above what an ordinary client receives
    # (skype.pcap's client: none while it probed 172) and far below the clients an SN
    # serves (Baset & Schulzrinne: every client hangs off one SN).
    window_s: float = 600.0
    min_inbound_peers: int = 20
    # relay
    min_voice_packets: int = 100  # per leg; Tstat skype.h MIN_SKYPE_E2E_NUM
    min_overlap_share: float = 0.8  # of the longer leg's duration
    # Relative difference of matched packet rates. The frames of the codecs classic Skype
    # used (GIPS iLBC 20/30 ms, RFC 3951; iSAC 30/60 ms; Baset & Schulzrinne) give 50,
    # 33 and 17 packets/s, >= 33 % apart: 15 % keeps framings apart and leaves room for
    # loss on one leg.
    rate_tolerance: float = 0.15
    require_inbound_legs: bool = True
    # bounds
    max_hosts: int = 10_000
    max_peers_per_host: int = 1024  # must exceed min_inbound_peers
    max_legs_per_host: int = 16


@dataclass(slots=True, frozen=True)
class _Leg:
    """One voice flow as seen from one of its ends (the host)."""

    flow_id: int | None
    host_port: int
    peer_ip: str
    peer_port: int
    first_s: float
    last_s: float
    in_packets: int  # peer -> host
    out_packets: int  # host -> peer
    in_bytes: int
    out_bytes: int
    opened_by_host: bool

    @property
    def duration_s(self) -> float:
        return self.last_s - self.first_s

    @property
    def in_pps(self) -> float:
        return self.in_packets / self.duration_s

    @property
    def out_pps(self) -> float:
        return self.out_packets / self.duration_s

    @property
    def in_size(self) -> float:
        return self.in_bytes / self.in_packets

    @property
    def out_size(self) -> float:
        return self.out_bytes / self.out_packets

    def describe(self, host_ip: str) -> str:
        opener = "host" if self.opened_by_host else "peer"
        return (
            f"voice leg {self.peer_ip}:{self.peer_port} <-> {host_ip}:{self.host_port} "
            f"(flow {self.flow_id}, opened by the {opener}): {self.first_s:.3f}-"
            f"{self.last_s:.3f} ({self.duration_s:.1f} s), in {self.in_pps:.1f} pkt/s, "
            f"out {self.out_pps:.1f} pkt/s"
        )


@dataclass(slots=True)
class _Host:
    inbound: SlidingDistinct[str]  # peer IPs that opened Skype flows to the host
    outbound: SlidingDistinct[str]  # peer IPs the host opened Skype flows to
    legs: deque[_Leg]
    inbound_udp_flows: int = 0
    inbound_tcp_flows: int = 0
    first_inbound_s: float | None = None  # first_seen of the earliest flow in the window
    ports: list[int] = field(default_factory=list)  # host ports peers opened flows to
    voice_peers: list[str] = field(default_factory=list)
    pairs: int = 0
    supernode_alert: Alert | None = None
    relay_alert: Alert | None = None


def _relative(a: float, b: float) -> float:
    """How far apart two non-negative values are, relative to the larger (0 when equal)."""
    top = max(a, b)
    return 0.0 if top == 0 else abs(a - b) / top


def _number(value: Any) -> float | None:
    # Stricter than ``finite``: a bool is an int to Python, but never a time here.
    return None if isinstance(value, bool) else finite_float(value)


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


class SkypeSupernodeDetector(Detector):
    name = "skype_supernode"

    def __init__(self, book: AlertBook, config: SkypeSupernodeConfig | None = None) -> None:
        super().__init__(book)
        self.config = cfg = config or SkypeSupernodeConfig()
        self.hosts: CappedTable[str, _Host] = CappedTable(
            cfg.max_hosts,
            lambda: _Host(
                SlidingDistinct(cfg.window_s, cfg.max_peers_per_host),
                SlidingDistinct(cfg.window_s, cfg.max_peers_per_host),
                deque(maxlen=max(1, cfg.max_legs_per_host)),
            ),
        )
        self.legs_evicted = 0

    # -- records ---------------------------------------------------------------------------

    def on_flow(self, flow: dict[str, Any]) -> None:
        if flow.get("protocol") != SKYPE or flow.get("proto") not in ("udp", "tcp"):
            return
        src, dst = flow.get("src_ip"), flow.get("dst_ip")
        sport, dport = _count(flow.get("src_port")), _count(flow.get("dst_port"))
        first, last = _number(flow.get("first_seen")), _number(flow.get("last_seen"))
        if not (isinstance(src, str) and isinstance(dst, str) and src and dst and src != dst):
            return
        if sport is None or dport is None or first is None or last is None or last < first:
            return
        self._contact(flow, src, dst, dport, first, last)
        if flow.get("media") == "audio" and flow.get("proto") == "udp":
            self._voice(flow, src, sport, dst, dport, first, last)

    def _contact(
        self, flow: dict[str, Any], src: str, dst: str, dport: int, first: float, last: float
    ) -> None:
        """``src`` opened a Skype flow to ``dst``: one more peer served by ``dst``."""
        opener = self.hosts.get(src)
        opener.outbound.add(last, dst)
        alert = opener.supernode_alert
        if alert is not None and self.book.is_open(alert, ROLE_SUPERNODE):
            self._describe_supernode(src, opener, alert)  # keep its outbound count current
        host = self.hosts.get(dst)
        host.inbound.expire(last)
        if not len(host.inbound) or host.first_inbound_s is None:
            host.first_inbound_s = first  # a new run of inbound contacts begins
        host.first_inbound_s = min(host.first_inbound_s, first)
        if flow.get("proto") == "udp":
            host.inbound_udp_flows += 1
        else:
            host.inbound_tcp_flows += 1
        add_capped(host.ports, dport, MAX_LISTED)
        known = src in host.inbound
        peers = host.inbound.add(last, src)
        if peers < self.config.min_inbound_peers:
            return
        alert = host.supernode_alert
        if alert is not None and self.book.is_open(alert, ROLE_SUPERNODE):
            if not known:
                alert.count = max(alert.count, peers)
                alert.last_ts = max(alert.last_ts or last, last)
                self._describe_supernode(dst, host, alert)
            return
        alert = Alert(
            ts=host.first_inbound_s,
            last_ts=last,
            kind=KIND,
            severity="low",
            src_ip=dst,
            dst_ip=None,
            summary="",
            count=peers,
        )
        self._describe_supernode(dst, host, alert)
        host.supernode_alert = self.book.raise_alert(alert, ROLE_SUPERNODE)

    def _describe_supernode(self, ip: str, host: _Host, alert: Alert) -> None:
        cfg = self.config
        inbound, outbound = len(host.inbound), len(host.outbound)
        confidence = SUPERNODE_CONFIDENCE + CONFIDENCE_STEP * min(
            3, int(math.log2(max(1.0, inbound / max(1, cfg.min_inbound_peers))))
        )
        if host.inbound_udp_flows and host.inbound_tcp_flows:
            confidence += CONFIDENCE_STEP
        confidence = round(min(MAX_CONFIDENCE, confidence), 2)
        ports = ", ".join(str(p) for p in host.ports)
        alert.summary = (
            f"{ip} acts as a Skype supernode: {inbound} distinct peers opened Skype flows "
            f"to it within {cfg.window_s:g} s"
        )
        alert.evidence = [
            f"{inbound} distinct peers opened classic-Skype flows to {ip} within "
            f"{cfg.window_s:g} s (threshold {cfg.min_inbound_peers}; clients register with "
            "and query their supernode, Baset & Schulzrinne 2006)",
            f"inbound flows so far: {host.inbound_udp_flows} UDP with the SoM header, "
            f"{host.inbound_tcp_flows} TCP; to port(s) {ports}",
            f"{ip} itself opened Skype flows to {outbound} peers in the window",
        ]
        alert.data = {
            "role": ROLE_SUPERNODE,
            "confidence": confidence,
            "inbound_peers": inbound,
            "outbound_peers": outbound,
            "inbound_udp_flows": host.inbound_udp_flows,
            "inbound_tcp_flows": host.inbound_tcp_flows,
            "host_ports": list(host.ports),
            "peers_sample": host.inbound.items()[-MAX_LISTED:],
            "voice_peers": len(host.voice_peers),
            "window_s": cfg.window_s,
        }

    # -- relay -----------------------------------------------------------------------------

    def _voice(
        self,
        flow: dict[str, Any],
        src: str,
        sport: int,
        dst: str,
        dport: int,
        first: float,
        last: float,
    ) -> None:
        s2d, d2s = _count(flow.get("src2dst_packets")), _count(flow.get("dst2src_packets"))
        s2d_bytes, d2s_bytes = _count(flow.get("src2dst_bytes")), _count(flow.get("dst2src_bytes"))
        if s2d is None or d2s is None or s2d_bytes is None or d2s_bytes is None:
            return
        if not s2d or not d2s or s2d + d2s < self.config.min_voice_packets or last <= first:
            return
        flow_id = flow.get("flow_id") if isinstance(flow.get("flow_id"), int) else None
        # The leg as each end sees it: at dst, in = src -> dst; at src, in = dst -> src.
        ends = (
            (dst, _Leg(flow_id, dport, src, sport, first, last, s2d, d2s, s2d_bytes,
                       d2s_bytes, False)),
            (src, _Leg(flow_id, sport, dst, dport, first, last, d2s, s2d, d2s_bytes,
                       s2d_bytes, True)),
        )  # fmt: skip
        for ip, leg in ends:
            host = self.hosts.get(ip)
            add_capped(host.voice_peers, leg.peer_ip, self.config.max_peers_per_host)
            for other in list(host.legs):
                if self._paired(leg, other):
                    self._relay(ip, host, other, leg)
            if len(host.legs) == host.legs.maxlen:
                self.legs_evicted += 1
            host.legs.append(leg)

    def _paired(self, a: _Leg, b: _Leg) -> bool:
        cfg = self.config
        if a.peer_ip == b.peer_ip or (a.flow_id is not None and a.flow_id == b.flow_id):
            return False
        if cfg.require_inbound_legs and (a.opened_by_host or b.opened_by_host):
            return False  # the host originated a leg: its own call, not a stranger's
        overlap = min(a.last_s, b.last_s) - max(a.first_s, b.first_s)
        if overlap < cfg.min_overlap_share * max(a.duration_s, b.duration_s):
            return False
        return (
            _relative(a.in_pps, b.out_pps) <= cfg.rate_tolerance
            and _relative(b.in_pps, a.out_pps) <= cfg.rate_tolerance
        )

    def _relay(self, ip: str, host: _Host, a: _Leg, b: _Leg) -> None:
        host.pairs += 1
        overlap = min(a.last_s, b.last_s) - max(a.first_s, b.first_s)
        sizes_match = (
            _relative(a.in_size, b.out_size) <= SIZE_TOLERANCE
            and _relative(b.in_size, a.out_size) <= SIZE_TOLERANCE
        )
        pair = {
            "a_ip": a.peer_ip,
            "a_port": a.peer_port,
            "b_ip": b.peer_ip,
            "b_port": b.peer_port,
            "host_ports": [a.host_port, b.host_port],
            "flow_ids": [a.flow_id, b.flow_id],
            "start": max(a.first_s, b.first_s),
            "end": min(a.last_s, b.last_s),
            "overlap_s": round(overlap, 3),
            "a_to_host_pps": round(a.in_pps, 2),
            "host_to_b_pps": round(b.out_pps, 2),
            "b_to_host_pps": round(b.in_pps, 2),
            "host_to_a_pps": round(a.out_pps, 2),
            "sizes_match": sizes_match,
        }
        opened = (
            "the host opened a leg"
            if a.opened_by_host or b.opened_by_host
            else "both legs opened by the peers"
        )
        evidence = [
            a.describe(ip),
            b.describe(ip),
            f"relayed pair {a.peer_ip} <-> {ip} <-> {b.peer_ip}: overlap {overlap:.1f} s; "
            f"in from {a.peer_ip} {a.in_pps:.1f} vs out to {b.peer_ip} {b.out_pps:.1f} "
            f"pkt/s, in from {b.peer_ip} {b.in_pps:.1f} vs out to {a.peer_ip} "
            f"{a.out_pps:.1f} pkt/s (tolerance {self.config.rate_tolerance:.0%}); "
            f"mean sizes {'match' if sizes_match else 'differ'}; {opened}",
        ]
        confidence = RELAY_CONFIDENCE + CONFIDENCE_STEP * sizes_match
        confidence += CONFIDENCE_STEP * min(2, host.pairs - 1)
        confidence = round(min(MAX_CONFIDENCE, confidence), 2)
        alert = host.relay_alert
        if alert is not None and self.book.is_open(alert, ROLE_RELAY):
            alert.count += 1
            alert.ts = min(alert.ts, pair["start"])
            alert.last_ts = max(alert.last_ts or alert.ts, max(a.last_s, b.last_s))
            for text in evidence:
                alert.add_evidence(text)
            pairs = alert.data["pairs"]
            if len(pairs) < MAX_LISTED:
                pairs.append(pair)
            alert.data["confidence"] = max(alert.data["confidence"], confidence)
            alert.data["voice_peers"] = len(host.voice_peers)
            alert.summary = self._relay_summary(ip, alert.count)
            return
        alert = Alert(
            ts=max(a.first_s, b.first_s),
            last_ts=max(a.last_s, b.last_s),
            kind=KIND,
            severity="low",
            src_ip=ip,
            dst_ip=None,
            summary=self._relay_summary(ip, 1),
            evidence=evidence,
            data={
                "role": ROLE_RELAY,
                "confidence": confidence,
                "pairs": [pair],
                "voice_peers": len(host.voice_peers),
                "rate_tolerance": self.config.rate_tolerance,
            },
        )
        host.relay_alert = self.book.raise_alert(alert, ROLE_RELAY)

    @staticmethod
    def _relay_summary(ip: str, pairs: int) -> str:
        calls = "a Skype call" if pairs == 1 else f"{pairs} Skype calls"
        return f"{ip} relays {calls} between other parties (voice in from one, out to another)"

    # -- bounds ----------------------------------------------------------------------------

    def state_sizes(self) -> dict[str, tuple[int, int]]:
        hosts = [h for _, h in self.hosts.items()]
        cfg = self.config
        peers = max((max(len(h.inbound), len(h.outbound)) for h in hosts), default=0)
        legs = max((len(h.legs) for h in hosts), default=0)
        voice = max((len(h.voice_peers) for h in hosts), default=0)
        return {
            "hosts": (len(self.hosts), cfg.max_hosts),
            "peers_per_host": (peers, cfg.max_peers_per_host),
            "voice_peers_per_host": (voice, cfg.max_peers_per_host),
            "legs_per_host": (legs, max(1, cfg.max_legs_per_host)),
        }

    @property
    def overflow(self) -> int:
        peers = sum(h.inbound.overflow + h.outbound.overflow for _, h in self.hosts.items())
        return self.hosts.overflow + self.legs_evicted + peers
