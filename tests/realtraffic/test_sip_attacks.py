"""Real SIP attack tools inside a network namespace this test creates, against real
servers, captured with dumpcap; then ``run_alerts`` over the capture must raise the
right kind of alert from the right source:

- svmap (SIPVicious) sweeps 10.99.0.1-40 with INVITEs from 10.99.0.66: a kamailio
  registrar and a sipp UAS answer                                             -> sip-scan
- svwar walks extensions 100-140 on kamailio, which answers 404 for unknown users and a
  401 challenge for 100, 101, 105                              -> sip-enumeration
- svcrack guesses passwords of 105 from a dictionary whose last word is right
                                                               -> sip-bruteforce (high)
- a sipp UAC on 10.99.0.4 dials a burst of sequential numbers in the ITU International
  Premium Rate range (+979)                                    -> toll-fraud

All addresses live on the namespace's loopback (10.99.0.0/24); the namespace is deleted
afterwards. Skipped, with the reason, when not root or a tool is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.realtraffic.livens import loopback_netns, stop_process
from tests.realtraffic.media import dumpcap_on_lo, in_ns
from voipscope.pipeline import FlowPipeline

TOOLS = ("svmap", "svwar", "svcrack", "kamailio", "sipp", "dumpcap", "ip")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or any(shutil.which(t) is None for t in TOOLS),
    reason="needs root, sipvicious (svmap/svwar/svcrack), kamailio, sipp, dumpcap and ip",
)

NET = "10.99.0.1/24"  # on lo: every 10.99.0.x is local to the namespace
REGISTRAR = "10.99.0.2"
SIPP_UAS = "10.99.0.3"
TOLL_CALLER = "10.99.0.4"
SCANNER = "10.99.0.66"  # svmap binds here (-b); svwar/svcrack send from 10.99.0.1
WAR_SOURCE = "10.99.0.1"
USERS = {"100": "secret100", "101": "hunter2", "105": "1234"}

# A registrar with three users, digest auth (qop=auth), and the give-away: 404 for users
# it does not know (what Asterisk did before alwaysauthreject).
KAMAILIO_CFG = """#!KAMAILIO
debug=1
log_stderror=yes
children=1
disable_tcp=yes
listen=udp:{registrar}:5060
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "auth.so"
request_route {{
{users}
    else {{ sl_send_reply("404", "Not Found"); exit; }}
    if (!pv_auth_check("$td", "$var(pw)", "0", "0")) {{ auth_challenge("$td", "1"); exit; }}
    sl_send_reply("200", "OK");
}}
"""


def _kamailio_cfg() -> str:
    branches = [
        f'    {"if" if i == 0 else "else if"} ($tU == "{u}") {{ $var(pw) = "{p}"; }}'
        for i, (u, p) in enumerate(USERS.items())
    ]
    return KAMAILIO_CFG.format(registrar=REGISTRAR, users="\n".join(branches))


@pytest.fixture
def netns() -> Iterator[str]:
    yield from loopback_netns("vsa", NET)


def _run(ns: str, cwd: Path, *cmd: str, timeout: float = 60) -> str:
    done = subprocess.run(
        in_ns(ns, *cmd), cwd=cwd, capture_output=True, timeout=timeout, check=False, text=True
    )
    return done.stdout + done.stderr


def _toll_scenario() -> str:
    """sipp's own UAC, dialling the number of the injection file's first field."""
    uac = subprocess.run(["sipp", "-sd", "uac"], capture_output=True, text=True).stdout
    assert "[service]" in uac
    return uac.replace("[service]", "[field0]")


def test_sip_attack_tools_raise_their_alerts(netns: str, tmp_path: Path) -> None:
    (tmp_path / "kamailio.cfg").write_text(_kamailio_cfg())
    wrong = [f"guess{i:02d}" for i in range(14)]
    (tmp_path / "passwords.txt").write_text("\n".join([*wrong, USERS["105"]]) + "\n")
    (tmp_path / "toll.xml").write_text(_toll_scenario())
    numbers = [f"+97912345{n:04d}" for n in range(1000, 1012)]
    (tmp_path / "numbers.csv").write_text("SEQUENTIAL\n" + "".join(f"{n};\n" for n in numbers))
    capture = tmp_path / "attacks.pcapng"
    quiet: dict[str, Any] = {
        "cwd": tmp_path,
        "stdout": subprocess.DEVNULL,
        "stderr": subprocess.DEVNULL,
    }
    dumpcap = dumpcap_on_lo(netns, capture, 150)
    kamailio = subprocess.Popen(
        in_ns(
            netns,
            "kamailio",
            "-f",
            str(tmp_path / "kamailio.cfg"),
            "-DD",
            "-E",
            "-m",
            "16",
            "-M",
            "4",
            "-Y",
            str(tmp_path),
            "-P",
            str(tmp_path / "kamailio.pid"),
        ),
        **quiet,
    )
    uas = subprocess.Popen(
        in_ns(
            netns,
            "sipp",
            "-sn",
            "uas",
            "-i",
            SIPP_UAS,
            "-p",
            "5060",
            "-nostdin",
            "-timeout",
            "120s",
        ),
        **quiet,
    )
    logs = {}
    try:
        time.sleep(2.0)  # dumpcap and kamailio need a moment
        # INVITE, not svmap's default OPTIONS: sipp's UAS scenario answers INVITEs only.
        logs["svmap"] = _run(
            netns, tmp_path, "svmap", "-b", SCANNER, "-m", "INVITE", "10.99.0.1-10.99.0.40"
        )
        logs["svwar"] = _run(netns, tmp_path, "svwar", "-e100-140", REGISTRAR)
        logs["svcrack"] = _run(
            netns, tmp_path, "svcrack", "-u105", "-d", str(tmp_path / "passwords.txt"), REGISTRAR
        )
        logs["sipp"] = _run(
            netns,
            tmp_path,
            "sipp",
            f"{SIPP_UAS}:5060",
            "-sf",
            "toll.xml",
            "-inf",
            "numbers.csv",
            "-i",
            TOLL_CALLER,
            "-p",
            "5070",
            "-m",
            str(len(numbers)),
            "-r",
            "4",
            "-d",
            "200",
            "-nostdin",
            "-timeout",
            "60s",
            timeout=90,
        )
        time.sleep(1.0)
    finally:
        for process in (uas, kamailio, dumpcap):
            stop_process(process)

    assert "kamailio" in logs["svmap"], logs["svmap"][-800:]
    assert "105" in logs["svwar"], logs["svwar"][-800:]
    assert USERS["105"] in logs["svcrack"], logs["svcrack"][-800:]

    pipeline = FlowPipeline()
    alerts = [a for batch in pipeline.run_alerts(str(capture)) for a in batch]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for alert in alerts:
        by_kind.setdefault(alert["kind"], []).append(alert)
    summary = [(a["kind"], a["src_ip"], a["summary"]) for a in alerts]

    (scan,) = by_kind["sip-scan"]
    assert scan["src_ip"] == SCANNER and scan["count"] >= 40, summary
    assert any(r.startswith(f"{REGISTRAR}:5060") for r in scan["data"]["responders"])
    assert any(r.startswith(f"{SIPP_UAS}:5060") for r in scan["data"]["responders"])

    (war,) = by_kind["sip-enumeration"]
    assert (war["src_ip"], war["dst_ip"]) == (WAR_SOURCE, REGISTRAR), summary
    assert set(war["data"]["valid_extensions"]) >= set(USERS)

    (crack,) = by_kind["sip-bruteforce"]
    assert (crack["src_ip"], crack["dst_ip"]) == (WAR_SOURCE, REGISTRAR), summary
    assert crack["severity"] == "high" and crack["data"]["cracked_users"] == ["105"]
    assert crack["data"]["attempts_per_user"]["105"] >= len(wrong)

    toll = by_kind["toll-fraud"]
    assert {a["src_ip"] for a in toll} == {TOLL_CALLER}, summary
    patterns = {a["data"]["pattern"] for a in toll}
    assert {"costly", "burst", "sequential"} <= patterns, summary
    # Nothing else: no flood, no policy, no spit from these.
    assert set(by_kind) == {"sip-scan", "sip-enumeration", "sip-bruteforce", "toll-fraud"}
    print(summary)


def test_normal_calls_and_registrations_raise_nothing(netns: str, tmp_path: Path) -> None:
    """The benign side: a phone registering with the right password (after the digest
    challenge) and ordinary answered calls, made by sipp, raise no alert."""
    from tests.realtraffic.test_sipp_call_states import SCENARIOS

    users = {**USERS, "alice": "secret"}
    cfg = _kamailio_cfg().replace(
        '    if ($tU == "100")',
        '    if ($tU == "alice") { $var(pw) = "secret"; }\n    else if ($tU == "100")',
    )
    assert len(users) == 4 and "alice" in cfg
    (tmp_path / "kamailio.cfg").write_text(cfg)
    (tmp_path / "uac_register.xml").write_text(SCENARIOS["uac_register.xml"])
    capture = tmp_path / "normal.pcapng"
    quiet: dict[str, Any] = {
        "cwd": tmp_path,
        "stdout": subprocess.DEVNULL,
        "stderr": subprocess.DEVNULL,
    }
    dumpcap = dumpcap_on_lo(netns, capture, 90)
    kamailio = subprocess.Popen(
        in_ns(
            netns,
            "kamailio",
            "-f",
            str(tmp_path / "kamailio.cfg"),
            "-DD",
            "-E",
            "-m",
            "16",
            "-M",
            "4",
            "-Y",
            str(tmp_path),
            "-P",
            str(tmp_path / "kamailio.pid"),
        ),
        **quiet,
    )
    uas = subprocess.Popen(
        in_ns(
            netns, "sipp", "-sn", "uas", "-i", SIPP_UAS, "-p", "5060", "-nostdin", "-timeout", "60s"
        ),
        **quiet,
    )
    try:
        time.sleep(2.0)
        register = _run(
            netns,
            tmp_path,
            "sipp",
            f"{REGISTRAR}:5060",
            "-sf",
            "uac_register.xml",
            "-s",
            "alice",
            "-i",
            "10.99.0.20",
            "-p",
            "5062",
            "-m",
            "3",
            "-r",
            "1",
            "-nostdin",
            "-timeout",
            "30s",
            timeout=45,
        )
        calls = _run(
            netns,
            tmp_path,
            "sipp",
            f"{SIPP_UAS}:5060",
            "-sn",
            "uac",
            "-s",
            "2001",
            "-i",
            "10.99.0.21",
            "-p",
            "5064",
            "-m",
            "6",
            "-r",
            "2",
            "-d",
            "2000",
            "-nostdin",
            "-timeout",
            "40s",
            timeout=60,
        )
        time.sleep(1.0)
    finally:
        for process in (uas, kamailio, dumpcap):
            stop_process(process)
    assert "Successful call" in register and "Successful call" in calls, (register, calls)
    pipeline = FlowPipeline()
    records = [r for batch in pipeline.run_calls(str(capture)) for r in batch]
    registrations = [r for r in records if r["kind"] == "registration"]
    answered = [r for r in records if r["kind"] == "call" and r["state"] == "answered"]
    assert len(registrations) == 3 and all(r["result"] == "registered" for r in registrations)
    assert len(answered) == 6
    assert [a for batch in FlowPipeline().run_alerts(str(capture)) for a in batch] == []
