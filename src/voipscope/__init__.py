"""voipscope: find, classify and analyse Voice-over-IP traffic.

The public names are imported lazily (PEP 562) so that ``voipscope --version`` and
``import voipscope.errors`` do not pay for numba and pyarrow.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from voipscope import kernel_cache as _kernel_cache
from voipscope._version import __version__

# Before any kernel is decorated: numba's cache keyed by the kernels' sources.
_kernel_cache.configure()

_LAZY = {
    "iter_actions": "voipscope.inline.runner",
    "iter_live_actions": "voipscope.inline.runner",
    "iter_calls": "voipscope.api",
    "iter_flows": "voipscope.api",
    "iter_flow_records": "voipscope.api",
    "read_calls": "voipscope.api",
    "read_flows": "voipscope.api",
    "read_flow_records": "voipscope.api",
    "Config": "voipscope.config",
    "ConfigError": "voipscope.errors",
    "DecodeError": "voipscope.errors",
    "Malformed": "voipscope.errors",
    "SourceError": "voipscope.errors",
    "Truncated": "voipscope.errors",
    "Unsupported": "voipscope.errors",
    "VoipscopeError": "voipscope.errors",
}

if TYPE_CHECKING:
    from voipscope.api import (
        iter_calls,
        iter_flow_records,
        iter_flows,
        read_calls,
        read_flow_records,
        read_flows,
    )
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
    from voipscope.inline.runner import iter_actions, iter_live_actions


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'voipscope' has no attribute {name!r}")
    return getattr(import_module(module), name)


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
    "iter_actions",
    "iter_calls",
    "iter_flow_records",
    "iter_flows",
    "iter_live_actions",
    "read_calls",
    "read_flow_records",
    "read_flows",
]
