"""DNS, mDNS and LLMNR: parsing against tshark, each parser branch, every truncation, and
the dissector (ports, structure, names learned from answers, TCP framing)."""

from __future__ import annotations

import struct

import pytest

from tests.dissectdrive import context, golden, packets, prefix_sweep, run
from tests.readback import payloads_by_frame
from voipscope.dissect.base import OTHER, TCP, Probe
from voipscope.dissect.dns import (
    MAX_QUESTIONS,
    DnsDissector,
    header_is_sane,
    parse_dns,
    read_name,
)
from voipscope.dissect.knowledge import Knowledge
from voipscope.errors import DecodeError, Malformed, Truncated

DNS = DnsDissector()


def name(text: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in text.split(".") if p) + b"\x00"


def question(qname: str, qtype: int = 1, qclass: int = 1) -> bytes:
    return name(qname) + struct.pack("!HH", qtype, qclass)


def record(owner: bytes, rtype: int, rdata: bytes, rclass: int = 1, ttl: int = 60) -> bytes:
    return owner + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def message(flags: int, questions=(), answers=(), authority=(), additional=(), ident=0x1234):
    head = struct.pack("!HHHHHH", ident, flags, len(questions), len(answers), len(authority),
                       len(additional))  # fmt: skip
    return head + b"".join([*questions, *answers, *authority, *additional])


QUERY = message(0x0100, [question("www.example.com")],
                additional=[record(b"\x00", 41, b"", rclass=1232, ttl=0)])  # fmt: skip
# Answer: www.example.com CNAME edge.example.net (compressed "example" suffix is not
# shared, so point at the question), then A and AAAA for the CNAME target.
_Q = question("www.example.com", 1)
_CNAME_TARGET = name("edge.example.net")
_TARGET_AT = 12 + len(_Q) + 12  # header, question, then the CNAME record's fixed part
_TO_TARGET = struct.pack("!H", 0xC000 | _TARGET_AT)
V6 = bytes.fromhex("20010db8000000000000000000000001")
RESPONSE = message(
    0x8180,
    [_Q],
    [
        record(b"\xc0\x0c", 5, _CNAME_TARGET),
        record(_TO_TARGET, 1, bytes([192, 0, 2, 7])),
        record(_TO_TARGET, 28, V6),
    ],
)


# -- parsing --------------------------------------------------------------------------


def test_query_and_response_with_compression():
    q = parse_dns(QUERY)
    assert not q.is_response and q.opcode == 0 and q.end == len(QUERY)
    assert [(x.name, x.qtype, x.qclass) for x in q.questions] == [("www.example.com", 1, 1)]
    assert q.records[0].rtype == 41 and q.records[0].rclass == 1232  # OPT keeps its size
    r = parse_dns(RESPONSE)
    assert r.is_response and r.rcode == 0 and r.end == len(RESPONSE)
    assert [(x.name, x.rtype, x.value) for x in r.records] == [
        ("www.example.com", 5, "edge.example.net"),
        ("edge.example.net", 1, "192.0.2.7"),
        ("edge.example.net", 28, "2001:db8::1"),
    ]
    assert [x.value for x in r.addresses()] == ["192.0.2.7", "2001:db8::1"]


@pytest.mark.parametrize("capture", ["dns.pcap", "teams.pcap", "telegram.pcap", "wechat.pcap"])
def test_against_tshark(capture, shared_captures):
    payloads = payloads_by_frame(shared_captures / capture, 17)
    rows = golden(f"{capture}.dns.txt")
    for frame, response, qdcount, ancount, qname, qtype, a, aaaa in rows:
        msg = parse_dns(payloads[int(frame)])
        assert (msg.is_response, msg.counts[:2]) == (response == "1", (int(qdcount), int(ancount)))
        if qname:
            assert (msg.questions[0].name or "<Root>", msg.questions[0].qtype) == (
                qname.split(",")[0], int(qtype.split(",")[0]))  # fmt: skip
        records = msg.records  # tshark lists the addresses of every section
        assert msg.records_skipped == 0
        assert [r.value for r in records if r.rtype == 1] == (a.split(",") if a else []), frame
        want6 = [v for v in aaaa.split(",") if v]
        assert [r.value for r in records if r.rtype == 28] == want6, frame


