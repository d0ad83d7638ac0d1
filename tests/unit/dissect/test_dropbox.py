"""Dropbox LAN sync discovery: real datagrams, each branch, every truncation, the
dissector, and the shared captures against the labels."""

from __future__ import annotations

import json

import pytest

from tests.dissectdrive import context, packets, prefix_sweep, run
from tests.unit.dissect.labelled import labelled, matched
from voipscope.dissect.base import OTHER, Probe
from voipscope.dissect.dropbox import (
    MAX_NAMESPACES,
    DropboxDissector,
    parse_dropbox_discovery,
    parse_json_object,
)
from voipscope.errors import Malformed, Truncated

DROPBOX = DropboxDissector()
# skype.pcap frame 218: Dropbox 1.8 client, 38 namespaces
SKYPE_DISCOVERY = bytes.fromhex(
    "7b22686f73745f696e74223a20313537333139353434352c202276657273696f6e223a205b312c20"
    "385d2c2022646973706c61796e616d65223a2022222c2022706f7274223a2031373530302c20226e"
    "616d65737061636573223a205b31343831393333372c2031373630393936332c2032303634393334"
    "392c2032383532313630372c2035383334343939362c2036303539343938332c2036343433363039"
    "392c2039363835333232342c2039393436393737332c203130313034373939362c20313038313539"
    "3130322c203132353534303536362c203137363936343330372c203234333638323938362c203234"
    "373932353038352c203236303436353236312c203237303430343734322c20323833383631343537"
    "2c203432343534303139372c203434383339373339332c203435313437323635382c203531313730"
    "363634322c203536383339353833332c203539343234363935342c203539383036313036362c2036"
    "31353938333337392c203732303035383336312c203733353035313833302c203733363334313532"
    "382c203734313235353631332c203737363038373234372c203738303837303538312c2037383239"
    "38313934392c203738353236363137372c203831383735323731302c203835353638323339302c20"
    "3838343132303133322c203930383931343836385d7d"
)
# telegram.pcap frame 44: Dropbox 2.0 client, a 128-bit host_int
TELEGRAM_DISCOVERY = bytes.fromhex(
    "7b2276657273696f6e223a205b322c20305d2c2022706f7274223a2031373530302c2022686f7374"
    "5f696e74223a20343039353633333530353034373432323032343834383230353630333038323534"
    "30343632392c2022646973706c61796e616d65223a2022222c20226e616d65737061636573223a20"
    "5b353330333330313234382c203738353236363137372c20313532363236333034352c2032383532"
    "313630372c2031343831393333372c203435313437323635382c203733363334313532382c203933"
    "383831333834392c20323735303337303536302c20313236373639353130392c2035343430343037"
    "3037322c2035383334343939362c20343035363436323539322c20373035333632373138342c2031"
    "3532323137373538372c20313432313131343339392c20313235323131363432392c203730373936"
    "33363638382c203137363936343330372c203132353534303536362c20313034373432383138392c"
    "20343731363139303034382c20353436373136333038382c20313139353034343037312c20393638"
    "35333232342c2031373630393936332c20363437383330333434302c203531313730363634322c20"
    "363239373935353138342c20313431353632303335305d7d"
)


def test_real_discovery():
    msg = parse_dropbox_discovery(SKYPE_DISCOVERY)
    assert (msg.host_int, msg.version, msg.port, msg.namespaces) == (1573195445, (1, 8), 17500, 38)
    msg = parse_dropbox_discovery(TELEGRAM_DISCOVERY)
    assert (msg.version, msg.namespaces) == ((2, 0), 30)
    assert msg.host_int == 40956335050474220248482056030825404629


def obj(**fields: object) -> bytes:
    base: dict[str, object] = {"host_int": 1, "version": [2, 0], "port": 17500, "namespaces": []}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


def test_branches():
    assert parse_dropbox_discovery(obj()).namespaces == 0
    with pytest.raises(Truncated):
        parse_json_object(b"{")
    with pytest.raises(Malformed, match="does not start"):
        parse_json_object(b"[1, 2]")
    with pytest.raises(Malformed, match="UTF-8"):
        parse_json_object(b'{"a": "\xff"}')
    with pytest.raises(Malformed, match="too deeply"):
        parse_json_object(b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    with pytest.raises(Malformed, match="not one JSON object"):
        parse_json_object(b'{"a": 1} {"b": 2}')
    with pytest.raises(Malformed, match="lacks namespaces"):
        parse_dropbox_discovery(obj(namespaces=None))
    with pytest.raises(Malformed, match="host_int"):
        parse_dropbox_discovery(obj(host_int="x"))
    with pytest.raises(Malformed, match="version"):
        parse_dropbox_discovery(obj(version=[]))
    with pytest.raises(Malformed, match="version"):
        parse_dropbox_discovery(obj(version=[True]))
    with pytest.raises(Malformed, match="port 0"):
        parse_dropbox_discovery(obj(port=0))
    with pytest.raises(Malformed, match="namespaces is not"):
        parse_dropbox_discovery(obj(namespaces=["a"]))
    with pytest.raises(Malformed, match="more than"):
        parse_dropbox_discovery(obj(namespaces=list(range(MAX_NAMESPACES + 1))))


def test_every_prefix():
    assert prefix_sweep(parse_dropbox_discovery, SKYPE_DISCOVERY) == 0


def test_dissector():
    ctx = context(17, ("192.168.1.34", 17500), ("192.168.1.255", 17500))
    f = run(DROPBOX, ctx, packets(SKYPE_DISCOVERY)).finding
    assert (f.protocol, f.category, f.app, f.confidence) == ("Dropbox", OTHER, "Dropbox", 0.95)
    assert "version 1.8, port 17500, 38 namespaces" in f.evidence
    near_misses = (
        b'{"host_int": 1}',  # a JSON object, but not the discovery one
        b'{"version": [2, 0], "port": 17500}',
        SKYPE_DISCOVERY[:-1],
        b"{" + bytes(40),
        b"\x00" + SKYPE_DISCOVERY[1:],
    )
    for payload in near_misses:
        ctx = context(17, ("192.168.1.34", 17500), ("192.168.1.255", 17500))
        assert run(DROPBOX, ctx, packets(payload)).verdicts == [Probe.NO]
    # Off the discovery port the same bytes are not offered, and refused if they were.
    ctx = context(17, ("192.168.1.34", 17501), ("192.168.1.255", 17501))
    assert run(DROPBOX, ctx, packets(SKYPE_DISCOVERY)).verdicts == [Probe.NO]


@pytest.mark.parametrize(
    "capture",
    ["skype.pcap", "teams.pcap", "telegram.pcap", "whatsapp_login_call.pcap",
     "whatsapp_login_chat.pcap", "zoom.pcap"],
)  # fmt: skip
def test_captures_match_the_labels(capture, shared_captures):
    assert matched(DROPBOX, shared_captures / capture) == labelled(capture, "Dropbox")
