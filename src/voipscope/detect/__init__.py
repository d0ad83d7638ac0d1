"""Detectors: opinions about records (messages, calls, flows), one module per detector.
They never read packets (DESIGN §1), so they work the same on captures, live traffic
and flow records."""
