"""The one arbiter: a flow's findings and the cross-flow facts -> its verdict.

Dissectors report what the bytes show; conflicts are settled here and nowhere else
(DESIGN §1). The order of precedence, and why:

1. **Media beats signalling beats other.** A 5-tuple that carried STUN checks, a DTLS
   handshake and then RTP is a media flow (RFC 7983 multiplexing); its STUN and DTLS
   findings stay as evidence.
2. **Expectations confirm or supply.** SDP ``m=`` lines and ICE candidates announce
   ip:port pairs; a flow touching one inherits the announced protocol, media and call —
   enough on its own only when no dissector found something else on the flow.
3. **SRTP is RTP with keys elsewhere**: RTP headers stay in clear text, so RTP on a flow
   with a DTLS-SRTP handshake, or announced by an ``RTP/SAVP`` SDP, is SRTP.
4. **App**: from the bytes first (app signatures, STUN attributes), then the call's
   expectation, then host names learned from DNS answers and TLS SNI, then published
   address ranges, then another flow of the same UDP socket (one ICE agent). A flow that
   is not VoIP is also named after the service behind its server (Amazon, Microsoft,
   ...); a call flow never is. Ports are never used for the app.
5. **A call app's socket names its unknown flows.** A UDP flow no dissector named, on
   a socket that carried a call app's media or signalling while it went on, is that
   app's: its voice engine's peer-to-peer candidates, checks and media (``_stray``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from voipscope.classify import apps, skype_verdict
from voipscope.classify.behaviour import BehaviourOpinion
from voipscope.classify.verdict import Verdict, VerdictColumns
from voipscope.dissect.base import (
    MEDIA,
    MIN_VERDICT_CONFIDENCE,
    OTHER,
    SIGNALING,
    UDP,
    UNKNOWN,
    Finding,
    FlowContext,
)
from voipscope.dissect.knowledge import Expectation, Knowledge
from voipscope.dissect.stun import RELAYED_HINT
from voipscope.flows import kernels as K

CATEGORY_RANK = {MEDIA: 3, SIGNALING: 2, OTHER: 1}
# Mean IP packet size above which a media flow of unknown kind is called video: audio
# codecs fill 60-250-byte packets at 20 ms; video frames are split near the MTU.
VIDEO_MEAN_PACKET_BYTES = 400
MAX_EVIDENCE = 8
OUTVOTE_MARGIN = 0.1
MAX_SOCKET_APPS = 65536
# Flows still going on that are asked for an ended flow's socket app, per endpoint: a
# client's ICE socket has a handful; a server's may have thousands, and any one names it.
MAX_LIVE_PER_SOCKET = 8
# Socket-level evidence (see _weigh_sockets): enough flows, nearly all passing.
SOCKET_MIN_FLOWS = 8
SOCKET_MIN_SHARE = 0.8
# STUN dialects that name their vendor's app ([MS-TURN]/[MS-ICE2]: Teams, and Skype for
# Business before it; Teams is the one still in service).
VENDOR_APPS = {"MS-TURN": "Teams", "WhatsApp": "WhatsApp"}
# Hints that name the server a flow talks to: TLS/DTLS/QUIC SNI and the HTTP Host header.
HOST_HINTS = ("sni", "http-host")
# An unknown flow on a call app's socket (Arbiter._stray) is media when both ways carry
# at least this many packets at this pace (voice frames come every 10-60 ms; a call's
# connectivity checks and keepalives a few a second at most, and only for a moment).
STRAY_MEDIA_MIN_PACKETS = 10
STRAY_MEDIA_MIN_PACKETS_PER_S = 5.0
STRAY_MEDIA_CONFIDENCE = 0.6
STRAY_SIGNALING_CONFIDENCE = 0.5


class Arbiter:
    def __init__(
        self,
        knowledge: Knowledge,
        live_on_socket: Callable[[tuple[str, int], int], list[FlowContext]] | None = None,
    ) -> None:
        """``live_on_socket(endpoint, limit)``: flows still going on at a UDP endpoint
        that is their own socket, not a server's, newest first (DissectStage.live_on_socket)."""
        self.knowledge = knowledge
        self.live_on_socket = live_on_socket
        # endpoint -> (app, flow id, its last packet's time, its category) of the newest
        # ended flow with an app on that UDP endpoint.
        self._socket_apps: OrderedDict[tuple[str, int], tuple[str, int, int, str]] = OrderedDict()

    def judge_batch(
        self,
        rows: np.ndarray,
        contexts: list[FlowContext | None],
        behaviour: Sequence[BehaviourOpinion | None] | None = None,
    ) -> VerdictColumns:
        """``behaviour``: the behavioural model's media opinions, aligned with ``rows``:
        the verdict for flows the bytes left unknown, a second opinion on the others."""
        out = VerdictColumns.unknown(rows.shape[0])
        judged = [
            (i, ctx, self.judge(ctx, rows[i], None if behaviour is None else behaviour[i]))
            for i, ctx in enumerate(contexts)
            if ctx is not None
        ]
        # ICE sends STUN to the app's servers and media to the peer from one local socket:
        # a flow without an app inherits the app of another flow on the same socket --
        # one that ended before, one ending in this batch, or one still open -- from what
        # that flow had shown by this one's last packet (so the batching changes nothing).
        last_ns = rows[:, K.F_LAST_NS].tolist()
        for i, ctx, v in judged:
            if v.app is not None and v.category != OTHER:
                self._remember_socket_app(ctx, v, last_ns[i])
        orphans = [
            (i, ctx, v)
            for i, ctx, v in judged
            if v.app is None and v.category in (MEDIA, SIGNALING) and ctx.transport == UDP
        ]
        # Flows the bytes left unknown on a socket a call app was using at the same time
        # (its peer-to-peer candidates, the peer's other addresses): the app's, see _stray.
        strays = [
            (i, ctx, v) for i, ctx, v in judged if v.category == UNKNOWN and ctx.transport == UDP
        ]
        if orphans or strays:
            # Per endpoint, at most 2 * MAX_LIVE_PER_SOCKET flows ending now (all of them,
            # for the orphans; the call apps' own, for the strays): a server socket may end
            # thousands at once, and any one of them names it.
            ending: dict[tuple[str, int], list[tuple[FlowContext, int]]] = {}
            anchors: dict[tuple[str, int], list[tuple[FlowContext, int]]] = {}
            for i, ctx, v in judged:
                if ctx.transport != UDP:
                    continue
                anchor = v.app is not None and v.category in (MEDIA, SIGNALING)
                for endpoint in ctx.agent_endpoints():
                    _append_capped(ending, endpoint, (ctx, last_ns[i]))
                    if anchor:
                        _append_capped(anchors, endpoint, (ctx, last_ns[i]))
            for i, ctx, v in orphans:
                self._socket_app(ctx, v, last_ns[i], ending)
            live_apps: dict[int, bool] = {}
            for i, ctx, v in strays:
                self._stray(ctx, v, rows[i], anchors, live_apps)
        for i, _, v in judged:
            out.put(i, v)
        return out

    def _remember_socket_app(self, ctx: FlowContext, v: Verdict, last_ns: int) -> None:
        if ctx.transport != UDP or v.app is None:
            return
        for endpoint in ctx.agent_endpoints():
            self._socket_apps.pop(endpoint, None)
            self._socket_apps[endpoint] = (v.app, ctx.flow_id, last_ns, v.category)
        while len(self._socket_apps) > MAX_SOCKET_APPS:
            self._socket_apps.popitem(last=False)

    def _socket_app(
        self,
        ctx: FlowContext,
        v: Verdict,
        last_ns: int,
        ending: dict[tuple[str, int], list[tuple[FlowContext, int]]],
    ) -> None:
        for endpoint in ctx.agent_endpoints():
            found = self._socket_apps.get(endpoint)
            # A flow whose last packet came first showed all it would by this one's.
            if found is not None and found[1] != ctx.flow_id and found[2] <= last_ns:
                v.app = found[0]
                _add(v, f"app: socket {endpoint[0]}:{endpoint[1]} also carried {found[0]} "
                        f"traffic (flow {found[1]}): one ICE agent")  # fmt: skip
                return
        # The socket's flows that went on after this one's last packet (the STUN keepalives
        # to the app's server outlive the peer-to-peer media): ending in this batch, or
        # still open; as they stood at that packet.
        for endpoint in ctx.agent_endpoints():
            others = [other for other, _ in ending.get(endpoint, ())]
            if self.live_on_socket is not None:
                others += self.live_on_socket(endpoint, MAX_LIVE_PER_SOCKET)
            for other in others[: 2 * MAX_LIVE_PER_SOCKET]:
                if other.flow_id == ctx.flow_id:
                    continue
                seen = self.verdict(other.as_of(last_ns), None, as_of_ns=last_ns)
                if seen.app is not None and seen.category in (MEDIA, SIGNALING):
                    v.app = seen.app
                    ip, port = endpoint
                    _add(v, f"app: socket {ip}:{port} also carries {seen.app} traffic "
                            f"(flow {other.flow_id}): one ICE agent")  # fmt: skip
                    return

    def _stray(
        self,
        ctx: FlowContext,
        v: Verdict,
        row: np.ndarray,
        anchors: dict[tuple[str, int], list[tuple[FlowContext, int]]],
        live_apps: dict[int, bool],
    ) -> None:
        """A UDP flow no dissector named, on a socket that carried a call app's media or
        signalling while this flow went on, is that app's: a socket belongs to one
        process, and a call's voice engine sends its peer-to-peer candidates, checks and
        media from the socket it uses with the app's relays (ICE, libtgvoip). Its bytes
        are no protocol a dissector knows, so the protocol is the app's own; media when
        it went both ways at a voice pace, else the call's connectivity checks."""
        first_ns, last_ns = int(row[K.F_FIRST_NS]), int(row[K.F_LAST_NS])
        anchor = self._anchor(ctx, first_ns, last_ns, anchors, live_apps)
        if anchor is None:
            return
        app, flow_id, (ip, port) = anchor
        fwd, rev = int(row[K.F_PKTS_FWD]), int(row[K.F_PKTS_REV])
        seconds = max((last_ns - first_ns) / 1e9, 1e-3)
        pace = f"{fwd}+{rev} packets, {fwd / seconds:.1f}/{rev / seconds:.1f} per second each way"
        voice = (
            min(fwd, rev) >= STRAY_MEDIA_MIN_PACKETS
            and min(fwd, rev) / seconds >= STRAY_MEDIA_MIN_PACKETS_PER_S
        )
        v.category = MEDIA if voice else SIGNALING
        v.protocol = v.app = app
        v.confidence = STRAY_MEDIA_CONFIDENCE if voice else STRAY_SIGNALING_CONFIDENCE
        v.detected_at_packet = fwd + rev  # the whole flow decides media or checks
        v.evidence.insert(
            0,
            f"{app}: socket {ip}:{port} carried {app} call traffic (flow {flow_id}) while "
            f"this flow went on, and its bytes are no protocol a dissector knows; {pace}: "
            + ("media" if voice else "too few or too slow for media: connectivity checks"),
        )
        if voice:
            self._media_details(v, {}, row)
        del v.evidence[MAX_EVIDENCE:]

    def _anchor(
        self,
        ctx: FlowContext,
        first_ns: int,
        last_ns: int,
        anchors: dict[tuple[str, int], list[tuple[FlowContext, int]]],
        live_apps: dict[int, bool],
    ) -> tuple[str, int, tuple[str, int]] | None:
        """(app, flow id, endpoint) of a call app's media or signalling flow on one of
        ``ctx``'s UDP endpoints whose packets overlap ``first_ns``..``last_ns``, judged
        from what it had shown by ``last_ns``: an ended flow (remembered, or ending in
        this batch) that ended inside the span, or one still open (open when this flow
        idled out: its packets reach past this one's last) that names a call app now
        (``live_apps``: per flow id, asked once a batch)."""
        for endpoint in ctx.agent_endpoints():
            found = self._socket_apps.get(endpoint)
            if (
                found is not None
                and found[1] != ctx.flow_id
                and first_ns <= found[2] <= last_ns
                and found[3] in (MEDIA, SIGNALING)
            ):
                return found[0], found[1], endpoint
        for endpoint in ctx.agent_endpoints():
            others = [other for other, end in anchors.get(endpoint, ()) if end >= first_ns]
            if self.live_on_socket is not None:
                for other in self.live_on_socket(endpoint, MAX_LIVE_PER_SOCKET):
                    names = live_apps.get(other.flow_id)
                    if names is None:
                        now = self.verdict(other, None)
                        names = now.app is not None and now.category in (MEDIA, SIGNALING)
                        live_apps[other.flow_id] = names
                    if names:
                        others.append(other)
            for other in others[: 2 * MAX_LIVE_PER_SOCKET]:
                if other.flow_id == ctx.flow_id:
                    continue
                seen = self.verdict(other.as_of(last_ns), None, as_of_ns=last_ns)
                if seen.app is not None and seen.category in (MEDIA, SIGNALING):
                    return seen.app, other.flow_id, endpoint
        return None

    def judge(
        self, ctx: FlowContext, row: np.ndarray, opinion: BehaviourOpinion | None = None
    ) -> Verdict:
        """The verdict of an ended flow: the evidence only a whole flow gives (a socket's
        other flows, the Skype statistics) is weighed first, then ``verdict``."""
        self._weigh_sockets(ctx)
        if "Skype" in ctx.state:  # classic Skype: CSC, NBC and host context (skype_verdict)
            skype_verdict.weigh(ctx, int(row[K.F_LAST_NS]))
        return self.verdict(ctx, row, opinion)

    def verdict(
        self,
        ctx: FlowContext,
        row: np.ndarray | None,
        opinion: BehaviourOpinion | None = None,
        as_of_ns: int | None = None,
    ) -> Verdict:
        """The verdict from what the flow's findings say so far; changes nothing, so a
        flow still going on can be judged (voipscope.inline) and judged again. Without
        the flow's counters (``row`` None) media is only what the bytes or the signalling
        said, not guessed from the mean packet size, and host names are read as of
        ``as_of_ns`` (None: all learned so far)."""
        if not ctx.findings and ctx.expected is None and not ctx.hints:
            # Nothing on the wire said anything (most flows of a busy link): only the
            # behaviour of the flow, and the published ranges for the app.
            v = Verdict()
            if opinion is not None:
                _behaviour(v, opinion)
                self._app(v, ctx, {}, None, as_of_ns if row is None else int(row[K.F_LAST_NS]))
                return v
            for ip in (ctx.dst_ip, ctx.src_ip):
                match = apps.app_for_address(ip)
                if match is not None:
                    v.app = match.app
                    v.evidence.append(f"app: {match.evidence}")
                    break
            return v
        best = _best_per_protocol(ctx.findings)
        expectation = self._expectation(ctx)
        winner = _winner(best)
        v = Verdict(call_id=ctx.call_id)
        stated = None  # the protocol whose finding leads the evidence
        if winner is not None and winner.confidence >= MIN_VERDICT_CONFIDENCE:
            v.category = winner.category
            v.protocol = winner.protocol
            v.confidence = winner.confidence
            v.detected_at_packet = winner.at_packet
            v.media = winner.media
            v.evidence.append(f"{winner.protocol}: {winner.evidence}")
            stated = winner.protocol  # as found, or restated (DTLS-SRTP): listed once
        elif expectation is not None:
            # Announced media whose bytes no dissector recognised (T.38 UDPTL, encrypted
            # or unusual payloads): the signalling is the evidence.
            v.category = expectation.category
            v.protocol = expectation.protocol
            v.confidence = 0.7
            v.detected_at_packet = 1
        elif opinion is not None:
            # No byte signature and no announcement: how the packets flow is the evidence.
            _behaviour(v, opinion)
            opinion = None  # used: not a second opinion as well
        if expectation is not None and v.category == expectation.category:
            v.evidence.append(f"expected: {expectation.evidence}")
            v.confidence = _combine(v.confidence, 0.7)
            v.call_id = v.call_id or expectation.call_id
            v.media = v.media or expectation.media
            if expectation.protocol in ("SRTP", "SRTCP") and v.protocol in ("RTP", "RTCP"):
                v.protocol = expectation.protocol
                v.evidence.append("SRTP: announced as RTP/SAVP(F) in SDP")
        if v.category == MEDIA and v.call_id is None:
            self._relayed_call(v, ctx)
        if v.category == MEDIA:
            self._media_details(v, best, row)
        if opinion is not None:
            _second_opinion(v, opinion)
        for protocol, finding in best.items():
            if protocol == stated or len(v.evidence) >= MAX_EVIDENCE:
                continue
            if finding.confidence < MIN_VERDICT_CONFIDENCE and finding.category != v.category:
                # A weak guess the verdict contradicts (one Skype SoM-looking first byte
                # on an RTP flow) is not evidence for it, only noise to the reader.
                continue
            v.evidence.append(f"{protocol}: {finding.evidence}")
        self._app(v, ctx, best, expectation, as_of_ns if row is None else int(row[K.F_LAST_NS]))
        if v.protocol == "Skype":
            skype_verdict.split(ctx, v.evidence)  # E2E vs SkypeOut, visible per flow
        v.confidence = round(v.confidence, 3)
        return v

    def _weigh_sockets(self, ctx: FlowContext) -> None:
        """Weak per-flow evidence made strong by the endpoint's other flows: a socket
        whose flows to many peers all carry the Skype SoM header is a Skype client."""
        weak = ctx.best("Skype")
        if weak is None or weak.confidence >= MIN_VERDICT_CONFIDENCE:
            return
        for ip, port in ctx.endpoints():
            passed, failed = self.knowledge.socket_tally("Skype", ip, port)
            if passed >= SOCKET_MIN_FLOWS and passed >= SOCKET_MIN_SHARE * (passed + failed):
                ctx.report(Finding(
                    "Skype", SIGNALING, 0.8,
                    f"socket {ip}:{port}: {passed} of {passed + failed} flows to other peers "
                    "carry the Skype SoM header in every datagram (random bytes: 1 in 6.4 "
                    "each)", weak.at_packet, app="Skype"))  # fmt: skip
                return

    def _expectation(self, ctx: FlowContext) -> Expectation | None:
        return ctx.lookup_expectation(ctx.first_ts_ns)

    def _relayed_call(self, v: Verdict, ctx: FlowContext) -> None:
        """A TURN client's flow to its relay carries the media of the call whose SDP
        announced the relayed address this flow was allocated (RFC 8656 §7.3; the
        flow itself never touches that address). Looked up as of the flow's first media
        finding: the allocation comes first, then the offer/answer, then the media."""
        media_at = next((k for k, f in enumerate(ctx.findings) if f.category == MEDIA), None)
        when = next((ts for ts, n, _ in ctx.marks if media_at is not None and n > media_at),
                    ctx.first_ts_ns)  # fmt: skip
        for kind, value in ctx.hints:
            if kind != RELAYED_HINT:
                continue
            ip, _, port = value.rpartition(" ")
            found = self.knowledge.expected(ip, int(port), when)
            if found is not None and found.call_id:
                v.call_id = found.call_id
                _add(v, f"relayed: {ip}:{port}, the address this flow's TURN allocation "
                     f"was given, announced in {found.evidence}")  # fmt: skip
                return

    def _media_details(self, v: Verdict, best: dict[str, Finding], row: np.ndarray | None) -> None:
        if v.protocol in ("RTP", "RTCP") and "DTLS" in best:
            dtls = best["DTLS"]
            if dtls.category == SIGNALING or "STUN" in best:  # DTLS-SRTP keyed it
                v.protocol = "SRTP" if v.protocol == "RTP" else "SRTCP"
                v.evidence.append("SRTP: RTP after a DTLS handshake on the same 5-tuple")
        if v.media is None and row is not None and v.protocol not in ("RTCP", "SRTCP", "T.38"):
            packets = int(row[K.F_PKTS_FWD] + row[K.F_PKTS_REV])
            if packets:
                mean = int(row[K.F_BYTES_FWD] + row[K.F_BYTES_REV]) // packets
                v.media = "video" if mean > VIDEO_MEAN_PACKET_BYTES else "audio"
                v.evidence.append(f"media: {v.media} by mean packet size {mean} B")

    def _app(
        self,
        v: Verdict,
        ctx: FlowContext,
        best: dict[str, Finding],
        expectation: Expectation | None,
        last_ns: int | None,
    ) -> None:
        """``last_ns``: the flow's last packet; host names learned after it are not
        used (None: a flow still going on, judged by voipscope.inline)."""
        # A weak finding (a port, one header) may name its app but does not decide it.
        by_bytes = [f for f in best.values() if f.app and f.confidence >= MIN_VERDICT_CONFIDENCE]
        if by_bytes:
            top = max(by_bytes, key=lambda f: f.confidence)
            v.app = top.app
            return
        if expectation is not None and expectation.app:
            v.app = expectation.app
            return
        voip = v.category in (MEDIA, SIGNALING)
        for kind, value in ctx.hints:
            if kind == "stun-vendor" and value in VENDOR_APPS:
                v.app = VENDOR_APPS[value]
                _add(v, f"app: {value} STUN attributes ({v.app})")
                return
            match = (
                apps.app_for_software(value)
                if kind == "software"
                else apps.app_for_realm(value)
                if kind == "realm"
                else apps.app_for_name(value)
                if kind in HOST_HINTS
                else None
            )
            if match is not None:
                v.app = match.app
                _add(v, f"app: {kind.upper()} {value!r} is {match.app}")
                return
        # Names the flow itself gave (its SNI, its Host) were read above; the knowledge
        # may still hold an earlier flow's DNS answer for the address behind them.
        own = {value.rstrip(".").lower() for kind, value in ctx.hints if kind in HOST_HINTS}
        if not voip:
            # The server the flow itself names is surer than a range its address is in
            # (Microsoft's telemetry sits inside the Teams media ranges).
            for kind, value in ctx.hints:
                match = apps.service_for_name(value) if kind in HOST_HINTS else None
                if match is not None:
                    v.app = match.app
                    _add(v, f"app: {kind.upper()} {value!r} is {match.app} (not a call app)")
                    return
        for ip in (ctx.dst_ip, ctx.src_ip):
            host = self.knowledge.name_of(ip, last_ns, own)
            if host is not None:
                match = apps.app_for_name(host.name)
                if match is not None:
                    v.app = match.app
                    _add(v, f"app: {ip} is {host.name} ({host.how}, flow {host.source_flow_id})")
                    return
        for ip in (ctx.dst_ip, ctx.src_ip):
            match = apps.app_for_address(ip)
            if match is not None:
                v.app = match.app
                _add(v, f"app: {match.evidence}")
                return
        if not voip:
            for ip in (ctx.dst_ip, ctx.src_ip):
                host = self.knowledge.name_of(ip, last_ns, own)
                match = None if host is None else apps.service_for_name(host.name)
                if host is not None and match is not None:
                    v.app = match.app
                    _add(v, f"app: {ip} is {host.name} ({host.how}, flow "
                            f"{host.source_flow_id}), {match.app} (not a call app)")  # fmt: skip
                    return


