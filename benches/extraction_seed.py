"""The seed's extraction stack, timed like bench-extraction: in-process, warm, on the same
files, with the same token measure. Prints the same columns."""

import collections, io, pathlib, re, sys, time, warnings

import docx, openpyxl, pptx
from PyPDF2 import PdfReader

warnings.filterwarnings("ignore")

def pdf(data):
    return "\n".join((p.extract_text() or "") for p in PdfReader(io.BytesIO(data)).pages)

def word(data):
    return "\n".join(p.text for p in docx.Document(io.BytesIO(data)).paragraphs)

def sheet(data):
    wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    out = []
    for ws in wb.worksheets:
        for row in ws.iter_rows(values_only=True):
            out.append("\t".join("" if c is None else str(c) for c in row))
    wb.close()
    return "\n".join(out)

def slides(data):
    out = []
    for slide in pptx.Presentation(io.BytesIO(data)).slides:
        for shape in slide.shapes:
            if shape.has_text_frame:
                out.append(shape.text_frame.text)
    return "\n".join(out)

def tokens(text):
    return collections.Counter(t.lower() for t in re.split(r"[\W_]+", text) if t)

def fidelity(truth, got):
    t, g = tokens(truth), tokens(got)
    common = sum(min(n, g.get(k, 0)) for k, n in t.items())
    return common / max(1, sum(t.values())), common / max(1, sum(g.values()))

corpus = pathlib.Path(sys.argv[1])
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
print("format files MB seconds_per_pass MB_per_s recall precision")
for name, fn in [("pdf", pdf), ("docx", word), ("xlsx", sheet), ("pptx", slides)]:
    files = sorted(p for p in (corpus / name).iterdir() if p.suffix == "." + name)
    data = [(p.read_bytes(), p.with_suffix(".txt").read_text()) for p in files]
    size = sum(len(b) for b, _ in data)
    scores = [fidelity(t, fn(b)) for b, t in data]
    started = time.perf_counter()
    for _ in range(reps):
        for b, _ in data:
            fn(b)
    per_pass = (time.perf_counter() - started) / reps
    n = len(data)
    print(f"{name} {n} {size / 1e6:.2f} {per_pass:.4f} {size / 1e6 / per_pass:.1f} "
          f"{sum(s[0] for s in scores) / n:.3f} {sum(s[1] for s in scores) / n:.3f}")
