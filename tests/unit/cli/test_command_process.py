"""The command's own process: it never imports pandas (pyarrow would, wherever pandas is
installed, the first time it converts Python objects: ~50 MB of RSS and a few tenths of
a second per run; a stand-in `pandas` on the path says whether anyone imported it, so the
test means the same with or without the real one), and it tunes the garbage collector."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FAKE_PANDAS = """
import sys
sys.stderr.write("STAND-IN PANDAS IMPORTED\\n")
raise ImportError("stand-in pandas")
"""


@pytest.fixture
def stand_in_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose first path entry holds the stand-in `pandas`."""
    (tmp_path / "pandas").mkdir()
    (tmp_path / "pandas" / "__init__.py").write_text(FAKE_PANDAS)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}


@pytest.mark.parametrize("command", [["flows"], ["calls"], ["alerts"], ["analyze", "-o", "{out}"]])
def test_commands_do_not_import_pandas(
    tmp_path: Path, stand_in_env: dict[str, str], command: list[str]
) -> None:
    out = tmp_path / "out"
    args = [a.replace("{out}", str(out)) for a in command]
    if args[0] != "analyze":
        args += ["-o", str(out) + ".jsonl"]
    run = subprocess.run(
        [sys.executable, "-m", "voipscope", *args, "--sample"],
        env=stand_in_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "STAND-IN PANDAS IMPORTED" not in run.stderr


def test_the_stand_in_is_seen_when_pyarrow_converts_python_objects(
    stand_in_env: dict[str, str],
) -> None:
    """The stand-in works: plain pyarrow use in a fresh process imports it."""
    code = "import pyarrow as pa; pa.array(['x'])"
    run = subprocess.run([sys.executable, "-c", code], env=stand_in_env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "STAND-IN PANDAS IMPORTED" in run.stderr


def test_the_command_collects_young_garbage_less_often() -> None:
    """The command's process raises the young-generation threshold (15-20 % of a run's
    time at CPython's default, docs/benchmarks.md) and leaves the older ones."""
    import gc

    from voipscope.cli import main as cli_main

    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        cli_main._collect_garbage_less_often()
        assert gc.get_threshold() == (cli_main.GC_YOUNG_THRESHOLD, 10, 10)
    finally:
        gc.set_threshold(*saved)
