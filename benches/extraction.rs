//! Extraction throughput and fidelity per format on the generated corpus, in-process and
//! warm (each file read once untimed, then extracted `--reps` times). Prints one line per
//! format: files, MB, seconds per pass, MB/s, and token recall/precision against the
//! ground truth. PDFs are timed three times: with lopdf alone (`pdf`), as configured by
//! default (`pdf-auto`: lopdf, PDFium for the documents lopdf reads poorly) and with PDFium
//! alone (`pdf-pdfium`; PDFium is installed into the cache directory if need be). With
//! `--real <dir>` it also prints how much of PDFium's text lopdf alone and the default find
//! on the real PDFs there (token recall and precision, files where PDFium reads text).
//! `benches/extraction.sh` runs it beside the seed's Python stack.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use aegis_core::{
    config::default_cache_dir,
    knowledge::extract::{Format, Limits, PdfBackend, PdfConfig, PdfReader, extract_with, token_fidelity as fidelity},
};

/// The allocator the extraction child (`aegis`) runs with, so that the figures are the
/// production path's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/generated");
    let mut reps = 5u32;
    let mut real = None;
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--corpus" => corpus = args.next().unwrap_or_default().into(),
            "--reps" => reps = args.next().unwrap_or_default().parse()?,
            "--real" => real = Some(PathBuf::from(args.next().unwrap_or_default())),
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    let resolve = |backend| {
        PdfConfig { backend, ..PdfConfig::default() }.resolve(&default_cache_dir()).map_err(anyhow::Error::msg)
    };
    let (pdfium, auto) = (resolve(PdfBackend::Pdfium)?, resolve(PdfBackend::Auto)?);
    let lopdf = PdfReader::Lopdf;
    let limits = Limits::default();
    println!("format files MB seconds_per_pass MB_per_s recall precision");
    for (label, dir, format, reader) in [
        ("pdf", "pdf", Format::Pdf, &lopdf),
        ("pdf-auto", "pdf", Format::Pdf, &auto),
        ("pdf-pdfium", "pdf", Format::Pdf, &pdfium),
        ("docx", "docx", Format::Docx, &lopdf),
        ("xlsx", "xlsx", Format::Xlsx, &lopdf),
        ("pptx", "pptx", Format::Pptx, &lopdf),
    ] {
        let data: Vec<(Vec<u8>, String)> = files(&corpus.join(dir), dir)?
            .iter()
            .map(|f| Ok((std::fs::read(f)?, std::fs::read_to_string(f.with_extension("txt"))?)))
            .collect::<anyhow::Result<_>>()?;
        let bytes: usize = data.iter().map(|(b, _)| b.len()).sum();
        let (mut recall, mut precision) = (0.0, 0.0);
        for (bytes, truth) in &data {
            let text = extract_with(format, bytes, &limits, reader).map(|e| e.text()).unwrap_or_default();
            let (r, p) = fidelity(truth, &text);
            recall += r;
            precision += p;
        }
        let started = Instant::now();
        for _ in 0..reps {
            for (bytes, _) in &data {
                std::hint::black_box(extract_with(format, bytes, &limits, reader).ok());
            }
        }
        let per_pass = started.elapsed().as_secs_f64() / f64::from(reps);
        let n = data.len() as f64;
        println!(
            "{label} {} {:.2} {per_pass:.4} {:.1} {:.3} {:.3}",
            data.len(),
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / per_pass,
            recall / n,
            precision / n
        );
    }
    if let Some(dir) = real {
        agreement(&dir, &pdfium, &auto)?;
    }
    Ok(())
}

/// The files of `dir` ending in `.ext`, sorted.
fn files(dir: &Path, ext: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == ext));
    files.sort();
    Ok(files)
}

/// lopdf's token recall and precision against PDFium's text, per real PDF and on average.
fn agreement(dir: &Path, pdfium: &PdfReader, auto: &PdfReader) -> anyhow::Result<()> {
    let limits = Limits::default();
    let mut sums = [0.0f64; 4];
    let mut n = 0u32;
    println!("real_pdf lopdf_recall lopdf_precision auto_recall auto_precision (against PDFium)");
    for file in files(dir, "pdf")? {
        let bytes = std::fs::read(&file)?;
        let text = |reader| extract_with(Format::Pdf, &bytes, &limits, reader).map(|e| e.text()).unwrap_or_default();
        let reference = text(pdfium);
        if reference.trim().is_empty() {
            continue;
        }
        let (lr, lp) = fidelity(&reference, &text(&PdfReader::Lopdf));
        let (ar, ap) = fidelity(&reference, &text(auto));
        println!("{} {lr:.2} {lp:.2} {ar:.2} {ap:.2}", file.file_name().unwrap_or_default().to_string_lossy());
        for (sum, value) in sums.iter_mut().zip([lr, lp, ar, ap]) {
            *sum += value;
        }
        n += 1;
    }
    let n = f64::from(n.max(1));
    println!("mean {:.3} {:.3} {:.3} {:.3}", sums[0] / n, sums[1] / n, sums[2] / n, sums[3] / n);
    Ok(())
}
