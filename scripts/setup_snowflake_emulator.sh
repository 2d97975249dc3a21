#!/usr/bin/env bash
# Install the local Snowflake emulator (fakesnow's server) into .emulators/snowflake, idempotently.
#
# fakesnow 0.12.1 pins duckdb~=2.0.0, while the project pins duckdb 1.5.5 (the newest DuckDB with extension
# wheels for the DuckLake store, see pyproject.toml). So fakesnow gets its own venv, as local-bigquery does;
# tools/emulators/snowflake_launcher.py starts `python -m tools.emulators fakesnow` with this venv's python.
# fakesnow 0.12.1 imports a module snowflake-connector-python 5 dropped: the connector stays <5 here.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.emulators/snowflake"
PYTHON="${PYTHON:-python3.11}"
PACKAGES=("fakesnow[server]==0.12.1" "snowflake-connector-python>=3.12,<5")
STAMP="$VENV/.setup-done"
STAMP_TEXT="${PACKAGES[*]}"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_TEXT" && -x "$VENV/bin/python" ]] \
    && "$VENV/bin/python" -c 'import fakesnow, uvicorn' 2>/dev/null; then
    echo "Snowflake emulator already set up in $VENV"
    exit 0
fi

command -v "$PYTHON" >/dev/null 2>&1 || {
    echo "error: $PYTHON not found (fakesnow's venv needs Python 3.11 or newer)." >&2
    echo "Fix: install it, or run with PYTHON=python3.12 (any Python >=3.11)." >&2
    exit 1
}
echo "Setting up the Snowflake emulator (fakesnow) in $VENV with $PYTHON"
rm -f "$STAMP"
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "${PACKAGES[@]}"
echo "$STAMP_TEXT" > "$STAMP"
echo "Snowflake emulator ready: $VENV/bin/python -m tools.emulators fakesnow"
