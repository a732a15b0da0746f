#!/usr/bin/env bash
# Extraction throughput, AEGIS against the seed's Python stack (PyPDF2 3.0.1, python-docx,
# openpyxl read-only, python-pptx), in-process and warm, on the same files; prints both
# tables and the speed ratio and fidelity per format. Installs the Python packages itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
CORPUS=${1:-$PWD/../shared/corpus/generated}
REPS=${REPS:-5}
VENV=${AEGIS_BENCH_VENV:-$HOME/.cache/aegis-bench-venv}
if ! "$VENV/bin/python" -c "import PyPDF2, docx, openpyxl, pptx" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "PyPDF2==3.0.1" python-docx openpyxl python-pptx
fi
cargo build --release -q -p aegis-benches --bin bench-extraction
echo "## AEGIS"
"$CARGO_TARGET_DIR/release/bench-extraction" --corpus "$CORPUS" --reps "$REPS" --real "$PWD/../shared/corpus/real/pdf" |
  tee /tmp/aegis-extract-all.txt
sed -n '1,/^real_pdf/p' /tmp/aegis-extract-all.txt | grep -v '^real_pdf' > /tmp/aegis-extract.txt
echo "## seed Python stack"
"$VENV/bin/python" benches/extraction_seed.py "$CORPUS" "$REPS" | tee /tmp/seed-extract.txt
echo "## ratio (AEGIS MB/s ÷ Python MB/s) and recall, AEGIS vs Python"
# The PDFium rows are set against the same Python PDF figures as the lopdf row.
seed_rows() {
  tail -n +2 /tmp/seed-extract.txt
  for label in pdf-auto pdf-pdfium; do
    tail -n +2 /tmp/seed-extract.txt | awk -v label="$label" '$1 == "pdf" { $1 = label; print }'
  done
}
join <(tail -n +2 /tmp/aegis-extract.txt | sort) <(seed_rows | sort) |
  awk '{ printf "%-5s %6.1f×   recall %s vs %s   precision %s vs %s\n", $1, $10 / $4, $6, $12, $7, $13 }'
