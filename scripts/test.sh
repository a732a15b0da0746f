#!/usr/bin/env bash
# Runs every AEGIS test: builds the workspace, starts one throwaway PostgreSQL 16 + pgvector
# cluster with the embedded manager, runs the cargo tests and pytest against it (each test
# makes its own database), and stops it. Installs what it needs by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}

# Python tools for the pytest suite, in a venv of their own.
VENV=${AEGIS_TEST_VENV:-$HOME/.cache/aegis-test-venv}
if [ ! -x "$VENV/bin/pytest" ] || ! "$VENV/bin/python" -c "import psycopg, openai" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check pytest "psycopg[binary]" openai
fi

cargo build --workspace --all-targets
BIN=$CARGO_TARGET_DIR/debug/aegis

DATA=$(mktemp -d "${TMPDIR:-/tmp}/aegis-test.XXXXXX")
chmod 755 "$DATA" # the PostgreSQL system user must reach it when we run as root
cleanup() {
  "$BIN" --data-dir "$DATA" db stop >/dev/null 2>&1 || true
  rm -rf "$DATA"
}
trap cleanup EXIT
unset AEGIS_DATABASE_URL AEGIS_DATABASE__URL
"$BIN" --data-dir "$DATA" db start
AEGIS_TEST_DATABASE_URL=$("$BIN" --data-dir "$DATA" db url)
export AEGIS_TEST_DATABASE_URL

cargo test --workspace -- --test-threads "${AEGIS_TEST_THREADS:-6}"

PY=$DATA/python
mkdir -p "$PY"
cp -r aegis-py/python/aegis "$PY/"
cp "$CARGO_TARGET_DIR/debug/libaegis_py.so" "$PY/aegis/_aegis.abi3.so"
AEGIS_BIN=$BIN PYTHONPATH=$PY "$VENV/bin/pytest" -q -p no:cacheprovider aegis-py/tests
