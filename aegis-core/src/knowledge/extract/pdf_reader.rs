//! Which library reads PDFs: lopdf (pure Rust, always built in, fast) or PDFium (Chromium's
//! PDF library: text of form XObjects, more fonts and encodings, line breaks from glyph
//! positions; about a quarter of lopdf's speed), loaded at run time from a `libpdfium.so` —
//! by default the one inside the `pypdfium2` wheel, installed with pip into the cache
//! directory on first use. The default reads with lopdf and hands PDFium the documents
//! lopdf reads poorly (see `pdf`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::wheel::Wheel;

/// The reader an extraction uses, resolved from [`PdfConfig`] (and sent to the child
/// process).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reader", rename_all = "lowercase")]
pub enum PdfReader {
    /// lopdf.
    #[default]
    Lopdf,
    /// PDFium, loaded from `library`.
    Pdfium {
        /// The `libpdfium.so`.
        library: PathBuf,
    },
    /// lopdf, and PDFium from `library` for the documents lopdf reads poorly.
    LopdfThenPdfium {
        /// The `libpdfium.so`.
        library: PathBuf,
    },
}

impl PdfReader {
    /// A short name (`lopdf`, `pdfium`, `lopdf+pdfium`), recorded with what it read.
    pub fn name(&self) -> &'static str {
        match self {
            PdfReader::Lopdf => "lopdf",
            PdfReader::Pdfium { .. } => "pdfium",
            PdfReader::LopdfThenPdfium { .. } => "lopdf+pdfium",
        }
    }
}

/// The configured choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PdfBackend {
    /// lopdf, with PDFium for the documents lopdf reads poorly when PDFium can be had (a
    /// library configured, or the wheel installable); lopdf alone, with a warning, if not.
    #[default]
    Auto,
    /// PDFium for every PDF, or nothing: a PDF fails with the reason PDFium is unavailable.
    Pdfium,
    /// lopdf.
    Lopdf,
}

/// `[knowledge.pdf]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PdfConfig {
    /// `auto`, `pdfium` or `lopdf`.
    pub backend: PdfBackend,
    /// A `libpdfium.so` to use instead of the wheel's.
    pub pdfium_library: Option<PathBuf>,
    /// The PyPI wheel carrying `libpdfium.so` (`pypdfium2_raw/libpdfium.so` inside it).
    pub pdfium_wheel: String,
}

impl Default for PdfConfig {
    fn default() -> Self {
        Self { backend: PdfBackend::Auto, pdfium_library: None, pdfium_wheel: "pypdfium2==5.15.2".into() }
    }
}

/// Where the wheel keeps the library.
const WHEEL_LIBRARY: &str = "pypdfium2_raw/libpdfium.so";

impl PdfConfig {
    /// The reader to use. Blocking: it may install the wheel with pip into `cache_dir`.
    /// `auto` falls back to lopdf (with a warning) where `pdfium` is an error.
    pub fn resolve(&self, cache_dir: &Path) -> Result<PdfReader, String> {
        let pdfium = match self.backend {
            PdfBackend::Lopdf => return Ok(PdfReader::Lopdf),
            PdfBackend::Auto | PdfBackend::Pdfium => self.pdfium_library(cache_dir),
        };
        match (pdfium, self.backend) {
            (Ok(library), PdfBackend::Auto) => Ok(PdfReader::LopdfThenPdfium { library }),
            (Ok(library), _) => Ok(PdfReader::Pdfium { library }),
            (Err(why), PdfBackend::Auto) => {
                tracing::warn!(reason = %why, "PDFium is unavailable: PDFs are read with lopdf alone");
                Ok(PdfReader::Lopdf)
            }
            (Err(why), _) => Err(format!("knowledge.pdf.backend is `pdfium`, but {why}")),
        }
    }

    /// [`resolve`](Self::resolve) on a blocking thread, for async callers.
    pub async fn resolve_blocking(&self, cache_dir: &Path) -> Result<PdfReader, String> {
        let (config, cache_dir) = (self.clone(), cache_dir.to_path_buf());
        tokio::task::spawn_blocking(move || config.resolve(&cache_dir))
            .await
            .unwrap_or_else(|e| Err(format!("resolving the PDF reader failed: {e}")))
    }

    fn pdfium_library(&self, cache_dir: &Path) -> Result<PathBuf, String> {
        if !cfg!(feature = "pdfium") {
            return Err("this build has no PDFium support (the `pdfium` cargo feature)".into());
        }
        if let Some(library) = &self.pdfium_library {
            return if library.is_file() {
                Ok(library.clone())
            } else {
                Err(format!("knowledge.pdf.pdfium_library `{}` is not a file", library.display()))
            };
        }
        let wheel: Wheel = self.pdfium_wheel.parse().map_err(|e| format!("knowledge.pdf.pdfium_wheel: {e}"))?;
        let install = wheel.ensure(cache_dir, Path::new(WHEEL_LIBRARY), "PDFium")?;
        Ok(install.join(WHEEL_LIBRARY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lopdf_needs_nothing_and_a_missing_library_is_refused_or_replaced() {
        let cache = Path::new("/nonexistent-cache");
        let lopdf = PdfConfig { backend: PdfBackend::Lopdf, ..PdfConfig::default() };
        assert_eq!(lopdf.resolve(cache), Ok(PdfReader::Lopdf));
        let missing = Some(PathBuf::from("/nonexistent/libpdfium.so"));
        let strict = PdfConfig { backend: PdfBackend::Pdfium, pdfium_library: missing.clone(), ..PdfConfig::default() };
        let err = strict.resolve(cache).unwrap_err();
        assert!(err.contains("pdfium"), "{err}");
        let auto = PdfConfig { backend: PdfBackend::Auto, pdfium_library: missing, ..PdfConfig::default() };
        assert_eq!(auto.resolve(cache), Ok(PdfReader::Lopdf));
    }
}
