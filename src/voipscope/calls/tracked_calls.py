"""What the H.323, MGCP, IAX2 and SCCP call trackers share: one call being rebuilt, and
its Call record (DESIGN §3) as plain JSON-able values.

Each tracker owns the protocol's state machine and fills a ``TrackedCall``; ``to_record``
gives the CALL_SCHEMA fields plus a few extras (``last_message``, ``packets``,
``media_endpoints``, ``call_reference``). Lists and counts are in capture order, so the
same capture always gives the same bytes.

States, as the SIP tracker words them: ``ongoing`` is a call that was answered and not
released before the capture ended (Wireshark's "IN CALL"); ``unanswered`` one that never
got an answer and never a release (Wireshark's "CALL SETUP" and "RINGING"), ``failed``
one refused by the called side (Wireshark's "REJECTED"), ``cancelled`` one the caller
gave up before an answer, ``answered`` one answered and released ("COMPLETED").
"""

from __future__ import annotations

from dataclasses import dataclass, field

ANSWERED = "answered"
FAILED = "failed"
CANCELLED = "cancelled"
REDIRECTED = "redirected"
UNANSWERED = "unanswered"
ONGOING = "ongoing"

MAX_EVIDENCE = 32  # evidence strings per call
MAX_FLOWS = 16  # signalling flow ids per call
MAX_MEDIA = 16  # announced media endpoints per call
MAX_DTMF = 64  # digits per call
MAX_MESSAGE_NAMES = 32  # distinct message names counted per call


def seconds(ts_ns: int | None) -> float | None:
    # Microseconds: a float near 1.7e9 s cannot hold more, and digits beyond are noise.
    return None if ts_ns is None else round(ts_ns / 1e9, 6)


@dataclass(slots=True)
class TrackedCall:
    call_id: str
    protocol: str  # "H.323" | "MGCP" | "IAX2" | "SCCP"
    start_ns: int
    last_ns: int
    caller: str | None = None
    callee: str | None = None
    request_uri: str | None = None  # dialled digits / endpoint, where the protocol has one
    answer_ns: int | None = None
    end_ns: int | None = None
    final_code: int | None = None
    cancelled: bool = False  # the calling side released before an answer
    rejected: bool = False  # the called side released before an answer
    redirected_to: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    packets: int = 0
    signaling_flows: list[int] = field(default_factory=list)
    media: list[dict[str, object]] = field(default_factory=list)
    dtmf: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    call_reference: str | None = None  # the protocol's own per-link call number

    def count(self, name: str) -> None:
        self.packets += 1
        if name in self.counts or len(self.counts) < MAX_MESSAGE_NAMES:
            self.counts[name] = self.counts.get(name, 0) + 1

    def saw(self, ts_ns: int, flow_id: int) -> None:
        self.start_ns = min(self.start_ns, ts_ns)
        self.last_ns = max(self.last_ns, ts_ns)
        if flow_id not in self.signaling_flows and len(self.signaling_flows) < MAX_FLOWS:
            self.signaling_flows.append(flow_id)

    def note(self, text: str) -> None:
        if len(self.evidence) < MAX_EVIDENCE and text not in self.evidence:
            self.evidence.append(text)

    def announce(self, ip: str, port: int, media: str, **extra: object) -> None:
        entry: dict[str, object] = {"ip": ip, "port": port, "media": media, **extra}
        same = [m for m in self.media if (m["ip"], m["port"]) == (ip, port)]
        if not same and len(self.media) < MAX_MEDIA:
            self.media.append(entry)

    @property
    def state(self) -> str:
        if self.answer_ns is not None:
            return ANSWERED if self.end_ns is not None else ONGOING
        if self.redirected_to:
            return REDIRECTED
        if self.cancelled:
            return CANCELLED
        if self.rejected or self.end_ns is not None:
            return FAILED
        return UNANSWERED

    def to_record(self) -> dict[str, object]:
        duration = None
        if self.answer_ns is not None and self.end_ns is not None:
            duration = round((self.end_ns - self.answer_ns) / 1e9, 6)
        return {
            "call_id": self.call_id,
            "capture": None,
            "protocol": self.protocol,
            "kind": "call",
            "app": None,
            "caller": self.caller,
            "callee": self.callee,
            "request_uri": self.request_uri,
            "start": seconds(self.start_ns),
            "answer": seconds(self.answer_ns),
            "end": seconds(self.end_ns),
            "last_message": seconds(self.last_ns),
            "duration_s": duration,
            "state": self.state,
            "final_code": self.final_code,
            "redirected_to": list(self.redirected_to),
            "related_calls": [],
            "streams": [],  # the lead fills these from the RTP stage
            "signaling_flows": sorted(self.signaling_flows),
            "media_flows": [],
            # In the order each kind first appeared, as Wireshark's comments column.
            "messages": " ".join(f"{k}:{v}" for k, v in self.counts.items()),
            "packets": self.packets,
            "dtmf": list(self.dtmf),
            "user_agents": [],
            "media_endpoints": list(self.media),
            "call_reference": self.call_reference,
            "evidence": list(self.evidence),
        }


def order(records: list[dict[str, object]]) -> list[dict[str, object]]:
    """Records by start time, then call id: the same capture gives the same order."""
    return sorted(records, key=lambda r: (r["start"] or 0.0, str(r["call_id"])))
