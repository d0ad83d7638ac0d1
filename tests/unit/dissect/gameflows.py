"""The game dissectors of issue 4 over every UDP flow of a shared capture: which flows
they match, as (lower port, higher port) pairs, to compare with the capture's labels."""

from __future__ import annotations

from pathlib import Path

from tests.dissectdrive import capture_flows, run
from voipscope.dissect.base import UDP, Dissector


def matched_ports(dissector: Dissector, path: Path) -> set[tuple[int, int]]:
    """Port pairs of the UDP flows of ``path`` that ``dissector`` matches, offered as the
    stage offers them (``ports`` decides which flows; ``run`` applies the byte gate)."""
    out = set()
    for flow in capture_flows(path, (UDP,)):
        ports = (flow.src[1], flow.dst[1])
        if dissector.ports is not None and dissector.ports.isdisjoint(ports):
            continue
        if run(dissector, flow.context(), flow.packets).matched:
            out.add((min(ports), max(ports)))
    return out


# Captures of the games and of VoIP that share their shape (small UDP both ways): a game
# dissector matches only the flows of its own game in them.
GAME_CAPTURES = ("activision.pcap", "epicgames.pcapng", "netease_games.pcapng", "codm.pcap",
                 "among_us.pcap", "steam.pcapng")  # fmt: skip
VOIP_CAPTURES = ("rtp.pcapng", "discord.pcap", "skype_udp.pcap", "stun_dtls_rtp.pcapng",
                 "teamspeak3.pcap", "whatsapp_voice_and_message.pcap", "zoom.pcap")  # fmt: skip


def other_captures(own: str) -> list[str]:
    """The game and VoIP captures but ``own``."""
    return [c for c in GAME_CAPTURES + VOIP_CAPTURES if c != own]
