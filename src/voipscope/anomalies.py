"""Named anomalies: oddities on the wire, counted always and kept as records up to a cap.

A passive monitor never stops on bad packets and never hides them (DESIGN §4). Every
stage reports through one :class:`AnomalyLog`; the counts are exact, the stored records
are capped per name so that a storm of bad packets cannot exhaust memory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class Anomaly:
    ts: float | None
    name: str
    detail: str
    flow_id: int | None = None
    src_ip: str | None = None
    dst_ip: str | None = None


class AnomalyLog:
    """Counts every anomaly by name and keeps at most ``max_records_per_name`` of each."""

    def __init__(self, max_records_per_name: int = 100) -> None:
        self.max_records_per_name = max_records_per_name
        self.counts: Counter[str] = Counter()
        self.records: list[Anomaly] = []
        # Per record: how many of its name were counted before it (add(count=N) moves
        # the count by N), so that merge keeps what one log over both inputs would.
        self._seen_before: list[int] = []
        # Told every anomaly as it is added (with its count), past the record cap too:
        # the detectors judge anomalies at their own capture time, and all of them.
        self.observers: list[Callable[[Anomaly, int], None]] = []

    def add(
        self, name: str, detail: str, ts: float | None = None, count: int = 1, **where: object
    ) -> None:
        """Count ``count`` occurrences of ``name``; keep one record while under the cap."""
        if count <= 0:
            return
        seen = self.counts[name]
        self.counts[name] = seen + count
        kept = seen < self.max_records_per_name
        if not kept and not self.observers:
            return
        record = Anomaly(ts=ts, name=name, detail=detail, **where)  # type: ignore[arg-type]
        if kept:
            self.records.append(record)
            self._seen_before.append(seen)
        for observer in self.observers:
            observer(record, count)

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))

    def merge(self, other: AnomalyLog) -> None:
        """Add ``other``'s counts, and its records while under this log's cap: what one
        log would hold had it seen this log's input, then ``other``'s."""
        for record, seen_in_other in zip(other.records, other._seen_before, strict=True):
            seen = self.counts[record.name] + seen_in_other
            if seen < self.max_records_per_name:
                self.records.append(record)
                self._seen_before.append(seen)
        self.counts.update(other.counts)
