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

``CallBook`` is the lifetime all four share (DESIGN §2: memory bounded by live calls, not
by the capture): a call is handed out (``drain``) once nothing can change it any more, on
capture time -- ended and lingered ``finished_linger_s`` for late copies; or every flow
that carried its signalling has ended, plus the linger; or silent longer than the flow
idle timeout (``answered_idle_s`` once answered: a call in conversation sends nothing).
At most ``max_open_calls`` are held; beyond, the least recently active is handed out as
it stands with the anomaly ``<protocol>_call_table_full`` (DESIGN §4).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import numpy as np

from voipscope.anomalies import AnomalyLog
from voipscope.flows.kernels import F_ID, F_LAST_NS

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
NS = 1_000_000_000

# Why a call was handed out (the trackers word their evidence from it).
ENDED, FLOWS_ENDED, IDLE, TABLE_FULL, END_OF_INPUT = (
    "ended", "flows-ended", "idle", "table-full", "end-of-input"
)  # fmt: skip

ANOMALIES = {
    f"{name}_call_table_full": f"more open {protocol} calls than calls.max_open_calls; the "
    "least recently active one was handed out early, as it stood"
    for name, protocol in (("h323", "H.323"), ("mgcp", "MGCP"), ("iax2", "IAX2"), ("sccp", "SCCP"))
}


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
    closed_by: str | None = None  # why it was handed out: ENDED, IDLE, TABLE_FULL ...

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
            "closed_by": self.closed_by,
            "evidence": list(self.evidence),
        }


def order(records: list[dict[str, object]]) -> list[dict[str, object]]:
    """Records by start time, then call id: the same capture gives the same order."""
    return sorted(records, key=lambda r: (r["start"] or 0.0, str(r["call_id"])))


@dataclass(frozen=True, slots=True)
class CallLimits:
    """The calls.* settings the H.323, MGCP, IAX2 and SCCP trackers share (capture time)."""

    max_open_calls: int = 100_000  # DESIGN §4: calls held at once, per tracker
    finished_linger_s: float = 32.0  # an ended call waits this long for late copies
    idle_timeout_s: float = 120.0  # flows.idle_timeout_s: an unanswered call this silent is over
    answered_idle_s: float = 7200.0  # an answered call this silent is over


class HeldCall(Protocol):
    """What the book needs of a tracker's per-call state."""

    call: TrackedCall
    ended: bool  # the protocol's end state was reached (release, DLCX, HANGUP, OnHook)


E = TypeVar("E", bound=HeldCall)


