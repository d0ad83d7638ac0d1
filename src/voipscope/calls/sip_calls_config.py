"""The calls.sip.* settings of the SIP call tracker, with the RFC 3261 timers behind them.

Apart from the tracker (``voipscope.calls.sip_dialogs``, which re-exports the class) so
that the modules it hands messages to can read their caps without importing it.
"""

from __future__ import annotations

from dataclasses import dataclass

# RFC 3261 §17.1.1.1: T1 = 500 ms; Timer B/F/H = 64*T1 = 32 s bound how long a transaction
# (and its retransmissions) can still be heard after it was last active.
TIMER_64T1_S = 32.0
# §13.3.1.1: a UAS sends a provisional response at least every minute while it rings, so a
# pending INVITE silent for three minutes is over (Timer C, §16.6, is > 3 min for proxies).
PENDING_IDLE_S = 180.0


@dataclass(frozen=True, slots=True)
class SipCallsConfig:
    """The calls.sip.* settings (seconds are capture time)."""

    max_open_dialogs: int = 100_000  # DESIGN §4: every attacker-controlled count is capped
    finished_linger_s: float = TIMER_64T1_S  # a finished exchange waits for late copies
    pending_idle_s: float = PENDING_IDLE_S
    # A 401/407 is often answered by a human typing a password or a phone on a timer:
    # sip.pcap's softphone retries 17-51 s after the challenge.
    auth_retry_gap_s: float = 120.0
    # An answered call without BYE stays open this long after its last message (session
    # refreshes, RFC 4028, come every few minutes; many phones send none at all).
    answered_idle_s: float = 7200.0
    redirect_follow_s: float = TIMER_64T1_S  # a 3xx Contact called within this is one story
    b2bua_window_s: float = 2.0  # legs of one call through a B2BUA start this close together
    out_of_dialog_records: bool = True  # OPTIONS/MESSAGE/SUBSCRIBE... as records of their own
    max_messages_remembered: int = 512  # per Call-ID, for recognising retransmissions
    max_sdp_per_call: int = 64
    max_dtmf_per_call: int = 512
