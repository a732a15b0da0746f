//! The tenant's audit trail: runs and their steps, every model request and response stored
//! content-addressed ([`canonical`]), and the hash-chained `audit_logs` ([`chain`]). A run's
//! whole timeline is read back from the tenant's schema alone — no model is called again
//! and nothing touches the network.

pub mod canonical;
pub mod chain;
pub mod runs;

pub use chain::{AuditEvent, AuditRow, ChainBreak, ChainReport};
pub use runs::{RunRow, StepRow};

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::{db::DbError, tenancy::TenantScope};

/// An audit read failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// No such run.
    #[error("no run `{0}` in this tenant")]
    RunNotFound(Uuid),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for AuditError {
    fn from(err: sqlx::Error) -> Self {
        AuditError::Db(DbError::Sql(err))
    }
}

/// One step with its stored payloads.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineStep {
    /// The step.
    #[serde(flatten)]
    pub step: StepRow,
    /// The request exactly as stored (model calls).
    pub request: Option<Value>,
    /// The response exactly as stored (model calls).
    pub response: Option<Value>,
}

/// One run of a timeline.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineRun {
    /// The run.
    pub run: RunRow,
    /// Its steps.
    pub steps: Vec<TimelineStep>,
    /// Its audit events.
    pub events: Vec<AuditRow>,
}

/// A run and every run below it (delegations, boardroom members), in start order.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    /// The run asked for first, then the rest of its tree.
    pub runs: Vec<TimelineRun>,
}

/// Reads the whole timeline of the run tree that `run_id` belongs to.
pub async fn timeline(scope: &TenantScope, run_id: Uuid) -> Result<Timeline, AuditError> {
    let mut tx = scope.begin().await?;
    let run = runs::get_run(tx.conn(), run_id).await?.ok_or(AuditError::RunNotFound(run_id))?;
    let tree = runs::run_tree(tx.conn(), run.root_run_id).await?;
    let mut out = Vec::with_capacity(tree.len());
    for run in tree {
        let mut steps = Vec::new();
        for step in runs::steps(tx.conn(), run.id).await? {
            let request = match &step.request_hash {
                Some(h) => runs::payload(tx.conn(), h).await?,
                None => None,
            };
            let response = match &step.response_hash {
                Some(h) => runs::payload(tx.conn(), h).await?,
                None => None,
            };
            steps.push(TimelineStep { step, request, response });
        }
        let events = chain::for_run(tx.conn(), run.id).await?;
        out.push(TimelineRun { run, steps, events });
    }
    tx.commit().await?;
    Ok(Timeline { runs: out })
}

/// Verifies the tenant's audit chain.
pub async fn verify(scope: &TenantScope) -> Result<ChainReport, AuditError> {
    let mut tx = scope.begin().await?;
    let report = chain::verify(tx.conn()).await?;
    tx.commit().await?;
    Ok(report)
}

/// The tenant's most recent runs.
pub async fn recent_runs(scope: &TenantScope, limit: i64) -> Result<Vec<RunRow>, AuditError> {
    let mut tx = scope.begin().await?;
    let rows = runs::recent_runs(tx.conn(), limit).await?;
    tx.commit().await?;
    Ok(rows)
}
