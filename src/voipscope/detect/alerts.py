"""The Alert record (DESIGN §3) and what every detector shares: severities, and
deduplication so one ongoing attack is one alert that grows, not thousands."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("low", "medium", "high")
MAX_EVIDENCE = 32  # strings per alert; the first ones, then a count


@dataclass(slots=True)
class Alert:
    ts: float  # capture time (epoch s) of the first evidence
    kind: str  # "sip-scan" | "sip-enumeration" | "sip-bruteforce" | "toll-fraud" | ...
    severity: str
    src_ip: str | None
    dst_ip: str | None
    summary: str
    evidence: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # kind-specific, JSON-able
    last_ts: float | None = None  # capture time of the latest evidence
    count: int = 1  # occurrences merged into this alert
    evidence_dropped: int = 0

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {SEVERITIES}")

    def add_evidence(self, text: str) -> None:
        if len(self.evidence) < MAX_EVIDENCE:
            self.evidence.append(text)
        else:
            self.evidence_dropped += 1

    def to_record(self) -> dict[str, Any]:
        return {
            "ts": self.ts,
            "last_ts": self.last_ts if self.last_ts is not None else self.ts,
            "kind": self.kind,
            "severity": self.severity,
            "src_ip": self.src_ip,
            "dst_ip": self.dst_ip,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "evidence_dropped": self.evidence_dropped,
            "count": self.count,
            "data": dict(self.data),
        }


def severity_at_least(severity: str, floor: str) -> bool:
    return SEVERITIES.index(severity) >= SEVERITIES.index(floor)


class AlertBook:
    """Open alerts keyed by (kind, src, dst, detail): a repeat raises the count and the
    last time instead of a new alert, until ``quiet_s`` of capture time without one."""

    def __init__(self, quiet_s: float = 300.0, max_open: int = 100_000) -> None:
        self.quiet_s = quiet_s
        self.max_open = max_open
        self._open: dict[tuple[str, str | None, str | None, str], Alert] = {}
        self._done: list[Alert] = []
        self.dropped = 0
        # Told each alert as it opens, at the evidence that opened it: voipscope.inline
        # asks about alerts then rather than after the packet batch. None: nobody asks.
        self.observer: Callable[[Alert], None] | None = None

    def raise_alert(self, alert: Alert, detail: str = "") -> Alert:
        key = (alert.kind, alert.src_ip, alert.dst_ip, detail)
        found = self._open.get(key)
        # A repeat: it began within quiet_s of the last evidence of the one open.
        if found is not None and not self._quiet(found, alert.ts):
            found.count += alert.count
            found.last_ts = max(found.last_ts or found.ts, alert.last_ts or alert.ts)
            for text in alert.evidence:
                found.add_evidence(text)
            if SEVERITIES.index(alert.severity) > SEVERITIES.index(found.severity):
                found.severity = alert.severity
            found.data.update(alert.data)
            return found
        if found is not None:
            self._done.append(self._open.pop(key))
        if len(self._open) >= self.max_open:
            oldest = min(self._open, key=lambda k: self._open[k].last_ts or self._open[k].ts)
            self._done.append(self._open.pop(oldest))
            self.dropped += 1
        self._open[key] = alert
        if self.observer is not None:
            self.observer(alert)
        return alert

    def is_open(self, alert: Alert, detail: str = "", now_s: float | None = None) -> bool:
        """Whether ``alert`` is still open here (not yet handed out), so its detector
        may still add what it learns later (a responder, a cracked password). ``now_s``:
        the time of the evidence the detector would add; an alert quiet for longer than
        ``quiet_s`` by then is closed as it stands, whether or not the caller's batch of
        packets has been swept (``ready``), so what becomes one alert does not depend on
        how packets were batched."""
        key = (alert.kind, alert.src_ip, alert.dst_ip, detail)
        if self._open.get(key) is not alert:
            return False
        return self._open_at(key, now_s)

    def open_alert(
        self,
        kind: str,
        src_ip: str | None,
        dst_ip: str | None,
        detail: str = "",
        now_s: float | None = None,
    ) -> Alert | None:
        """The open alert under this key, if any (``now_s`` as for ``is_open``)."""
        key = (kind, src_ip, dst_ip, detail)
        if key not in self._open or not self._open_at(key, now_s):
            return None
        return self._open[key]

    def _open_at(self, key: tuple[str, str | None, str | None, str], now_s: float | None) -> bool:
        if now_s is None or not self._quiet(self._open[key], now_s):
            return True
        self._done.append(self._open.pop(key))
        return False

    def _quiet(self, alert: Alert, now_s: float) -> bool:
        """Nothing added to ``alert`` for longer than ``quiet_s`` before ``now_s``."""
        return now_s - (alert.last_ts or alert.ts) > self.quiet_s

    def open_alerts(self) -> list[Alert]:
        """The alerts still open (still growing), oldest key first; read, do not change."""
        return list(self._open.values())

    def ready(self, now_s: float) -> list[Alert]:
        """Alerts whose attack has gone quiet, oldest first."""
        for key in [k for k, a in self._open.items() if self._quiet(a, now_s)]:
            self._done.append(self._open.pop(key))
        out, self._done = sorted(self._done, key=lambda a: a.ts), []
        return out

    def finish(self) -> list[Alert]:
        self._done.extend(self._open.values())
        self._open.clear()
        out, self._done = sorted(self._done, key=lambda a: a.ts), []
        return out
