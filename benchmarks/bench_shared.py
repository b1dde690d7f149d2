"""Find the shared bench scripts (``benchlib.py``, ``deploylib.py``, ...) and put
them on ``sys.path``, so our scenario scripts reuse them instead of copying.

The directory is ``$BENCH_SHARED_DIR`` (``compare.py`` sets it from ``--shared``),
else ``../shared/bench`` from the repository root.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DEFAULT = Path(__file__).resolve().parent.parent.parent / "shared" / "bench"


def use_shared() -> Path:
    """Return the shared bench directory after adding it to ``sys.path``."""
    d = Path(os.environ.get("BENCH_SHARED_DIR") or DEFAULT).resolve()
    if not (d / "benchlib.py").exists():
        sys.exit(f"no benchlib.py in {d}; set BENCH_SHARED_DIR")
    if str(d) not in sys.path:
        sys.path.insert(0, str(d))
    return d
