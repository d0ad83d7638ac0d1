"""Which hosts are classic Skype nodes, and since when: cross-flow facts for Skype over TCP.

Classic Skype over TCP is RC4-obfuscated from its first byte (Bonfiglio et al., SIGCOMM
2007, §3.2: "TCP ... the whole payload is encrypted"), so a TCP flow alone says only "these
bytes look random" — as BitTorrent's MSE, obfs4 or Psiphon's OSSH do too. What makes such a
flow Skype is its *host*: the same machine speaks Skype's UDP Start-of-Message (SoM) header
to many peers (``dissect.skype``). nDPI kept exactly this context in its Skype LRU cache
(``ndpi_main.c`` ``skype_cache``, keyed by host and port, filled by the UDP detector in
``protocols/skype.c`` and read for TCP flows; removed with classic Skype in PR #1954).

This table is written by the Skype dissector *as packets are probed*, in capture order,
and every fact carries the capture time it became true, so a flow judged at its end uses
only what was known by its last packet (``known_by``), whatever the batch boundaries.
A TCP flow that ends before its host showed any Skype UDP traffic stays unknown: the
evidence did not exist yet (a live monitor could not have known either).

Memory: hosts and peer sockets are attacker-chosen, so both tables are LRU-bounded and
their evictions counted (``overflow``); per host, the set of distinct peers is capped and
the excess counted (DESIGN §4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.bounded import CappedTable

NAME = "Skype-hosts"  # Knowledge.table key
MAX_HOSTS = 65536
MAX_PEER_SOCKETS = 65536
MAX_PEERS_PER_HOST = 1024  # distinct peers remembered per host; more are only counted
# A UDP socket whose flows to this many distinct peers all carried the SoM header is a
# Skype client's socket: each passing flow is a 1-in-6.4 coincidence for random bytes
# (5 of 32 function values), eight of them 1 in 2.8e6 (the arbiter's socket rule).
CLIENT_MIN_SOM_FLOWS = 8
CLIENT_MIN_SHARE = 0.8


@dataclass(slots=True)
class SkypeHost:
    """One IP address as a Skype node."""

    node_since_ns: int | None = None  # capture time it became a known Skype node
    how: str = ""  # why (evidence text)
    som_flows: int = 0  # UDP flows with a SoM header touching this host
    inbound_som_flows: int = 0  # of them: the peer sent the first packet
    peers: set[tuple[str, int]] = field(default_factory=set)
    peers_overflow: int = 0  # distinct peers beyond MAX_PEERS_PER_HOST
    voice_flows: int = 0  # UDP flows with Skype voice (SoM function 0x0D data)
    voice_peers: set[str] = field(default_factory=set)

    @property
    def peer_count(self) -> int:
        return len(self.peers) + self.peers_overflow

    def known_by(self, ts_ns: int) -> bool:
        return self.node_since_ns is not None and self.node_since_ns <= ts_ns


class SkypeHosts:
    def __init__(
        self, max_hosts: int = MAX_HOSTS, max_peer_sockets: int = MAX_PEER_SOCKETS
    ) -> None:
        self._hosts: CappedTable[str, SkypeHost] = CappedTable(max_hosts, SkypeHost)
        # ip:port that sent or answered a SoM datagram -> capture time first seen
        self._peer_sockets: CappedTable[tuple[str, int], int] = CappedTable(max_peer_sockets, int)

    @property
    def overflow(self) -> int:
        """Hosts and peer sockets evicted because their table was full."""
        return self._hosts.overflow + self._peer_sockets.overflow

    def som_flow(
        self, ip: str, port: int, peer: tuple[str, int], ts_ns: int, inbound: bool
    ) -> None:
        """A UDP flow between ``ip:port`` and ``peer`` carried a SoM header at ``ts_ns``."""
        host = self._hosts.get(ip)
        host.som_flows += 1
        host.inbound_som_flows += inbound
        if peer in host.peers:
            pass
        elif len(host.peers) < MAX_PEERS_PER_HOST:
            host.peers.add(peer)
        else:
            host.peers_overflow += 1
        if self._peer_sockets.peek((ip, port)) is None:  # the first sighting is kept
            self._peer_sockets.put((ip, port), ts_ns)

    def voice_flow(self, ip: str, peer_ip: str) -> None:
        host = self._hosts.get(ip)
        host.voice_flows += 1
        if len(host.voice_peers) < MAX_PEERS_PER_HOST:
            host.voice_peers.add(peer_ip)

    def mark_node(self, ip: str, ts_ns: int, how: str) -> None:
        """``ip`` is a Skype node from ``ts_ns`` on (the first reason is kept)."""
        host = self._hosts.get(ip)
        if host.node_since_ns is None or ts_ns < host.node_since_ns:
            host.node_since_ns, host.how = ts_ns, how

    def host(self, ip: str) -> SkypeHost | None:
        return self._hosts.peek(ip)

    def hosts(self) -> list[tuple[str, SkypeHost]]:
        return list(self._hosts.items())

    def peer_socket_since(self, ip: str, port: int) -> int | None:
        return self._peer_sockets.peek((ip, port))
