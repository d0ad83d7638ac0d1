"""numba's on-disk cache keyed by the kernels' sources (voipscope.kernel_cache).

The hazard it removes, shown on a package of two modules: a cached kernel calling a
kernel of another module keeps the callee's old code after the callee's file changed,
because numba checks only the caller's own file (numba 0.68 with its default cache
prints 10 at the second step below). Each step runs in a fresh interpreter, as a user's
next command would."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from voipscope import kernel_cache

CALLER = """
from numba import njit
from kpkg import callee

@njit(cache=True)
def answer():
    return callee.value() * 10
"""
CALLEE = """
from numba import njit

@njit(cache=True)
def value():
    return {value}
"""
RUN = """
import sys
sys.path.insert(0, {root!r})
from pathlib import Path
# The module alone: importing voipscope would key the cache by voipscope's sources.
import importlib.util
spec = importlib.util.spec_from_file_location("kernel_cache", {module!r})
kernel_cache = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kernel_cache)
kernel_cache.configure(Path({root!r}) / "kpkg")
from kpkg import caller
print(caller.answer())
"""


def _package(root: Path, value: int) -> None:
    pkg = root / "kpkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "caller.py").write_text(CALLER)
    (pkg / "callee.py").write_text(textwrap.dedent(CALLEE.format(value=value)))


def _answer(root: Path, env: dict[str, str]) -> int:
    done = subprocess.run(
        [sys.executable, "-c",
         RUN.format(root=str(root), module=kernel_cache.__file__)],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )  # fmt: skip
    return int(done.stdout.split()[-1])


def test_a_changed_callee_is_compiled_again(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    _package(tmp_path, 1)
    assert _answer(tmp_path, env) == 10
    _package(tmp_path, 2)  # the callee's file changes; the caller's does not
    assert _answer(tmp_path, env) == 20


def test_the_digest_follows_kernel_sources_and_bounds_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NUMBA_BOUNDSCHECK", raising=False)
    _package(tmp_path, 1)
    pkg = tmp_path / "kpkg"
    (pkg / "plain.py").write_text("X = 1\n")
    first = kernel_cache.source_digest(pkg)
    (pkg / "plain.py").write_text("X = 2\n")  # no kernel in it: same cache
    assert kernel_cache.source_digest(pkg) == first
    (pkg / "callee.py").write_text(CALLEE.format(value=3))
    second = kernel_cache.source_digest(pkg)
    assert second != first
    monkeypatch.setenv("NUMBA_BOUNDSCHECK", "1")  # numba's cache ignores it; ours does not
    assert kernel_cache.source_digest(pkg) != second


def test_the_digest_follows_the_constants_kernels_read(tmp_path: Path) -> None:
    """numba freezes module constants into the machine code it caches: the STUN/TURN
    wire constants the RTP kernel unwraps relayed media with key the cache too."""
    shared = "dissect/stun_wire.py"
    assert shared in kernel_cache.KERNEL_CONSTANT_MODULES
    real = kernel_cache.PACKAGE / shared
    assert b"njit" not in real.read_bytes()  # listed because it has no kernel of its own
    pkg = tmp_path / "pkg"
    (pkg / "dissect").mkdir(parents=True)
    (pkg / shared).write_text("STUN_MAGIC_COOKIE = 0x2112A442\n")
    first = kernel_cache.source_digest(pkg)
    (pkg / shared).write_text("STUN_MAGIC_COOKIE = 0\n")
    assert kernel_cache.source_digest(pkg) != first


def test_the_users_choice_stands_and_old_directories_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _package(tmp_path, 1)
    pkg = tmp_path / "kpkg"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    assert kernel_cache.configure(pkg) is None
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "mine")

    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "cache" / "voipscope"
    old, recent = root / "numba-0000000000000000", root / "numba-1111111111111111"
    for d in (old, recent):
        d.mkdir(parents=True)
    stale = time.time() - (kernel_cache.STALE_DAYS + 1) * 86_400
    os.utime(old, (stale, stale))
    target = kernel_cache.configure(pkg)
    assert target is not None and target.parent == root and target.is_dir()
    assert os.environ["NUMBA_CACHE_DIR"] == str(target)
    assert not old.exists() and recent.exists()


def test_no_writable_home_leaves_numbas_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # a file, not a directory
    assert kernel_cache.configure(tmp_path) is None
    assert "NUMBA_CACHE_DIR" not in os.environ
