"""policy: VoIP signalling or media to or from hosts, or by apps, the site does not allow.

Off until configured: with ``allowed_networks`` set, every VoIP flow (category
``voip-signaling`` or ``voip-media``) with an endpoint outside those networks raises an
alert; with ``allowed_apps`` set, every VoIP flow whose app is not listed does (a flow
with no app is judged by its protocol: list "SIP" to allow plain SIP). Each alert
carries what a block list needs in ``data.block``: ip, port, transport, protocol, app.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from voipscope.bounded import add_capped
from voipscope.detect.alerts import Alert, AlertBook
from voipscope.detect.base import Detector, finite_float
from voipscope.errors import ConfigError

KIND = "policy"
VOIP_CATEGORIES = frozenset({"voip-signaling", "voip-media"})
MAX_BLOCK_ENTRIES = 64  # per alert


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """The allow-list (later config keys ``detect.policy.*``). Empty = not enforced."""

    allowed_networks: tuple[str, ...] = ()  # CIDRs: "10.0.0.0/8", "2001:db8::/32", hosts
    allowed_apps: tuple[str, ...] = ()  # app names ("Teams", "Zoom") or protocols ("SIP")


class PolicyDetector(Detector):
    name = "policy"

    def __init__(self, book: AlertBook, config: PolicyConfig | None = None) -> None:
        super().__init__(book)
        self.config = config or PolicyConfig()
        self._networks = _parse_networks(self.config.allowed_networks)
        self._apps = {a.lower() for a in self.config.allowed_apps}

    def on_flow(self, flow: dict[str, Any]) -> None:
        if flow.get("category") not in VOIP_CATEGORIES:
            return
        if self._networks:
            outside = [
                (ip, port)
                for ip, port in (
                    (flow.get("src_ip"), flow.get("src_port")),
                    (flow.get("dst_ip"), flow.get("dst_port")),
                )
                if ip and not self._allowed_host(ip)
            ]
            if outside:
                self._raise(flow, "host-not-allowed", outside)
        if self._apps:
            name = flow.get("app") or flow.get("protocol") or "unknown"
            if name.lower() not in self._apps:
                self._raise(flow, "app-not-allowed", [(flow.get("dst_ip"), flow.get("dst_port"))])

    def _allowed_host(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self._networks)

    def _raise(self, flow: dict[str, Any], reason: str, endpoints: list[tuple[Any, Any]]) -> None:
        what = flow.get("app") or flow.get("protocol") or flow.get("category")
        ts = finite_float(flow.get("first_seen")) or 0.0
        block = [
            {
                "ip": ip,
                "port": port,
                "transport": flow.get("proto"),
                "protocol": flow.get("protocol"),
                "app": flow.get("app"),
            }
            for ip, port in endpoints
        ]
        alert = Alert(
            ts=ts,
            last_ts=finite_float(flow.get("last_seen")) or ts,
            kind=KIND,
            severity="low",
            src_ip=flow.get("src_ip"),
            dst_ip=flow.get("dst_ip"),
            summary=f"{what} {flow.get('category')} "
            + (
                "with a host outside the allowed networks"
                if reason == "host-not-allowed"
                else "by an app that is not allowed"
            ),
            evidence=[
                f"flow {flow.get('flow_id')} {flow.get('proto')} "
                f"{flow.get('src_ip')}:{flow.get('src_port')} -> "
                f"{flow.get('dst_ip')}:{flow.get('dst_port')}: {reason}"
            ],
        )
        merged = self.book.raise_alert(alert, detail=reason)
        merged.data["reason"] = reason
        entries = merged.data.setdefault("block", [])
        for entry in block:
            add_capped(entries, entry, MAX_BLOCK_ENTRIES)


def _parse_networks(
    items: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(n, strict=False) for n in items)
    except ValueError as exc:
        raise ConfigError(f"detect.policy.allowed_networks: {exc}") from None