def _behaviour(v: Verdict, opinion: BehaviourOpinion) -> None:
    v.category = MEDIA
    v.media = opinion.media
    v.confidence = opinion.confidence
    v.detected_at_packet = opinion.at_packet
    v.evidence.append(opinion.evidence)


def _second_opinion(v: Verdict, opinion: BehaviourOpinion) -> None:
    """The behavioural model beside a verdict the bytes (or the signalling) made.

    It never overturns them: a byte signature is surer than any behaviour, and the
    model misses half the media of an app it never saw (docs/identification.md). Where
    it agrees that the flow is media, the two are independent evidence and the
    confidence rises; where the bytes say something else but the flow moves like a
    call (media inside TURN relaying, voice over a protocol that hides it), that is
    written down for the analyst and the verdict stays -- from full windows only: a
    short flow's head is too little to contradict anything (a dozen retransmitted STUN
    requests on a timer pass it)."""
    if v.category == MEDIA:
        v.confidence = _combine(v.confidence, opinion.confidence)
        _add(v, f"second opinion, {opinion.evidence}")
    elif v.category in (SIGNALING, OTHER) and not opinion.from_head:
        _add(v, f"second opinion, {opinion.evidence}; the bytes say {v.protocol}, the "
                "verdict stays theirs")  # fmt: skip


