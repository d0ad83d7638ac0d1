"""The explicit list of dissectors, in the order they are offered a packet.

Adding a protocol = one module in ``voipscope.dissect`` + one line here + one test folder.
Order matters only for cost: cheap, selective probes first.
"""

from __future__ import annotations

from voipscope.dissect import (
    activision,
    among_us,
    bittorrent,
    cod_mobile,
    dhcp,
    discord,
    dns,
    dnscrypt,
    dropbox,
    dtls,
    epicgames,
    h225,
    http,
    iax2,
    ike,
    imo,
    megaco,
    mgcp,
    mpegts,
    mumble,
    natpmp,
    netbios,
    netease_games,
    ntp,
    ookla,
    openwire,
    quic,
    rtp,
    rtps,
    sip,
    sip_ws,
    skinny,
    skype,
    spotify,
    steam,
    stun,
    teamspeak,
    telegram,
    tls,
    udptl,
    whatsapp_chat,
    wireguard,
    zoom,
)
from voipscope.dissect.base import Dissector

DISSECTORS: tuple[Dissector, ...] = (
    # VoIP signalling
    sip.SipDissector(),
    sip_ws.SipWsDissector(),
    mgcp.MgcpDissector(),
    megaco.MegacoDissector(),
    h225.H323Dissector(),
    h225.H225RasDissector(),
    skinny.SkinnyDissector(),
    iax2.Iax2Dissector(),
    # RFC 7983 family (multiplexed on one 5-tuple)
    stun.StunDissector(),
    dtls.DtlsDissector(),
    rtp.RtpDissector(),
    udptl.UdptlDissector(),  # only on flows signalling announced as T.38
    # app media and signatures
    discord.DiscordDissector(),
    zoom.ZoomDissector(),
    teamspeak.TeamSpeakDissector(),
    mumble.MumbleDissector(),
    skype.SkypeDissector(),
    telegram.TelegramDissector(),
    imo.ImoDissector(),
    # lookalikes
    whatsapp_chat.WhatsAppChatDissector(),
    ike.IkeDissector(),
    dhcp.DhcpDissector(),
    dns.DnsDissector(),
    ntp.NtpDissector(),
    rtps.RtpsDissector(),
    steam.SteamDissector(),
    # games, named from their bytes (issue 4)
    activision.ActivisionDissector(),
    netease_games.NetEaseGamesDissector(),
    epicgames.EpicGamesDissector(),
    among_us.AmongUsDissector(),
    cod_mobile.CodMobileDissector(),  # no first-byte gate (see its module)
    # LAN discovery and other lookalikes named from their bytes (issue 4)
    dropbox.DropboxDissector(),
    spotify.SpotifyDissector(),
    netbios.NetbiosDissector(),
    natpmp.NatPmpDissector(),
    dnscrypt.DnsCryptDissector(),
    openwire.OpenWireDissector(),
    ookla.OoklaDissector(),
    wireguard.WireGuardDissector(),
    mpegts.MpegTsDissector(),
    quic.QuicDissector(),
    tls.TlsDissector(),
    http.HttpDissector(),
    bittorrent.BitTorrentDissector(),
)
