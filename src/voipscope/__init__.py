"""voipscope: find, classify and analyse Voice-over-IP traffic."""

from voipscope._version import __version__
from voipscope.api import iter_flows, read_flows
from voipscope.config import Config
from voipscope.errors import (
    ConfigError,
    DecodeError,
    Malformed,
    SourceError,
    Truncated,
    Unsupported,
    VoipscopeError,
)

__all__ = [
    "Config",
    "ConfigError",
    "DecodeError",
    "Malformed",
    "SourceError",
    "Truncated",
    "Unsupported",
    "VoipscopeError",
    "__version__",
    "iter_flows",
    "read_flows",
]
