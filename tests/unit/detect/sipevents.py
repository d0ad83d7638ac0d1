"""SIP message events for detector tests: requests and answers as an attacker's tool and
a server exchange them, at capture times given in seconds."""

from __future__ import annotations

from typing import Any

from tests.unit.calls.sipmsg import event, message
from voipscope.detect.alerts import AlertBook
from voipscope.detect.base import Detector
from voipscope.detect.sip_facts import SipFacts, sip_facts
from voipscope.dissect.base import MessageEvent

T0_S = 1_700_000_000.0
ATTACKER = ("203.0.113.66", 5070)
SERVER = ("192.0.2.10", 5060)
NORMAL_UA = "Yealink SIP-T46S 66.85.0.5"
SCANNER_UA = "friendly-scanner"


def request(
    method: str,
    at_s: float,
    *,
    src: tuple[str, int] = ATTACKER,
    dst: tuple[str, int] = SERVER,
    user: str = "100",
    call_id: str | None = None,
    cseq: int = 1,
    username: str | None = None,
    ua: str | None = NORMAL_UA,
) -> MessageEvent:
    host = dst[0]
    uri = f"sip:{host}" if method == "REGISTER" else f"sip:{user}@{host}"
    hs = [
        ("Via", f"SIP/2.0/UDP {src[0]}:{src[1]};branch=z9hG4bK-{call_id or user}-{cseq}"),
        ("From", f"<sip:{user}@{host}>;tag=t{cseq}"),
        ("To", f"<sip:{user}@{host}>"),
        ("Call-ID", call_id or f"{method}-{user}-{at_s}"),
        ("CSeq", f"{cseq} {method}"),
        ("Max-Forwards", "70"),
    ]
    if ua is not None:
        hs.append(("User-Agent", ua))
    if username is not None:
        hs.append(
            (
                "Authorization",
                f'Digest username="{username}", realm="example.com", '
                f'nonce="n{cseq}", uri="{uri}", response="00"',
            )
        )
    return event(message(f"{method} {uri} SIP/2.0", hs), int(at_s * 1e9), src, dst)


def answer(
    req: MessageEvent, code: int, at_s: float, headers: list[tuple[str, str]] | None = None
) -> MessageEvent:
    msg: Any = req.message
    hs = [(k.title(), v) for k, v in msg.headers if k in ("via", "from", "call-id", "cseq")]
    hs.insert(2, ("To", msg.header("to") + (";tag=srv" if code >= 200 else "")))
    hs += headers or []
    data = message(f"SIP/2.0 {code} Reason", hs)
    return event(data, int(at_s * 1e9), req.receiver, req.sender, req.flow_id)


def facts(ev: MessageEvent) -> SipFacts:
    found = sip_facts(ev)
    assert found is not None
    return found


def feed(detector: Detector, *events: MessageEvent) -> None:
    for ev in events:
        detector.on_sip(facts(ev))


def alerts(book: AlertBook) -> list[dict[str, Any]]:
    return [a.to_record() for a in book.finish()]


def call_record(
    callee: str,
    start: float,
    *,
    caller_ip: str = "10.1.1.20",
    callee_ip: str = "192.0.2.10",
    answer: float | None = None,
    end: float | None = None,
    state: str | None = None,
) -> dict[str, Any]:
    """A Call record (docs/calls.md) with the fields the detectors read."""
    if state is None:
        state = "answered" if answer is not None else "failed"
    return {
        "kind": "call",
        "protocol": "SIP",
        "caller_ip": caller_ip,
        "callee_ip": callee_ip,
        "callee_user": callee,
        "request_uri": f"sip:{callee}@{callee_ip}",
        "start": start,
        "answer": answer,
        "end": end if end is not None else (answer if answer is not None else start + 1),
        "state": state,
    }
