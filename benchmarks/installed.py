"""Imported first by every benchmark script: exits 2 with one line when the package under test
is not installed for this interpreter (instead of a traceback from a later import)."""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import orchestrator  # noqa: F401  (the package under test, in this interpreter)
except ImportError:
    script = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "run.py"
    print(
        "error: codex-orchestrator is not installed for this Python; run the benchmarks with "
        f"the interpreter it is installed in, e.g. .venv/bin/python benchmarks/{script}",
        file=sys.stderr,
    )
    raise SystemExit(2) from None
