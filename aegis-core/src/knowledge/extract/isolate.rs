//! Extraction in a child process: the only way to stop a CPU-bound parser that never
//! returns (a thread cannot be killed) and to survive a stack overflow or an abort (which
//! `catch_unwind` cannot catch). The parent sends the format, the path and the limits; the
//! child answers with one JSON document on stdout; the parent kills it at the time limit.
//!
//! The child is any program that calls [`child_main`]: the `aegis` binary does, as
//! `aegis extract-worker <format> <path>`.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
};

use tokio::io::AsyncReadExt;

use super::{ExtractError, Extracted, Format, Limits, PdfReader, extract_with};

/// The environment variable carrying the limits (JSON) to the child.
pub const LIMITS_ENV: &str = "AEGIS_EXTRACT_LIMITS";
/// The environment variable carrying the PDF reader (JSON) to the child.
pub const PDF_READER_ENV: &str = "AEGIS_EXTRACT_PDF_READER";

/// How to run extraction.
#[derive(Debug, Clone)]
pub enum Isolation {
    /// In this process, on a blocking thread: panics are caught, but a parser that never
    /// returns keeps its thread and a stack overflow aborts the process. For embedders
    /// that trust their files.
    InProcess,
    /// In a child process (`program args… <format> <path>`), killed at the time limit.
    ChildProcess {
        /// The program (e.g. the `aegis` binary).
        program: PathBuf,
        /// Arguments before the format and path (e.g. `["extract-worker"]`).
        args: Vec<String>,
    },
}

impl Isolation {
    /// The current executable as `<exe> extract-worker`, for the `aegis` binary.
    pub fn current_exe_worker() -> Option<Self> {
        std::env::current_exe()
            .ok()
            .map(|program| Isolation::ChildProcess { program, args: vec!["extract-worker".into()] })
    }
}

/// Extracts `path` under `isolation`, PDFs with `pdf`.
pub async fn extract_file(
    isolation: &Isolation,
    format: Format,
    path: &Path,
    limits: &Limits,
    pdf: &PdfReader,
) -> Result<Extracted, ExtractError> {
    let size = tokio::fs::metadata(path)
        .await
        .map_err(|e| ExtractError::Malformed(format!("cannot read the file: {e}")))?
        .len();
    if size > limits.max_file_bytes {
        return Err(ExtractError::TooLarge(format!("{size} bytes, limit {}", limits.max_file_bytes)));
    }
    match isolation {
        Isolation::InProcess => {
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|e| ExtractError::Malformed(format!("cannot read the file: {e}")))?;
            let (timeout, limits, pdf) = (limits.timeout, limits.clone(), pdf.clone());
            let work = tokio::task::spawn_blocking(move || extract_with(format, &bytes, &limits, &pdf));
            match tokio::time::timeout(timeout, work).await {
                Ok(joined) => joined.map_err(|e| ExtractError::Crashed(e.to_string()))?,
                // The blocking thread cannot be stopped; it finishes (or not) on its own.
                Err(_) => Err(ExtractError::Timeout(timeout.as_secs())),
            }
        }
        Isolation::ChildProcess { program, args } => run_child(program, args, format, path, limits, pdf).await,
    }
}

async fn run_child(
    program: &Path,
    args: &[String],
    format: Format,
    path: &Path,
    limits: &Limits,
    pdf: &PdfReader,
) -> Result<Extracted, ExtractError> {
    let limits_json = serde_json::to_string(limits).map_err(|e| ExtractError::Crashed(e.to_string()))?;
    let pdf_json = serde_json::to_string(pdf).map_err(|e| ExtractError::Crashed(e.to_string()))?;
    // The address-space limit is set by a POSIX shell in front of the child (`ulimit -v`,
    // in KiB), so no unsafe `setrlimit` is needed; `exec` keeps the pid, so the kill at the
    // time limit still reaches the extractor.
    let mut command = if limits.max_memory_bytes > 0 {
        let mut c = tokio::process::Command::new("/bin/sh");
        c.arg("-c")
            .arg("ulimit -v \"$AEGIS_EXTRACT_AS_KIB\" 2>/dev/null; exec \"$0\" \"$@\"")
            .arg(program)
            .env("AEGIS_EXTRACT_AS_KIB", (limits.max_memory_bytes / 1024).max(1).to_string());
        c
    } else {
        tokio::process::Command::new(program)
    };
    let mut child = command
        .args(args)
        .arg(format.as_str())
        .arg(path)
        .env(LIMITS_ENV, limits_json)
        .env(PDF_READER_ENV, pdf_json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            ExtractError::Crashed(format!("cannot start the extraction process {}: {e}", program.display()))
        })?;
    // Started from a runtime worker, the child inherited that worker's CPUs.
    if let Some(pid) = child.id()
        && let Err(error) = crate::cpus::release(pid)
    {
        tracing::debug!(%error, "cannot unpin the extraction process");
    }
    let mut stdout = child.stdout.take().ok_or_else(|| ExtractError::Crashed("no stdout".into()))?;
    let work = async {
        let mut output = Vec::new();
        stdout.read_to_end(&mut output).await.map_err(|e| ExtractError::Crashed(e.to_string()))?;
        let status = child.wait().await.map_err(|e| ExtractError::Crashed(e.to_string()))?;
        Ok::<_, ExtractError>((status, output))
    };
    let (status, output) = match tokio::time::timeout(limits.timeout, work).await {
        Ok(result) => result?,
        Err(_) => {
            // Dropping the child kills it (kill_on_drop); the CPU is released.
            return Err(ExtractError::Timeout(limits.timeout.as_secs()));
        }
    };
    match serde_json::from_slice::<Result<Extracted, ExtractError>>(&output) {
        Ok(result) => result,
        // A Rust allocation failure aborts: under the limit, that is what running out looks like.
        Err(_) if std::os::unix::process::ExitStatusExt::signal(&status) == Some(6) && limits.max_memory_bytes > 0 => {
            Err(ExtractError::Crashed(format!(
                "the extraction process aborted, most likely at its memory limit of {} MiB",
                limits.max_memory_bytes / (1024 * 1024)
            )))
        }
        Err(_) => Err(ExtractError::Crashed(format!("the extraction process ended without an answer ({status})"))),
    }
}

/// The child's side: extracts `path` as `format` with the limits from [`LIMITS_ENV`] and
/// the PDF reader from [`PDF_READER_ENV`], and prints the JSON result. Returns the process
/// exit code.
pub fn child_main(format: &str, path: &Path) -> i32 {
    let limits =
        std::env::var(LIMITS_ENV).ok().and_then(|j| serde_json::from_str::<Limits>(&j).ok()).unwrap_or_default();
    let pdf =
        std::env::var(PDF_READER_ENV).ok().and_then(|j| serde_json::from_str::<PdfReader>(&j).ok()).unwrap_or_default();
    let result = match parse_format(format) {
        Some(format) => std::fs::read(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::OutOfMemory => ExtractError::TooLarge(format!(
                    "the file does not fit the extraction memory limit of {} MiB",
                    limits.max_memory_bytes / (1024 * 1024)
                )),
                _ => ExtractError::Malformed(format!("cannot read the file: {e}")),
            })
            .and_then(|bytes| extract_with(format, &bytes, &limits, &pdf)),
        None => Err(ExtractError::Unsupported(format!("format `{format}`"))),
    };
    match serde_json::to_string(&result) {
        Ok(json) => {
            println!("{json}");
            0
        }
        Err(_) => 2,
    }
}

/// The format the parent named by [`Format::as_str`], which is its serde name.
fn parse_format(name: &str) -> Option<Format> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}
