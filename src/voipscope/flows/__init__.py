"""Flows: the bidirectional flow table on capture time, and its lifecycle hooks."""

from voipscope.flows.hooks import FlowHooks, NoHooks
from voipscope.flows.table import FlowAssignment, FlowTable, new_assignment

__all__ = ["FlowAssignment", "FlowHooks", "FlowTable", "NoHooks", "new_assignment"]
