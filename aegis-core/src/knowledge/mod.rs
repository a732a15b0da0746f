//! The knowledge base: a tenant's documents, extracted ([`extract`]), chunked ([`chunk`]),
//! embedded through the tenant's model policy (the offline embedder by default) and stored
//! in the tenant's schema with a `tsvector` and a `vector(768)`; searched by hybrid
//! (vector + full text fused with reciprocal rank fusion in one SQL statement), vector-only
//! or keyword-only, every hit with its citation.

#[cfg(feature = "office-docs")]
mod archives;
pub mod bulk;
pub mod chunk;
mod cjk;
pub mod extract;
mod ingest;
pub mod queue;
mod search;
mod store;
mod text_search;

pub use chunk::{Chunk, ChunkOptions};
pub use ingest::{IngestOutcome, IngestProgress, collect_files};
pub use search::{Hit, INDEXED_DISTANCE, SearchMode, SearchOptions};
pub use store::DocumentInfo;
pub use text_search::{DEFAULT_TEXT_SEARCH_CONFIG, TextSearchChange};

use std::{path::PathBuf, sync::Arc};

use serde::{Deserialize, Serialize};

use crate::{
    db::DbError,
    llm::{CallScope, ModelError, Models},
    tenancy::TenantScope,
};
use extract::{ExtractError, Limits, PdfConfig, PdfReader, isolate::Isolation};

/// A knowledge-base failure.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    /// The file could not be extracted.
    #[error("cannot extract `{source_key}`: {error}")]
    Extract {
        /// The document.
        source_key: String,
        /// Why.
        error: ExtractError,
    },
    /// The file's format is not one AEGIS reads.
    #[error(
        "`{0}`: unsupported format (pdf, docx, doc, odt, rtf, xlsx, xlsb, xls, ods, pptx, ppt, odp, txt, md, csv, html, mhtml, eml, msg, zip)"
    )]
    UnsupportedFormat(String),
    /// The file could not be read.
    #[error("cannot read `{path}`: {error}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        error: String,
    },
    /// No such document.
    #[error("no document `{0}`")]
    NotFound(String),
    /// A bad request (empty query, k out of range).
    #[error("{0}")]
    Invalid(String),
    /// The embedding provider changed within one document (a failover mid-way), whose
    /// vectors must all come from one model to be comparable; nothing was stored.
    #[error(
        "`{source_key}`: its chunks were embedded by `{first}`, then by `{then}` (a provider failed over mid-document); nothing was stored, ingest it again"
    )]
    EmbeddersMixed {
        /// The document.
        source_key: String,
        /// The model of the first chunks.
        first: String,
        /// The model of later ones.
        then: String,
    },
    /// Embedding failed or was refused.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for KnowledgeError {
    fn from(err: sqlx::Error) -> Self {
        KnowledgeError::Db(DbError::Sql(err))
    }
}

/// `[knowledge]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct KnowledgeConfig {
    /// Per-file limits.
    pub limits: Limits,
    /// Which library reads PDFs.
    pub pdf: PdfConfig,
    /// Chunk sizes.
    pub chunking: ChunkOptions,
    /// Texts per embedding request.
    pub embed_batch: usize,
    /// Files extracted and embedded at once by a batch ingest.
    pub concurrency: usize,
    /// HNSW `ef_search` for vector queries (recall against speed).
    pub ef_search: u32,
    /// Candidates taken from each of the vector and keyword lists before fusion, per hit
    /// asked for.
    pub candidates_per_hit: usize,
    /// Chunks the keyword side ranks at most: those holding the query's rarest lexemes.
    pub keyword_candidates: usize,
    /// A batch ingest of at least this many files into a tenant holding few chunks drops
    /// the search indexes and rebuilds them at the end (0: never); see [`bulk`].
    pub bulk_import_files: usize,
    /// One document of at least this many chunks into a tenant holding few drops the
    /// indexes for its write and rebuilds them after (0: never); see [`bulk`].
    pub bulk_import_chunks: usize,
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            pdf: PdfConfig::default(),
            chunking: ChunkOptions::default(),
            embed_batch: 64,
            concurrency: 2,
            ef_search: 400,
            candidates_per_hit: 4,
            keyword_candidates: 500,
            bulk_import_files: 20,
            bulk_import_chunks: 1_000,
        }
    }
}

/// The knowledge service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Knowledge {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    models: Models,
    config: KnowledgeConfig,
    isolation: Isolation,
    cache_dir: PathBuf,
    /// Resolved from `config.pdf` on the first PDF (it may install PDFium).
    pdf_reader: tokio::sync::OnceCell<Result<PdfReader, String>>,
}

impl Knowledge {
    /// The service: embeddings through `models`, extraction under `isolation`; downloaded
    /// readers (PDFium) are kept in `cache_dir`.
    pub fn new(models: Models, config: KnowledgeConfig, isolation: Isolation, cache_dir: PathBuf) -> Self {
        let pdf_reader = tokio::sync::OnceCell::new();
        Self { inner: Arc::new(Inner { models, config, isolation, cache_dir, pdf_reader }) }
    }

    /// The PDF reader for a file of `format`: for a PDF, what `[knowledge.pdf]` resolves to,
    /// resolved (and PDFium installed, if need be) once, on the first PDF.
    pub async fn pdf_reader(&self, format: extract::Format) -> Result<PdfReader, ExtractError> {
        if format != extract::Format::Pdf {
            return Ok(PdfReader::Lopdf);
        }
        let inner = &self.inner;
        let resolved =
            inner.pdf_reader.get_or_init(|| async { inner.config.pdf.resolve_blocking(&inner.cache_dir).await }).await;
        resolved.clone().map_err(ExtractError::Unsupported)
    }

    /// The settings.
    pub fn config(&self) -> &KnowledgeConfig {
        &self.inner.config
    }

    /// How extraction runs.
    pub fn isolation(&self) -> &Isolation {
        &self.inner.isolation
    }

    fn call_scope(scope: &TenantScope) -> CallScope {
        CallScope {
            tenant: scope.tenant().to_string(),
            tier: scope.tier(),
            caller: scope.caller().to_string(),
            run_id: None,
        }
    }
}
