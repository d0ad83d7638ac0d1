"""Ookla Speedtest's TCP protocol, as facts: line-based text commands between the
Speedtest client and an OoklaServer, which listens on TCP 8080 and 5060 — the second
being SIP's port, where a speed test must not pass for SIP over TCP.

Not published by Ookla. Seen on the wire (ookla.pcap) and keyed on by nDPI's ookla.c:
the client opens with ``HI`` (bare, or with a session id) and the server answers
``HELLO <major>.<minor> ...``, each a line ending in LF; PING/PONG, DOWNLOAD, UPLOAD
follow. The greeting pair is the evidence: HI alone keeps probing, HELLO with a version
after it matches (HELLO alone, as in a capture that starts mid-flow, matches weaker).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from voipscope.dissect.base import OTHER, TCP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.errors import Malformed, Truncated

PORTS = frozenset({8080, 5060})  # OoklaServer's default listening ports
MAX_LINE_BYTES = 128  # a greeting line (HI + a UUID is 40 bytes)
# "HI\n" or "HI <session id>\n"; "HELLO 2.9 (2.9.2) 2021-11-30.2159.ffae0e0\n".
HI = re.compile(rb"HI(?: [\x21-\x7e]{1,100})?\n")
HELLO = re.compile(rb"HELLO (\d{1,3}\.\d{1,3})[\x20-\x7e]{0,100}\n")


@dataclass(slots=True)
class OoklaState:
    hi_direction: int


def parse_greeting(data: bytes) -> tuple[str, str | None]:
    """("HI", None) or ("HELLO", version) for a greeting line; Truncated/Malformed."""
    if not (b"HI".startswith(data[:2]) or b"HELLO ".startswith(data[:6])):
        raise Malformed("not an Ookla greeting (HI / HELLO)")
    line_end = data.find(b"\n", 0, MAX_LINE_BYTES)
    if line_end < 0:
        if len(data) < MAX_LINE_BYTES:
            raise Truncated("Ookla greeting line has no end yet")
        raise Malformed(f"Ookla greeting line is longer than {MAX_LINE_BYTES} bytes")
    line = data[: line_end + 1]
    if HI.fullmatch(line):
        return "HI", None
    hello = HELLO.fullmatch(line)
    if hello:
        return "HELLO", hello.group(1).decode("ascii")
    raise Malformed("Ookla greeting line is neither HI nor HELLO <version>")


class OoklaDissector(Dissector):
    """Ookla Speedtest's TCP protocol on its server ports."""

    name = "Ookla"
    transports = frozenset({TCP})
    ports = PORTS  # the probe refuses flows on other ports
    tcp_first_bytes = frozenset(b"H")
    budget_packets = 3  # HI, (an empty segment's worth of slack), HELLO
    follow_packets = 0

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        if PORTS.isdisjoint((ctx.src_port, ctx.dst_port)):
            return Probe.NO
        word, version = parse_greeting(pkt.payload)  # DecodeError: the stage's NO
        state: OoklaState | None = ctx.state.get(self.name)
        if word == "HI":
            if state is None:
                ctx.state[self.name] = OoklaState(pkt.direction)
            return Probe.MAYBE
        greeted = state is not None and state.hi_direction != pkt.direction
        evidence = f"Ookla Speedtest greeting: HELLO {version}"
        evidence += " in answer to HI" if greeted else " (no HI seen before it)"
        ctx.report(Finding(self.name, OTHER, 0.9 if greeted else 0.7, evidence, pkt.seq,
                           app="Ookla"))  # fmt: skip
        return Probe.MATCH
