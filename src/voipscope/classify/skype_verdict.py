"""Classic Skype beyond the SoM header: TCP flows, and the E2E / SkypeOut split.

Called by the arbiter for every flow the Skype dissector sampled (``SkypeState``). It
reads the sample (facts), runs the CSC (``skype_csc``) and the NBC (``skype_nbc``) and
weighs the host context the dissector recorded (``dissect.skype_hosts``):

**Skype over TCP** (Bonfiglio et al. §3.2; Tstat ``skype_conn_stats_TCP``). A TCP flow is
classic Skype when

1. both directions carry payload and neither starts with plaintext framing (the
   dissector refused TLS/SSLv2 records, text, SSH, BitTorrent, length prefixes);
2. each direction is random from byte 0: the pooled χ² of its opening bytes' nibbles is
   below the 0.1 % point of χ²(15), and — where the direction has enough packets for the
   test to have power (15·n above the threshold) — every one of Tstat's 16 blocks is
   random (CSC, ``skype_csc``);
3. one end is a known Skype node *by the flow's last packet*: it sent Skype UDP SoM
   traffic to many peers (the socket rule) or exchanged SoM both ways with a peer. This
   is the host context nDPI's Skype LRU cache kept (``ndpi_main.c`` ``skype_cache``).

Random bytes alone are not enough: BitTorrent's MSE, obfs4, Psiphon's OSSH are random
from byte 0 too; the host context is what names the app. The remote ip:port having spoken
SoM itself (classic Skype listens on one port number for TCP and UDP) makes it surer; so
does an NBC score at or above the fitted threshold. A flow that ends before its host showed
any Skype UDP traffic stays unknown (the evidence did not exist yet).

**E2E vs SkypeOut** for UDP Skype flows (Tstat ``is_skypeOUT_pkt``, CSC E2O/E2E rules):
SkypeOut is a 4-byte connection id repeated at the start of every datagram (Tstat's test)
whose CSC header blocks are all deterministic and payload random (E2O), on UDP port 12340
or to an address of ``data/skype_gateways.csv``; every SoM flow is end-to-end (E2E),
voice or signalling. The split is written as the evidence ``skypeout: ...`` or
``skype-e2e: ...`` right after the verdict's first line.
"""

from __future__ import annotations

import csv
import ipaddress
from functools import cache
from pathlib import Path

from voipscope.classify import skype_csc as CSC
from voipscope.classify.skype_nbc import SkypeModel, merged_packets, shipped_model
from voipscope.dissect.base import MEDIA, SIGNALING, TCP, UDP, Finding, FlowContext
from voipscope.dissect.skype import SKYPEOUT_PORT, SkypeState
from voipscope.dissect.skype_hosts import NAME as HOSTS
from voipscope.dissect.skype_hosts import SkypeHosts

GATEWAYS_FILE = Path(__file__).with_name("data") / "skype_gateways.csv"
# Confidence of a Skype-over-TCP verdict by the strength of the host context.
TCP_HOST_ONLY = 0.6  # the local host is a Skype node
TCP_PEER_HOST = 0.7  # ... and the remote host is one too
TCP_PEER_SOCKET = 0.8  # ... and the remote ip:port itself spoke SoM
NBC_BONUS = 0.1  # the NBC agrees (packet sizes and gaps look like Skype signalling)
SKYPEOUT_CONFIDENCE = 0.7
SKYPEOUT_MIN_REPEATS = 2  # Tstat: the same 4-byte block again (two repeats: 3 datagrams)


@cache
def gateways(
    path: Path = GATEWAYS_FILE,
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    with path.open(newline="") as fh:
        return tuple(ipaddress.ip_network(row["cidr"]) for row in csv.DictReader(fh))


def is_gateway(ip: str) -> bool:
    if not gateways():
        return False  # the shipped list is empty (see the data README)
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in net for net in gateways())


def _state(ctx: FlowContext) -> SkypeState | None:
    state = ctx.state.get("Skype")
    return state if isinstance(state, SkypeState) else None


def weigh(ctx: FlowContext, last_ns: int, model: SkypeModel | None = None) -> None:
    """Report what the sample and the host context show (before the arbiter judges)."""
    state = _state(ctx)
    if state is None:
        return
    model = model or shipped_model()
    if state.transport == TCP:
        _weigh_tcp(ctx, state, last_ns, model)
    elif state.transport == UDP and state.skypeout_port:
        _weigh_skypeout(ctx, state, model)


def _random_direction(side, model: SkypeModel) -> tuple[bool, str]:  # type: ignore[no-untyped-def]
    pooled = CSC.pooled_chi2(side.opening)
    if pooled is not None and pooled >= CSC.POOLED_CHI2_15DOF_P001:
        return False, f"pooled nibble chi2 {pooled:.0f}"
    result = CSC.csc(side.heads, model.csc_random_max_chi2)
    pooled_text = "" if pooled is None else f"pooled nibble chi2 {pooled:.0f} < 37.7; "
    if result.powered:
        return result.all_random, pooled_text + result.text()
    return True, pooled_text + f"{result.samples} packets: too few for the block test"


