#!/usr/bin/env python3
"""Mutation fuzzing of extraction on the production path (`aegis extract`, which extracts
in a child process under the configured limits).

Each case takes a random file of ../shared/corpus (real and generated), or of --files,
damages it — truncation, random bytes, a deleted or repeated span, or, for
DOCX/XLSX/PPTX and OpenDocument files, one XML part of the package damaged or dropped and the package
rewritten — and extracts it. A case
fails when extraction crashes (a panic or a signal), hangs past the child's time limit, or
takes longer than --slow seconds; a clear error is a pass. Failing cases are kept under
--keep for replay; the script exits 1 if there is one.

    python3 benches/fuzz-extract.py --aegis target/release/aegis --seed 1 --cases 500
"""
import argparse, collections, io, os, random, subprocess, sys, time, zipfile

ROOT = os.path.dirname(os.path.abspath(__file__))
FORMATS = ("pdf", "docx", "doc", "odt", "rtf", "xlsx", "pptx", "ppt", "odp", "xls", "ods", "html", "mhtml", "mht", "eml", "msg", "zip", "csv", "md", "txt")


def corpus(root):
    files = []
    for sub in ("real", "generated"):
        for d, _, names in os.walk(os.path.join(root, sub)):
            files += [os.path.join(d, n) for n in names if n.rsplit(".", 1)[-1].lower() in FORMATS]
    return sorted(files)


def damage_bytes(rng, b):
    b = bytearray(b)
    kind = rng.choice(["truncate", "bytes", "delete", "repeat"])
    if not b:
        return bytes(b), kind
    i = rng.randrange(len(b))
    if kind == "truncate":
        del b[i:]
    elif kind == "bytes":
        for _ in range(rng.randint(1, 30)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == "delete":
        del b[i:i + rng.randint(1, 4096)]
    else:
        b[i:i] = b[i:i + rng.randint(1, 4096)] * rng.randint(1, 8)
    return bytes(b), kind


def damage_package(rng, b):
    """One XML part damaged (or dropped); the package rewritten with valid zip framing."""
    try:
        z = zipfile.ZipFile(io.BytesIO(b))
        if sum(i.file_size for i in z.infolist()) > 50_000_000:
            return damage_bytes(rng, b)
        parts = {n: z.read(n) for n in z.namelist()}
    except Exception:  # the corpus holds broken packages too: damage their bytes instead
        return damage_bytes(rng, b)
    xml = [n for n in parts if n.endswith((".xml", ".rels"))]
    if not xml:
        return damage_bytes(rng, b)
    victim = rng.choice(xml)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as w:
        for name, data in parts.items():
            if name == victim:
                if rng.random() < 0.2:
                    continue
                data, _ = damage_bytes(rng, data)
            w.writestr(name, data)
    return out.getvalue(), "part " + victim


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--aegis", default=os.path.expanduser("~/.cache/aegis-target/release/aegis"))
    ap.add_argument("--corpus", default=os.path.join(ROOT, "..", "..", "shared", "corpus"))
    ap.add_argument("--files", nargs="+", help="damage these files instead of the corpus's (e.g. tests/fixtures/*.xls)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cases", type=int, default=500)
    ap.add_argument("--slow", type=float, default=10.0, help="seconds past which a case fails")
    ap.add_argument("--keep", default="/tmp/aegis-fuzz", help="where failing cases are kept")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    files = args.files or corpus(args.corpus)
    os.makedirs(args.keep, exist_ok=True)
    outcomes, errors, failures = collections.Counter(), collections.Counter(), []
    for case in range(args.cases):
        source = rng.choice(files)
        ext = source.rsplit(".", 1)[-1].lower()
        data = open(source, "rb").read()
        if ext in ("docx", "xlsx", "pptx", "ods", "odt", "odp") and rng.random() < 0.7:
            damaged, how = damage_package(rng, data)
        else:
            damaged, how = damage_bytes(rng, data)
        path = os.path.join(args.keep, f"seed{args.seed}-case{case}.{ext}")
        with open(path, "wb") as f:
            f.write(damaged)
        started = time.monotonic()
        try:
            p = subprocess.run([args.aegis, "extract", "--json", path], capture_output=True, timeout=300)
            code, stderr = p.returncode, p.stderr.decode(errors="replace").strip()
        except subprocess.TimeoutExpired:
            code, stderr = None, "no answer within 300 s"
        took = time.monotonic() - started
        low = stderr.lower()
        if code is None or "time limit" in low:
            outcome = "hang"
        elif code < 0 or "crash" in low or "panick" in low:
            outcome = "crash"
        elif took > args.slow:
            outcome = "slow"
        else:
            outcome = "extracted" if code == 0 else "clear error"
        outcomes[outcome] += 1
        if outcome in ("extracted", "clear error"):
            if code != 0:
                errors[(stderr.splitlines() or ["(no message)"])[-1][:100]] += 1
            os.remove(path)
        else:
            failures.append((path, os.path.relpath(source, args.corpus), how, outcome, round(took, 1), stderr[-300:]))
    print(f"{args.cases} cases (seed {args.seed}): " + ", ".join(f"{n} {k}" for k, n in outcomes.most_common()))
    print("most common errors:")
    for message, n in errors.most_common(12):
        print(f"  {n:5}  {message}")
    for f in failures:
        print("FAILED", *f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
