//! The knowledge base over HTTP: upload (multipart, queued as `kb.ingest` jobs), list,
//! delete, search, the status of an upload's job, and the text-search configuration.

use aegis_core::knowledge::{
    Hit, SearchMode, SearchOptions, TextSearchChange,
    extract::Format,
    queue::{IngestJob, enqueue_ingests},
};
use axum::{
    Json,
    extract::{Multipart, Path, Query, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{AppState, error::ApiError, tenant_api::TenantAccess};

/// One accepted upload.
#[derive(Debug, Serialize)]
pub struct Accepted {
    /// The document's source key.
    pub source_key: String,
    /// The job that ingests it (poll `/api/tenants/{t}/jobs/{id}`).
    pub job_id: Uuid,
}

/// `POST /api/tenants/{tenant}/documents`: every `file` field is saved and queued; an
/// optional `source_key` field (before the file) names the next file's document. A form
/// is taken whole or not at all: one refused file (past the size limit, or of no format
/// AEGIS reads: 415) queues none of the others.
pub async fn upload(
    State(state): State<AppState>,
    access: TenantAccess,
    mut form: Multipart,
) -> Result<(StatusCode, Json<Vec<Accepted>>), ApiError> {
    let tenant = access.scope.tenant().clone();
    let dir = state.aegis.config().data_dir.join("uploads").join(tenant.as_str());
    // Uploads are tenant data: their folder is the server's alone (the data folder itself
    // stays traversable for the embedded PostgreSQL's system user).
    let mut folder = tokio::fs::DirBuilder::new();
    folder.recursive(true);
    #[cfg(unix)]
    folder.mode(0o700);
    folder.create(&dir).await.map_err(|e| ApiError::internal(&e))?;
    // The whole form is saved before anything is queued, so that a refused file (past the
    // size limit, a broken request) leaves none of the form's files queued or kept.
    let mut staged = Staged(Vec::new());
    let mut next_key: Option<String> = None;
    while let Some(field) = form.next_field().await.map_err(|e| ApiError::bad_request(format!("multipart: {e}")))? {
        match field.name() {
            Some("source_key") => {
                next_key = Some(field.text().await.map_err(|e| ApiError::bad_request(e.to_string()))?)
            }
            Some("file") => {
                // The name's last segment: a client may send a path (`../../etc/x.md`).
                let name = field
                    .file_name()
                    .and_then(|n| n.rsplit(['/', '\\']).next())
                    .filter(|n| !n.trim().is_empty() && *n != "." && *n != "..")
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::bad_request("a file field needs a file name"))?;
                let source_key = next_key.take().unwrap_or_else(|| name.clone());
                if source_key.trim().is_empty() || source_key.len() > 1024 {
                    return Err(ApiError::bad_request("source_key must be 1 to 1024 characters"));
                }
                let key_names_a_format = Format::from_extension(&source_key).is_some();
                let upload_id = Uuid::now_v7();
                // Keep the original extension: the format is detected from it.
                let path = dir
                    .join(upload_id.to_string())
                    .with_extension(std::path::Path::new(&name).extension().unwrap_or_default());
                let job = IngestJob {
                    tenant: tenant.clone(),
                    source_key,
                    path: path.clone(),
                    caller: access.scope.caller().clone(),
                };
                // Staged before it is written, so that a partial file goes with the form.
                staged.0.push((upload_id.to_string(), job));
                let head = save(field, &path).await.map_err(|e| e.for_upload(&name))?;
                if !Format::may_be_readable(&name, &head) && !key_names_a_format {
                    return Err(ApiError::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "invalid_request_error",
                        "unsupported_format",
                        format!("upload of {name}: not a format AEGIS reads"),
                    ));
                }
            }
            _ => {}
        }
    }
    if staged.0.is_empty() {
        return Err(ApiError::bad_request("no `file` field in the form"));
    }
    let enqueued = enqueue_ingests(&state.aegis.jobs(), &staged.0).await.map_err(|e| ApiError::internal(&e))?;
    let accepted = std::mem::take(&mut staged.0)
        .into_iter()
        .zip(enqueued)
        .map(|((_, job), enqueued)| Accepted { source_key: job.source_key, job_id: enqueued.id })
        .collect();
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

/// The uploads of a form saved but not queued: their files are removed when it is dropped
/// (the request failed), unless they were taken out to be queued.
struct Staged(Vec<(String, IngestJob)>);

impl Drop for Staged {
    fn drop(&mut self) {
        for (_, job) in &self.0 {
            let _ = std::fs::remove_file(&job.path);
        }
    }
}

/// Why an upload could not be saved.
enum SaveError {
    /// The request broke off or exceeded the size limit.
    Body(axum::extract::multipart::MultipartError),
    /// The disk.
    Io(std::io::Error),
}

impl SaveError {
    fn for_upload(self, name: &str) -> ApiError {
        match self {
            // 413 past the size limit, 400 for a request that broke off.
            SaveError::Body(e) => {
                ApiError::new(e.status(), "invalid_request_error", "invalid_upload", format!("upload of {name}: {e}"))
            }
            SaveError::Io(e) => ApiError::internal(&e),
        }
    }
}

/// How much of an upload's start is kept to tell its format.
const HEAD_BYTES: usize = 64 * 1024;

/// Writes a file field to `path` as it arrives, so that an upload is never held in memory
/// whole (the route's body limit bounds its size). Returns its first [`HEAD_BYTES`].
async fn save(mut field: axum::extract::multipart::Field<'_>, path: &std::path::Path) -> Result<Vec<u8>, SaveError> {
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::File::create(path).await.map_err(SaveError::Io)?;
    let mut head = Vec::new();
    while let Some(piece) = field.chunk().await.map_err(SaveError::Body)? {
        let room = HEAD_BYTES.saturating_sub(head.len());
        head.extend_from_slice(&piece[..piece.len().min(room)]);
        file.write_all(&piece).await.map_err(SaveError::Io)?;
    }
    file.flush().await.map_err(SaveError::Io)?;
    file.sync_all().await.map_err(SaveError::Io)?;
    Ok(head)
}

/// `GET /api/tenants/{tenant}/documents`.
pub async fn list(
    State(state): State<AppState>,
    access: TenantAccess,
) -> Result<Json<Vec<aegis_core::knowledge::DocumentInfo>>, ApiError> {
    state.aegis.knowledge().list(&access.scope).await.map(Json).map_err(ApiError::from)
}

/// `DELETE /api/tenants/{tenant}/documents/{document}` (source key or id).
pub async fn delete(
    State(state): State<AppState>,
    access: TenantAccess,
    Path((_, document)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.aegis.knowledge().delete(&access.scope, &document).await.map_err(ApiError::from)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body of a change of text-search configuration.
#[derive(Debug, Deserialize)]
pub struct TextSearchBody {
    /// One of PostgreSQL's configurations (e.g. `english`).
    pub config: String,
}

/// `GET /api/tenants/{tenant}/text-search`: `{"config": …}`.
pub async fn text_search(
    State(state): State<AppState>,
    access: TenantAccess,
) -> Result<Json<serde_json::Value>, ApiError> {
    let config = state.aegis.knowledge().text_search_config(&access.scope).await?;
    Ok(Json(serde_json::json!({ "config": config })))
}

/// `PUT /api/tenants/{tenant}/text-search` with `{"config": "english"}`: re-tokenises every
/// chunk; answers what changed.
pub async fn set_text_search(
    State(state): State<AppState>,
    access: TenantAccess,
    Json(body): Json<TextSearchBody>,
) -> Result<Json<TextSearchChange>, ApiError> {
    state.aegis.knowledge().set_text_search_config(&access.scope, &body.config).await.map(Json).map_err(ApiError::from)
}

/// Search parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// The query.
    pub q: String,
    /// Hits.
    pub k: Option<usize>,
    /// hybrid, vector or keyword.
    pub mode: Option<String>,
    /// Comma-separated documents (source keys or ids) to search within; `doc` as the
    /// CLI's flag.
    #[serde(alias = "doc")]
    pub documents: Option<String>,
}

/// `GET /api/tenants/{tenant}/search?q=…&k=…&mode=…&documents=a,b`.
pub async fn search(
    State(state): State<AppState>,
    access: TenantAccess,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Vec<Hit>>, ApiError> {
    let mode: SearchMode = query.mode.as_deref().unwrap_or("hybrid").parse().map_err(ApiError::bad_request)?;
    let documents =
        query.documents.map(|d| d.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect());
    let options = SearchOptions { k: query.k.unwrap_or(8), mode, documents };
    state.aegis.knowledge().search(&access.scope, &query.q, &options).await.map(Json).map_err(ApiError::from)
}

/// `GET /api/tenants/{tenant}/jobs/{id}`.
pub async fn job(
    State(state): State<AppState>,
    access: TenantAccess,
    Path((_, id)): Path<(String, Uuid)>,
) -> Result<Json<JobStatus>, ApiError> {
    let job = state.aegis.jobs().get(id).await.map_err(|e| ApiError::internal(&e))?;
    match job {
        Some(job) if job.tenant_id.as_deref() == Some(access.scope.tenant().as_str()) => Ok(Json(JobStatus::from(job))),
        _ => Err(ApiError::not_found(format!("no job {id}"))),
    }
}

/// A job as its tenant sees it: its state and outcome, without its payload (which names
/// where the server keeps the upload).
#[derive(Debug, Serialize)]
pub struct JobStatus {
    /// Id.
    pub id: Uuid,
    /// The queue (`kb.ingest`).
    pub queue: String,
    /// `queued`, `running`, `done`, `failed` or `dead`.
    pub status: String,
    /// Attempts started so far.
    pub attempts: i32,
    /// Attempt limit.
    pub max_attempts: i32,
    /// Why it failed (or why the last attempt did).
    pub last_error: Option<String>,
    /// What it did (the ingest outcomes).
    pub result: Option<serde_json::Value>,
    /// When it was enqueued.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it ended.
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<aegis_core::jobs::Job> for JobStatus {
    fn from(job: aegis_core::jobs::Job) -> Self {
        Self {
            id: job.id,
            queue: job.queue,
            status: job.status,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            last_error: job.last_error,
            result: job.result,
            created_at: job.created_at,
            finished_at: job.finished_at,
        }
    }
}