def _weigh_tcp(ctx: FlowContext, state: SkypeState, last_ns: int, model: SkypeModel) -> None:
    if state.framing is not None or state.lookalike_opener is not None:
        return  # plaintext framing (not Skype), or the TLS look-alike the bytes showed
    if not all(d.packets for d in state.dirs):
        return
    hosts = ctx.knowledge.table(HOSTS, SkypeHosts)
    ends = ((ctx.src_ip, ctx.src_port), (ctx.dst_ip, ctx.dst_port))
    # The first end known as a Skype node by the flow's last packet; without one the
    # randomness tests could not decide the flow, so they do not run.
    found = next(
        (
            (k, host)
            for k, (ip, _) in enumerate(ends)
            if (host := hosts.host(ip)) is not None and host.known_by(last_ns)
        ),
        None,
    )
    if found is None:
        return
    texts = []
    for k, side in enumerate(state.dirs):
        ok, text = _random_direction(side, model)
        if not ok:
            return
        texts.append(f"{'fwd' if k == 0 else 'rev'}: {text}")
    k, host = found
    ip = ends[k][0]
    remote_ip, remote_port = ends[1 - k]
    remote = hosts.host(remote_ip)
    since = hosts.peer_socket_since(remote_ip, remote_port)
    if since is not None and since <= last_ns:
        confidence, peer = TCP_PEER_SOCKET, f"; {remote_ip}:{remote_port} spoke Skype SoM over UDP"
    elif remote is not None and remote.known_by(last_ns):
        confidence, peer = TCP_PEER_HOST, f"; {remote_ip} is a Skype node too"
    else:
        confidence, peer = TCP_HOST_ONLY, ""
    score = model.score(merged_packets([d.sizes for d in state.dirs],
                                       [d.times_ns for d in state.dirs]))  # fmt: skip
    nbc = ""
    if score is not None:
        agrees = score >= model.threshold
        nbc = (f"; nbc log-likelihood ratio {score:+.2f}/packet "
               f"({'>=' if agrees else '<'} {model.threshold:.2f})")  # fmt: skip
        confidence += NBC_BONUS if agrees else 0.0
    evidence = (
        f"skype-tcp: random from byte 0 both ways ({'; '.join(texts)}); "
        f"host {ip} is a Skype node ({host.how}){peer}{nbc}"
    )
    ctx.report(Finding("Skype", SIGNALING, round(min(confidence, 0.9), 3), evidence,
                       state.first_seq, app="Skype"))  # fmt: skip


def _conn_id(state: SkypeState) -> tuple[int, bytes] | None:
    best = max(state.dirs, key=lambda d: d.block_repeats)
    if best.block is None or best.block_repeats < SKYPEOUT_MIN_REPEATS:
        return None
    return best.block_repeats, best.block


def _weigh_skypeout(ctx: FlowContext, state: SkypeState, model: SkypeModel) -> None:
    """SkypeOut: port 12340 (or a gateway), Tstat's repeated 4-byte id, CSC E2O."""
    found = _conn_id(state)
    if found is None or state.best > 0.0:
        return
    kinds = [CSC.csc(d.heads, model.csc_random_max_chi2) for d in state.dirs]
    e2o = [r for r in kinds if r.udp_kind() == "E2O"]
    if not e2o:
        return
    repeats, block = found
    where = f"udp/{SKYPEOUT_PORT}"
    evidence = (f"skypeout: {where} conn-id 0x{block.hex()} repeated in {repeats + 1} "
                f"datagrams; E2O {e2o[0].text()} (Tstat thresholds)")  # fmt: skip
    ctx.report(Finding("Skype", MEDIA, SKYPEOUT_CONFIDENCE, evidence, state.first_seq,
                       app="Skype", media="audio"))  # fmt: skip


def split(ctx: FlowContext, evidence: list[str], model: SkypeModel | None = None) -> None:
    """Write the E2E / SkypeOut split of a flow judged Skype into its evidence."""
    state = _state(ctx)
    if state is None or any(e.startswith(("skypeout", "Skype: skypeout")) for e in evidence):
        return
    if state.transport == TCP:
        evidence.insert(1, "skype-e2e: TCP to a Skype node (peer or supernode), "
                           "not a SkypeOut gateway")  # fmt: skip
        return
    model = model or shipped_model()
    for ip in (ctx.dst_ip, ctx.src_ip):
        if is_gateway(ip):
            evidence.insert(1, f"skypeout: {ip} is a listed SkypeOut gateway "
                               "(data/skype_gateways.csv)")  # fmt: skip
            return
    voice = any(d.voice for d in state.dirs)
    samples = [CSC.distinct_heads(d.heads) for d in state.dirs]
    # Tstat's rule needs TSTAT_MIN_PACKETS_UDP a direction: most Skype UDP flows are a
    # few probes, for which the blocks' chi-square would be computed for nothing.
    kinds = [
        CSC.csc(d.heads, model.csc_random_max_chi2)
        for d, n in zip(state.dirs, samples, strict=True)
        if n >= CSC.TSTAT_MIN_PACKETS_UDP
    ]
    told = [r for r in kinds if r.udp_kind() == "E2E"]
    csc_text = (f"E2E {told[0].text()}" if told else
                f"CSC needs >= {CSC.TSTAT_MIN_PACKETS_UDP} packets a direction (Tstat), "
                f"has {max(samples)}")  # fmt: skip
    what = "voice (SoM function 0x0D data)" if voice else "signalling"
    evidence.insert(1, f"skype-e2e: peer-to-peer {what}; {csc_text}")
