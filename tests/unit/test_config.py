from __future__ import annotations

import pytest

from voipscope.config import Config
from voipscope.errors import ConfigError


def test_dotted_and_bare_keys():
    cfg = Config.from_overrides({"flows.idle_timeout_s": "30", "max_flows": 10})
    assert cfg.flows.idle_timeout_s == 30.0 and cfg.flows.max_flows == 10
    assert Config().flows.idle_timeout_s == 120.0  # defaults untouched (frozen)


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("flows.nope", 1, "unknown"),
        ("nope", 1, "unknown"),
        ("nosection.idle_timeout_s", 1, "unknown"),
        ("flows.max_flows", 1.5, "needs a int"),
        ("flows.idle_timeout_s", "soon", "needs a float"),
        ("flows.idle_timeout_s", -1, "must not be negative"),
    ],
)
def test_bad_keys_and_values(key, value, problem):
    with pytest.raises(ConfigError, match=problem):
        Config.from_overrides({key: value})


def test_bool_from_string():
    assert (
        Config.from_overrides({"reassemble_fragments": "off"}).decode.reassemble_fragments is False
    )
