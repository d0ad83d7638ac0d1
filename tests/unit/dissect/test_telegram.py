"""dissect/telegram.py on reflector packets taken from telegram.pcap (91.108.8.1:533)."""

from __future__ import annotations

import contextlib

import pytest

from voipscope.anomalies import AnomalyLog
from voipscope.dissect.base import UDP, FlowContext, Packet, Probe
from voipscope.dissect.knowledge import Knowledge
from voipscope.dissect.telegram import TelegramDissector, parse_reflector
from voipscope.errors import DecodeError

TAG = bytes.fromhex("2fe49fa76c4eb433cbcd82a1bbea621e")
REQUEST = TAG + b"\xff" * 12 + bytes.fromhex("feffffff8bad35d6e816180a")
SELF_INFO = (
    TAG
    + b"\xff" * 12
    + bytes.fromhex("c77215c075dab25e8bad35d6e816180a00000000000000000000ffff570b")
)
VOICE = TAG + bytes(range(88))


def ctx() -> FlowContext:
    return FlowContext(1, UDP, "192.168.1.77", 28150, "91.108.8.1", 533, 0, Knowledge(),
                       AnomalyLog())  # fmt: skip


def test_control_and_data_packets() -> None:
    assert parse_reflector(REQUEST).special_type == 0xFFFFFFFE
    assert parse_reflector(SELF_INFO).special_type == 0xC01572C7
    assert parse_reflector(VOICE).special_type is None
    assert parse_reflector(VOICE).peer_tag == TAG


def test_request_and_answer_match_then_voice_makes_media() -> None:
    c, d = ctx(), TelegramDissector()
    assert d.probe(c, Packet(REQUEST, 1, 1, 0)) == Probe.MAYBE
    assert d.probe(c, Packet(SELF_INFO, 2, 2, 1)) == Probe.MATCH
    assert c.findings[-1].category == "voip-signaling" and c.findings[-1].app == "Telegram"
    for seq in range(3, 40):
        if d.dissect(c, Packet(VOICE, seq, seq, seq % 2)) == Probe.NO:
            break
    assert c.findings[-1].category == "voip-media"


def test_a_different_tag_is_not_the_same_call() -> None:
    c, d = ctx(), TelegramDissector()
    d.probe(c, Packet(REQUEST, 1, 1, 0))
    other = bytes(16) + REQUEST[16:]
    assert d.probe(c, Packet(other, 2, 2, 1)) == Probe.NO


@pytest.mark.parametrize("data", [TAG, TAG + b"\xff" * 12 + b"\x01\x02\x03\x04", b"\xff" * 19])
def test_refused(data: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_reflector(data)


def test_prefixes_raise_only_decode_errors() -> None:
    for cut in range(len(SELF_INFO)):
        with contextlib.suppress(DecodeError):
            parse_reflector(SELF_INFO[:cut])
