//! Durable jobs: the one mechanism for work that happens later or elsewhere (inbox events,
//! uploads to ingest, outbound messages, sweeps).
//!
//! A job is unique by `(queue, source_key)`, so the same event enqueued twice is one job.
//! Workers claim with `FOR UPDATE SKIP LOCKED` and hold a lease; a worker that dies leaves
//! its job to be claimed again once the lease runs out. Every attempt is recorded in
//! `public.job_attempts`, and every job ends `done`, `failed` (a permanent error) or `dead`
//! (out of attempts). Lease times use the database clock, the one clock all processes share.
//!
//! The outbox is the same table on queues named `outbox:<transport>`, keyed by the
//! idempotency key: see [`Jobs::push_outbox`].

mod worker;

pub use worker::{JobHandler, PeriodicTask, Worker, WorkerHandle, WorkerOptions};

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    db::{Database, DbError},
    tenancy::TenantId,
};

/// A job-queue failure.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A queue name or source key is empty.
    #[error("invalid job: {0}")]
    Invalid(String),
}

impl From<sqlx::Error> for JobError {
    fn from(err: sqlx::Error) -> Self {
        JobError::Db(DbError::Sql(err))
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The queue (handlers register per queue).
    pub queue: String,
    /// The stable id of what caused the job (an update id, a message id, an upload id).
    pub source_key: String,
    /// The tenant it concerns, if any.
    pub tenant: Option<TenantId>,
    /// Handler input.
    pub payload: serde_json::Value,
    /// Attempts before the job is dead-lettered.
    pub max_attempts: i32,
    /// Not before this delay.
    pub delay: Duration,
}

impl NewJob {
    /// A job with five attempts, due now.
    pub fn new(queue: impl Into<String>, source_key: impl Into<String>, payload: serde_json::Value) -> Self {
        Self {
            queue: queue.into(),
            source_key: source_key.into(),
            tenant: None,
            payload,
            max_attempts: 5,
            delay: Duration::ZERO,
        }
    }

    /// Attaches a tenant.
    pub fn for_tenant(mut self, tenant: &TenantId) -> Self {
        self.tenant = Some(tenant.clone());
        self
    }

    /// Sets the attempt limit.
    pub fn max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = n;
        self
    }
}

/// The result of enqueueing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    /// The job's id (the existing one for a duplicate).
    pub id: Uuid,
    /// False when a job with the same source key existed already.
    pub created: bool,
}

/// A job as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Job {
    /// Id.
    pub id: Uuid,
    /// Queue.
    pub queue: String,
    /// Source key.
    pub source_key: String,
    /// Tenant.
    pub tenant_id: Option<String>,
    /// Handler input.
    pub payload: serde_json::Value,
    /// `queued`, `running`, `done`, `failed` or `dead`.
    pub status: String,
    /// Attempts started so far.
    pub attempts: i32,
    /// Attempt limit.
    pub max_attempts: i32,
    /// The last error.
    pub last_error: Option<String>,
    /// Handler output.
    pub result: Option<serde_json::Value>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// One recorded attempt.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct JobAttempt {
    /// Attempt number, from 1.
    pub attempt: i32,
    /// The worker that ran it.
    pub worker_id: String,
    /// How it ended (`None` while running).
    pub outcome: Option<String>,
    /// Its error.
    pub error: Option<String>,
}

/// How a handler's run ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Success, with an optional result.
    Done(Option<serde_json::Value>),
    /// A transient failure: retry with backoff while attempts remain.
    Retry(String),
    /// A permanent failure: stop now.
    Fail(String),
}

/// Inserts `job` on `conn` unless one with the same `(queue, source_key)` exists.
async fn insert(conn: &mut sqlx::PgConnection, job: &NewJob) -> Result<Enqueued, JobError> {
    if job.queue.is_empty() || job.source_key.is_empty() {
        return Err(JobError::Invalid("queue and source_key must not be empty".into()));
    }
    if job.max_attempts < 1 {
        return Err(JobError::Invalid("max_attempts must be at least 1".into()));
    }
    let now = Utc::now();
    let id = Uuid::now_v7();
    let delay = chrono::Duration::from_std(job.delay).unwrap_or_default();
    let created: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO public.jobs (id, queue, source_key, tenant_id, payload, max_attempts, run_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (queue, source_key) DO NOTHING RETURNING id",
    )
    .bind(id)
    .bind(&job.queue)
    .bind(&job.source_key)
    .bind(job.tenant.as_ref().map(TenantId::as_str))
    .bind(&job.payload)
    .bind(job.max_attempts)
    .bind(now + delay)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = created {
        return Ok(Enqueued { id, created: true });
    }
    let existing: Uuid = sqlx::query_scalar("SELECT id FROM public.jobs WHERE queue = $1 AND source_key = $2")
        .bind(&job.queue)
        .bind(&job.source_key)
        .fetch_one(&mut *conn)
        .await?;
    Ok(Enqueued { id: existing, created: false })
}

