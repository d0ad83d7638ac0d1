"""Inline verdict hooks: a Python function decides, per flow, call or alert as it
happens, to allow, drop or shape it; the same function offline (what it would have
stopped in a capture) and live (applied with nftables). docs/inline.md."""

from voipscope.inline.decisions import Action, Decision, Event, Target, allow, drop, shape

__all__ = ["Action", "Decision", "Event", "Target", "allow", "drop", "shape"]
