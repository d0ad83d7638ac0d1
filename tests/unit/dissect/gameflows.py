"""The game dissectors of issue 4 over every UDP flow of a shared capture: which flows
they match, as (lower port, higher port) pairs, to compare with the capture's labels."""

from __future__ import annotations

from pathlib import Path

from tests.unit.dissect.labelled import matched
from voipscope.dissect.base import UDP, Dissector


def matched_ports(dissector: Dissector, path: Path) -> set[tuple[int, int]]:
    """Port pairs of the UDP flows of ``path`` that ``dissector`` matches, offered as the
    stage offers them (``labelled.matched``)."""
    return {(min(k[2], k[4]), max(k[2], k[4])) for k in matched(dissector, path) if k[0] == UDP}


# Captures of the games and of VoIP that share their shape (small UDP both ways): a game
# dissector matches only the flows of its own game in them.
GAME_CAPTURES = ("activision.pcap", "epicgames.pcapng", "netease_games.pcapng", "codm.pcap",
                 "among_us.pcap", "steam.pcapng")  # fmt: skip
VOIP_CAPTURES = ("rtp.pcapng", "discord.pcap", "skype_udp.pcap", "stun_dtls_rtp.pcapng",
                 "teamspeak3.pcap", "whatsapp_voice_and_message.pcap", "zoom.pcap")  # fmt: skip


def other_captures(own: str) -> list[str]:
    """The game and VoIP captures but ``own``."""
    return [c for c in GAME_CAPTURES + VOIP_CAPTURES if c != own]
