"""NAT-PMP (RFC 6886), as facts: a lookalike of STUN's job (a client asking its gateway
for an external address and port mappings), never VoIP itself.

Every message is a fixed-size datagram to or from UDP 5351 (RFC 6886 §3.1): version 0,
an opcode, and for requests reserved zeros, for responses a result code. The exact
sizes, the opcode and the zero/result fields are checked; the port only decides which
flows are offered. PCP (RFC 6887), its successor on the same port, is version 2 and is
not NAT-PMP. Cross-checked with nDPI's natpmp.c (same sizes and result-code range).
"""

from __future__ import annotations

from dataclasses import dataclass

from voipscope.dissect.base import OTHER, UDP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.errors import Malformed, Truncated

NATPMP_PORT = 5351  # RFC 6886 §3.1: the gateway listens here, clients send from any port
VERSION = 0  # RFC 6886 §3.2
RESPONSE_BIT = 0x80  # RFC 6886 §3.2: a response's opcode is 128 + the request's
OP_PUBLIC_ADDRESS = 0  # §3.2
OP_MAP_UDP = 1  # §3.3
OP_MAP_TCP = 2  # §3.3
OPCODE_NAMES = {OP_PUBLIC_ADDRESS: "public address", OP_MAP_UDP: "UDP mapping",
                OP_MAP_TCP: "TCP mapping"}  # fmt: skip
# Exact datagram sizes in bytes, per opcode (§3.2, §3.3).
REQUEST_BYTES = {OP_PUBLIC_ADDRESS: 2, OP_MAP_UDP: 12, OP_MAP_TCP: 12}
RESPONSE_BYTES = {OP_PUBLIC_ADDRESS: 12, OP_MAP_UDP: 16, OP_MAP_TCP: 16}
MAX_RESULT_CODE = 5  # §3.5: 0 success .. 5 unsupported opcode


@dataclass(slots=True, frozen=True)
class NatPmpMessage:
    opcode: int  # without the response bit
    response: bool
    result_code: int | None  # responses
    internal_port: int | None  # mapping requests and responses
    lifetime_s: int | None  # mapping requests and responses

    @property
    def name(self) -> str:
        kind = "response" if self.response else "request"
        return f"{OPCODE_NAMES[self.opcode]} {kind}"


def parse_natpmp(data: bytes) -> NatPmpMessage:
    """One NAT-PMP datagram (RFC 6886 §3.2-3.5); Truncated/Malformed."""
    if len(data) < 2:
        raise Truncated(f"NAT-PMP message has {len(data)} bytes, fewer than 2")
    if data[0] != VERSION:
        raise Malformed(f"NAT-PMP version {data[0]} is not 0")
    response = bool(data[1] & RESPONSE_BIT)
    opcode = data[1] & ~RESPONSE_BIT & 0xFF
    if opcode not in OPCODE_NAMES:
        raise Malformed(f"NAT-PMP opcode {data[1]} is not defined")
    size = (RESPONSE_BYTES if response else REQUEST_BYTES)[opcode]
    if len(data) < size:
        raise Truncated(f"NAT-PMP {OPCODE_NAMES[opcode]} has {len(data)} bytes, not {size}")
    if len(data) > size:
        # Fixed-size messages: anything after them is not NAT-PMP (§3.2, §3.3).
        raise Malformed(f"NAT-PMP {OPCODE_NAMES[opcode]} has {len(data)} bytes, not {size}")
    if response:
        result = int.from_bytes(data[2:4], "big")
        if result > MAX_RESULT_CODE:
            raise Malformed(f"NAT-PMP result code {result} is not 0-{MAX_RESULT_CODE}")
        if opcode == OP_PUBLIC_ADDRESS:
            return NatPmpMessage(opcode, True, result, None, None)
        internal = int.from_bytes(data[8:10], "big")
        lifetime_s = int.from_bytes(data[12:16], "big")
        return NatPmpMessage(opcode, True, result, internal, lifetime_s)
    if opcode == OP_PUBLIC_ADDRESS:
        return NatPmpMessage(opcode, False, None, None, None)
    if data[2:4] != b"\x00\x00":
        raise Malformed("NAT-PMP mapping request reserved field is not zero")  # §3.3
    internal = int.from_bytes(data[4:6], "big")
    suggested = int.from_bytes(data[6:8], "big")
    lifetime_s = int.from_bytes(data[8:12], "big")
    # §3.3/§3.4: internal port 0 only to delete all mappings, i.e. with lifetime 0 and
    # suggested external port 0.
    if internal == 0 and (lifetime_s or suggested):
        raise Malformed("NAT-PMP mapping request for internal port 0 is not a delete-all")
    return NatPmpMessage(opcode, False, None, internal, lifetime_s)


# -- dissector ---------------------------------------------------------------------------


class NatPmpDissector(Dissector):
    """NAT-PMP on UDP 5351 (either side), from the first datagram's fixed structure."""

    name = "NAT-PMP"
    transports = frozenset({UDP})
    ports = frozenset({NATPMP_PORT})  # the probe refuses flows on other ports
    udp_first_bytes = frozenset({VERSION})
    budget_packets = 2
    follow_packets = 0

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        if NATPMP_PORT not in (ctx.src_port, ctx.dst_port):
            return Probe.NO
        msg = parse_natpmp(pkt.payload)  # DecodeError: the stage's NO
        if msg.opcode == OP_PUBLIC_ADDRESS and not msg.response:
            # Two zero bytes are little evidence on their own, even on 5351.
            confidence = 0.6
            evidence = "NAT-PMP public address request: version 0, opcode 0, 2 bytes"
        elif msg.response:
            confidence = 0.9
            evidence = (f"NAT-PMP {msg.name}: version 0, opcode {msg.opcode | RESPONSE_BIT}, "
                        f"result {msg.result_code}, {len(pkt.payload)} bytes")  # fmt: skip
        else:
            confidence = 0.85
            evidence = (f"NAT-PMP {msg.name}: version 0, reserved zero, internal port "
                        f"{msg.internal_port}, lifetime {msg.lifetime_s} s, 12 bytes")  # fmt: skip
        ctx.report(Finding(self.name, OTHER, confidence, evidence, pkt.seq))
        return Probe.MATCH
