"""DNSCrypt v2 (https://dnscrypt.info/protocol, DNSCRYPT-V2-PROTOCOL.txt), as facts:
encrypted DNS over UDP whose random-looking datagrams can pass a VoIP heuristic by chance
(``dnscrypt_skype_false_positive.pcapng``: a query's third byte fits classic Skype's
Start-of-Message), so it has to be named.

Queries (§"Queries") start with the 8-byte client magic taken from the resolver's
certificate — unknown to a passive observer — then the client's 32-byte public key and
a 12-byte client nonce, then the encrypted query (16-byte tag included). Responses start
with the fixed resolver magic ``r6fnvWj8``, then a 24-byte nonce whose first half is the
client nonce of the query it answers, then the encrypted response. So: a response with
the magic (what nDPI's dnscrypt.c keys on) is the evidence; the echoed client nonce makes
it near certain. Resolvers listen on 443 mostly (also 53, 5353, 8443): those ports
decide which flows are offered.
"""

from __future__ import annotations

from dataclasses import dataclass

from voipscope.dissect.base import OTHER, UDP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.errors import Malformed, Truncated

RESOLVER_MAGIC = b"r6fnvWj8"  # 0x72 0x36 0x66 0x6e 0x76 0x57 0x6a 0x38
CLIENT_MAGIC_BYTES = 8
CLIENT_PK_BYTES = 32
HALF_NONCE_BYTES = 12  # the client's half of the 24-byte nonce
TAG_BYTES = 16  # Poly1305
MIN_DNS_BYTES = 12  # a DNS header, the least an encrypted message can carry
CLIENT_NONCE_AT = CLIENT_MAGIC_BYTES + CLIENT_PK_BYTES
MIN_QUERY_BYTES = CLIENT_NONCE_AT + HALF_NONCE_BYTES + TAG_BYTES + MIN_DNS_BYTES
MIN_RESPONSE_BYTES = len(RESOLVER_MAGIC) + 2 * HALF_NONCE_BYTES + TAG_BYTES + MIN_DNS_BYTES
PORTS = frozenset({53, 443, 5353, 8443})  # public resolver lists: 443 first


@dataclass(slots=True, frozen=True)
class DnsCryptResponse:
    client_nonce: bytes  # 12 bytes
    encrypted_bytes: int


@dataclass(slots=True)
class DnsCryptState:
    query_direction: int  # who sent the queries
    client_nonces: list[bytes]  # of the queries seen, at most the budget's worth


def parse_dnscrypt_response(data: bytes) -> DnsCryptResponse:
    """A resolver's response: magic, nonce, encrypted part; Truncated/Malformed."""
    if data[: len(RESOLVER_MAGIC)] != RESOLVER_MAGIC[: len(data)]:
        raise Malformed("not the DNSCrypt resolver magic r6fnvWj8")
    if len(data) < MIN_RESPONSE_BYTES:
        raise Truncated(f"DNSCrypt response has {len(data)} bytes, fewer than "
                        f"{MIN_RESPONSE_BYTES}")  # fmt: skip
    nonce_at = len(RESOLVER_MAGIC)
    return DnsCryptResponse(bytes(data[nonce_at : nonce_at + HALF_NONCE_BYTES]),
                            len(data) - nonce_at - 2 * HALF_NONCE_BYTES)  # fmt: skip


def query_client_nonce(data: bytes) -> bytes:
    """The client nonce of what may be a query (nothing in a query is fixed to check)."""
    if len(data) < MIN_QUERY_BYTES:
        raise Truncated(f"DNSCrypt query has {len(data)} bytes, fewer than {MIN_QUERY_BYTES}")
    return bytes(data[CLIENT_NONCE_AT : CLIENT_NONCE_AT + HALF_NONCE_BYTES])


# -- dissector ---------------------------------------------------------------------------


class DnsCryptDissector(Dissector):
    """DNSCrypt over UDP on the resolver ports: the response's magic, and whether it echoes
    the client nonce of a query seen before it."""

    name = "DNSCrypt"
    transports = frozenset({UDP})
    ports = PORTS  # the probe refuses flows on other ports
    budget_packets = 3  # a query (or two: a retry), then the response
    follow_packets = 0

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        if PORTS.isdisjoint((ctx.src_port, ctx.dst_port)):
            return Probe.NO
        data = pkt.payload
        state: DnsCryptState | None = ctx.state.get(self.name)
        if data[: len(RESOLVER_MAGIC)] == RESOLVER_MAGIC:
            response = parse_dnscrypt_response(data)  # DecodeError: the stage's NO
            answered = (
                state is not None
                and pkt.direction != state.query_direction
                and response.client_nonce in state.client_nonces
            )
            evidence = f"DNSCrypt response: resolver magic r6fnvWj8, {len(data)} bytes"
            if answered:
                evidence += ", nonce echoes the client nonce of the query "
                evidence += response.client_nonce.hex()
            ctx.report(Finding(self.name, OTHER, 0.95 if answered else 0.8, evidence,
                               pkt.seq))  # fmt: skip
            return Probe.MATCH
        if state is not None and pkt.direction != state.query_direction:
            return Probe.NO  # the other side answered without the magic: not a resolver
        if len(data) < MIN_QUERY_BYTES:
            # Most datagrams offered (DNS on 53) end here: a NO without raising is cheaper.
            return Probe.NO
        nonce = query_client_nonce(data)
        if state is None:
            ctx.state[self.name] = DnsCryptState(pkt.direction, [nonce])
        else:
            state.client_nonces.append(nonce)
        return Probe.MAYBE
