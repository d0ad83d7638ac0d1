"""User-Agent strings of SIP attack tools: supporting evidence only.

A User-Agent is whatever the sender typed, so a tool's name in it proves nothing and its
absence proves less (SIPVicious has ``--user-agent``; the scanners in the wild rotate
names). Detectors raise alerts from behaviour (rates, cardinalities, answers); a match
here only adds an evidence line and one step of severity to an alert already raised.
Suricata's ET rules 2008578/2011716 key on the first two names below alone; here
they are never the only reason for an alert.
"""

from __future__ import annotations

from collections.abc import Iterable

from voipscope.detect.alerts import Alert
from voipscope.detect.base import raise_severity

# Lower-case substring -> the tool it names. Sources: the SIPVicious source (default
# User-Agent "friendly-scanner"), Emerging Threats SIDs 2008578/2011716, and the agent
# names public SIP honeypot write-ups list for scanning and brute-force campaigns.
# sipsak is also an admin's test tool: one more reason a match is evidence, not verdict.
SCANNER_AGENTS: dict[str, str] = {
    "friendly-scanner": "SIPVicious (svmap/svwar/svcrack default)",
    "sipvicious": "SIPVicious",
    "sipcli": "sipcli",
    "sundayddr": "SundaySDDR scanner",
    "vaxsipuseragent": "VaxSIP SDK (seen in brute-force campaigns)",
    "sip-scan": "sip-scan",
    "iwar": "iWar war-dialler",
    "sipsak": "sipsak",
    "smap": "smap SIP scanner",
    "pplsip": "pplsip (seen in brute-force campaigns)",
}


def scanner_tool(user_agent: str | None) -> str | None:
    """The tool a User-Agent names, or None."""
    if not user_agent:
        return None
    agent = user_agent.lower()
    for needle, tool in SCANNER_AGENTS.items():
        if needle in agent:
            return tool
    return None


def first_scanner_tool(user_agents: Iterable[str]) -> str | None:
    """The tool the first User-Agent naming one names, or None."""
    return next((t for a in user_agents if (t := scanner_tool(a))), None)


def name_scanner(alert: Alert, tool: str | None) -> None:
    """What a tool's name adds to a new alert (this module's rule): one step of severity
    and a line of evidence, nothing without a tool."""
    if tool:
        alert.severity = raise_severity(alert.severity)
        alert.add_evidence(f"User-Agent names a scanner: {tool}")
