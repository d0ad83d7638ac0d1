"""Hypothesis over the lookalike parsers (DNS, TLS, QUIC, HTTP, WireGuard, RTPS, NTP,
BitTorrent, MPEG-TS, Steam, Dropbox, Spotify, NetBIOS, NAT-PMP, DNSCrypt, OpenWire, Ookla)
and their dissectors: random bytes, real messages with random damage, and random flows
over UDP and TCP.

The property: a parser returns or raises a DecodeError, nothing else (DESIGN §4); a
dissector driven as the stage drives it raises nothing at all, reports only well-formed
findings and only the anomalies it declares.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.dissectdrive import context, packets, run
from tests.fuzz.support import FAST, LONG, check_run, damaged
from tests.fuzz.support import check_parsers as check_all_parsers
from tests.unit.dissect import test_bittorrent as bittorrent_cases
from tests.unit.dissect import test_dns as dns_cases
from tests.unit.dissect import test_dnscrypt as dnscrypt_cases
from tests.unit.dissect import test_dropbox as dropbox_cases
from tests.unit.dissect import test_http as http_cases
from tests.unit.dissect import test_mpegts as mpegts_cases
from tests.unit.dissect import test_natpmp as natpmp_cases
from tests.unit.dissect import test_netbios as netbios_cases
from tests.unit.dissect import test_ntp as ntp_cases
from tests.unit.dissect import test_ookla as ookla_cases
from tests.unit.dissect import test_openwire as openwire_cases
from tests.unit.dissect import test_quic as quic_cases
from tests.unit.dissect import test_rtps as rtps_cases
from tests.unit.dissect import test_spotify as spotify_cases
from tests.unit.dissect import test_steam as steam_cases
from tests.unit.dissect import test_tls as tls_cases
from tests.unit.dissect import test_wireguard as wireguard_cases
from voipscope.dissect import (
    bittorrent,
    dns,
    dnscrypt,
    dropbox,
    http,
    mpegts,
    natpmp,
    netbios,
    ntp,
    ookla,
    openwire,
    quic,
    rtps,
    spotify,
    steam,
    tls,
    wireguard,
)
from voipscope.dissect.base import OTHER, SIGNALING, TCP, UDP
from voipscope.dissect.registry import DISSECTORS as REGISTERED

PARSERS = {
    "dns": dns.parse_dns,
    "dns_name": lambda data: dns.read_name(data, 0),
    "tls_hello": tls.parse_hello,
    "tls_client_hello": tls.parse_client_hello,
    "tls_server_hello": tls.parse_server_hello,
    "tls_records": tls.walk_records,
    "quic_long": quic.parse_quic_long_header,
    "gquic_public": quic.parse_gquic_public_header,
    "gquic_message": quic.parse_gquic_message,
    "gquic_find": quic.find_gquic_message,
    "http_head": http.parse_http_head,
    "http_start": http.parse_start_line,
    "http_host": lambda data: http.host_name(data.decode("utf-8", "replace")),
    "wireguard": wireguard.parse_wireguard,
    "rtps": rtps.parse_rtps,
    "ntp": ntp.parse_ntp,
    "utp": bittorrent.parse_utp,
    "bencode": bittorrent.parse_bencode,
    "krpc": bittorrent.parse_krpc,
    "bt_handshake": bittorrent.parse_handshake,
    "mpegts": mpegts.parse_mpegts,
    "steam": steam.parse_steam_discovery,
    "protobuf": lambda data: steam.parse_protobuf_fields(data, 0, len(data)),
    "dropbox": dropbox.parse_dropbox_discovery,
    "spotify": spotify.parse_spotify_discovery,
    "netbios_ns": netbios.parse_name_service,
    "netbios_dgm": netbios.parse_datagram,
    "natpmp": natpmp.parse_natpmp,
    "dnscrypt": dnscrypt.parse_dnscrypt_response,
    "openwire": openwire.parse_wireformat_info,
    "ookla": ookla.parse_greeting,
}

SEEDS = [
    dns_cases.QUERY,
    dns_cases.RESPONSE,
    tls_cases.HELLO,
    tls_cases.SERVER_HELLO_13,
    tls_cases.APP_DATA,
    tls_cases.HELLO[9:],
    quic_cases.INITIAL[:200],
    quic_cases.HANDSHAKE,
    quic_cases.GQUIC_CLIENT,
    quic_cases.GQUIC_SERVER,
    quic_cases.CHLO,
    http_cases.REQUEST,
    http_cases.RESPONSE,
    http_cases.SSDP,
    wireguard_cases.INIT,
    wireguard_cases.RESP,
    wireguard_cases.data(5, 19, 2),
    rtps_cases.MESSAGE,
    ntp_cases.CLIENT,
    ntp_cases.MONLIST,
    ntp_cases.CONTROL,
    bittorrent_cases.KRPC,
    bittorrent_cases.HANDSHAKE,
    bittorrent_cases.TRACKER,
    bittorrent_cases.utp(4, 7, 100, 0),
    bittorrent_cases.utp(2, 7, 5, 100, ext=b"\x00\x04\x01\x02\x03\x04", first_ext=1),
    mpegts_cases.ts_packet() * 2,
    steam_cases.DISCOVERY,
    dropbox_cases.TELEGRAM_DISCOVERY,
    spotify_cases.DISCOVERY,
    netbios_cases.NAME_QUERY,
    netbios_cases.REFRESH,
    netbios_cases.GROUP_DATAGRAM,
    natpmp_cases.MAP_REQUEST,
    natpmp_cases.MAP_RESPONSE,
    dnscrypt_cases.RESPONSE,
    openwire_cases.CLIENT_INFO,
    ookla_cases.HI,
    ookla_cases.HELLO,
]

LOOKALIKES = ("DNS", "TLS", "QUIC", "HTTP", "WireGuard", "RTPS", "NTP", "BitTorrent",
              "MPEG-TS", "Steam", "Dropbox", "Spotify", "NetBIOS", "NAT-PMP", "DNSCrypt",
              "OpenWire", "Ookla")  # fmt: skip
DISSECTORS = [d for d in REGISTERED if d.name in LOOKALIKES]
PROTOCOLS = {"DNS": {"DNS", "MDNS", "LLMNR"}, "TLS": {"TLS", "SIP-TLS"},
             "HTTP": {"HTTP", "HTTP/2", "SSDP"}}  # fmt: skip
PORTS = [53, 5353, 5355, 123, 443, 5061, 1900, 5060, 27036, 40000,
         17500, 57621, 137, 138, 5351, 8080, 61616]  # fmt: skip


payloads = st.one_of(st.binary(min_size=1, max_size=600), damaged(SEEDS).filter(bool))
flows = st.lists(st.tuples(st.integers(0, 1), payloads), min_size=1, max_size=12)


def test_every_lookalike_is_registered_and_fuzzed() -> None:
    assert sorted(d.name for d in DISSECTORS) == sorted(LOOKALIKES)


def check_parsers(data: bytes) -> None:
    check_all_parsers(PARSERS.values(), data)


def check_flow(flow: list[tuple[int, bytes]], transport: int, src_port: int, dst_port: int):
    for dissector in DISSECTORS:
        if transport not in dissector.transports:
            continue
        ctx = context(transport, ("10.0.0.1", src_port), ("10.0.0.2", dst_port))
        result = run(dissector, ctx, packets(*flow))
        assert len(ctx.findings) <= 1 + (dissector.name == "TLS")
        for f in ctx.findings:
            assert f.protocol in PROTOCOLS.get(dissector.name, {dissector.name})
            assert f.category == (SIGNALING if f.protocol == "SIP-TLS" else OTHER)
        check_run(dissector, ctx, result.matched_at, len(flow))


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 8, 12, 16, 20, 48])
def test_every_first_byte_of_short_packets(size):
    for first in range(256):
        data = bytes([first]) + bytes(size - 1)
        check_parsers(data)
        check_flow([(0, data), (1, data)], UDP, 53, 123)
        check_flow([(0, data), (0, data)], TCP, 40000, 5061)


@FAST
@given(data=st.binary(max_size=600))
def test_random_bytes(data):
    check_parsers(data)


@FAST
@given(data=damaged(SEEDS))
def test_damaged_messages(data):
    check_parsers(data)


@FAST
@given(
    flow=flows,
    transport=st.sampled_from([UDP, TCP]),
    src_port=st.sampled_from(PORTS),
    dst_port=st.sampled_from(PORTS),
)
def test_dissectors_on_random_flows(flow, transport, src_port, dst_port):
    check_flow(flow, transport, src_port, dst_port)


@pytest.mark.slow
@LONG
@given(data=st.one_of(st.binary(max_size=600), damaged(SEEDS)))
def test_parsers_fuzz_long(data):
    check_parsers(data)


@pytest.mark.slow
@LONG
@given(
    flow=flows,
    transport=st.sampled_from([UDP, TCP]),
    src_port=st.sampled_from(PORTS),
    dst_port=st.sampled_from(PORTS),
)
def test_dissectors_fuzz_long(flow, transport, src_port, dst_port):
    check_flow(flow, transport, src_port, dst_port)
