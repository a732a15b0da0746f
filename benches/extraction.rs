//! Extraction throughput and fidelity per format on the generated corpus, in-process and
//! warm (each file read once untimed, then extracted `--reps` times). Prints one line per
//! format: files, MB, seconds per pass, MB/s, and token recall/precision against the
//! ground truth. `benches/extraction.sh` runs it beside the seed's Python stack.

use std::{path::PathBuf, time::Instant};

use aegis_core::knowledge::extract::{Format, Limits, extract, token_fidelity as fidelity};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/generated");
    let mut reps = 5u32;
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--corpus" => corpus = args.next().unwrap_or_default().into(),
            "--reps" => reps = args.next().unwrap_or_default().parse()?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    let limits = Limits::default();
    println!("format files MB seconds_per_pass MB_per_s recall precision");
    for (dir, format) in [("pdf", Format::Pdf), ("docx", Format::Docx), ("xlsx", Format::Xlsx), ("pptx", Format::Pptx)]
    {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(corpus.join(dir))?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
        files.retain(|p| p.extension().is_some_and(|e| e == dir));
        files.sort();
        let data: Vec<(Vec<u8>, String)> = files
            .iter()
            .map(|f| Ok((std::fs::read(f)?, std::fs::read_to_string(f.with_extension("txt"))?)))
            .collect::<anyhow::Result<_>>()?;
        let bytes: usize = data.iter().map(|(b, _)| b.len()).sum();
        let (mut recall, mut precision) = (0.0, 0.0);
        for (bytes, truth) in &data {
            let text = extract(format, bytes, &limits).map(|e| e.text()).unwrap_or_default();
            let (r, p) = fidelity(truth, &text);
            recall += r;
            precision += p;
        }
        let started = Instant::now();
        for _ in 0..reps {
            for (bytes, _) in &data {
                std::hint::black_box(extract(format, bytes, &limits).ok());
            }
        }
        let per_pass = started.elapsed().as_secs_f64() / f64::from(reps);
        let n = data.len() as f64;
        println!(
            "{dir} {} {:.2} {per_pass:.4} {:.1} {:.3} {:.3}",
            data.len(),
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / per_pass,
            recall / n,
            precision / n
        );
    }
    Ok(())
}