def _append_capped(
    lists: dict[tuple[str, int], list[tuple[FlowContext, int]]],
    endpoint: tuple[str, int],
    item: tuple[FlowContext, int],
) -> None:
    items = lists.setdefault(endpoint, [])
    if len(items) < 2 * MAX_LIVE_PER_SOCKET:
        items.append(item)


def _add(v: Verdict, text: str) -> None:
    if len(v.evidence) < MAX_EVIDENCE:
        v.evidence.append(text)


def _best_per_protocol(findings: list[Finding]) -> dict[str, Finding]:
    best: dict[str, Finding] = {}
    for f in findings:
        seen = best.get(f.protocol)
        # Per protocol: media over signalling (IAX2 carries both), then the surest
        # finding, then the earliest packet.
        if seen is None or _rank(f) > _rank(seen):
            best[f.protocol] = f
    return best


# A control protocol and the media protocol it reports on.
CONTROL_OF = {"RTCP": "RTP", "SRTCP": "SRTP"}


def _rank(f: Finding) -> tuple[int, float, int]:
    return CATEGORY_RANK.get(f.category, 0), f.confidence, -f.at_packet


def _winner(best: dict[str, Finding]) -> Finding | None:
    strong = [f for f in best.values() if f.confidence >= MIN_VERDICT_CONFIDENCE]
    pool = strong or list(best.values())
    if not pool:
        return None
    top = max(pool, key=_rank)
    if top.protocol == "STUN":
        # TURN is a usage of STUN (RFC 8656 §2): a flow that allocates on the server it
        # first sent a Binding request to is a TURN flow, whichever message came first.
        turn = next((f for f in pool if f.protocol == "TURN" and f.category == top.category), None)
        # ICE checks then a DTLS-SRTP handshake on one 5-tuple (RFC 5764, RFC 8842): the
        # flow exists to key media, the Binding requests only opened the path for it.
        keying = next((f for f in pool if f.protocol == "DTLS" and f.category == SIGNALING), None)
        top = turn or keying or top
    elif top.protocol in CONTROL_OF:
        # RTCP reports on the RTP beside it (RFC 5761 multiplexing on one 5-tuple): the
        # flow is the media's, whether a report or the RTP's second packet came first.
        rtp = next((f for f in pool if f.protocol == CONTROL_OF[top.protocol]), None)
        top = rtp or top
    # A clearly surer non-VoIP finding (DNS, QUIC, TLS) beats weak VoIP evidence; DTLS is
    # part of the RFC 7983 family and never outvotes the media beside it.
    others = [f for f in pool if f.category == OTHER and f.protocol != "DTLS"]
    if others and top.category != OTHER:
        other = max(others, key=lambda f: f.confidence)
        if other.confidence > top.confidence + OUTVOTE_MARGIN:
            return other
    return top


def _combine(a: float, b: float) -> float:
    """Two independent pieces of evidence: 1 - (1-a)(1-b)."""
    return 1.0 - (1.0 - a) * (1.0 - b)
