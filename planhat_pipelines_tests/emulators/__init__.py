"""The warehouse harnesses: DuckDB files, and the BigQuery and Snowflake emulators from ``tools/emulators/``."""

from __future__ import annotations

import sys
from pathlib import Path

# tools/ (the emulator launchers) sits beside this package in the checkout and is never installed. pytest puts
# the checkout on sys.path itself; a process that imports these harnesses otherwise (a benchmark case, run as a
# script from benchmarks/) does not, so the checkout is added here, last, where it can shadow nothing.
_CHECKOUT = str(Path(__file__).resolve().parents[2])
if _CHECKOUT not in sys.path:
    sys.path.append(_CHECKOUT)
