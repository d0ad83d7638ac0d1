"""Named anomalies: oddities on the wire, counted always and kept as records up to a cap.

A passive monitor never stops on bad packets and never hides them (DESIGN §4). Every
stage reports through one :class:`AnomalyLog`; the counts are exact, the stored records
are capped per name so that a storm of bad packets cannot exhaust memory.
"""

from __future__ import annotations

from collections import Counter
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

    def add(
        self, name: str, detail: str, ts: float | None = None, count: int = 1, **where: object
    ) -> None:
        """Count ``count`` occurrences of ``name``; keep one record while under the cap."""
        if count <= 0:
            return
        seen = self.counts[name]
        self.counts[name] = seen + count
        if seen < self.max_records_per_name:
            self.records.append(Anomaly(ts=ts, name=name, detail=detail, **where))  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))

    def merge(self, other: AnomalyLog) -> None:
        """Add ``other``'s counts, and its records while under this log's cap: what one
        log would hold had it seen this log's input, then ``other``'s."""
        seen = Counter(self.counts)
        for record in other.records:
            if seen[record.name] < self.max_records_per_name:
                self.records.append(record)
            seen[record.name] += 1
        self.counts.update(other.counts)