def test_header_branches():
    with pytest.raises(Truncated):
        parse_dns(QUERY[:11])
    with pytest.raises(Malformed, match="Z bit"):
        parse_dns(QUERY[:2] + b"\x01\x40" + QUERY[4:])
    with pytest.raises(Malformed, match="opcode 3"):
        parse_dns(QUERY[:2] + b"\x18\x00" + QUERY[4:])
    with pytest.raises(Malformed, match="questions"):
        parse_dns(QUERY[:4] + struct.pack("!H", MAX_QUESTIONS + 1) + QUERY[6:])
    assert header_is_sane(QUERY) and not header_is_sane(QUERY[:11])
    assert not header_is_sane(QUERY[:3] + b"\x0b" + QUERY[4:])  # RCODE 11


def test_name_branches():
    with pytest.raises(Truncated, match="name runs past"):
        read_name(b"\x03www", 0)
    with pytest.raises(Truncated, match="label runs past"):
        read_name(b"\x05ww", 0)
    with pytest.raises(Truncated, match="pointer is truncated"):
        read_name(b"\xc0", 0)
    with pytest.raises(Malformed, match="backwards"):
        read_name(b"\x00\xc0\x01", 1)  # points at itself
    with pytest.raises(Malformed, match="backwards"):
        read_name(b"\x01a\xc0\x00", 0)  # a loop back to the label before it
    with pytest.raises(Malformed, match="label type"):
        read_name(b"\x41a\x00", 0)
    with pytest.raises(Malformed, match="longer than 255"):
        read_name(b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63 + b"\x3f" + b"c" * 63
                  + b"\x3f" + b"d" * 63 + b"\x00", 0)  # fmt: skip
    assert read_name(b"\x00", 0) == ("", 1)
    assert read_name(b"\x01a\x00\x01b\xc0\x00", 3) == ("b.a", 7)


def test_record_branches():
    q = [question("a.b")]
    with pytest.raises(Truncated, match="type and class"):
        parse_dns(message(0, [name("a.b") + b"\x00"]))
    with pytest.raises(Truncated, match="fixed fields"):
        parse_dns(message(0x8000, q, [b"\x00\x00\x01"]))
    with pytest.raises(Truncated, match="record data runs past"):
        parse_dns(message(0x8000, q, [record(b"\x00", 1, b"\x01\x02\x03\x04")[:-1]]))
    with pytest.raises(Malformed, match="A record has 3"):
        parse_dns(message(0x8000, q, [record(b"\x00", 1, b"\x01\x02\x03")]))
    with pytest.raises(Malformed, match="AAAA record has 4"):
        parse_dns(message(0x8000, q, [record(b"\x00", 28, b"\x01\x02\x03\x04")]))
    with pytest.raises(Malformed, match="CNAME target"):
        parse_dns(message(0x8000, q, [record(b"\x00", 5, name("x.y") + b"zz")]))
    mdns = parse_dns(message(0x8400, [], [record(name("host.local"), 1, b"\x0a\x00\x00\x01",
                                                 rclass=0x8001)]))  # fmt: skip
    assert mdns.records[0].rclass == 1 and mdns.records[0].value == "10.0.0.1"


def test_records_past_the_cap_are_counted_not_read():
    answers = [record(b"\xc0\x0c", 1, bytes([10, 0, 0, k])) for k in range(5)]
    msg = parse_dns(message(0x8180, [question("many.example")], answers), max_records=3)
    assert len(msg.records) == 3 and msg.records_skipped == 2 and msg.end is None


@pytest.mark.parametrize("data", [QUERY, RESPONSE], ids=["query", "response"])
def test_every_prefix_is_a_decode_error_or_a_message(data):
    prefix_sweep(parse_dns, data)
    for cut in range(12, len(data)):
        with pytest.raises(DecodeError):
            parse_dns(data[:cut])  # every section is counted, so any cut is short


# -- the dissector --------------------------------------------------------------------


def dns_ctx(port=53, transport=17, knowledge=None):
    return context(transport, ("192.0.2.1", 40000), ("198.51.100.53", port), knowledge)


def test_query_then_answer_learns_the_asked_name():
    k = Knowledge()
    r = run(DNS, dns_ctx(knowledge=k), packets(QUERY, (1, RESPONSE)))
    assert r.verdicts == [Probe.MATCH] and r.matched_at == 1
    f = r.finding
    assert (f.protocol, f.category, f.confidence) == ("DNS", OTHER, 0.95)
    assert f.evidence == (
        "DNS query for www.example.com (A) over UDP, header and question parse; "
        "answered NOERROR with 3 records (packet 2)"
    )
    for ip in ("192.0.2.7", "2001:db8::1"):
        host = k.name_of(ip)
        assert host is not None and (host.name, host.how) == ("www.example.com", "DNS answer")


