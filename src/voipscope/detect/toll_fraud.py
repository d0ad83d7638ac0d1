"""toll-fraud: calls a compromised phone or PBX account places for someone else's
profit — to premium-rate and high-cost ranges (International Revenue Share Fraud),
in bursts, many at once, to sequential numbers, at hours the site never calls.

Reads Call records (``kind == "call"``), so it sees attempts as well as answered calls.
The caller is the address the INVITE came from (``caller_ip``): the phone, or the PBX
whose trunk is abused. Patterns, each its own alert (the AlertBook detail):

- ``costly``: any attempt to a premium or high-cost prefix (``data/number_prefixes.csv``);
  high when one was answered.
- ``burst``: at least ``min_international_calls`` international attempts within
  ``window_s``.
- ``concurrent``: at least ``max_concurrent_international`` answered international calls
  up at once from one caller.
- ``sequential``: at least ``min_sequential_numbers`` numbers dialled within the window
  that are consecutive (…01, …02, …03: testing which numbers of a range pay out).
- ``unusual-hours``: international calls in hours of the day (UTC) in which the capture's
  own baseline has almost no calls; needs a capture of several days.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from voipscope.bounded import CappedTable, SlidingCount, SlidingDistinct, add_capped
from voipscope.calls.sip_headers import parse_name_addr
from voipscope.detect.alerts import Alert, AlertBook
from voipscope.detect.base import Detector, finite
from voipscope.detect.number_plan import Dialled, costly_prefix, parse_dialled
from voipscope.text_fields import is_decimal

KIND = "toll-fraud"
MAX_LISTED = 32
HOURS_PER_DAY = 24


@dataclass(frozen=True, slots=True)
class TollFraudConfig:
    """Thresholds (later config keys ``detect.toll_fraud.*``)."""

    window_s: float = 600.0
    min_international_calls: int = 10  # attempts within the window make a burst
    max_concurrent_international: int = 5  # answered at once
    min_sequential_numbers: int = 5  # consecutive numbers within the window
    # Only numbers this long count as sequential dialling: a PBX ring group forks one
    # call to extensions 101..110 at once, which is consecutive and harmless.
    min_sequential_digits: int = 7
    # Dialling plan: international exit codes besides "+", and the home country with its
    # trunk prefix to read national premium numbers ("0900..." with home "49").
    exit_prefixes: tuple[str, ...] = ("00",)
    home_country_code: str | None = None
    trunk_prefix: str = "0"
    # Unusual hours: an hour is quiet when it holds under this share of all calls, judged
    # only on captures spanning at least baseline_min_span_s with baseline_min_calls.
    quiet_hour_share: float = 0.01
    baseline_min_span_s: float = 3 * 86400.0
    baseline_min_calls: int = 200
    min_quiet_hour_calls: int = 3
    max_sources: int = 10_000
    max_numbers_per_source: int = 1024
    max_open_calls_per_source: int = 256
    max_international_kept: int = 10_000  # for the end-of-capture hours check


@dataclass(slots=True)
class _Caller:
    international: SlidingCount
    numbers: SlidingDistinct[str]
    answered: deque[tuple[float, float]]  # (answer, end) of answered international calls
    countries: list[str] = field(default_factory=list)
    first_ts: float | None = None
    last_ts: float | None = None  # the latest start of the caller's calls


class TollFraudDetector(Detector):
    name = "toll_fraud"

    def __init__(self, book: AlertBook, config: TollFraudConfig | None = None) -> None:
        super().__init__(book)
        self.config = cfg = config or TollFraudConfig()
        # A source silent this long starts a new episode: its alert has gone quiet, and
        # nothing of it is left in the window.
        self._gap_s = max(book.quiet_s, cfg.window_s)
        self.callers: CappedTable[str, _Caller] = CappedTable(
            cfg.max_sources,
            lambda: _Caller(
                SlidingCount(cfg.window_s, cfg.min_international_calls),
                SlidingDistinct(cfg.window_s, cfg.max_numbers_per_source),
                deque(maxlen=cfg.max_open_calls_per_source),
            ),
        )
        self.calls_per_hour = [0] * HOURS_PER_DAY
        self.first_start: float | None = None
        self.last_start: float | None = None
        self.international_calls: deque[tuple[float, str, str | None, str]] = deque(
            maxlen=cfg.max_international_kept
        )
        self.international_dropped = 0

    # -- records --------------------------------------------------------------------------

    def on_call(self, record: dict[str, Any]) -> None:
        if record.get("kind") != "call" or record.get("protocol") not in (None, "SIP"):
            return
        start = record.get("start")
        caller_ip = record.get("caller_ip")
        if not finite(start) or not isinstance(caller_ip, str) or not caller_ip:
            return
        dialled = self._dialled(record)
        self._baseline(start)
        if dialled is None:
            return
        caller, _ = self.callers.get_renewed(  # a new episode: own start, counts, countries
            caller_ip, lambda c: c.last_ts is not None and start - c.last_ts > self._gap_s
        )
        if caller.first_ts is None:
            caller.first_ts = start
        caller.last_ts = start if caller.last_ts is None else max(caller.last_ts, start)
        callee_ip = record.get("callee_ip")
        answer, end = record.get("answer"), record.get("end")
        answered = finite(answer)
        row = costly_prefix(dialled.e164)
        if row is not None:
            self._costly(record, dialled, row, answered)
        self._sequential(caller_ip, caller, start, dialled)
        if not dialled.international:
            return
        if len(self.international_calls) == self.international_calls.maxlen:
            self.international_dropped += 1
        self.international_calls.append((start, caller_ip, callee_ip, dialled.digits))
        country = dialled.country_code or "?"
        add_capped(caller.countries, country, MAX_LISTED)
        if caller.international.add(start) or self._is_open(caller_ip, "burst", now_s=start):
            self._burst(caller_ip, caller, start, dialled)
        if answered and finite(end):
            caller.answered.append((float(answer), float(end)))
            up = sum(1 for a, e in caller.answered if a <= answer < e)
            if up >= self.config.max_concurrent_international:
                self._concurrent(caller_ip, float(answer), up, dialled)

    def _dialled(self, record: dict[str, Any]) -> Dialled | None:
        cfg = self.config
        uri = record.get("request_uri")
        user = None
        if isinstance(uri, str):
            found = parse_name_addr(f"<{uri}>")
            user = found.user if found else None
        user = user or record.get("callee_user")
        return parse_dialled(user, cfg.exit_prefixes, cfg.home_country_code, cfg.trunk_prefix)

    def _baseline(self, start: float) -> None:
        self.calls_per_hour[int(start // 3600) % HOURS_PER_DAY] += 1
        self.first_start = start if self.first_start is None else min(self.first_start, start)
        self.last_start = start if self.last_start is None else max(self.last_start, start)

    def _is_open(
        self, caller_ip: str, detail: str, dst_ip: str | None = None, now_s: float | None = None
    ) -> bool:
        return self._open_alert(caller_ip, dst_ip, detail, now_s) is not None

    def _open_alert(
        self, caller_ip: str, dst_ip: str | None, detail: str, now_s: float | None = None
    ) -> Alert | None:
        return self.book.open_alert(KIND, caller_ip, dst_ip, detail, now_s=now_s)

    def _raise(self, alert: Alert, pattern: str) -> Alert:
        """Each pattern is its own alert (the AlertBook detail) and names itself in data."""
        merged = self.book.raise_alert(alert, detail=pattern)
        merged.data["pattern"] = pattern
        return merged

    # -- patterns -------------------------------------------------------------------------

    def _costly(self, record: dict[str, Any], dialled: Dialled, row: Any, answered: bool) -> None:
        caller_ip, start = record["caller_ip"], float(record["start"])
        entry = f"{dialled.digits} ({row.kind}: {row.name}; {record.get('state')})"
        alert = Alert(
            ts=start,
            last_ts=start,
            kind=KIND,
            severity="high" if answered else "medium",
            src_ip=caller_ip,
            dst_ip=record.get("callee_ip"),
            summary=f"calls to {row.kind} numbers ({row.name})",
            evidence=[f"call to {entry}", f"prefix +{row.prefix} per {row.source}"],
        )
        merged = self.book.raise_alert(alert, detail="costly")
        numbers = merged.data.setdefault("numbers", [])
        add_capped(numbers, dialled.digits, MAX_LISTED)
        prefixes = merged.data.setdefault("prefixes", [])
        add_capped(
            prefixes,
            {
                "prefix": row.prefix,
                "kind": row.kind,
                "name": row.name,
                "source": row.source,
                "compiled": row.compiled,
            },
            MAX_LISTED,
        )
        merged.data["pattern"] = "costly"
        merged.data["answered"] = merged.data.get("answered", 0) + int(answered)
        merged.data["attempts"] = merged.count

    def _burst(self, caller_ip: str, caller: _Caller, start: float, dialled: Dialled) -> None:
        cfg = self.config
        count = caller.international.in_window(start)
        alert = _caller_alert(
            caller_ip,
            ts=caller.first_ts if caller.first_ts is not None else start,
            last_ts=start,
            severity="high" if len(caller.countries) >= 5 else "medium",
            summary=f"burst of international calls: {count}+ within {cfg.window_s:g} s",
            evidence=f"international call to {dialled.digits}",
        )
        open_alert = self._open_alert(caller_ip, None, "burst", now_s=start)
        if open_alert is None:
            alert.evidence.insert(
                0,
                f"{count} international call attempts within {cfg.window_s:g} s "
                f"(threshold {cfg.min_international_calls})",
            )
        merged = self._raise(alert, "burst")
        merged.data.update(
            {
                "international_calls": caller.international.total,
                "countries": list(caller.countries),
                "window_s": cfg.window_s,
            }
        )

    def _concurrent(self, caller_ip: str, at: float, up: int, dialled: Dialled) -> None:
        alert = _caller_alert(
            caller_ip,
            ts=at,
            last_ts=at,
            severity="high",
            summary=f"{up} answered international calls at once",
            evidence=f"{up} concurrent answered international calls (threshold "
            f"{self.config.max_concurrent_international}), latest to {dialled.digits}",
        )
        merged = self._raise(alert, "concurrent")
        merged.data["max_concurrent"] = max(merged.data.get("max_concurrent", 0), up)

    def _sequential(self, caller_ip: str, caller: _Caller, start: float, d: Dialled) -> None:
        cfg = self.config
        if len(d.digits.lstrip("+")) < cfg.min_sequential_digits:
            return
        caller.numbers.add(start, d.digits)
        if len(caller.numbers) < cfg.min_sequential_numbers:
            return
        run = longest_consecutive_run(caller.numbers.items())
        if len(run) < cfg.min_sequential_numbers:
            return
        alert = _caller_alert(
            caller_ip,
            ts=start,
            last_ts=start,
            severity="medium",
            summary=f"sequential dialling: {len(run)} consecutive numbers {run[0]} .. {run[-1]}",
            evidence=f"{len(run)} consecutive numbers within {cfg.window_s:g} s "
            f"(threshold {cfg.min_sequential_numbers})",
        )
        merged = self._raise(alert, "sequential")
        merged.summary = alert.summary
        merged.data.update({"numbers": run[:MAX_LISTED], "run_length": len(run)})

    # -- end of capture -------------------------------------------------------------------

    def finish(self, now_s: float | None) -> None:
        cfg = self.config
        total = sum(self.calls_per_hour)
        if self.first_start is None or self.last_start is None:
            return
        span = self.last_start - self.first_start
        if span < cfg.baseline_min_span_s or total < cfg.baseline_min_calls:
            return
        quiet = {
            h for h in range(HOURS_PER_DAY) if self.calls_per_hour[h] < cfg.quiet_hour_share * total
        }
        by_caller: dict[str, list[tuple[float, str | None, str]]] = {}
        for start, caller_ip, callee_ip, digits in self.international_calls:
            if int(start // 3600) % HOURS_PER_DAY in quiet:
                by_caller.setdefault(caller_ip, []).append((start, callee_ip, digits))
        for caller_ip, calls in sorted(by_caller.items()):
            if len(calls) < cfg.min_quiet_hour_calls:
                continue
            hours = sorted({int(s // 3600) % HOURS_PER_DAY for s, _, _ in calls})
            alert = Alert(
                ts=min(s for s, _, _ in calls),
                last_ts=max(s for s, _, _ in calls),
                kind=KIND,
                severity="medium",
                src_ip=caller_ip,
                dst_ip=None,
                summary=f"{len(calls)} international calls in hours (UTC) the site is quiet",
                evidence=[
                    f"hours {hours} hold under {cfg.quiet_hour_share:.0%} of the "
                    f"{total} calls of a {span / 86400:.1f}-day capture"
                ],
                count=len(calls),
                data={
                    "pattern": "unusual-hours",
                    "hours_utc": hours,
                    "numbers": [d for _, _, d in calls][:MAX_LISTED],
                    "calls_per_hour_utc": list(self.calls_per_hour),
                },
            )
            self.book.raise_alert(alert, detail="unusual-hours")

    def state_sizes(self) -> dict[str, tuple[int, int]]:
        callers = [c for _, c in self.callers.items()]
        return {
            "callers": (len(self.callers), self.config.max_sources),
            "numbers_per_caller": (
                max((len(c.numbers) for c in callers), default=0),
                self.config.max_numbers_per_source,
            ),
            "international_kept": (
                len(self.international_calls),
                self.config.max_international_kept,
            ),
        }

    @property
    def overflow(self) -> int:
        return self.callers.overflow + self.international_dropped


def _caller_alert(
    caller_ip: str, *, ts: float, last_ts: float, severity: str, summary: str, evidence: str
) -> Alert:
    """An alert about a pattern in all of one caller's calls: no one callee (dst_ip None),
    so calls to many destinations grow one alert."""
    return Alert(
        ts=ts,
        last_ts=last_ts,
        kind=KIND,
        severity=severity,
        src_ip=caller_ip,
        dst_ip=None,
        summary=summary,
        evidence=[evidence],
    )


def longest_consecutive_run(numbers: list[str]) -> list[str]:
    """The longest run of numbers, as dialled, of one length whose values follow each
    other (…01, …02, …03)."""
    by_length: dict[int, dict[int, str]] = {}
    for n in numbers:
        digits = n.lstrip("+")
        if is_decimal(digits):
            by_length.setdefault(len(n), {})[int(digits)] = n
    best: list[str] = []
    for dialled in by_length.values():
        values = sorted(dialled)
        start = 0
        for i in range(1, len(values) + 1):
            if i == len(values) or values[i] != values[i - 1] + 1:
                if i - start > len(best):
                    best = [dialled[v] for v in values[start:i]]
                start = i
    return best
