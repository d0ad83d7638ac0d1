"""Dissectors: facts about protocols on the wire, one module per protocol (DESIGN §1).

A dissector never judges a flow; it reports what the bytes say. The arbiter in
``voipscope.classify`` turns facts into a verdict.
"""
