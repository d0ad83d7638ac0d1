"""sip-flood: more SIP requests than any honest sender makes (INVITE/REGISTER floods,
the denial-of-service kind), and storms of malformed SIP.

Opinions:
- one source sends at least ``min_requests`` requests of one method to one server within
  ``window_s`` (retransmissions count: they load the server the same);
- one server receives at least ``min_requests_to_target`` requests of one method from
  all sources within ``window_s`` (a distributed flood; the alert has no single source);
- at least ``min_malformed`` SIP anomalies (``sip_malformed``, ``sip_missing_header``,
  ``sip_stream_overflow``, ...) are named within ``window_s`` of capture time, each
  counted at its own time as the run's log counts it (every one, past the log's record
  cap); an episode ends after a quiet gap as the floods' do.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from voipscope.anomalies import Anomaly
from voipscope.bounded import BucketRate, CappedTable
from voipscope.detect.alerts import Alert, AlertBook
from voipscope.detect.base import Detector
from voipscope.detect.scanner_agents import name_scanner, scanner_tool
from voipscope.detect.sip_facts import SipFacts
from voipscope.dissect.sip import SipDissector
from voipscope.dissect.sip_ws import SipWsDissector

KIND = "sip-flood"
# The anomalies the SIP dissectors name for what a message on the wire says wrong (over
# UDP/TCP, WebSocket), at the packet that carried it. Not: a deflated message, legitimate
# (RFC 7692), and a refused upgrade, which says nothing of SIP (counting them would make a
# busy WebRTC gateway a "flood of malformed SIP"); nor what the calls stage names later
# (a message without Call-ID is sip_missing_header already; a full dialog table is load).
MALFORMED = frozenset(
    (SipDissector.ANOMALIES.keys() | SipWsDissector.ANOMALIES.keys())
    - {"sip_ws_compressed", "sip_ws_refused"}
)
MAX_METHOD_CHARS = 16
MAX_STORM_SOURCES = 4096  # sources counted per malformed-SIP episode (spoofable)
TOP_SOURCES = 16  # named in the alert


@dataclass(frozen=True, slots=True)
class SipFloodConfig:
    """Thresholds (later config keys ``detect.sip_flood.*``)."""

    window_s: float = 10.0
    # 20 requests/s of one method from one sender to one server, sustained over 10 s: a
    # phone sends a few per call; a trunk this busy belongs on the allow-list of load.
    min_requests: int = 200
    min_requests_to_target: int = 1000  # from all sources together
    high_factor: int = 10  # severity high at this multiple of the threshold
    min_malformed: int = 100  # SIP anomalies within the window
    max_keys: int = 10_000  # (source, server, method) rates followed at once


class SipFloodDetector(Detector):
    name = "sip_flood"

    def __init__(self, book: AlertBook, config: SipFloodConfig | None = None) -> None:
        super().__init__(book)
        self.config = cfg = config or SipFloodConfig()
        # A source silent this long starts a new episode: its alert has gone quiet, and
        # nothing of it is left in the window.
        self._gap_s = max(book.quiet_s, cfg.window_s)
        self.rates: CappedTable[tuple[str | None, str, str], BucketRate] = CappedTable(
            cfg.max_keys, lambda: BucketRate(cfg.window_s)
        )
        self.agents: CappedTable[str, str] = CappedTable(cfg.max_keys, str)
        # Per key with an alert: the key's request total before the flood began, so the
        # alert counts the flood's requests, not all since the key was first seen (a busy
        # server's "many sources" key never falls quiet).
        self._before: CappedTable[tuple[str | None, str, str], int] = CappedTable(cfg.max_keys, int)
        self._storm: _Storm | None = None  # the malformed-SIP episode going on

    def on_sip(self, f: SipFacts) -> None:
        if not f.is_request or not f.method:
            return
        method = f.method[:MAX_METHOD_CHARS]
        if f.user_agent:
            self.agents.put(f.src_ip, f.user_agent)
        for src, threshold in (
            (f.src_ip, self.config.min_requests),
            (None, self.config.min_requests_to_target),
        ):
            rate, _ = self.rates.get_renewed(  # a new flood: its total counts from here
                (src, f.dst_ip, method),
                lambda r: (
                    r.last_bucket_s is not None
                    and f.ts_s - r.last_bucket_s > self._gap_s + r.bucket_s
                ),
            )
            count = rate.add(f.ts_s)
            if count >= threshold:
                self._report(f, src, method, count, threshold, rate.total)

    def _report(
        self, f: SipFacts, src: str | None, method: str, count: int, threshold: int, total: int
    ) -> None:
        cfg = self.config
        open_alert = self.book.open_alert(KIND, src, f.dst_ip, method, now_s=f.ts_s)
        severity = "high" if count >= cfg.high_factor * threshold else "medium"
        key = (src, f.dst_ip, method)
        if open_alert is not None:
            open_alert.last_ts = f.ts_s
            open_alert.count = total - (self._before.peek(key) or 0)
            peak = max(open_alert.data.get("peak_requests_in_window", 0), count)
            open_alert.data["peak_requests_in_window"] = peak
            if severity == "high":
                open_alert.severity = "high"
            return
        self._before.put(key, total - count)
        tool = scanner_tool(self.agents.peek(src)) if src else None
        who = src or "many sources"
        alert = Alert(
            ts=f.ts_s,
            last_ts=f.ts_s,
            kind=KIND,
            severity=severity,
            src_ip=src,
            dst_ip=f.dst_ip,
            summary=f"{method} flood: {count} requests within {cfg.window_s:g} s "
            f"from {who} to {f.dst_ip}",
            evidence=[
                f"{count} {method} requests within {cfg.window_s:g} s (threshold {threshold})"
            ],
            count=count,
            data={
                "pattern": "rate",
                "method": method,
                "peak_requests_in_window": count,
                "window_s": cfg.window_s,
                "threshold": threshold,
                "scanner_tool": tool,
            },
        )
        name_scanner(alert, tool)
        self.book.raise_alert(alert, detail=method)

    # -- malformed storms, from the anomalies as the run's log counts them ---------------

    def on_anomaly(self, anomaly: Anomaly, count: int) -> None:
        if anomaly.name not in MALFORMED or anomaly.ts is None:
            return
        ts = anomaly.ts
        storm = self._storm
        if storm is None or ts - storm.last_s > self._gap_s:
            storm = self._storm = _Storm(BucketRate(self.config.window_s), ts)  # a new episode
        storm.last_s = max(storm.last_s, ts)
        storm.total += count
        storm.names[anomaly.name] += count
        src = anomaly.src_ip
        if src and (src in storm.sources or len(storm.sources) < MAX_STORM_SOURCES):
            storm.sources[src] += count
            _keep_top(storm.top_sources, src, storm.sources[src])
        in_window = storm.rate.add(ts, count)
        if in_window >= self.config.min_malformed:
            self._report_storm(storm, ts, in_window)

    def _report_storm(self, storm: _Storm, ts: float, in_window: int) -> None:
        cfg = self.config
        severity = "high" if in_window >= cfg.high_factor * cfg.min_malformed else "medium"
        alert = storm.alert
        if alert is None or not self.book.is_open(alert, "malformed", now_s=ts):
            storm.before = storm.total - in_window
            top = storm.sources.most_common(1)
            alert = storm.alert = Alert(
                ts=storm.rate.first_bucket_s or ts,
                last_ts=ts,
                kind=KIND,
                severity=severity,
                src_ip=top[0][0] if len(storm.sources) == 1 else None,
                dst_ip=None,
                summary="",
                evidence=[
                    f"{in_window} anomalies of SIP messages within {cfg.window_s:g} s "
                    f"(threshold {cfg.min_malformed})"
                ],
                data={"pattern": "malformed"},
            )
            self.book.raise_alert(alert, detail="malformed")
        alert.last_ts = max(alert.last_ts or ts, ts)
        alert.count = storm.total - storm.before
        if severity == "high":
            alert.severity = "high"
        peak = max(alert.data.get("peak_anomalies_in_window", 0), in_window)
        span = alert.last_ts - alert.ts
        alert.summary = (
            f"{alert.count} malformed or incomplete SIP messages named within {span:.3g} s"
        )
        alert.data.update(
            {
                "peak_anomalies_in_window": peak,
                "window_s": cfg.window_s,
                "anomalies": dict(sorted(storm.names.items())),
                "sources": dict(sorted(storm.top_sources.items(), key=lambda kv: -kv[1])),
            }
        )

    def state_sizes(self) -> dict[str, tuple[int, int]]:
        return {
            "rates": (len(self.rates), self.config.max_keys),
            "agents": (len(self.agents), self.config.max_keys),
        }

    @property
    def overflow(self) -> int:
        return self.rates.overflow + self.agents.overflow


@dataclass(slots=True)
class _Storm:
    """Malformed SIP since the last quiet gap: its rate, what was named, by whom."""

    rate: BucketRate
    last_s: float
    total: int = 0
    before: int = 0  # of total, named before the alert opened
    names: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)  # at most MAX_STORM_SOURCES
    # The TOP_SOURCES busiest of them, kept as counts grow: the alert's data is refreshed
    # at every anomaly of a storm, which must not cost a pass over thousands of sources.
    top_sources: dict[str, int] = field(default_factory=dict)
    alert: Alert | None = None


def _keep_top(top: dict[str, int], src: str, count: int) -> None:
    if src in top or len(top) < TOP_SOURCES:
        top[src] = count
        return
    least = min(top, key=top.__getitem__)
    if count > top[least]:
        del top[least]
        top[src] = count
