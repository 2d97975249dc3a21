"""The warehouse harnesses: DuckDB files, and the BigQuery and Snowflake emulators from ``tools/emulators/``."""

from __future__ import annotations

import sys
from pathlib import Path

# tools/ (the emulator launchers) sits beside this package in the checkout and is never installed. pytest puts
# the checkout on sys.path itself; a process that imports these harnesses otherwise (a benchmark case, run as a
# script from benchmarks/) does not, so the checkout is added here: first, so that a `tools` module installed in
# the venv cannot stand in for it (the checkout's top folder holds no other modules than this project's packages).
_CHECKOUT = str(Path(__file__).resolve().parents[2])
if _CHECKOUT not in sys.path:
    sys.path.insert(0, _CHECKOUT)
