"""sip-flood: more SIP requests than any honest sender makes (INVITE/REGISTER floods,
the denial-of-service kind), and storms of malformed SIP.

Opinions:
- one source sends at least ``min_requests`` requests of one method to one server within
  ``window_s`` (retransmissions count: they load the server the same);
- one server receives at least ``min_requests_to_target`` requests of one method from
  all sources within ``window_s`` (a distributed flood; the alert has no single source);
- the run's anomaly log counts at least ``min_malformed`` SIP anomalies (``sip_malformed``,
  ``sip_missing_header``, ``sip_stream_overflow``, ...) within ``window_s`` of capture
  time. The log keeps the first records of each name only, so the sources named in the
  alert are those of the kept records.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from voipscope.anomalies import AnomalyLog
from voipscope.bounded import BucketRate, CappedTable
from voipscope.detect.alerts import Alert, AlertBook
from voipscope.detect.base import Detector
from voipscope.detect.scanner_agents import name_scanner, scanner_tool
from voipscope.detect.sip_facts import SipFacts

KIND = "sip-flood"
MALFORMED_PREFIX = "sip_"  # anomaly names of the SIP dissectors (over UDP/TCP, WebSocket)
# Named by sip_ws but not malformed SIP: a deflated message is legitimate (RFC 7692) and a
# refused upgrade says nothing of SIP; counting them would make a busy WebRTC gateway a
# "flood of malformed SIP".
NOT_MALFORMED = frozenset({"sip_ws_compressed", "sip_ws_refused"})
MAX_METHOD_CHARS = 16


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
        self._malformed_window_start: float | None = None
        self._malformed_at_start = 0

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

    # -- malformed storms from the anomaly log --------------------------------------------

    def on_tick(self, now_s: float, anomalies: AnomalyLog | None) -> None:
        if anomalies is None:
            return
        if self._malformed_window_start is None:
            self._malformed_window_start = now_s
            self._malformed_at_start = _sip_anomalies(anomalies)
            return
        if now_s - self._malformed_window_start >= self.config.window_s:
            self._judge_malformed(now_s, anomalies)

    def finish(self, now_s: float | None, anomalies: AnomalyLog | None) -> None:
        if anomalies is not None and now_s is not None:
            if self._malformed_window_start is None:
                self._malformed_window_start = now_s
            self._judge_malformed(now_s, anomalies)

    def _judge_malformed(self, now_s: float, anomalies: AnomalyLog) -> None:
        start = self._malformed_window_start
        assert start is not None
        count = _sip_anomalies(anomalies)
        seen = count - self._malformed_at_start
        self._malformed_window_start, self._malformed_at_start = now_s, count
        # Batches are coarse: judge the rate over the span since the window began.
        span = max(now_s - start, self.config.window_s)
        if seen * self.config.window_s / span < self.config.min_malformed:
            return
        names: Counter[str] = Counter()
        sources: Counter[str] = Counter()
        for record in anomalies.records:
            if _malformed(record.name) and (record.ts is None or start <= record.ts <= now_s):
                names[record.name] += 1
                if record.src_ip:
                    sources[record.src_ip] += 1
        top = sources.most_common(1)
        alert = Alert(
            ts=start,
            last_ts=now_s,
            kind=KIND,
            severity="medium",
            src_ip=top[0][0] if len(sources) == 1 else None,
            dst_ip=None,
            summary=f"{seen} malformed SIP messages within {span:g} s",
            evidence=[
                f"{seen} SIP anomalies in the run's anomaly log within {span:g} s "
                f"(threshold {self.config.min_malformed} per "
                f"{self.config.window_s:g} s)"
            ],
            count=seen,
            data={
                "pattern": "malformed",
                "anomalies": dict(sorted(names.items())),
                "sources_of_kept_records": dict(sources.most_common(16)),
            },
        )
        self.book.raise_alert(alert, detail="malformed")

    def state_sizes(self) -> dict[str, tuple[int, int]]:
        return {
            "rates": (len(self.rates), self.config.max_keys),
            "agents": (len(self.agents), self.config.max_keys),
        }

    @property
    def overflow(self) -> int:
        return self.rates.overflow + self.agents.overflow


def _malformed(name: str) -> bool:
    return name.startswith(MALFORMED_PREFIX) and name not in NOT_MALFORMED


def _sip_anomalies(anomalies: AnomalyLog) -> int:
    return sum(n for name, n in anomalies.counts.items() if _malformed(name))
