//! Ingest as a durable job: the server saves an upload under the data directory and
//! enqueues a `kb.ingest` job; a worker ingests it. Extraction failures end the job as
//! failed (retrying cannot help); database trouble is retried. The upload file is removed
//! once the job ends done or failed.

use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{IngestOutcome, Knowledge};
use crate::{
    jobs::{Enqueued, Job, JobError, JobHandler, Jobs, NewJob, Outcome},
    tenancy::{Caller, TenantId, Tenants},
};

/// The queue name.
pub const INGEST_QUEUE: &str = "kb.ingest";

/// What an ingest job carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestJob {
    /// The tenant.
    pub tenant: TenantId,
    /// The document's source key.
    pub source_key: String,
    /// Where the upload was saved.
    pub path: PathBuf,
    /// Who uploaded it.
    pub caller: Caller,
}

/// Enqueues the ingests of `uploads` (each an upload id, which makes a replayed upload one
/// job, and its job) in one transaction: all of them or none.
pub async fn enqueue_ingests(jobs: &Jobs, uploads: &[(String, IngestJob)]) -> Result<Vec<Enqueued>, JobError> {
    let new_jobs = uploads
        .iter()
        .map(|(upload_id, job)| {
            let payload = serde_json::to_value(job).map_err(|e| JobError::Invalid(e.to_string()))?;
            Ok(NewJob::new(INGEST_QUEUE, upload_id, payload).for_tenant(&job.tenant).max_attempts(3))
        })
        .collect::<Result<Vec<_>, JobError>>()?;
    jobs.enqueue_all(&new_jobs).await
}

/// Runs `kb.ingest` jobs.
#[derive(Debug, Clone)]
pub struct IngestHandler {
    /// The knowledge service.
    pub knowledge: Knowledge,
    /// Tenants, to make scopes.
    pub tenants: Tenants,
}

#[async_trait]
impl JobHandler for IngestHandler {
    fn queue(&self) -> &str {
        INGEST_QUEUE
    }

    async fn handle(&self, job: &Job) -> Outcome {
        let request: IngestJob = match serde_json::from_value(job.payload.clone()) {
            Ok(request) => request,
            Err(e) => return Outcome::Fail(format!("bad payload: {e}")),
        };
        let scope = match self.tenants.scope(&request.tenant, request.caller.clone()).await {
            Ok(scope) => scope,
            Err(crate::tenancy::TenancyError::NotFound(t)) => {
                return Outcome::Fail(format!("tenant {t} no longer exists"));
            }
            Err(e) => return Outcome::Retry(e.to_string()),
        };
        // One file, or an archive whose files are documents of their own. While a failure
        // may pass the job is tried again, with the upload kept (files stored already are
        // unchanged then).
        let files = vec![(request.source_key.clone(), request.path.clone())];
        let outcomes = self.knowledge.ingest_files(&scope, files, |_, _| {}).await;
        if let Some(IngestOutcome::Failed { source_key, error, .. }) =
            outcomes.iter().find(|o| matches!(o, IngestOutcome::Failed { transient: true, .. }))
        {
            return Outcome::Retry(format!("{source_key}: {error}"));
        }
        let _ = tokio::fs::remove_file(&request.path).await;
        match outcomes.as_slice() {
            [IngestOutcome::Failed { source_key, error, .. }] if *source_key == request.source_key => {
                Outcome::Fail(format!("{source_key}: {error}"))
            }
            [one] => Outcome::Done(serde_json::to_value(one).ok()),
            all => Outcome::Done(serde_json::to_value(all).ok()),
        }
    }
}
