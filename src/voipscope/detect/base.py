"""What every detector is: it reads records (SIP message facts, Call records, Flow
records, the run's anomaly counts) and raises alerts into one shared AlertBook.

A detector never sees packets (DESIGN §1). Its state is per source or per target, in
capped tables (``voipscope.bounded``); ``state_sizes`` reports each table's size
and cap so tests can prove the bound, ``overflow`` how many entries were evicted.
"""

from __future__ import annotations

import math
from typing import Any

from voipscope.anomalies import Anomaly
from voipscope.detect.alerts import SEVERITIES, AlertBook
from voipscope.detect.sip_facts import SipFacts


class Detector:
    name = "detector"
    # Flow records reach detectors when they are VoIP; a detector that needs every flow of
    # a VLAN (who is in the voice VLAN) sets this to get the tagged non-VoIP flows too.
    wants_tagged_flows = False

    def __init__(self, book: AlertBook) -> None:
        self.book = book

    def on_sip(self, facts: SipFacts) -> None:
        """One SIP message, in capture order."""

    def on_call(self, record: dict[str, Any]) -> None:
        """One finished Call record (a call, registration or out-of-dialog exchange)."""

    def on_flow(self, flow: dict[str, Any]) -> None:
        """One ended Flow record with its verdict (category, protocol, app)."""

    def on_anomaly(self, anomaly: Anomaly, count: int) -> None:
        """A named anomaly as the run's log counts it (``count`` occurrences), every one,
        including those past the log's record cap."""

    def finish(self, now_s: float | None) -> None:
        """The input ended: decide what needs the whole capture."""

    def state_sizes(self) -> dict[str, tuple[int, int]]:
        """Each table of state: (entries now, cap)."""
        return {}

    @property
    def overflow(self) -> int:
        """Entries evicted from full tables (counted, never silently lost)."""
        return 0


def raise_severity(severity: str, steps: int = 1) -> str:
    return SEVERITIES[min(len(SEVERITIES) - 1, SEVERITIES.index(severity) + steps)]


def finite(value: object) -> bool:
    """A record field that is a usable number: records come from hooks and files, so a
    time may be None, NaN or a string."""
    return isinstance(value, int | float) and math.isfinite(value)


def finite_float(value: object) -> float | None:
    """``value`` as a float when it is ``finite``, else None."""
    return float(value) if finite(value) else None  # type: ignore[arg-type]
