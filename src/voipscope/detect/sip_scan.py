"""sip-scan: one source sending SIP requests to many hosts or ports (svmap, sipscan,
the OPTIONS sweeps of the internet background).

Opinion: a source that, within ``window_s`` of capture time, sends requests to at least
``min_targets`` distinct (host, port) destinations that never sent it a request of their
own. The exclusion keeps a PBX or proxy that pings (RFC 3261 §11 OPTIONS "qualify") the
phones registered to it out: those phones REGISTER to it first. Answers from targets
are kept as data (they are the live SIP servers the scanner found). A source's requests
more than the alert book's ``quiet_s`` (or ``window_s``, if longer) after its last start
it afresh (a new sweep: a new alert with its own start, count and methods).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.bounded import CappedTable, SlidingDistinct, add_capped
from voipscope.detect.alerts import Alert, AlertBook
from voipscope.detect.base import Detector
from voipscope.detect.scanner_agents import first_scanner_tool, name_scanner
from voipscope.detect.sip_facts import SipFacts

KIND = "sip-scan"
MAX_LISTED = 32  # targets, ports, responders and agents listed in an alert's data


@dataclass(frozen=True, slots=True)
class SipScanConfig:
    """Thresholds (later config keys ``detect.sip_scan.*``)."""

    # Distinct destinations within the window that make a scan. svmap sweeps a /24 in
    # seconds; 10 new SIP destinations in a minute is rare for any single client.
    window_s: float = 60.0
    min_targets: int = 10
    high_targets: int = 100  # severity high from here
    max_sources: int = 10_000  # sources followed at once
    max_targets_per_source: int = 1024  # remembered per source (must exceed high_targets)
    max_peer_pairs: int = 100_000  # (requester, requested) pairs that excuse a target


@dataclass(slots=True)
class _Source:
    targets: SlidingDistinct[tuple[str, int]]
    methods: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    responders: list[str] = field(default_factory=list)
    alert: Alert | None = None
    first_ts: float | None = None
    last_ts: float | None = None


class SipScanDetector(Detector):
    name = "sip_scan"

    def __init__(self, book: AlertBook, config: SipScanConfig | None = None) -> None:
        super().__init__(book)
        self.config = cfg = config or SipScanConfig()
        # A source silent this long starts a new episode: its alert has gone quiet, and
        # nothing of it is left in the window.
        self._gap_s = max(book.quiet_s, cfg.window_s)
        self.sources: CappedTable[str, _Source] = CappedTable(
            cfg.max_sources,
            lambda: _Source(SlidingDistinct(cfg.window_s, cfg.max_targets_per_source)),
        )
        # (a, b): a sent b a request, so b probing a is two peers talking, not a scan.
        self.peers: CappedTable[tuple[str, str], bool] = CappedTable(
            cfg.max_peer_pairs, lambda: True
        )

    def on_sip(self, f: SipFacts) -> None:
        if not f.is_request:
            self._on_response(f)
            return
        self.peers.get((f.src_ip, f.dst_ip))
        if self.peers.peek((f.dst_ip, f.src_ip)) is not None:
            return
        src, _ = self.sources.get_renewed(  # after a quiet gap, a new sweep
            f.src_ip, lambda s: s.last_ts is not None and f.ts_s - s.last_ts > self._gap_s
        )
        if src.first_ts is None:
            src.first_ts = f.ts_s
        src.last_ts = f.ts_s if src.last_ts is None else max(src.last_ts, f.ts_s)
        if f.method:
            add_capped(src.methods, f.method, 8)
        if f.user_agent:
            add_capped(src.agents, f.user_agent, 8)
        target = (f.dst_ip, f.dst_port)
        known = target in src.targets
        count = src.targets.add(f.ts_s, target)
        if src.alert is not None and self.book.is_open(src.alert, now_s=f.ts_s):
            if known:  # probing a target again: the scan goes on
                src.alert.last_ts = max(src.alert.last_ts or src.alert.ts, f.ts_s)
            else:
                self._grow(src, f)
            return
        if count >= self.config.min_targets:
            self._raise(f.src_ip, src, f, count)

    def _on_response(self, f: SipFacts) -> None:
        # A target answering the scanner: the scanner learnt a live SIP server.
        src = self.sources.peek(f.dst_ip)
        if src is None or (f.src_ip, f.src_port) not in src.targets:
            return
        agent = f" ({f.user_agent})" if f.user_agent else ""
        add_capped(src.responders, f"{f.src_ip}:{f.src_port} {f.status}{agent}", MAX_LISTED)
        if src.alert is not None and self.book.is_open(src.alert, now_s=f.ts_s):
            src.alert.data["responders"] = list(src.responders)

    def _raise(self, ip: str, src: _Source, f: SipFacts, count: int) -> None:
        targets = src.targets.items()
        hosts = sorted({h for h, _ in targets})
        ports = sorted({p for _, p in targets})
        one_host = len(hosts) == 1
        tool = first_scanner_tool(src.agents)
        severity = "high" if count >= self.config.high_targets else "medium"
        # The sweep's start; after an alert of this source went quiet (a window longer
        # than alert_quiet_s keeps the source), the oldest destination still in the window.
        start = src.first_ts if src.alert is None else src.targets.oldest_s()
        alert = Alert(
            ts=start if start is not None else f.ts_s,
            last_ts=f.ts_s,
            kind=KIND,
            severity=severity,
            src_ip=ip,
            dst_ip=hosts[0] if one_host else None,
            summary=_summary(count, hosts, ports, self.config.window_s),
            evidence=[
                f"{count} distinct SIP destinations within {self.config.window_s:g} s "
                f"(threshold {self.config.min_targets})",
                f"methods {', '.join(src.methods)}",
            ],
            count=count,
            data=self._data(src, hosts, ports, tool),
        )
        name_scanner(alert, tool)
        src.alert = self.book.raise_alert(alert)

    def _grow(self, src: _Source, f: SipFacts) -> None:
        alert = src.alert
        assert alert is not None
        targets = src.targets.items()  # the data describes the current window
        hosts = sorted({h for h, _ in targets})
        ports = sorted({p for _, p in targets})
        alert.count += 1  # one more destination
        alert.last_ts = f.ts_s
        alert.summary = _summary(alert.count, hosts, ports, self.config.window_s)
        tool = alert.data.get("scanner_tool")
        alert.data.update(self._data(src, hosts, ports, tool))
        if alert.count >= self.config.high_targets and alert.severity != "high":
            alert.severity = "high"

    def _data(self, src: _Source, hosts: list[str], ports: list[int], tool: str | None) -> dict:
        return {
            "targets_in_window": len(src.targets),
            "hosts": len(hosts),
            "hosts_sample": hosts[:MAX_LISTED],
            "ports": ports[:MAX_LISTED],
            "methods": list(src.methods),
            "user_agents": list(src.agents),
            "scanner_tool": tool,
            "responders": list(src.responders),
            "window_s": self.config.window_s,
        }

    def state_sizes(self) -> dict[str, tuple[int, int]]:
        biggest = max((len(s.targets) for _, s in self.sources.items()), default=0)
        return {
            "sources": (len(self.sources), self.config.max_sources),
            "targets_per_source": (biggest, self.config.max_targets_per_source),
            "peer_pairs": (len(self.peers), self.config.max_peer_pairs),
        }

    @property
    def overflow(self) -> int:
        return self.sources.overflow + self.peers.overflow


def _summary(count: int, hosts: list[str], ports: list[int], window_s: float) -> str:
    what = f"{len(ports)} ports of {hosts[0]}" if len(hosts) == 1 else f"{len(hosts)} hosts"
    return f"SIP requests to {count} destinations ({what} in a {window_s:g} s window)"
