"""The one error hierarchy of voipscope.

Everything voipscope raises on purpose derives from :class:`VoipscopeError`, so a caller
can tell our verdicts ("this file is not a capture") from bugs (an ``IndexError``
escaping a parser is a bug, and the fuzz tests look for exactly that).
"""

from __future__ import annotations


class VoipscopeError(Exception):
    """Root of every error voipscope raises on purpose."""


class DecodeError(VoipscopeError):
    """A packet or message could not be decoded; the pipeline turns it into an anomaly."""


class Truncated(DecodeError):
    """The bytes end before the structure does."""


class Malformed(DecodeError):
    """The bytes contradict the protocol (bad length, bad version, ...)."""


class Unsupported(DecodeError):
    """Well-formed, but a variant voipscope does not decode (yet)."""


class SourceError(VoipscopeError):
    """An input cannot be read at all: missing, empty, not a capture, unknown link type.

    ``path`` names the input so the CLI can print one line that says which file.
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class ConfigError(VoipscopeError):
    """A configuration key or value is wrong."""