/// The job service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Jobs {
    db: Database,
}

const JOB_COLUMNS: &str = "id, queue, source_key, tenant_id, payload, status, attempts, max_attempts, last_error, result, created_at, finished_at";

impl Jobs {
    /// A service over `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Enqueues a job unless one with the same `(queue, source_key)` exists.
    #[tracing::instrument(skip_all, fields(queue = %job.queue))]
    pub async fn enqueue(&self, job: &NewJob) -> Result<Enqueued, JobError> {
        let mut conn = self.db.pool().acquire().await?;
        insert(&mut conn, job).await
    }

    /// Enqueues every job of `jobs` (each unless one with its `(queue, source_key)` exists)
    /// in one transaction: all of them or, on an error, none.
    #[tracing::instrument(skip_all, fields(jobs = jobs.len()))]
    pub async fn enqueue_all(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>, JobError> {
        let mut tx = self.db.begin_platform().await?;
        let mut enqueued = Vec::with_capacity(jobs.len());
        for job in jobs {
            enqueued.push(insert(&mut tx, job).await?);
        }
        tx.commit().await?;
        Ok(enqueued)
    }

    /// Queues an outbound effect under an idempotency key: pushing the same key twice sends
    /// once. `transport` names the sender (`telegram`, `email`, …).
    pub async fn push_outbox(
        &self,
        transport: &str,
        idempotency_key: &str,
        tenant: Option<&TenantId>,
        payload: serde_json::Value,
    ) -> Result<Enqueued, JobError> {
        let mut job = NewJob::new(format!("outbox:{transport}"), idempotency_key, payload);
        job.tenant = tenant.cloned();
        self.enqueue(&job).await
    }

    /// A job by id.
    pub async fn get(&self, id: Uuid) -> Result<Option<Job>, JobError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM public.jobs WHERE id = $1");
        Ok(sqlx::query_as(&sql).bind(id).fetch_optional(self.db.pool()).await?)
    }

    /// The attempts of a job, oldest first.
    pub async fn attempts(&self, id: Uuid) -> Result<Vec<JobAttempt>, JobError> {
        Ok(sqlx::query_as(
            "SELECT attempt, worker_id, outcome, error FROM public.job_attempts WHERE job_id = $1 ORDER BY attempt",
        )
        .bind(id)
        .fetch_all(self.db.pool())
        .await?)
    }

