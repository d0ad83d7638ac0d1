"""Where numba keeps the compiled kernels: a directory keyed by the kernels' own sources.

numba's on-disk cache (``@njit(cache=True)``) checks only the stamp of the file that
defines the function it compiled. A kernel that calls kernels of other modules (the RTP
kernel calls the talk-spurt, tone, timing and G.722 ones) goes on running the callees'
old machine code after their files changed: a checkout updated by ``git pull`` or edited
in place ran yesterday's code, and its tests passed on it. Keyed by a digest of every
kernel module's source (and of the bounds-check setting, which numba's cache ignores
too), any change compiles afresh. An install by ``pip install .`` rewrote every file
anyway; this makes editable installs and source checkouts as safe.

The directory is ``$XDG_CACHE_HOME/voipscope/numba-<digest>`` (``~/.cache`` without
it); a cache directory the user chose (``NUMBA_CACHE_DIR``) is left alone, and where the
directory cannot be made numba keeps its default (``__pycache__`` beside the sources).
Directories of other digests unused for ``STALE_DAYS`` are removed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
STALE_DAYS = 14
PREFIX = "numba-"
# Modules without kernels whose constants kernels import (numba freezes them into the
# machine code it caches), relative to the package.
KERNEL_CONSTANT_MODULES = frozenset({"dissect/stun_wire.py"})


def source_digest(root: Path = PACKAGE) -> str:
    """Digest of every module under ``root`` that defines numba kernels or holds
    constants they read (``KERNEL_CONSTANT_MODULES``)."""
    digest = hashlib.sha256()
    digest.update(os.environ.get("NUMBA_BOUNDSCHECK", "").encode())
    for path in sorted(root.rglob("*.py")):
        source = path.read_bytes()
        if b"njit" in source or path.relative_to(root).as_posix() in KERNEL_CONSTANT_MODULES:
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + source)
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voipscope"


def configure(package: Path = PACKAGE) -> Path | None:
    """Point numba's cache at the directory of ``package``'s current sources; returns it
    (None: the user's own choice, or numba's default where no directory could be made)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    try:
        root = cache_root()
        target = root / (PREFIX + source_digest(package))
        target.mkdir(parents=True, exist_ok=True)
        os.utime(target)  # in use: see _prune
        if not os.access(target, os.W_OK):
            return None
    except OSError:
        return None
    os.environ["NUMBA_CACHE_DIR"] = str(target)
    numba = sys.modules.get("numba")
    if numba is not None:  # imported before voipscope: make it read the setting again
        numba.config.reload_config()
    _prune(root, target)
    return target


def _prune(root: Path, keep: Path) -> None:
    cutoff = time.time() - STALE_DAYS * 86_400
    try:
        for entry in root.iterdir():
            if entry.name.startswith(PREFIX) and entry != keep and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
    except OSError:
        pass
