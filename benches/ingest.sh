#!/usr/bin/env bash
# Batch-ingest wall time: `aegis ingest` of the shared corpus (real and generated, 177
# files) into a fresh tenant of one embedded cluster, per binary given, interleaved for
# ROUNDS rounds, with the lock waits PostgreSQL took over a second (sqlx's slow-statement
# warnings). Usage: benches/ingest.sh <aegis-binary>... (for example a build before a
# change and one after it).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 <aegis-binary>..." >&2; exit 2; }
ROUNDS=${ROUNDS:-2}
WORK=$(mktemp -d)
chmod 755 "$WORK" # the embedded cluster runs as its own system user
trap '"$1" --data-dir "$WORK/data" db stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/corpus"
cp -r ../shared/corpus/real ../shared/corpus/generated "$WORK/corpus/"
"$1" --data-dir "$WORK/data" db start >/dev/null
n=0
for round in $(seq 1 "$ROUNDS"); do
  for bin in "$@"; do
    n=$((n + 1))
    "$bin" --data-dir "$WORK/data" tenant create "t$n" --tier pro >/dev/null
    start=$(date +%s.%N)
    # It exits 1 when a file fails, as 10 of the real corpus must.
    "$bin" --data-dir "$WORK/data" ingest "t$n" "$WORK/corpus" >"$WORK/log" 2>&1 || true
    end=$(date +%s.%N)
    printf '%-40s round %d: %6.1f s  %s; lock waits over 1 s: %d\n' "$bin" "$round" \
      "$(echo "$end - $start" | bc)" "$(tail -1 "$WORK/log")" "$(grep -c 'pg_advisory' "$WORK/log" || true)"
  done
done
