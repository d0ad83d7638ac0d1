"""Regenerate the tshark goldens of the lookalike dissectors (DNS, TLS, QUIC, HTTP, ...).

    python tests/unit/dissect/make_lookalike_goldens.py

Each golden is ``goldens/CAPTURE.PROTO.txt``: one ``|``-separated row per frame tshark
decodes, with the fields the unit tests compare parse results against. Frames whose
message is not wholly in one segment are left out (the parsers see one segment).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOLDENS = HERE / "goldens"
SHARED = HERE.parents[3] / "shared" / "captures" / "ndpi"

# name -> (captures, display filter, fields, extra tshark options)
# fmt: off
GOLDEN_SETS: dict[str, tuple[tuple[str, ...], str, tuple[str, ...], tuple[str, ...]]] = {
    "dns": (
        ("dns.pcap", "teams.pcap", "telegram.pcap", "wechat.pcap"),
        "udp && (dns || mdns || llmnr)",
        ("frame.number", "dns.flags.response", "dns.count.queries", "dns.count.answers",
         "dns.qry.name", "dns.qry.type", "dns.a", "dns.aaaa"),
        (),
    ),
    "tls": (
        ("teams.pcap", "alexa-app.pcapng", "signal.pcap"),
        "tls.handshake.type == 1 || tls.handshake.type == 2",
        ("frame.number", "tls.handshake.type", "tls.handshake.extensions_server_name",
         "tls.handshake.extensions_alpn_str", "tls.handshake.extensions.supported_version",
         "tls.handshake.version", "tcp.payload"),
        (),
    ),
    "gquic": (
        ("quic.pcap", "wechat.pcap", "telegram.pcap", "snapchat_call.pcapng"),
        "gquic.tag",
        ("frame.number", "gquic.version", "gquic.tag", "gquic.tag.sni", "gquic.tag.uaid"),
        (),
    ),
    "quic": (
        ("google_meet.pcapng",),
        "quic.header_form == 1",
        ("frame.number", "quic.version", "quic.long.packet_type", "quic.dcil", "quic.scil"),
        (),
    ),
    "http": (
        ("alexa-app.pcapng", "KakaoTalk_chat.pcap", "ookla.pcap", "steam.pcapng"),
        "http.request || http.response",
        ("frame.number", "http.request.method", "http.request.uri", "http.host",
         "http.response.code", "tcp.payload"),
        (),
    ),
    "wireguard": (
        ("wireguard.pcap", "mullvad_wireguard.pcap"),
        "wg",
        ("frame.number", "wg.type", "wg.sender", "wg.receiver", "wg.counter"),
        (),
    ),
    "rtps": (
        ("rtps.pcap",),
        "rtps",
        ("frame.number", "rtps.version", "rtps.vendorId", "rtps.sm.id"),
        (),
    ),
    "ntp": (
        ("NTPv4.pcap", "skype.pcap", "wechat.pcap"),
        "ntp",
        ("frame.number", "ntp.flags.vn", "ntp.flags.mode", "ntp.stratum"),
        (),
    ),
    "utp": (
        ("bittorrent_utp.pcap",),
        "bt-utp",
        ("frame.number", "bt-utp.type", "bt-utp.connection_id", "bt-utp.seq_nr",
         "bt-utp.ack_nr", "bt-utp.timestamp_us"),
        ("--enable-heuristic", "bt_utp_udp"),
    ),
    "dht": (
        ("bittorrent_utp.pcap",),
        "bt-dht",
        ("frame.number", "bt-dht.bencoded.string"),
        (),
    ),
    "mpegts": (
        ("mpegts.pcap",),
        "mp2t",
        ("frame.number", "mp2t.pid", "mp2t.cc"),
        (),
    ),
    "steam": (
        ("steam.pcapng",),
        "steam_ihs_discovery",
        ("frame.number", "steam_ihs_discovery.header_msg_type",
         "steam_ihs_discovery.header_client_id", "steam_ihs_discovery.header_length",
         "steam_ihs_discovery.body_length"),
        (),
    ),
}
# fmt: on


def tshark_rows(
    capture: Path, display: str, fields: tuple[str, ...], extra: tuple[str, ...]
) -> list[list[str]]:
    cmd = ["tshark", "-r", str(capture), *extra, "-Y", display, "-T", "fields",
           "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"]  # fmt: skip
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("|") for line in out.splitlines()]


def keep(name: str, row: list[str]) -> list[str] | None:
    """Drop frames whose message does not start the segment; drop the payload column."""
    if name == "tls":
        payload = bytes.fromhex(row[-1])
        if payload[:1] != b"\x16" or len(payload) < 5 + int.from_bytes(payload[3:5], "big"):
            return None
        return row[:-1]
    if name == "http":
        payload = bytes.fromhex(row[-1])
        if not (payload.startswith(b"HTTP/1.") or (row[1] and payload.startswith(row[1].encode()))):
            return None
        return row[:-1]
    return row


def main(argv: list[str]) -> int:
    wanted = set(argv) or set(GOLDEN_SETS)
    for name, (captures, display, fields, extra) in GOLDEN_SETS.items():
        if name not in wanted:
            continue
        for capture in captures:
            rows = [r for row in tshark_rows(SHARED / capture, display, fields, extra)
                    if (r := keep(name, row)) is not None]  # fmt: skip
            path = GOLDENS / f"{capture}.{name}.txt"
            path.write_text("".join("|".join(r) + "\n" for r in rows))
            print(f"{path.name}: {len(rows)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
