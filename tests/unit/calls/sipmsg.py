"""Hand-written SIP messages as the dissect stage hands them out (MessageEvent objects).

A small dialect: ``Ua`` is one user agent (address, tags, Call-ID, CSeq counter) and its
methods write requests and responses the way RFC 3261 says a UA does, so each test reads
like a ladder diagram.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.dissect.base import UDP, MessageEvent
from voipscope.dissect.sip import parse_sip

T0 = 1_700_000_000 * 1_000_000_000  # capture time of the first message of a test
MS = 1_000_000
S = 1_000_000_000

ALICE = ("10.0.0.1", 5060)
BOB = ("10.0.0.2", 5060)
PROXY = ("10.0.0.9", 5060)


def sec(ts_ns: int) -> float:
    """Capture time as Call records give it: epoch seconds to the microsecond."""
    return round(ts_ns / 1e9, 6)


def sdp(ip: str, port: int, *, pts: str = "0 8 101", direction: str = "sendrecv") -> bytes:
    return (
        f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {pts}\r\na=rtpmap:101 telephone-event/8000\r\n"
        f"a={direction}\r\n"
    ).encode()


def message(start: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [start, *(f"{k}: {v}" for k, v in headers)]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def event(
    data: bytes,
    ts_ns: int,
    sender: tuple[str, int],
    receiver: tuple[str, int],
    flow_id: int = 1,
) -> MessageEvent:
    return MessageEvent("SIP", ts_ns, flow_id, UDP, sender, receiver, parse_sip(data))


@dataclass
class Dialog:
    """One INVITE call from ``caller`` to ``callee`` (addresses and URIs)."""

    call_id: str = "call-1@10.0.0.1"
    caller: tuple[str, int] = ALICE
    callee: tuple[str, int] = BOB
    from_uri: str = "sip:alice@example.com"
    to_uri: str = "sip:bob@example.com"
    from_tag: str = "ftag1"
    to_tag: str = "ttag1"
    cseq: int = 1
    branch_n: int = 0
    flow_id: int = 1
    extra: list[tuple[str, str]] = field(default_factory=list)

    def _headers(
        self, method: str, cseq: int, branch: str, to_tag: str | None, sender_is_caller: bool
    ) -> list[tuple[str, str]]:
        via_host = (self.caller if sender_is_caller else self.callee)[0]
        frm = f'"Alice" <{self.from_uri}>;tag={self.from_tag}'
        to = f"<{self.to_uri}>" + (f";tag={to_tag}" if to_tag else "")
        if not sender_is_caller:  # requests from the callee swap From and To (§12.2.1.1)
            frm, to = (
                f"<{self.to_uri}>;tag={to_tag}",
                f'"Alice" <{self.from_uri}>;tag={self.from_tag}',
            )
        return [
            ("Via", f"SIP/2.0/UDP {via_host};branch={branch}"),
            ("From", frm),
            ("To", to),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Contact", f"<sip:x@{via_host}>"),
        ]

    def request(
        self,
        method: str,
        ts_ns: int,
        *,
        body: bytes = b"",
        in_dialog: bool = True,
        from_callee: bool = False,
        cseq: int | None = None,
        branch: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        uri: str | None = None,
    ) -> MessageEvent:
        if cseq is None:
            if method not in ("ACK", "CANCEL"):
                self.cseq += 1 if method != "INVITE" or in_dialog else 0
            cseq = self.cseq
        if branch is None:
            self.branch_n += 1
            branch = f"z9hG4bK-{self.branch_n}"
        hs = self._headers(
            method, cseq, branch, self.to_tag if in_dialog else None, not from_callee
        )
        hs += headers or []
        if body:
            hs.append(("Content-Type", "application/sdp"))
        start = f"{method} {uri or self.to_uri} SIP/2.0"
        sender, receiver = (self.callee, self.caller) if from_callee else (self.caller, self.callee)
        return event(message(start, hs + self.extra, body), ts_ns, sender, receiver, self.flow_id)

    def invite(self, ts_ns: int, *, body: bytes | None = None, **kw: object) -> MessageEvent:
        return self.request(
            "INVITE",
            ts_ns,
            body=sdp(self.caller[0], 4000) if body is None else body,
            in_dialog=False,
            **kw,  # type: ignore[arg-type]
        )

    def response(
        self,
        code: int,
        reason: str,
        request: MessageEvent,
        ts_ns: int,
        *,
        body: bytes = b"",
        to_tag: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> MessageEvent:
        """A response to ``request`` from whoever received it (same Via, CSeq, tags)."""
        req = request.message
        hs = [(k.title(), v) for k, v in req.headers if k in ("via", "from", "call-id", "cseq")]  # type: ignore[attr-defined]
        to = req.header("to")  # type: ignore[attr-defined]
        tag = to_tag if to_tag is not None else self.to_tag
        if code != 100 and ";tag=" not in to:
            to = f"{to};tag={tag}"
        hs.insert(2, ("To", to))
        hs += headers or []
        if body:
            hs.append(("Content-Type", "application/sdp"))
        data = message(f"SIP/2.0 {code} {reason}", hs, body)
        return event(data, ts_ns, request.receiver, request.sender, self.flow_id)


def register(
    ts_ns: int,
    cseq: int,
    *,
    call_id: str = "reg-1@10.0.0.1",
    user: str = "alice",
    username: str | None = None,
    expires: int = 3600,
    ua: tuple[str, int] = ALICE,
    registrar: tuple[str, int] = PROXY,
) -> MessageEvent:
    hs = [
        ("Via", f"SIP/2.0/UDP {ua[0]};branch=z9hG4bK-reg{cseq}"),
        ("From", f"<sip:{user}@example.com>;tag=r{cseq}"),
        ("To", f"<sip:{user}@example.com>"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} REGISTER"),
        ("Contact", f"<sip:{user}@{ua[0]}:{ua[1]}>;expires={expires}"),
    ]
    if username is not None:
        hs.append(
            ("Authorization", f'Digest username="{username}", realm="example.com", '
             'nonce="abc", uri="sip:example.com", response="00"')
        )  # fmt: skip
    return event(message("REGISTER sip:example.com SIP/2.0", hs), ts_ns, ua, registrar)


def reply(
    request: MessageEvent,
    code: int,
    reason: str,
    ts_ns: int,
    headers: list[tuple[str, str]] | None = None,
) -> MessageEvent:
    """A response to any request (registrar side), To tag added for final responses."""
    req = request.message
    hs = [(k.title(), v) for k, v in req.headers if k in ("via", "from", "call-id", "cseq")]  # type: ignore[attr-defined]
    to = req.header("to")  # type: ignore[attr-defined]
    if code >= 200 and ";tag=" not in to:
        to += ";tag=srv"
    hs.insert(2, ("To", to))
    hs += headers or []
    data = message(f"SIP/2.0 {code} {reason}", hs)
    return event(data, ts_ns, request.receiver, request.sender, request.flow_id)