class CallBook(Generic[E]):
    """The calls one tracker holds, least recently active first, and when each is final.

    The tracker ``add``s a new call, ``touch``es it after every message that reached it,
    and passes ``advance`` (message times) and ``expire`` (ended flow rows) on; ``close``
    (the tracker's) turns a call it lets go into its record (None: not a call after all)
    and forgets the tracker's indexes of it. ``hold`` may keep a final call a little longer
    (never past ``answered_idle_s`` of silence) while its record can still change.
    """

    def __init__(
        self,
        prefix: str,
        limits: CallLimits,
        close: Callable[[E, str], dict[str, object] | None],
        anomalies: AnomalyLog | None = None,
        hold: Callable[[E], bool] | None = None,
    ) -> None:
        self.prefix = prefix  # "h323": the anomaly is h323_call_table_full
        self.limits = limits
        self.anomalies = anomalies if anomalies is not None else AnomalyLog()
        self.now_ns = 0
        self.evicted = 0  # calls handed out early because the book was full
        self._close = close
        self._hold = hold
        self._held: OrderedDict[int, E] = OrderedDict()  # id(entry) -> entry
        self._flows: dict[int, list[int]] = {}  # id(entry) -> signalling flows registered
        self._flow_refs: dict[int, int] = {}  # flow id -> held calls that used it
        self.flow_end_ns: dict[int, int] = {}  # ended flows of held calls -> last packet
        self._ready: list[dict[str, object]] = []
        self._linger_ns = int(limits.finished_linger_s * NS)
        self._idle_ns = int(limits.idle_timeout_s * NS)
        self._answered_idle_ns = int(limits.answered_idle_s * NS)
        # Told each call after every message that reached it: voipscope.inline follows
        # calls as they go. None: nobody asks.
        self.observer: Callable[[TrackedCall], None] | None = None

    def __len__(self) -> int:
        return len(self._held)

    def __iter__(self) -> Iterator[E]:
        return iter(list(self._held.values()))

    def advance(self, ts_ns: int) -> None:
        self.now_ns = max(self.now_ns, ts_ns)

    def at_message(self, ts_ns: int) -> None:
        """A message at ``ts_ns`` is about to be read: the calls final by then are let
        go first, as a sweep between the two would have let them go, so what a message
        joins does not depend on where a batch of packets ended (a RAS message 74 s after
        a call's release joined it when both were in one batch, and made its own
        record in batches of one packet)."""
        self.advance(ts_ns)
        self.sweep()

    def add(self, entry: E) -> None:
        while len(self._held) >= self.limits.max_open_calls and self._held:
            oldest = next(iter(self._held.values()))
            self.evicted += 1
            self.anomalies.add(
                f"{self.prefix}_call_table_full",
                f"{len(self._held)} {oldest.call.protocol} calls held; call "
                f"{oldest.call.call_id[:64]} handed out early",
                ts=self.now_ns / 1e9,
            )
            oldest.call.note(
                f"handed out early: more than calls.max_open_calls "
                f"({self.limits.max_open_calls}) open {oldest.call.protocol} calls"
            )
            self.close(oldest, TABLE_FULL)
        self._held[id(entry)] = entry
        self._flows[id(entry)] = []
        self.touch(entry)

    def touch(self, entry: E) -> None:
        """The call got a message: most recently active now; learn its new flows."""
        key = id(entry)
        if key not in self._held:
            return
        self._held.move_to_end(key)
        known = self._flows[key]
        for flow_id in entry.call.signaling_flows[len(known) :]:
            known.append(flow_id)
            self._flow_refs[flow_id] = self._flow_refs.get(flow_id, 0) + 1
        self.advance(entry.call.last_ns)
        if self.observer is not None:
            self.observer(entry.call)

    def expire(self, ended: np.ndarray) -> None:
        """Ended flow rows: the end of the flows held calls used, and the clock."""
        if ended.size == 0:
            return
        self.advance(int(ended[:, F_LAST_NS].max()))
        if self._flow_refs:
            for flow_id, last_ns in zip(
                ended[:, F_ID].tolist(), ended[:, F_LAST_NS].tolist(), strict=True
            ):
                if flow_id in self._flow_refs:
                    self.flow_end_ns[flow_id] = last_ns

    def sweep(self) -> None:
        """Hand out the calls that are final at the current capture time."""
        final = []
        for entry in self._held.values():
            silent = self.now_ns - entry.call.last_ns
            if silent <= self._linger_ns:
                break  # least recently active first: the rest spoke later
            reason = self._final(entry, silent)
            if reason is not None:
                final.append((entry, reason))
        for entry, reason in final:
            self.close(entry, reason)

    def _final(self, entry: E, silent_ns: int) -> str | None:
        answered = entry.call.answer_ns is not None
        reason = None
        if entry.ended:
            reason = ENDED
        else:
            flows = self._flows[id(entry)]
            ends = [self.flow_end_ns.get(f) for f in flows]
            known = [t for t in ends if t is not None]
            if flows and len(known) == len(flows) and self.now_ns - max(known) > self._linger_ns:
                reason = FLOWS_ENDED
            elif silent_ns > (self._answered_idle_ns if answered else self._idle_ns):
                reason = IDLE
        patient = silent_ns <= self._answered_idle_ns
        if reason is not None and self._hold is not None and patient and self._hold(entry):
            return None
        return reason

    def close(self, entry: E, reason: str) -> None:
        """Let one call go: its record (if any) is ready for ``drain``."""
        key = id(entry)
        if self._held.pop(key, None) is None:
            return
        entry.call.closed_by = reason
        for flow_id in self._flows.pop(key):
            refs = self._flow_refs[flow_id] - 1
            if refs:
                self._flow_refs[flow_id] = refs
            else:
                del self._flow_refs[flow_id]
                self.flow_end_ns.pop(flow_id, None)
        record = self._close(entry, reason)
        if record is not None:
            self._ready.append(record)

    def hand_out(self, record: dict[str, object]) -> None:
        """A record the tracker made without a held call (H.323 RAS-only calls)."""
        self._ready.append(record)

    def drain(self) -> list[dict[str, object]]:
        """Records of the calls let go so far (then forgotten), in start order."""
        out = order(self._ready)
        self._ready = []
        return out

    def finish(self) -> list[dict[str, object]]:
        """End of input: let every held call go, least recently active first."""
        for entry in list(self._held.values()):
            self.close(entry, END_OF_INPUT)
        return self.drain()
