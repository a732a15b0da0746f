//! Ingesting files: hash → (same bytes and recipe? stop) → extract (isolated) → chunk → embed in
//! batches through the tenant's policy → one short transaction that writes the new
//! version and replaces its chunks. No transaction is held while extracting or embedding,
//! and an interrupted ingest leaves the document at its old version or its new one.

use std::path::{Path, PathBuf};

use futures::{StreamExt, stream};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    Knowledge, KnowledgeError,
    bulk::BulkImport,
    chunk::chunk,
    extract::{EXTRACTOR_VERSION, Format, PdfReader, isolate::extract_file},
    store::{self, NewVersion},
};
use crate::{llm::Target, policy::Intent, tenancy::TenantScope};

/// What happened to one file.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum IngestOutcome {
    /// Same content as the stored version: nothing done.
    Unchanged {
        /// The document.
        source_key: String,
        /// Its id.
        id: Uuid,
        /// Its version.
        version: i32,
    },
    /// A new version was stored.
    Stored {
        /// The document.
        source_key: String,
        /// Its id.
        id: Uuid,
        /// The new version.
        version: i32,
        /// Chunks stored.
        chunks: usize,
        /// Extraction notes.
        notes: Vec<String>,
    },
    /// The file failed; others went on.
    Failed {
        /// The document.
        source_key: String,
        /// Why.
        error: String,
        /// Whether the cause may pass (the database or the embedding model unreachable):
        /// trying again later may succeed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        transient: bool,
    },
    /// The document of a file its archive no longer holds was deleted.
    Removed {
        /// The document.
        source_key: String,
    },
}

impl IngestOutcome {
    /// The failure of `source_key` by `error`.
    pub fn failed(source_key: impl Into<String>, error: &KnowledgeError) -> Self {
        IngestOutcome::Failed {
            source_key: source_key.into(),
            error: error.to_string(),
            transient: matches!(error, KnowledgeError::Db(_) | KnowledgeError::Model(_)),
        }
    }

    /// The document it is about.
    pub fn source_key(&self) -> &str {
        match self {
            IngestOutcome::Unchanged { source_key, .. }
            | IngestOutcome::Stored { source_key, .. }
            | IngestOutcome::Failed { source_key, .. }
            | IngestOutcome::Removed { source_key } => source_key,
        }
    }

    /// A short word for it: stored, unchanged, failed or removed.
    pub fn status(&self) -> &'static str {
        match self {
            IngestOutcome::Unchanged { .. } => "unchanged",
            IngestOutcome::Stored { .. } => "stored",
            IngestOutcome::Failed { .. } => "FAILED",
            IngestOutcome::Removed { .. } => "removed",
        }
    }
}

/// Progress of a batch, reported after each file.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct IngestProgress {
    /// Files finished.
    pub done: usize,
    /// Files in the batch.
    pub total: usize,
}