def test_response_first_is_reported_and_learned():
    k = Knowledge()
    r = run(DNS, dns_ctx(knowledge=k), packets((1, RESPONSE)))
    assert r.matched and "response for www.example.com (A) over UDP: NOERROR, 3 answers" in (
        r.finding.evidence
    )
    assert k.name_of("192.0.2.7") is not None


def test_port_alone_or_structure_alone_is_not_enough():
    assert run(DNS, dns_ctx(port=5300), packets(QUERY)).verdicts == [Probe.NO]
    sip = b"OPTIONS sip:x SIP/2.0\r\n\r\n"
    assert run(DNS, dns_ctx(), packets(sip)).verdicts == [Probe.NO]
    assert run(DNS, dns_ctx(), packets(QUERY + b"\x00")).verdicts == [Probe.NO]  # trailing
    no_question = message(0x8180, [], [record(name("a.b"), 1, b"\x01\x02\x03\x04")])
    assert run(DNS, dns_ctx(), packets(no_question)).verdicts == [Probe.NO]
    bad_class = message(0x0100, [question("a.b", 1, 77)])
    assert run(DNS, dns_ctx(), packets(bad_class)).verdicts == [Probe.NO]
    known_answers = message(0x0100, [question("a.b")], [record(b"\xc0\x0c", 1, b"\x01" * 4)])
    assert run(DNS, dns_ctx(), packets(known_answers)).verdicts == [Probe.NO]


def test_mdns_announcement_and_llmnr():
    k = Knowledge()
    announce = message(0x8400, [], [record(name("printer.local"), 1, b"\xc0\xa8\x01\x05",
                                           rclass=0x8001)])  # fmt: skip
    r = run(DNS, dns_ctx(port=5353, knowledge=k), packets(announce))
    assert r.matched and r.finding.protocol == "MDNS"
    assert k.name_of("192.168.1.5").name == "printer.local"
    assert k.name_of("192.168.1.5").how == "mDNS answer"
    llmnr = message(0x0000, [question("wpad")])
    assert run(DNS, dns_ctx(port=5355), packets(llmnr)).finding.protocol == "LLMNR"
    two = message(0x0000, [question("wpad"), question("wpad2")])
    assert run(DNS, dns_ctx(port=5355), packets(two)).verdicts == [Probe.NO]


def test_tcp_framing_split_and_answer_followed():
    k = Knowledge()
    framed_q = struct.pack("!H", len(QUERY)) + QUERY
    framed_r = struct.pack("!H", len(RESPONSE)) + RESPONSE
    flow = packets(framed_q[:7], framed_q[7:], (1, framed_r[:20]), (1, framed_r[20:]))
    r = run(DNS, dns_ctx(transport=TCP, knowledge=k), flow)
    assert r.verdicts == [Probe.MAYBE, Probe.MATCH] and r.finding.evidence.endswith(
        "over TCP, header and question parse; answered NOERROR with 3 records (packet 4)"
    )
    assert k.name_of("192.0.2.7").name == "www.example.com"
    insane = struct.pack("!H", len(QUERY)) + QUERY[:2] + b"\x01\x40" + QUERY[4:]
    assert run(DNS, dns_ctx(transport=TCP), packets(insane)).verdicts == [Probe.NO]


def test_follow_reports_malformed_answers_and_capped_records():
    many = message(0x8180, [_Q], [record(b"\xc0\x0c", 1, bytes([10, 0, 0, k % 250]))
                                  for k in range(70)])  # fmt: skip
    r = run(DNS, dns_ctx(), packets(QUERY, (1, RESPONSE[:-3]), (1, many)))
    assert r.matched
    assert r.ctx.anomalies.counts == {"dns_malformed": 1, "dns_records_capped": 1}


def test_real_flows_match_and_learn(shared_captures):
    from tests.dissectdrive import capture_flows

    k = Knowledge()
    flows = capture_flows(shared_captures / "dns.pcap")
    results = [run(DNS, f.context(k), f.packets) for f in flows]
    assert all(r.matched for r in results)
    learned = {ip: k.name_of(ip).name for ip in
               ("169.45.219.235", "169.47.40.142", "169.53.81.79")}  # fmt: skip
    assert set(learned.values()) == {"e7.whatsapp.net"}
