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


def test_a_flows_own_names_can_be_skipped() -> None:
    """A flow's judge reads its own SNI from the flow; the DNS answer an earlier flow
    got for the address (the name the client asked for) is what the knowledge adds --
    also where a second flow repeated the same SNI (one history entry for both)."""
    k = Knowledge()
    k.learn_name(IP, "dc.applicationinsights.microsoft.com", "DNS answer", 1, ts_ns=100)
    k.learn_name(IP, "gate.hockeyapp.net", "TLS SNI", 2, ts_ns=200)
    k.learn_name(IP, "gate.hockeyapp.net", "TLS SNI", 3, ts_ns=300)
    assert k.name_of(IP).name == "gate.hockeyapp.net"  # type: ignore[union-attr]
    found = k.name_of(IP, as_of_ns=300, skip={"gate.hockeyapp.net"})
    assert found is not None and (found.name, found.how) == (
        "dc.applicationinsights.microsoft.com",
        "DNS answer",
    )
    assert k.name_of(IP, as_of_ns=50, skip={"gate.hockeyapp.net"}) is None