impl Knowledge {
    /// Ingests one file under `source_key`.
    #[tracing::instrument(skip_all, fields(tenant = %scope.tenant(), source_key))]
    pub async fn ingest_file(
        &self,
        scope: &TenantScope,
        source_key: &str,
        path: &Path,
    ) -> Result<IngestOutcome, KnowledgeError> {
        let io = |e: std::io::Error| KnowledgeError::Io { path: path.display().to_string(), error: e.to_string() };
        let config = self.config();
        let size = tokio::fs::metadata(path).await.map_err(io)?.len();
        if size > config.limits.max_file_bytes {
            return Err(KnowledgeError::Extract {
                source_key: source_key.to_owned(),
                error: super::extract::ExtractError::TooLarge(format!(
                    "{size} bytes, limit {}",
                    config.limits.max_file_bytes
                )),
            });
        }
        let owned = path.to_owned();
        let (bytes, hash) = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(owned)?;
            let hash = hex::encode(Sha256::digest(&bytes));
            Ok::<_, std::io::Error>((bytes, hash))
        })
        .await
        .map_err(|e| io(std::io::Error::other(e)))?
        .map_err(io)?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| source_key.to_owned());
        let format = Format::detect(&name, &bytes)
            .or_else(|| Format::from_extension(source_key))
            .ok_or_else(|| KnowledgeError::UnsupportedFormat(source_key.to_owned()))?;
        let named = Format::from_extension(&name).or_else(|| Format::from_extension(source_key));
        drop(bytes);
        let extract_err = |error| KnowledgeError::Extract { source_key: source_key.to_owned(), error };
        let pdf = self.pdf_reader(format).await.map_err(extract_err)?;
        let expected_model = self.inner.models.embedding_model(scope.tier()).unwrap_or_else(|| "none".to_owned());
        let mut tx = scope.begin().await?;
        let existing = store::find(tx.conn(), source_key).await?;
        tx.commit().await?;
        if let Some(doc) =
            existing.filter(|d| d.content_hash == hash && d.recipe == self.recipe(format, &pdf, &expected_model))
        {
            return Ok(IngestOutcome::Unchanged {
                source_key: source_key.to_owned(),
                id: doc.id,
                version: doc.version,
            });
        }
        let mut extracted =
            extract_file(self.isolation(), format, path, &config.limits, &pdf).await.map_err(extract_err)?;
        if let Some(named) = named.filter(|n| *n != format) {
            extracted.notes.push(format!("the name says {named} but the content is {format}; read as {format}"));
        }
        // Chunking a long document is CPU work: on the blocking pool, off the runtime.
        let options = config.chunking.clone();
        let (extracted, chunks) = tokio::task::spawn_blocking(move || {
            let chunks = chunk(&extracted, &options);
            (extracted, chunks)
        })
        .await
        .map_err(|e| extract_err(super::extract::ExtractError::Crashed(format!("chunking failed: {e}"))))?;
        let call = Self::call_scope(scope);
        let mut embedded = Vec::with_capacity(chunks.len());
        let mut model: Option<String> = None;
        for batch in chunks.chunks(config.embed_batch.max(1)) {
            let texts: Vec<String> = batch.iter().map(|c| c.text.clone()).collect();
            let (_, embeddings) = self.inner.models.embed(&call, &Target::Intent(Intent::Embedding), &texts).await?;
            let first = model.get_or_insert_with(|| embeddings.model.clone());
            if *first != embeddings.model {
                return Err(KnowledgeError::EmbeddersMixed {
                    source_key: source_key.to_owned(),
                    first: first.clone(),
                    then: embeddings.model,
                });
            }
            for (chunk, vector) in batch.iter().zip(embeddings.vectors) {
                embedded.push((chunk.clone(), vector, embeddings.model.clone()));
            }
        }
        let recipe = self.recipe(format, &pdf, model.as_deref().unwrap_or(&expected_model));
        let new = NewVersion {
            source_key,
            title: title_of(source_key),
            format: format.as_str(),
            content_hash: &hash,
            recipe: &recipe,
            bytes: i64::try_from(size).unwrap_or(i64::MAX),
            notes: &extracted.notes,
            chunks: &embedded,
        };
        let bulk =
            match BulkImport::begin_for_document(scope.db(), scope.tenant(), embedded.len(), config.bulk_import_chunks)
                .await
            {
                Ok(bulk) => bulk,
                Err(error) => {
                    tracing::warn!(tenant = %scope.tenant(), %error, "cannot start a bulk import");
                    None
                }
            };
        let written = async {
            let mut tx = scope.begin().await?;
            let written = store::write_version(tx.conn(), &new).await?;
            tx.commit().await?;
            Ok::<_, KnowledgeError>(written)
        }
        .await;
        if let Some(bulk) = bulk
            && let Err(error) = bulk.finish().await
        {
            tracing::error!(tenant = %scope.tenant(), %error, "cannot rebuild the search indexes; the repair task retries");
        }
        let (id, version) = written?;
        Ok(IngestOutcome::Stored {
            source_key: source_key.to_owned(),
            id,
            version,
            chunks: embedded.len(),
            notes: extracted.notes,
        })
    }

    /// How a version of a `format` file is made here: the extractors' version, the PDF
    /// reader (for PDFs), the chunk sizes and the model of its vectors. The same bytes are
    /// ingested again only when this differs from the stored version's.
    fn recipe(&self, format: Format, pdf: &PdfReader, embedding_model: &str) -> String {
        let chunking = &self.config().chunking;
        let reader = if format == Format::Pdf { format!(" ({})", pdf.name()) } else { String::new() };
        format!(
            "extractor {EXTRACTOR_VERSION}{reader}; chunks of {} tokens, {} overlapping; vectors by {embedding_model}",
            chunking.target_tokens, chunking.overlap_tokens
        )
    }

    /// Ingests files (`(source_key, path)`), `concurrency` at a time; one file's failure
    /// is its outcome and never stops the others. `progress` is called after each file.
    /// Each file of a zip archive is a document of its own (see [`super::archives`]); the
    /// documents of files an archive no longer holds are removed after the batch.
    pub async fn ingest_files(
        &self,
        scope: &TenantScope,
        files: Vec<(String, PathBuf)>,
        progress: impl Fn(IngestProgress, &IngestOutcome) + Send + Sync,
    ) -> Vec<IngestOutcome> {
        // The scratch folder of unpacked archives lives until the batch ends.
        #[cfg(feature = "office-docs")]
        let super::archives::Expansion { files, failed, archives, scratch: _scratch } =
            super::archives::expand(files, &self.config().limits).await;
        #[cfg(not(feature = "office-docs"))]
        let (failed, archives): (Vec<IngestOutcome>, Vec<(String, std::collections::BTreeSet<String>)>) =
            (Vec::new(), Vec::new());
        let total = files.len() + failed.len();
        let bulk = self.begin_batch(scope, files.len()).await;
        let done = std::sync::atomic::AtomicUsize::new(0);
        let (done, progress) = (&done, &progress);
        for outcome in &failed {
            let finished = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(IngestProgress { done: finished, total }, outcome);
        }
        let mut outcomes: Vec<IngestOutcome> = stream::iter(files)
            .map(|(key, path)| async move {
                let outcome = match self.ingest_file(scope, &key, &path).await {
                    Ok(outcome) => outcome,
                    Err(err) => IngestOutcome::failed(key, &err),
                };
                let finished = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                progress(IngestProgress { done: finished, total }, &outcome);
                outcome
            })
            .buffer_unordered(self.config().concurrency.max(1))
            .collect()
            .await;
        outcomes.splice(0..0, failed);
        for (archive, keys) in &archives {
            // The archive's own document (stored whole by an earlier version) goes only
            // when every file of it has taken its place.
            let prefix = format!("{archive}/");
            let whole_replaced = !outcomes
                .iter()
                .any(|o| matches!(o, IngestOutcome::Failed { source_key, .. } if source_key.starts_with(&prefix)));
            match self.remove_stale(scope, archive, keys, whole_replaced).await {
                Ok(removed) => {
                    outcomes.extend(removed.into_iter().map(|source_key| IngestOutcome::Removed { source_key }))
                }
                Err(err) => outcomes.push(IngestOutcome::Failed {
                    source_key: archive.clone(),
                    error: format!(
                        "its files were read, but the documents of files it no longer holds could not be removed: {err}"
                    ),
                    transient: true,
                }),
            }
        }
        if let Some(bulk) = bulk
            && let Err(error) = bulk.finish().await
        {
            tracing::error!(tenant = %scope.tenant(), %error, "cannot rebuild the search indexes; the repair task retries");
        }
        outcomes
    }

    /// Before a batch: drops the search indexes when the batch is a bulk import (see
    /// [`super::bulk`]), else rebuilds any an earlier import left missing. Trouble here
    /// only costs speed, so it is logged, not returned.
    async fn begin_batch(&self, scope: &TenantScope, files: usize) -> Option<BulkImport> {
        let db = scope.db();
        match BulkImport::begin(db, scope.tenant(), files, self.config().bulk_import_files).await {
            Ok(Some(bulk)) => return Some(bulk),
            Ok(None) => {}
            Err(error) => tracing::warn!(tenant = %scope.tenant(), %error, "cannot start a bulk import"),
        }
        if let Err(error) = super::bulk::repair_index(db, scope.tenant()).await {
            tracing::warn!(tenant = %scope.tenant(), %error, "cannot check the search indexes");
        }
        None
    }

    /// The tenant's documents.
    pub async fn list(&self, scope: &TenantScope) -> Result<Vec<super::DocumentInfo>, KnowledgeError> {
        let mut tx = scope.begin().await?;
        let docs = store::list(tx.conn()).await?;
        tx.commit().await?;
        Ok(docs)
    }

    /// Deletes a document by source key or id; the key of an ingested zip archive deletes
    /// the documents of all its files.
    pub async fn delete(&self, scope: &TenantScope, key_or_id: &str) -> Result<(), KnowledgeError> {
        let mut tx = scope.begin().await?;
        let mut keys = vec![key_or_id.to_owned()];
        if Format::from_extension(key_or_id) == Some(Format::Zip) {
            keys.extend(store::keys_under(tx.conn(), &format!("{key_or_id}/")).await?);
        }
        let deleted = !store::delete_all(tx.conn(), &keys).await?.is_empty();
        tx.commit().await?;
        if deleted { Ok(()) } else { Err(KnowledgeError::NotFound(key_or_id.to_owned())) }
    }

    /// After a batch read `archive` whole: deletes the documents under its key that are
    /// none of `keys` (files since removed from it) and, with `whole_replaced`, a document
    /// of the archive itself (stored whole by an earlier version, or as a damaged archive's
    /// salvage, decision 33). Returns their keys.
    async fn remove_stale(
        &self,
        scope: &TenantScope,
        archive: &str,
        keys: &std::collections::BTreeSet<String>,
        whole_replaced: bool,
    ) -> Result<Vec<String>, KnowledgeError> {
        let whole = whole_replaced.then_some(archive);
        self.delete_others(scope, &format!("{archive}/"), keys, whole).await
    }

    /// Deletes every document whose source key is none of `keep` (after ingesting a folder
    /// the knowledge base is to mirror). Returns their keys.
    pub async fn prune(
        &self,
        scope: &TenantScope,
        keep: &std::collections::BTreeSet<String>,
    ) -> Result<Vec<String>, KnowledgeError> {
        self.delete_others(scope, "", keep, None).await
    }

    /// Deletes, in one transaction, the documents whose keys start with `prefix` and are
    /// none of `keep`, and the document `also` if given. Returns their keys.
    async fn delete_others(
        &self,
        scope: &TenantScope,
        prefix: &str,
        keep: &std::collections::BTreeSet<String>,
        also: Option<&str>,
    ) -> Result<Vec<String>, KnowledgeError> {
        let mut tx = scope.begin().await?;
        let mut gone = store::keys_under(tx.conn(), prefix).await?;
        gone.retain(|k| !keep.contains(k));
        gone.extend(also.map(str::to_owned));
        let removed = store::delete_all(tx.conn(), &gone).await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// Recounts the tenant's lexeme statistics from its chunks (after chunks were loaded
    /// by other means than [`Knowledge::ingest_files`]).
    pub async fn recount_terms(&self, scope: &TenantScope) -> Result<(), KnowledgeError> {
        let mut tx = scope.begin().await?;
        store::recount_terms(tx.conn()).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Files under `paths` (folders recursively), each with its source key: the path relative
/// to the folder given (or the file name for a file given directly). Hidden entries are
/// skipped; symlinks are not followed. Two files that would get the same source key (the
/// same relative path under two folders given) are refused before anything is ingested,
/// since the second would silently replace the first as a new version.
pub fn collect_files(paths: &[PathBuf]) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for root in paths {
        let meta = std::fs::symlink_metadata(root)?;
        if meta.is_file() {
            let key = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            out.push((key, root.clone()));
            continue;
        }
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let mut entries: Vec<_> = std::fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                if entry.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                let kind = entry.file_type()?;
                let path = entry.path();
                if kind.is_dir() {
                    stack.push(path);
                } else if kind.is_file() {
                    let key = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
                    out.push((key, path));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    let collisions: Vec<String> = out
        .windows(2)
        .filter(|pair| pair[0].0 == pair[1].0)
        .map(|pair| format!("`{}` and `{}` would both be `{}`", pair[0].1.display(), pair[1].1.display(), pair[0].0))
        .collect();
    if !collisions.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} (ingest such folders separately, or from a folder that holds both)", collisions.join("; ")),
        ));
    }
    Ok(out)
}

/// A document's title: the last segment of its source key (`refunds.md` for
/// `policies/refunds.md` and for an upload of that name, which is saved under a name of
/// the server's own).
fn title_of(source_key: &str) -> &str {
    source_key.trim_end_matches('/').rsplit('/').next().filter(|t| !t.is_empty()).unwrap_or(source_key)
}