    /// Claims the next due job of `queues` for `worker_id`, leased for `lease`. A job whose
    /// lease ran out is claimed again (its previous attempt is recorded as
    /// `lease_expired`); one that has no attempts left is dead-lettered instead.
    #[tracing::instrument(skip_all)]
    pub async fn claim(&self, queues: &[String], worker_id: &str, lease: Duration) -> Result<Option<Job>, JobError> {
        self.expire_leases(queues).await?;
        let lease_secs = lease.as_secs_f64();
        let mut tx = self.db.begin_platform().await?;
        let sql = format!(
            "UPDATE public.jobs SET status = 'running', attempts = attempts + 1, locked_by = $2, \
               locked_until = now() + make_interval(secs => $3), updated_at = now() \
             WHERE id = (SELECT id FROM public.jobs WHERE queue = ANY($1) AND status = 'queued' AND run_at <= now() \
                         ORDER BY run_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING {JOB_COLUMNS}"
        );
        let job: Option<Job> =
            sqlx::query_as(&sql).bind(queues).bind(worker_id).bind(lease_secs).fetch_optional(&mut *tx).await?;
        if let Some(job) = &job {
            sqlx::query(
                "INSERT INTO public.job_attempts (job_id, attempt, worker_id, started_at) VALUES ($1, $2, $3, now())",
            )
            .bind(job.id)
            .bind(job.attempts)
            .bind(worker_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await.map_err(DbError::from)?;
        Ok(job)
    }

    /// Returns jobs whose worker stopped renewing its lease to the queue (or to the dead
    /// letters when out of attempts).
    async fn expire_leases(&self, queues: &[String]) -> Result<(), JobError> {
        let mut tx = self.db.begin_platform().await?;
        let expired: Vec<(Uuid, i32, bool)> = sqlx::query_as(
            "UPDATE public.jobs SET \
               status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
               last_error = 'lease expired: the worker stopped before finishing', \
               finished_at = CASE WHEN attempts >= max_attempts THEN now() END, \
               locked_by = NULL, locked_until = NULL, updated_at = now() \
             WHERE id IN (SELECT id FROM public.jobs WHERE queue = ANY($1) AND status = 'running' AND locked_until < now() \
                          FOR UPDATE SKIP LOCKED) \
             RETURNING id, attempts, status = 'dead'",
        )
        .bind(queues)
        .fetch_all(&mut *tx)
        .await?;
        for (id, attempt, dead) in &expired {
            tracing::warn!(job = %id, attempt, dead, "job lease expired");
            sqlx::query(
                "UPDATE public.job_attempts SET finished_at = now(), outcome = $3, error = 'lease expired' \
                 WHERE job_id = $1 AND attempt = $2 AND finished_at IS NULL",
            )
            .bind(id)
            .bind(attempt)
            .bind(if *dead { "dead" } else { "lease_expired" })
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await.map_err(DbError::from)?;
        Ok(())
    }

    /// Extends the lease of a job this worker holds. Returns false if it lost the job.
    pub async fn renew_lease(&self, job: &Job, worker_id: &str, lease: Duration) -> Result<bool, JobError> {
        let renewed = sqlx::query(
            "UPDATE public.jobs SET locked_until = now() + make_interval(secs => $3), updated_at = now() \
             WHERE id = $1 AND locked_by = $2 AND status = 'running' AND attempts = $4",
        )
        .bind(job.id)
        .bind(worker_id)
        .bind(lease.as_secs_f64())
        .bind(job.attempts)
        .execute(self.db.pool())
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Records how an attempt ended. Ignored (returns false) when the worker no longer
    /// holds the job, e.g. after its lease expired and another worker took it.
    #[tracing::instrument(skip_all, fields(job = %job.id))]
    pub async fn finish(&self, job: &Job, worker_id: &str, outcome: Outcome) -> Result<bool, JobError> {
        let (status, attempt_outcome, error, result, backoff_secs) = match outcome {
            Outcome::Done(result) => ("done", "done", None, result, 0.0),
            Outcome::Fail(error) => ("failed", "failed", Some(error), None, 0.0),
            Outcome::Retry(error) if job.attempts >= job.max_attempts => ("dead", "dead", Some(error), None, 0.0),
            Outcome::Retry(error) => ("queued", "retry", Some(error), None, retry_backoff(job.attempts).as_secs_f64()),
        };
        let mut tx = self.db.begin_platform().await?;
        let updated = sqlx::query(
            "UPDATE public.jobs SET status = $3, last_error = COALESCE($4, last_error), result = $5, \
               run_at = now() + make_interval(secs => $6), locked_by = NULL, locked_until = NULL, updated_at = now(), \
               finished_at = CASE WHEN $3 IN ('done', 'failed', 'dead') THEN now() END \
             WHERE id = $1 AND locked_by = $2 AND status = 'running' AND attempts = $7",
        )
        .bind(job.id)
        .bind(worker_id)
        .bind(status)
        .bind(&error)
        .bind(&result)
        .bind(backoff_secs)
        .bind(job.attempts)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            tracing::warn!(job = %job.id, "finished a job this worker no longer holds; outcome dropped");
            return Ok(false);
        }
        sqlx::query("UPDATE public.job_attempts SET finished_at = now(), outcome = $3, error = $4 WHERE job_id = $1 AND attempt = $2")
            .bind(job.id)
            .bind(job.attempts)
            .bind(attempt_outcome)
            .bind(&error)
            .execute(&mut *tx)
            .await?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(true)
    }

    /// Dead-lettered jobs of a queue, newest first.
    pub async fn dead_letters(&self, queue: &str) -> Result<Vec<Job>, JobError> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM public.jobs WHERE queue = $1 AND status = 'dead' ORDER BY updated_at DESC"
        );
        Ok(sqlx::query_as(&sql).bind(queue).fetch_all(self.db.pool()).await?)
    }
}

/// Exponential backoff with jitter: ~1 s, 2 s, 4 s … capped at 5 minutes.
fn retry_backoff(attempt: i32) -> Duration {
    use rand::Rng;
    let base = 2f64.powi(attempt.clamp(1, 9) - 1).min(300.0);
    Duration::from_secs_f64(base * rand::rng().random_range(0.5..1.0))
}
