"""A flow's verdict (DESIGN §3 Flow record columns), one at a time and as the columns
of a batch: the arbiter's (packets) and flow_features' (flow records) alike."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from voipscope.dissect.base import UNKNOWN


@dataclass(slots=True)
class Verdict:
    category: str = UNKNOWN
    protocol: str | None = None
    app: str | None = None
    media: str | None = None
    confidence: float = 0.0
    evidence: list[str] = field(default_factory=list)
    detected_at_packet: int | None = None
    call_id: str | None = None


@dataclass(slots=True)
class VerdictColumns:
    """Verdicts of a batch of flows as columns, aligned with the flow rows."""

    category: list[str]
    protocol: list[str | None]
    app: list[str | None]
    media: list[str | None]
    confidence: np.ndarray
    evidence: list[list[str]]
    detected_at_packet: np.ndarray  # int64, -1 for null
    call_id: list[str | None]

    @classmethod
    def unknown(cls, n: int) -> VerdictColumns:
        """``n`` rows of the verdict of a flow nothing was said of."""
        return cls(
            category=[UNKNOWN] * n,
            protocol=[None] * n,
            app=[None] * n,
            media=[None] * n,
            confidence=np.zeros(n),
            evidence=[[] for _ in range(n)],
            detected_at_packet=np.full(n, -1, np.int64),
            call_id=[None] * n,
        )

    def put(self, i: int, v: Verdict) -> None:
        self.category[i] = v.category
        self.protocol[i] = v.protocol
        self.app[i] = v.app
        self.media[i] = v.media
        self.confidence[i] = v.confidence
        self.evidence[i] = v.evidence
        if v.detected_at_packet is not None:
            self.detected_at_packet[i] = v.detected_at_packet
        self.call_id[i] = v.call_id
