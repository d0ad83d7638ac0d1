"""vlan_hopping: getting into the voice VLAN.

Two opinions:

- ``vlan-hopping`` (high), from the decode anomaly ``vlan_double_tagged``: frames with
  two 802.1Q (0x8100) tags. The first switch strips the outer (native-VLAN) tag and
  forwards the frame into the inner VLAN — the classic double-tagging attack (QinQ
  proper uses an 802.1ad service tag outside, and is not reported).
- ``voice-vlan-intruder`` (low), from Flow records at the end of the input: in a VLAN
  where at least ``min_phones`` hosts signal like phones (SIP, SCCP, MGCP, H.323, IAX2 —
  a voice VLAN), a host that started at least ``min_flows`` flows and never signalled.
  Tools like voiphopper put a laptop into the voice VLAN; printers or servers placed
  there by design trip it too, which is why it is low and names what the host did.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from voipscope.anomalies import Anomaly
from voipscope.bounded import CappedTable
from voipscope.detect.alerts import Alert, AlertBook
from voipscope.detect.base import Detector

HOPPING = "vlan-hopping"
INTRUDER = "voice-vlan-intruder"
ANOMALY = "vlan_double_tagged"
PHONE_PROTOCOLS = frozenset({"SIP", "SCCP", "MGCP", "H.323", "H.225 RAS", "IAX2", "MEGACO"})
_TAGS = re.compile(r"VLAN (\d+) carrying VLAN (\d+)")
MAX_LISTED = 16


@dataclass(frozen=True, slots=True)
class VlanHoppingConfig:
    """Thresholds (config keys ``detect.vlan_hopping.*``)."""

    min_phones: int = 3  # hosts signalling like phones that make a VLAN a voice VLAN
    min_flows: int = 20  # flows a host started there without ever signalling
    max_hosts: int = 65_536  # (VLAN, host) pairs followed


@dataclass(slots=True)
class _Host:
    flows: int = 0
    signalled: bool = False
    protocols: Counter[str] | None = None


class VlanHoppingDetector(Detector):
    name = "vlan_hopping"
    wants_tagged_flows = True

    def __init__(self, book: AlertBook, config: VlanHoppingConfig | None = None) -> None:
        super().__init__(book)
        self.config = cfg = config or VlanHoppingConfig()
        self.hosts: CappedTable[tuple[int, str], _Host] = CappedTable(cfg.max_hosts, _Host)

    # -- double tagging, from the anomalies as the run's log counts them ------------------

    def on_anomaly(self, anomaly: Anomaly, count: int) -> None:
        if anomaly.name != ANOMALY or anomaly.ts is None:
            return
        m = _TAGS.search(anomaly.detail)
        outer, inner = (int(m.group(1)), int(m.group(2))) if m else (None, None)
        self.book.raise_alert(
            Alert(
                ts=anomaly.ts,
                last_ts=anomaly.ts,
                kind=HOPPING,
                severity="high",
                src_ip=anomaly.src_ip,
                dst_ip=anomaly.dst_ip,
                summary=f"802.1Q-in-802.1Q frames from {anomaly.src_ip}: VLAN {outer} "
                f"carrying VLAN {inner}",
                evidence=[anomaly.detail],
                count=count,
                data={"outer_vlan": outer, "inner_vlan": inner},
            ),
            f"{outer}/{inner}",
        )

    # -- hosts in a voice VLAN that never signal -----------------------------------------

    def on_flow(self, flow: dict[str, Any]) -> None:
        vlan, src = flow.get("vlan"), flow.get("src_ip")
        if not isinstance(vlan, int) or vlan < 0 or not isinstance(src, str):
            return
        host = self.hosts.get((vlan, src))
        host.flows += 1
        protocol = flow.get("protocol") or "-"
        if flow.get("category") == "voip-signaling" and protocol in PHONE_PROTOCOLS:
            host.signalled = True
        elif len(host.protocols or ()) < MAX_LISTED or protocol in (host.protocols or ()):
            host.protocols = host.protocols or Counter()
            host.protocols[protocol] += 1

    def finish(self, now_s: float | None) -> None:
        cfg = self.config
        phones: Counter[int] = Counter(v for (v, _), h in self.hosts.items() if h.signalled)
        for (vlan, ip), host in self.hosts.items():
            if host.signalled or phones[vlan] < cfg.min_phones or host.flows < cfg.min_flows:
                continue
            did = ", ".join(f"{p} {n}" for p, n in (host.protocols or Counter()).most_common(6))
            ts = now_s or 0.0
            self.book.raise_alert(
                Alert(
                    ts=ts,
                    last_ts=ts,
                    kind=INTRUDER,
                    severity="low",
                    src_ip=ip,
                    dst_ip=None,
                    summary=f"{ip} in voice VLAN {vlan} ({phones[vlan]} phones) started "
                    f"{host.flows} flows and never signalled like a phone",
                    evidence=[f"its flows: {did}"],
                    data={"vlan": vlan, "phones": phones[vlan], "flows": host.flows},
                ),
                str(vlan),
            )

    def state_sizes(self) -> dict[str, tuple[int, int]]:
        return {"hosts": (len(self.hosts), self.config.max_hosts)}

    @property
    def overflow(self) -> int:
        return self.hosts.overflow
