"""Make NUMBA_BOUNDSCHECK=1 real for the fuzz run.

numba's on-disk cache (the kernels use ``cache=True``) does not key on the bounds-check
setting: a kernel compiled and cached by an ordinary run is loaded as-is by a later
NUMBA_BOUNDSCHECK=1 run, which then checks nothing. So when bounds checks are asked for
and no cache directory was chosen, the kernels are compiled into a fresh one. This must
happen before voipscope is imported (the cache location is fixed when a kernel is
decorated); test_boundscheck_is_in_effect fails if it was too late.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

if os.environ.get("NUMBA_BOUNDSCHECK") == "1" and not os.environ.get("NUMBA_CACHE_DIR"):
    import numba

    _cache_dir = tempfile.mkdtemp(prefix="voipscope-numba-boundscheck-")
    atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)
    os.environ["NUMBA_CACHE_DIR"] = _cache_dir
    numba.config.reload_config()
    if "voipscope" in sys.modules:
        sys.stderr.write(
            "tests/fuzz/conftest.py: voipscope was imported before the numba cache moved; "
            "cached kernels may lack bounds checks (set NUMBA_CACHE_DIR yourself)\n"
        )
