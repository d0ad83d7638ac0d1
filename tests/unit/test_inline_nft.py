"""Inline decisions into nftables (voipscope.inline.nft), loaded by the real nft in a network
namespace of the test's own (skipped without root or nft)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from voipscope.inline.decisions import FLOW, FROM, TO, Action, Event, Target, drop, shape
from voipscope.inline.nft import MAX_SHAPE_RATES, TABLE, NftVerdicts, base_script

WHY = ("needs root" if os.geteuid() != 0 else None) or (
    None if shutil.which("nft") and shutil.which("ip") else "needs nft and ip"
)
EVENT = Event("flow", "identified", 1.0, {"flow_id": 1}, (), "flow 1")


def _action(n: int, decision: object, *targets: Target) -> Action:
    return Action(n, 10**9, EVENT, decision, targets)  # type: ignore[arg-type]


def test_script_names_sets_by_scope_family_and_action() -> None:
    verdicts = NftVerdicts()
    text = verdicts.script([
        _action(1, drop("x", ttl_s=90.5), Target(FLOW, "10.0.0.1", 17, 4000, "10.0.0.2", 5000)),
        _action(2, shape(100, "y", ttl_s=None), Target(TO, "2001:db8::1", 6, 443)),
        _action(3, drop("z"), Target(FROM, "192.0.2.9")),
    ])  # fmt: skip
    lines = text.splitlines()
    # A 5-tuple both ways; ttl rounded up to whole seconds.
    both_ways = (
        "add element inet voipscope_inline flow4_drop { 17 . 10.0.0.1 . 4000 . "
        "10.0.0.2 . 5000 timeout 91s, 17 . 10.0.0.2 . 5000 . 10.0.0.1 . 4000 timeout 91s }"
    )
    assert both_ways in lines
    # A new shape rate: its set, its meter and a rule in both chains, then the element
    # without a timeout (for the whole run).
    assert "add set inet voipscope_inline to6_shape100 { type inet_proto . ipv6_addr . " \
           "inet_service; flags timeout; }" in lines  # fmt: skip
    assert sum("@to6_shape100 update @to6_meter100" in line for line in lines) == 2
    assert "limit rate over 12500 bytes/second burst 12500 bytes" in text
    assert "add element inet voipscope_inline to6_shape100 { 6 . 2001:db8::1 . 443 }" in lines
    assert "add element inet voipscope_inline from4_drop { 192.0.2.9 timeout 3600s }" in lines
    # The same rate again adds no second set.
    again = verdicts.script([_action(4, shape(100), Target(TO, "2001:db8::2", 6, 443))])
    assert "add set" not in again


def test_too_many_shape_rates_are_refused_per_action() -> None:
    verdicts = NftVerdicts()
    actions = [_action(i, shape(i + 1), Target(FROM, "192.0.2.1"))
               for i in range(MAX_SHAPE_RATES + 1)]  # fmt: skip
    verdicts.script(actions)
    assert [a.error is None for a in actions] == [True] * MAX_SHAPE_RATES + [False]
    assert actions[-1].applied is False


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"vsnft-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


# The loader runs inside the namespace as its own process (nft acts on its namespace).
LOAD = """
import json, sys
from voipscope.inline.decisions import FLOW, FROM, TO, Action, Event, Target, drop, shape
from voipscope.inline.nft import NftVerdicts
ev = Event("flow", "identified", 1.0, {}, (), "flow 1")
v = NftVerdicts()
if sys.argv[1] == "start":
    v.start()
acts = [Action(1, 1, ev, drop("x"), (Target(FLOW, "10.0.0.1", 17, 4000, "10.0.0.2", 5000),)),
        Action(2, 1, ev, shape(64, "y"), (Target(TO, "2001:db8::1", 17, 6000),
                                           Target(FROM, "192.0.2.9")))]
if sys.argv[1] == "mixed":  # an element nft refuses (the stage never makes one)
    v.start()
    acts.insert(1, Action(3, 1, ev, drop("z"), (Target(FROM, "fe80::1%eth0"),)))
