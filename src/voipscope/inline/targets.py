"""The targets of an inline decision, from what the wire said: a call's announced media
endpoints (SDP, H.245, MGCP, SCCP; IAX2's own flow) and an alert's source.

Everything here is written by others (an SDP body is its writer's, alert addresses can
be forged), so a target is only what a packet filter can match and what a call's drop
may cover: a plain address (no zone, not loopback, multicast, unspecified or
broadcast), a media port (not below 1024, not SIP's), not an end of the call's own
signalling.
"""

from __future__ import annotations

import ipaddress

from voipscope.calls.call_records import SipCall
from voipscope.calls.tracked_calls import TrackedCall
from voipscope.dissect.base import TCP, UDP
from voipscope.inline.decisions import FLOW, TO, Target
from voipscope.output.blocklist import never_blockable

# Ports an SDP body may name that are no call's media: below 1024 (RFC 3551 §8 media
# ports are dynamic ones) and SIP's own (RFC 3261 §19.1.2); a target there would drop
# other traffic the SDP's writer chose.
NOT_MEDIA_PORTS = frozenset({5060, 5061})
MIN_MEDIA_PORT = 1024


def blockable(text: object) -> str | None:
    """An address a decision may name: not loopback, unspecified, multicast or broadcast
    (alerts come from packets anyone can forge, voipscope.output.blocklist)."""
    if not isinstance(text, str):
        return None
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            return None  # fe80::1%eth0: an interface of the sender's, not a filter's key
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
    return None if never_blockable(address) else str(address)


def announced_targets(call: TrackedCall, signalling: set[tuple[str, int]]) -> list[Target]:
    """The media endpoints an H.323 (H.245 logical channels, fastStart), MGCP (SDP) or
    SCCP (OpenReceiveChannelAck, StartMediaTransmission) call announced, as announced
    (these protocols name RTCP where they use it); for IAX2, its flow."""
    ends: list[tuple[str, int]] = []
    for m in call.media:
        address, port = blockable(m.get("ip")), m.get("port")
        usable = address is not None and isinstance(port, int) and 0 < port < 65536
        if usable and (address, port) not in ends:
            ends.append((address, port))  # type: ignore[arg-type]
    if call.protocol == "IAX2":
        # IAX2 (RFC 5456) multiplexes calls and media on one 5-tuple: the call's media is
        # that flow, both ways, not everything sent to the peer's port 4569.
        if len(ends) < 2:
            return []
        (a, a_port), (b, b_port) = ends[:2]
        return [Target(FLOW, a, UDP, a_port, b, b_port)]
    return [Target(TO, ip, UDP, port) for ip, port in ends if media_end(ip, port, signalling)]


def media_end(ip: str, port: int, signalling: set[tuple[str, int]]) -> bool:
    """Whether an announced ip:port may be a media target: not a well-known or SIP port,
    not an end of the call's own signalling (an SDP body's writer chooses what it names;
    a call's drop must not become a drop of the server it came through)."""
    return port >= MIN_MEDIA_PORT and port not in NOT_MEDIA_PORTS and (ip, port) not in signalling


def sdp_targets(record: SipCall, signalling: set[tuple[str, int]]) -> list[Target]:
    """The media endpoints the call's SDP bodies announced (RFC 8866 ``c=``/``m=``, the
    RTCP port beside each unless multiplexed, RFC 3605/5761, and ICE candidates)."""
    out: list[Target] = []
    seen: set[Target] = set()
    for exchange in record.sdp:
        for m in exchange.media:
            if m.port == 0:
                continue  # refused or removed (RFC 3264 §6)
            proto = TCP if m.protocol.upper().startswith("TCP") else UDP
            ends = [(m.ip, m.port)]
            if not m.rtcp_mux:
                ends.append((m.ip, m.rtcp_port or m.port + 1))
            ends.extend((ip, port) for ip, port, _ in m.candidates)
            for ip, port in ends:
                address = blockable(ip)
                if address is None or not 0 < port < 65536:
                    continue
                if not media_end(address, port, signalling):
                    continue
                target = Target(TO, address, proto, port)
                if target not in seen:
                    seen.add(target)
                    out.append(target)
    return out
