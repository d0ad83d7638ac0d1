"""spit (SPam over Internet Telephony): one source placing many short calls to many
callees — robocalls, wangiri one-ring calls, callee harvesting.

Opinion, from Call records: within ``window_s``, calls from one address (``caller_ip``)
to at least ``min_callees`` distinct callees, at least ``min_short_share`` of them short
(unanswered, or answered for less than ``short_call_s``). A PBX places many calls too,
but to a few callees at a time and mostly long ones; a call centre's dialler that trips
this is worth a look anyway.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from voipscope.bounded import CappedTable
from voipscope.detect.alerts import Alert, AlertBook
from voipscope.detect.base import Detector, finite

KIND = "spit"
MAX_LISTED = 32


@dataclass(frozen=True, slots=True)
class SpitConfig:
    """Thresholds (later config keys ``detect.spit.*``)."""

    window_s: float = 600.0
    min_callees: int = 20
    short_call_s: float = 10.0
    min_short_share: float = 0.8
    max_sources: int = 10_000
    max_calls_per_source: int = 512  # (start, callee, short) kept per source


class SpitDetector(Detector):
    name = "spit"

    def __init__(self, book: AlertBook, config: SpitConfig | None = None) -> None:
        super().__init__(book)
        self.config = cfg = config or SpitConfig()
        self.sources: CappedTable[str, deque[tuple[float, str, bool]]] = CappedTable(
            cfg.max_sources, lambda: deque(maxlen=cfg.max_calls_per_source)
        )

    def on_call(self, record: dict[str, Any]) -> None:
        if record.get("kind") != "call":
            return
        start, caller_ip = record.get("start"), record.get("caller_ip")
        callee = record.get("callee_user") or record.get("callee")
        if not finite(start) or not isinstance(caller_ip, str) or not caller_ip or not callee:
            return
        cfg = self.config
        answer, end = record.get("answer"), record.get("end")
        if finite(answer):
            short = finite(end) and end - answer < cfg.short_call_s
        else:
            short = record.get("state") != "ongoing"
        calls = self.sources.get(caller_ip)
        calls.append((float(start), str(callee)[:64], short))
        recent = [c for c in calls if start - cfg.window_s <= c[0] <= start + cfg.window_s]
        callees = {c[1] for c in recent}
        if len(callees) < cfg.min_callees:
            return
        shorts = sum(1 for c in recent if c[2])
        if shorts < cfg.min_short_share * len(recent):
            return
        alert = Alert(
            ts=min(c[0] for c in recent),
            last_ts=float(start),
            kind=KIND,
            severity="medium",
            src_ip=caller_ip,
            dst_ip=None,
            summary=f"{len(recent)} calls to {len(callees)} callees within "
            f"{cfg.window_s:g} s, {shorts} of them short",
            evidence=[
                f"{len(callees)} distinct callees (threshold {cfg.min_callees}); "
                f"{shorts}/{len(recent)} calls unanswered or under "
                f"{cfg.short_call_s:g} s"
            ],
            count=1,
        )
        merged = self.book.raise_alert(alert)
        merged.data.update(
            {
                "calls": len(recent),
                "callees": len(callees),
                "short_calls": shorts,
                "callees_sample": sorted(callees)[:MAX_LISTED],
                "window_s": cfg.window_s,
            }
        )
        if merged is not alert:
            merged.summary = alert.summary

    def state_sizes(self) -> dict[str, tuple[int, int]]:
        biggest = max((len(c) for _, c in self.sources.items()), default=0)
        return {
            "sources": (len(self.sources), self.config.max_sources),
            "calls_per_source": (biggest, self.config.max_calls_per_source),
        }

    @property
    def overflow(self) -> int:
        return self.sources.overflow