v.apply(acts)
print(json.dumps([[a.applied, a.error] for a in acts]))
"""


@pytest.mark.skipif(bool(WHY), reason=WHY or "")
def test_nft_loads_the_table_and_the_elements(netns: str) -> None:
    def run(*cmd: str) -> str:
        done = subprocess.run(["ip", "netns", "exec", netns, *cmd], capture_output=True,
                              text=True, timeout=60, check=True)  # fmt: skip
        return done.stdout

    assert json.loads(run(sys.executable, "-c", LOAD, "start")) == [[True, None], [True, None]]
    table = json.loads(run("nft", "-j", "list", "table", *TABLE.split()))["nftables"]
    sets = {i["set"]["name"]: i["set"] for i in table if "set" in i}
    assert len(sets["flow4_drop"]["elem"]) == 2  # both orientations
    assert {"to6_shape64", "to6_meter64", "from4_shape64", "from4_meter64"} <= set(sets)
    chains = {i["chain"]["name"]: i["chain"] for i in table if "chain" in i}
    assert {c: (chains[c]["hook"], chains[c]["prio"]) for c in chains} == {
        "prerouting": ("prerouting", -300), "output": ("output", -300)}  # fmt: skip
    rules = [(i["rule"]["chain"], json.dumps(i["rule"]["expr"])) for i in table if "rule" in i]
    # The 5-tuple and endpoint sets in both chains, the from sets only on the way in (a
    # from address named by a forged alert may be this host's own).
    assert sum(chain == "prerouting" for chain, _ in rules) == 6 + 2
    assert sum(chain == "output" for chain, _ in rules) == 4 + 1
    assert not any("saddr" in expr and "@from" in expr for chain, expr in rules
                   if chain == "output")  # fmt: skip
    # start() again: the table afresh, the elements gone.
    run(sys.executable, "-c", "from voipscope.inline.nft import NftVerdicts; NftVerdicts().start()")
    table = json.loads(run("nft", "-j", "list", "table", *TABLE.split()))["nftables"]
    assert all("elem" not in i["set"] for i in table if "set" in i)


@pytest.mark.skipif(bool(WHY), reason=WHY or "")
def test_nft_refusing_marks_the_actions(netns: str) -> None:
    """Without the table (no start), nft refuses the transaction: the actions say so."""
    done = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", LOAD, "no-start"],
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    result = json.loads(done.stdout)
    assert [applied for applied, _ in result] == [False, False]
    assert all(error for _, error in result)


def test_base_script_is_one_transaction() -> None:
    text = base_script()
    assert text.startswith("add table inet voipscope_inline\ndelete table inet voipscope_inline\n")
    assert text.count("counter drop") == 10  # flow and to sets in 2 chains, from in 1
    output = text[text.index("chain output") :]
    assert "@from4_drop" not in output and "@from6_drop" not in output


@pytest.mark.skipif(bool(WHY), reason=WHY or "")
def test_one_refused_action_does_not_keep_the_others_out(netns: str) -> None:
    done = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", LOAD, "mixed"],
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    result = json.loads(done.stdout)
    assert [applied for applied, _ in result] == [True, False, True]
    assert result[1][1]  # nft's message


def test_a_shorter_decision_never_shortens_a_longer_one() -> None:
    """nft takes the last timeout given for an element: only a longer decision is sent."""
    verdicts = NftVerdicts()
    target = Target(FROM, "192.0.2.9")

    def sent(decision: object) -> str:
        text = verdicts.script([_action(1, decision, target)])
        verdicts._expires.update(verdicts._pending)  # as apply does once nft took it
        return text

    assert "timeout 600s" in sent(drop("x", ttl_s=600))
    assert sent(drop("x", ttl_s=60)) == ""  # in force longer already
    assert "timeout 3600s" in sent(drop("x", ttl_s=3600))
    assert "{ 192.0.2.9 }" in sent(drop("x", ttl_s=None))  # for good
    assert sent(drop("x", ttl_s=7200)) == ""
