#!/usr/bin/env bash
# Install the local BigQuery emulator (local-bigquery) into .emulators/bigquery, idempotently.
#
# local-bigquery needs Python >=3.13,<3.14, so it gets its own venv. It runs on DuckDB and loads the
# ducklake, icu and spatial extensions; DuckDB has no setting for its extension directory, so the
# extensions are installed from their wheels with HOME pointing inside the venv, and the test fixture
# starts the server with that same HOME. Nothing touches the real ~/.duckdb and nothing is downloaded
# by DuckDB itself (the extension wheels come from PyPI through pip).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.emulators/bigquery"
EMU_HOME="$VENV/home"
DUCKDB_VERSION="1.5.5"
PACKAGES=(
    "local-bigquery==0.3.2"
    "duckdb==$DUCKDB_VERSION"
    "duckdb-extension-ducklake==$DUCKDB_VERSION"
    "duckdb-extension-icu==$DUCKDB_VERSION"
    "duckdb-extension-spatial==$DUCKDB_VERSION"
)
EXTENSIONS=(ducklake icu spatial)
# The stamp records what was installed: changing a version above re-runs the setup.
STAMP="$VENV/.setup-done"
STAMP_TEXT="${PACKAGES[*]}"

installed() {
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_TEXT" && -x "$VENV/bin/local-bigquery" ]] || return 1
    local name
    for name in "${EXTENSIONS[@]}"; do
        compgen -G "$EMU_HOME/.duckdb/extensions/v$DUCKDB_VERSION/*/$name.duckdb_extension" >/dev/null || return 1
    done
}

if installed; then
    echo "BigQuery emulator already set up in $VENV"
    exit 0
fi

is_python313() {
    [[ -n "$1" && -x "$1" ]] && "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 13) else 1)' 2>/dev/null
}

find_python313() {
    local candidate roots=()
    # pyenv's shim answers python3.13 only when asked for that version, so use its install directly.
    if command -v pyenv >/dev/null 2>&1; then roots+=("$(pyenv root)"); fi
    roots+=("${PYENV_ROOT:-$HOME/.pyenv}")
    for root in "${roots[@]}"; do
        for candidate in "$root/versions/3.13.0/bin/python3.13" "$root"/versions/3.13.*/bin/python3.13; do
            if is_python313 "$candidate"; then echo "$candidate"; return 0; fi
        done
    done
    if command -v python3.13 >/dev/null 2>&1; then
        candidate="$(PYENV_VERSION=3.13.0 python3.13 -c 'import sys; print(sys.executable)' 2>/dev/null || true)"
        if is_python313 "$candidate"; then echo "$candidate"; return 0; fi
    fi
    for candidate in python3.13 python3; do
        candidate="$(command -v "$candidate" 2>/dev/null || true)"
        if is_python313 "$candidate"; then echo "$candidate"; return 0; fi
    done
    return 1
}

PY313="$(find_python313)" || {
    echo "error: local-bigquery needs Python 3.13 and none was found." >&2
    echo "Fix: install it (e.g. 'pyenv install 3.13.0' or your OS package python3.13) and re-run 'make emulators'." >&2
    exit 1
}

echo "Setting up the BigQuery emulator in $VENV with $PY313"
rm -f "$STAMP"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 13) else 1)'; then
    rm -rf "$VENV"
    "$PY313" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "${PACKAGES[@]}"

mkdir -p "$EMU_HOME"
HOME="$EMU_HOME" "$VENV/bin/python" - "${EXTENSIONS[@]}" <<'PY'
import importlib.util
import sys
from pathlib import Path

import duckdb

con = duckdb.connect()
version = "v" + duckdb.__version__
for name in sys.argv[1:]:
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or spec.origin is None:
        sys.exit(f"error: duckdb-extension-{name} is not installed in the emulator venv")
    path = Path(spec.origin).parent / "extensions" / version / f"{name}.duckdb_extension"
    if not path.exists():
        sys.exit(f"error: {path} is missing; the extension wheel must match duckdb {duckdb.__version__}")
    con.execute(f"FORCE INSTALL '{path}'")
    con.execute(f"LOAD {name}")
    print(f"installed DuckDB extension {name} from {path.name}")
PY

echo "$STAMP_TEXT" > "$STAMP"
echo "BigQuery emulator ready: $VENV/bin/local-bigquery"
