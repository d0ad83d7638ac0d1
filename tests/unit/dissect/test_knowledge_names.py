"""Host names learned from flows, read as of a flow's last packet."""

from __future__ import annotations

from voipscope.dissect.knowledge import NAME_HISTORY, Knowledge

IP = "203.0.113.7"


def test_a_name_learned_after_the_flow_ended_is_not_read() -> None:
    k = Knowledge()
    k.learn_name(IP, "a.example.com", "DNS answer", 1, ts_ns=100)
    k.learn_name(IP, "b.example.net", "TLS SNI", 2, ts_ns=200)
    assert k.name_of(IP, as_of_ns=50) is None
    assert k.name_of(IP, as_of_ns=150).name == "a.example.com"  # type: ignore[union-attr]
    assert k.name_of(IP, as_of_ns=200).name == "b.example.net"  # type: ignore[union-attr]
    assert k.name_of(IP).name == "b.example.net"  # type: ignore[union-attr]  # a live flow


def test_the_same_name_again_keeps_when_it_was_first_learned() -> None:
    """Every DNS answer for a name would otherwise push out what earlier flows need."""
    k = Knowledge()
    k.learn_name(IP, "web.example.com", "TLS SNI", 15, ts_ns=100)
    for n in range(3 * NAME_HISTORY):
        k.learn_name(IP, "web.example.com.", "DNS answer", 60 + n, ts_ns=200 + n)
    found = k.name_of(IP, as_of_ns=150)
    assert found is not None and (found.how, found.source_flow_id) == ("TLS SNI", 15)


def test_history_per_address_is_bounded() -> None:
    k = Knowledge()
    for n in range(3 * NAME_HISTORY):
        k.learn_name(IP, f"h{n}.example.com", "DNS answer", n, ts_ns=n)
    assert k.name_of(IP, as_of_ns=0) is None  # pushed out
    assert k.name_of(IP).name == f"h{3 * NAME_HISTORY - 1}.example.com"  # type: ignore[union-attr]
