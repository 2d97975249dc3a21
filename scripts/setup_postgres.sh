#!/usr/bin/env bash
# Install PostgreSQL 15 (Debian's postgresql-15) for the tests of the store's PostgreSQL catalog, idempotently.
#
# The tests start their own server (planhat_pipelines_tests/emulators/postgres.py): initdb in a temporary
# folder, trust authentication on 127.0.0.1, run as the postgres user. They need the server binaries only,
# which postgresql-15 puts in /usr/lib/postgresql/15/bin (off PATH).
set -euo pipefail

PACKAGE=postgresql-15
BIN_DIR=/usr/lib/postgresql/15/bin

if [[ -x "$BIN_DIR/initdb" && -x "$BIN_DIR/pg_ctl" && -x "$BIN_DIR/pg_isready" && -x "$BIN_DIR/createdb" ]] \
    && id -u postgres >/dev/null 2>&1; then
    echo "PostgreSQL 15 already installed ($BIN_DIR)"
    exit 0
fi

command -v apt-get >/dev/null 2>&1 || {
    echo "error: PostgreSQL 15 is not installed and apt-get is not available." >&2
    echo "Fix: install PostgreSQL 15 (server binaries in $BIN_DIR) with this system's package manager." >&2
    exit 1
}
SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || {
        echo "error: installing $PACKAGE needs root. Fix: run as root: apt-get install -y $PACKAGE" >&2
        exit 1
    }
    SUDO=(sudo)
fi
echo "Installing $PACKAGE with apt-get"
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$PACKAGE"
[[ -x "$BIN_DIR/initdb" ]] || {
    echo "error: $PACKAGE installed, but $BIN_DIR/initdb is missing. Fix: dpkg -L $PACKAGE | grep bin/initdb" >&2
    exit 1
}
echo "PostgreSQL 15 ready: $BIN_DIR"
