"""Classic (pre-Microsoft-Teams) Skype over UDP, as evidence, never as a single-packet verdict.

Every classic Skype UDP datagram starts with a *Start of Message* (SoM) header
(Bonfiglio, Mellia, Meo, Rossi, Tofanelli, "Revealing Skype Traffic: When Randomness
Plays with You", SIGCOMM 2007, §3; Tstat ``skype.h`` ``struct skype_hdr``; Wireshark
``packet-skype.c``): a 2-byte message ID, then a function byte whose bits ``0x8F`` say
what follows (Tstat ``is_skype_pkt``; names from Wireshark and OpenSkype):

  ====  ==========================  =============================================
  0x02  payload                     IV (4) | CRC (4) | encrypted data
  0x03  resend / forward (FFR)      number (1) | 4 bytes | IV (4) | CRC (4) | data
  0x07  NAT request ("NAK")         11 bytes in all: two IPv4 addresses (Tstat)
  0x0D  audio (Tstat "E2E data")    3-4 bytes in all: a keep-alive (Tstat, nDPI)
  0x0F  fragment / unknown
  ====  ==========================  =============================================

Everything after the SoM is RC4-encrypted, and the ID is random, so a *random* payload
passes the function test one time in 32/5 (5 of the 32 values ``b & 0x8F`` can take).
That is why one packet is never reported: only repeated, *distinct* SoM headers are
(nDPI's old ``skype.c``, removed in PR #1954, also waited for a second packet to
avoid matching DNSCrypt). Structure rules a flow out early: STUN's magic cookie, text,
DNSCrypt's resolver magic, consecutive RTP headers of one SSRC, or two datagrams that
share bytes 3-6 (a constant connection id or cookie, as QUIC, DNSCrypt, ISAKMP, Steam and
Zoom have there; in Skype these are the IV, fresh even in a retransmission). Tstat's
flow rule asks 90 % of a flow's packets to be SoM; within the probe
window this dissector asks all of them.

SkypeOut (calls to phones) used UDP port 12340 with a 4-byte connection id repeated at
the start of every datagram (Tstat ``is_skypeOUT_pkt``, ``skype_conn_stats_UDP``); that
classifier, and the end-to-end one on packet sizes and timing (Tstat's naive Bayes), are
for ``classify``: here the port is only recorded in the evidence.

Skype over TCP shows nothing in plaintext: it is RC4-obfuscated from the first byte
(Bonfiglio et al. §3.2). So on TCP this dissector makes no claim at all; it only keeps a
bounded *sample* of each direction (the first 8 bytes of each segment, as Tstat's
``update_randomness`` does, the opening bytes, sizes and times) and refuses flows whose
first segment has plaintext framing (TLS/SSLv2 records, text, SSH, BitTorrent, a length
prefix). ``classify.skype_verdict`` runs the randomness test (CSC) and the naive Bayes
model (NBC) on the sample and weighs the host context of ``dissect.skype_hosts``, which
this dissector fills from the UDP SoM traffic it sees, in capture order. UDP Skype flows
are sampled too (followed after their match) for the E2E / SkypeOut split.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.dissect.base import (
    MEDIA,
    SIGNALING,
    TCP,
    UDP,
    Dissector,
    Finding,
    FlowContext,
    Packet,
    Probe,
)
from voipscope.dissect.bittorrent import HANDSHAKE_PREFIX  # BEP 3
from voipscope.dissect.skype_hosts import CLIENT_MIN_SHARE, CLIENT_MIN_SOM_FLOWS, SkypeHosts
from voipscope.dissect.skype_hosts import NAME as HOSTS
from voipscope.dissect.stun import COOKIE_BYTES  # RFC 8489 §5
from voipscope.errors import DecodeError, Malformed, Truncated

SOM_BYTES = 3  # ID (2) + function (1): Tstat skype.h struct skype_hdr
FUNCTION_MASK = 0x8F  # Tstat skype.c is_skype_pkt: (func & 0x8f)
FUNCTIONS = {0x02: "payload", 0x03: "resend", 0x07: "NAT request", 0x0D: "audio",
             0x0F: "fragment"}  # fmt: skip
PAYLOAD, RESEND, NAT_REQUEST, AUDIO, FRAGMENT = 0x02, 0x03, 0x07, 0x0D, 0x0F
PAYLOAD_HEADER_BYTES = 11  # SoM + IV + CRC (nDPI id_flags_iv_crc_len; Wireshark)
IV_START, IV_END = 3, 7  # a payload's IV: random per datagram, retransmissions included
RESEND_HEADER_BYTES = 16  # SoM + number + 4 bytes + IV + CRC (Wireshark "FFR")
NAT_REQUEST_BYTES = 11  # Tstat: function 7 and 11 bytes
KEEPALIVE_MAX_BYTES = 4  # Tstat: function 13 of at most 4 bytes is a keep-alive
RANDOM_PASS = len(FUNCTIONS) / 32  # chance a random byte passes the function test
SKYPEOUT_PORT = 12340  # Tstat skype_conn_stats_UDP (SkypeOut relay port)
DNSCRYPT_RESOLVER_MAGIC = b"r6fnvWj8"  # DNSCrypt v2 protocol spec: response magic
UDP_BUDGET_PACKETS = 10  # SoM evidence builds over a few datagrams; then stop probing
# Sampling for classify (CSC, NBC). Tstat's CSC reads the first 64 bits of every packet
# with at least that much payload (skype.h RANDOM_MASK_LEN, N_BLOCK * N_RANDOM_BIT / 8).
SAMPLE_HEAD_BYTES = 8
MAX_SAMPLES = 64  # per direction: heads, sizes and times kept (bounded state)
OPENING_BYTES = 64  # first payload bytes of a direction kept for the pooled test
TCP_BUDGET_PACKETS = 24  # payload segments sampled on a TCP flow
FOLLOW_PACKETS = 62  # a matched UDP flow is followed this far to fill the sample
SSH_BANNER = b"SSH-"  # RFC 4253 §4.2
# Classic Skype's TLS look-alike (its connections to login servers and supernodes, on 443
# and on its own ports, in skype.pcap): the client's first segment is a handshake record
# of length 0 and the server answers with an application-data record of length 0, before
# any hello. TLS forbids both (RFC 5246 §6.2.1: no zero-length Handshake fragments; §7:
# application data only after the handshake), so no TLS stack sends them. nDPI's skype.c
# calls these "SSL-like communications without SSL certificate" and finds them only by
# Skype's address ranges.
RECORD_HANDSHAKE, RECORD_APPLICATION_DATA = 0x16, 0x17  # RFC 5246 §6.2.1 ContentType
LOOKALIKE_ANSWERED = 0.9
LOOKALIKE_UNANSWERED = 0.6  # the opener alone: the flow ended before the server spoke


@dataclass(slots=True, frozen=True)
class SkypeSom:
    message_id: int
    function: int  # byte 2 & 0x8F
    raw_function: int  # byte 2 as sent (the other bits are obfuscation)
    iv: bytes | None = None  # payload and resend
    crc: bytes | None = None
    nat_addresses: tuple[str, str] | None = None  # NAT request

    @property
    def function_name(self) -> str:
        return FUNCTIONS[self.function]


def _ipv4(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)


def parse_skype_som(data: bytes) -> SkypeSom:
    """The Start-of-Message header and the fixed fields its function defines."""
    if len(data) < SOM_BYTES:
        raise Truncated(f"Skype datagram has {len(data)} bytes, fewer than the 3-byte SoM")
    message_id = int.from_bytes(data[0:2], "big")
    function = data[2] & FUNCTION_MASK
    if function not in FUNCTIONS:
        raise Malformed(f"Skype SoM function 0x{function:02x} is not one of 2, 3, 7, 13, 15")
    som = SkypeSom(message_id, function, data[2])
    n = len(data)
    if function == PAYLOAD:
        if n < PAYLOAD_HEADER_BYTES:
            raise Truncated(f"Skype payload has {n} bytes, fewer than SoM + IV + CRC")
        return SkypeSom(message_id, function, data[2], bytes(data[3:7]), bytes(data[7:11]))
    if function == RESEND:
        if n < RESEND_HEADER_BYTES:
            raise Truncated(f"Skype resend has {n} bytes, fewer than 16")
        return SkypeSom(message_id, function, data[2], bytes(data[8:12]), bytes(data[12:16]))
    if function == NAT_REQUEST:
        if n < NAT_REQUEST_BYTES:
            raise Truncated(f"Skype NAT request has {n} bytes, fewer than 11")
        if n > NAT_REQUEST_BYTES:
            raise Malformed(f"Skype NAT request has {n} bytes, more than 11")
        addresses = (_ipv4(data[3:7]), _ipv4(data[7:11]))
        return SkypeSom(message_id, function, data[2], nat_addresses=addresses)
    return som


_TEXT_BYTES = bytes([*range(0x20, 0x7F), 9, 10, 13])


def _text(data: bytes) -> bool:
    """Eight printable ASCII bytes up front: a text protocol (random: 1 in 2,700)."""
    head = data[:8]
    return len(head) == 8 and not head.translate(None, _TEXT_BYTES)


def _ruled_out(data: bytes) -> str | None:
    """Structure that is not classic Skype, whatever byte 2 says."""
    if data[4:8] == COOKIE_BYTES:
        return "STUN"
    if data[0:8] == DNSCRYPT_RESOLVER_MAGIC:
        return "DNSCrypt"
    if _text(data):
        return "text"
    return None


@dataclass(slots=True)
class _Direction:
    headers: list[bytes] = field(default_factory=list)  # bytes 0-10 of distinct SoMs
    functions: set[int] = field(default_factory=set)
    voice: int = 0  # function 0x0D datagrams longer than a keep-alive (Tstat E2E data)
    rtp: tuple[int, int] | None = None  # (SSRC, sequence) if the packet read as RTP v2
    block: bytes | None = None  # first 4 bytes (Tstat's SkypeOut connection id test)
    block_repeats: int = 0
    # The sample handed to classify (bounded by MAX_SAMPLES / OPENING_BYTES):
    heads: list[bytes] = field(default_factory=list)  # first 8 bytes of each packet
    sizes: list[int] = field(default_factory=list)  # payload bytes per packet
    times_ns: list[int] = field(default_factory=list)  # capture time per packet
    opening: bytes = b""  # first payload bytes of the direction's first packet
    packets: int = 0  # payload packets sampled (also beyond MAX_SAMPLES)


@dataclass(slots=True)
class SkypeState:
    first_seq: int
    skypeout_port: bool
    dirs: list[_Direction] = field(default_factory=lambda: [_Direction(), _Direction()])
    best: float = 0.0
    offered: int = 0  # datagrams probed
    passed: int = 0  # of them: SoM headers (new or repeated)
    ruled_out: bool = False  # a datagram was not SoM: no more SoM evidence on this flow
    transport: int = UDP
    framing: str | None = None  # TCP: plaintext framing seen at the start (not Skype)
    voice_noted: bool = False  # the host table counted this flow as voice
    node_noted: bool = False  # the host table marked both ends as Skype nodes
    # TCP: the direction that opened with Skype's empty handshake record (None: did not)
    lookalike_opener: int | None = None


def empty_record(data: bytes, content_type: int) -> bool:
    """A TLS-shaped record header of ``content_type``, version 3.0-3.3, length 0."""
    return (
        len(data) >= 5
        and data[0] == content_type
        and data[1] == 3
        and data[2] <= 3
        and data[3] == 0
        and data[4] == 0
    )


def _sample(side: _Direction, pkt: Packet) -> None:
    data = pkt.payload
    if not side.packets:
        side.opening = bytes(data[:OPENING_BYTES])
    side.packets += 1
    if len(side.sizes) < MAX_SAMPLES:
        side.sizes.append(len(data))
        side.times_ns.append(pkt.ts_ns)
    if len(data) >= SAMPLE_HEAD_BYTES and len(side.heads) < MAX_SAMPLES:
        side.heads.append(bytes(data[:SAMPLE_HEAD_BYTES]))


def tcp_framing(data: bytes) -> str | None:
    """Plaintext framing at the start of a TCP payload: whatever follows, not classic
    Skype's obfuscated stream (nor its fake-TLS on port 443, which is TLS's to report)."""
    if len(data) >= 3 and 0x14 <= data[0] <= 0x18 and data[1] == 0x03:
        return "TLS record"  # RFC 8446 §5.1: type, legacy version 3.x
    if len(data) >= 3 and data[0] & 0x80 and data[2] in (1, 2, 4):
        return "SSLv2 record"  # RFC 6101 appendix E.2: 2-byte length, message type
    if data.startswith(SSH_BANNER):
        return "SSH banner"
    if data.startswith(HANDSHAKE_PREFIX):
        return "BitTorrent handshake"
    if _text(data):
        return "text"
    if len(data) >= 4 and int.from_bytes(data[0:2], "big") in (len(data), len(data) - 2):
        return "length prefix"  # TPKT, DNS over TCP, RFC 4571 framing, ...
    return None


class SkypeDissector(Dissector):
    name = "Skype"
    transports = frozenset({UDP, TCP})
    # UDP SoM probing stops itself after UDP_BUDGET_PACKETS; SkypeOut-port UDP flows and
    # TCP flows are sampled further, up to the stage's probe limit.
    budget_packets = 32
    follow_packets = FOLLOW_PACKETS
    ANOMALIES = {"skype_malformed": "a Skype SoM header that does not parse"}

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        if ctx.transport == TCP:
            return self._probe_tcp(ctx, pkt)
        data = pkt.payload
        state = ctx.state.get(self.name)
        skypeout_port = SKYPEOUT_PORT in (ctx.src_port, ctx.dst_port)
        if state is None:
            if not skypeout_port and (
                len(data) < SOM_BYTES or data[2] & FUNCTION_MASK not in FUNCTIONS
            ):
                return Probe.NO  # cheap first-byte check before any state
            state = ctx.state[self.name] = SkypeState(pkt.seq, skypeout_port)
        if state.offered >= (TCP_BUDGET_PACKETS if skypeout_port else UDP_BUDGET_PACKETS):
            return Probe.NO
        side = state.dirs[pkt.direction]
        state.offered += 1
        _sample(side, pkt)
        self._skypeout_block(side, data)
        if state.ruled_out or _ruled_out(data) is not None:
            return self._stop(state, ctx)
        try:
            som = parse_skype_som(data)
        except DecodeError:
            return self._stop(state, ctx)
        if self._rtp_run(side, data):
            return self._stop(state, ctx)
        header = bytes(data[0:PAYLOAD_HEADER_BYTES])
        if header in side.headers:
            state.passed += 1
            return Probe.MAYBE  # a retransmission of the same datagram: no new evidence
        if len(header) >= IV_END and any(
            h[IV_START:IV_END] == header[IV_START:IV_END]
            for d in state.dirs
            for h in d.headers
            if len(h) >= IV_END
        ):
            return self._stop(state, ctx)  # bytes 3-6 repeat: a constant id, not a fresh IV
        if not any(d.headers for d in state.dirs):
            self._first_som(ctx, pkt)
        state.passed += 1
        side.headers.append(header)
        side.functions.add(som.function)
        side.voice += som.function == AUDIO and len(data) > KEEPALIVE_MAX_BYTES
        return self._weigh(ctx, pkt, state)

    def _weigh(self, ctx: FlowContext, pkt: Packet, state: SkypeState) -> Probe:
        counts = [len(d.headers) for d in state.dirs]
        total = sum(counts)
        both = min(counts) >= 1
        if total < 2:
            return Probe.MAYBE
        if not both:
            confidence = min(0.1 * total, 0.4)
        elif total >= 6 and min(counts) >= 2:
            confidence = 0.7
        else:
            confidence = 0.5 if total < 4 else 0.6
        if confidence <= state.best:
            return Probe.MAYBE
        state.best = confidence
        functions = sorted({f for d in state.dirs for f in d.functions})
        names = ", ".join(f"0x{f:02X} {FUNCTIONS[f]}" for f in functions)
        chance = RANDOM_PASS**total
        evidence = (
            f"{total} distinct Skype SoM headers ({counts[0]}+{counts[1]} by direction; {names}); "
            f"random bytes would pass {chance:.1e} of the time"
        )
        if state.skypeout_port:
            evidence += "; UDP port 12340 (SkypeOut, Tstat)"
        # Tstat counts function-13 datagrams beyond keep-alive size as end-to-end voice;
        # the rest is the client's control traffic (probes, NAT checks, relayed messages).
        voice = sum(d.voice for d in state.dirs) * 2 >= total
        category, media = (MEDIA, "audio") if voice else (SIGNALING, None)
        self._note_hosts(ctx, pkt, confidence, voice)
        ctx.report(
            Finding("Skype", category, confidence, evidence, pkt.seq, app="Skype", media=media)
        )
        return Probe.MATCH if confidence >= 0.7 else Probe.MAYBE

    def dissect(self, ctx: FlowContext, pkt: Packet) -> Probe | None:
        """After the match: keep sampling the flow for classify's CSC and NBC."""
        state = ctx.state.get(self.name)
        if state is not None:
            _sample(state.dirs[pkt.direction], pkt)
        return None

    def _probe_tcp(self, ctx: FlowContext, pkt: Packet) -> Probe:
        state = ctx.state.get(self.name)
        data = pkt.payload
        if state is None:
            opener = empty_record(data, RECORD_HANDSHAKE)
            if not opener and tcp_framing(data) is not None:
                return Probe.NO  # most TCP flows: refused before any state is made
            state = ctx.state[self.name] = SkypeState(pkt.seq, False, transport=TCP)
            if opener:
                state.lookalike_opener = pkt.direction
        side = state.dirs[pkt.direction]
        if state.lookalike_opener is not None:
            return self._probe_lookalike(ctx, state, side, pkt)
        if not side.packets:
            state.framing = tcp_framing(data)
            if state.framing is not None:
                return Probe.NO
        _sample(side, pkt)
        state.offered += 1
        return Probe.MAYBE if state.offered < TCP_BUDGET_PACKETS else Probe.NO

    def _probe_lookalike(
        self, ctx: FlowContext, state: SkypeState, side: _Direction, pkt: Packet
    ) -> Probe:
        """After the empty handshake record: the other side's first segment decides."""
        answer = pkt.direction != state.lookalike_opener and not side.packets
        _sample(side, pkt)
        state.offered += 1
        if not answer:
            return Probe.MAYBE if state.offered < TCP_BUDGET_PACKETS else Probe.NO
        if not empty_record(pkt.payload, RECORD_APPLICATION_DATA):
            state.lookalike_opener = None  # a real server's alert, say: not the look-alike
            state.framing = tcp_framing(pkt.payload)
            return Probe.NO
        ctx.report(Finding("Skype", SIGNALING, LOOKALIKE_ANSWERED,
                           "classic Skype TLS look-alike: a zero-length handshake record "
                           "answered by a zero-length application-data record before any "
                           "hello (TLS forbids both, RFC 5246 §6.2.1, §7)",
                           pkt.seq, app="Skype"))  # fmt: skip
        return Probe.MATCH

    def _first_som(self, ctx: FlowContext, pkt: Packet) -> None:
        """The flow's first SoM header: tally both sockets, and record the hosts (and
        the socket that crossed the client rule) for Skype over TCP."""
        hosts = ctx.knowledge.table(HOSTS, SkypeHosts)
        ends = ((ctx.src_ip, ctx.src_port), (ctx.dst_ip, ctx.dst_port))
        for k, (ip, port) in enumerate(ends):
            ctx.knowledge.count_socket(self.name, ip, port, passed=True)
            hosts.som_flow(ip, port, ends[1 - k], pkt.ts_ns, inbound=k == 1)
            passed, failed = ctx.knowledge.socket_tally(self.name, ip, port)
            if passed >= CLIENT_MIN_SOM_FLOWS and passed >= CLIENT_MIN_SHARE * (passed + failed):
                how = (f"UDP socket {ip}:{port}: {passed} of {passed + failed} flows to peers "
                       "carry the Skype SoM header")  # fmt: skip
                hosts.mark_node(ip, pkt.ts_ns, how)

    def _note_hosts(self, ctx: FlowContext, pkt: Packet, confidence: float, voice: bool) -> None:
        hosts = ctx.knowledge.table(HOSTS, SkypeHosts)
        state: SkypeState = ctx.state[self.name]
        if confidence >= 0.7 and not state.node_noted:
            state.node_noted = True
            for ip in (ctx.src_ip, ctx.dst_ip):
                hosts.mark_node(ip, pkt.ts_ns, f"UDP flow {ctx.src_ip}:{ctx.src_port} <-> "
                                f"{ctx.dst_ip}:{ctx.dst_port}: SoM headers both ways")  # fmt: skip
        if voice and not state.voice_noted:
            state.voice_noted = True
            hosts.voice_flow(ctx.src_ip, ctx.dst_ip)
            hosts.voice_flow(ctx.dst_ip, ctx.src_ip)

    @staticmethod
    def _rtp_run(side: _Direction, data: bytes) -> bool:
        """True when this and the previous datagram read as RTP v2 of one SSRC in order."""
        if len(data) < 12 or data[0] >> 6 != 2:
            side.rtp = None
            return False
        now = (int.from_bytes(data[8:12], "big"), int.from_bytes(data[2:4], "big"))
        last, side.rtp = side.rtp, now
        return last is not None and last[0] == now[0] and 0 < (now[1] - last[1]) % 65536 <= 16

    @staticmethod
    def _skypeout_block(side: _Direction, data: bytes) -> None:
        block = bytes(data[0:4])
        if len(block) == 4 and block == side.block:
            side.block_repeats += 1
        else:
            side.block, side.block_repeats = block, 0

    def _stop(self, state: SkypeState, ctx: FlowContext | None = None) -> Probe:
        if ctx is not None and not state.ruled_out and any(d.headers for d in state.dirs):
            # A flow that passed before is no Skype flow after all: count it as failed.
            for ip, port in ((ctx.src_ip, ctx.src_port), (ctx.dst_ip, ctx.dst_port)):
                ctx.knowledge.count_socket(self.name, ip, port, passed=False)
        state.ruled_out = True
        # Keep probing a SkypeOut-port flow to the end of the budget for on_expire.
        return Probe.MAYBE if state.skypeout_port and state.best == 0.0 else Probe.NO

    def on_expire(self, ctx: FlowContext) -> None:
        state = ctx.state.get(self.name)
        if state is not None and state.transport == TCP:
            if (
                state.lookalike_opener is not None
                and not state.dirs[1 - state.lookalike_opener].packets
            ):
                ctx.report(Finding("Skype", SIGNALING, LOOKALIKE_UNANSWERED,
                                   "classic Skype TLS look-alike: opened with a zero-length "
                                   "handshake record (TLS forbids it, RFC 5246 §6.2.1); the "
                                   "server sent nothing back", state.first_seq,
                                   app="Skype"))  # fmt: skip
            return  # otherwise a sample only: classify.skype_verdict judges it
        if (
            state is not None
            and not state.ruled_out
            and state.best == 0.0
            and state.passed == state.offered
        ):
            total = sum(len(d.headers) for d in state.dirs)
            if total:
                # Too little alone; the arbiter weighs it with the socket's other flows.
                ctx.report(Finding("Skype", SIGNALING, 0.1, f"{total} Skype SoM header(s), "
                                   "every datagram of the flow", state.first_seq))  # fmt: skip
        if state is None or not state.skypeout_port or state.best > 0.0:
            return
        repeats = max(d.block_repeats for d in state.dirs)
        evidence = "UDP port 12340 (SkypeOut, Tstat)"
        confidence = 0.2
        if repeats >= 2:
            evidence += f"; first 4 bytes repeated in {repeats + 1} datagrams (Tstat SkypeOut test)"
            confidence = 0.3
        # Ports never name the app (classify.arbiter): the fact is recorded, app left out.
        ctx.report(Finding("Skype", SIGNALING, confidence, evidence, state.first_seq))
