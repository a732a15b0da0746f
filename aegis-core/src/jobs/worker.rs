//! The worker loop: claims jobs for its handlers' queues with bounded concurrency, renews
//! leases while a handler runs, beats a heartbeat row, optionally holds an advisory-lock
//! leadership, and on shutdown stops claiming and lets running jobs finish.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use sqlx::{Connection, PgConnection};
use tokio::{
    sync::Semaphore,
    task::{JoinHandle, JoinSet},
};
use tokio_util::sync::CancellationToken;

use super::{Job, JobError, Jobs, Outcome};
use crate::db::Database;

/// Handles the jobs of one queue.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// The queue it serves.
    fn queue(&self) -> &str;
    /// Runs one job. A panic counts as a retryable failure.
    async fn handle(&self, job: &Job) -> Outcome;
}

/// Work a worker repeats on a period (sweeps). With leadership configured, only the
/// leader runs it.
#[async_trait]
pub trait PeriodicTask: Send + Sync + 'static {
    /// Its name, for logs.
    fn name(&self) -> &str;
    /// One run.
    async fn run(&self);
}

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Unique id of this worker (recorded in heartbeats and attempts).
    pub id: String,
    /// What kind of worker (for operators).
    pub kind: String,
    /// Jobs run at once.
    pub concurrency: usize,
    /// Sleep between polls of an empty queue.
    pub poll_interval: Duration,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Lease of a claimed job; renewed every third of it while the handler runs.
    pub lease: Duration,
    /// Advisory-lock key for leadership among workers of this kind, if any.
    pub leader_key: Option<i64>,
    /// How long shutdown waits for running jobs.
    pub shutdown_grace: Duration,
}

impl WorkerOptions {
    /// Options from the `[workers]` configuration.
    pub fn from_config(config: &crate::config::WorkerConfig, kind: &str) -> Self {
        Self {
            id: format!("{kind}-{}-{}", hostname(), uuid::Uuid::now_v7().simple()),
            kind: kind.to_owned(),
            concurrency: config.concurrency,
            poll_interval: Duration::from_millis(config.poll_interval_ms),
            heartbeat: Duration::from_secs(config.heartbeat_secs.max(1)),
            lease: Duration::from_secs(config.lease_secs.max(1)),
            leader_key: None,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_owned()).unwrap_or_else(|_| "localhost".into())
}

/// A worker before it runs.
pub struct Worker {
    db: Database,
    jobs: Jobs,
    options: WorkerOptions,
    handlers: HashMap<String, Arc<dyn JobHandler>>,
    periodic: Vec<(Duration, Arc<dyn PeriodicTask>)>,
}

/// A running worker.
#[derive(Debug)]
pub struct WorkerHandle {
    id: String,
    leader: Arc<AtomicBool>,
    task: JoinHandle<Result<(), JobError>>,
}

impl WorkerHandle {
    /// The worker's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether it currently holds leadership.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// Waits for the worker to stop (after its shutdown token was cancelled).
    pub async fn join(self) -> Result<(), JobError> {
        self.task.await.map_err(|e| JobError::Invalid(format!("worker task failed: {e}")))?
    }

    /// Stops the task at once, as a crash would: nothing is finished or recorded.
    pub fn abort(&self) {
        self.task.abort();
    }
}

impl Worker {
    /// A worker with no handlers yet.
    pub fn new(db: Database, options: WorkerOptions) -> Self {
        Self { jobs: Jobs::new(db.clone()), db, options, handlers: HashMap::new(), periodic: Vec::new() }
    }

    /// Adds a handler for its queue.
    pub fn handler(mut self, handler: Arc<dyn JobHandler>) -> Self {
        self.handlers.insert(handler.queue().to_owned(), handler);
        self
    }

    /// Adds a task run every `every` (by the leader only, when leadership is configured).
    pub fn periodic(mut self, every: Duration, task: Arc<dyn PeriodicTask>) -> Self {
        self.periodic.push((every, task));
        self
    }

    /// Starts the loop; it stops when `shutdown` is cancelled.
    pub fn spawn(self, shutdown: CancellationToken) -> WorkerHandle {
        let id = self.options.id.clone();
        let leader = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(self.run(shutdown, leader.clone()));
        WorkerHandle { id, leader, task }
    }

    async fn run(self, shutdown: CancellationToken, leader: Arc<AtomicBool>) -> Result<(), JobError> {
        let this = Arc::new(self);
        this.beat("running", false).await?;
        let beats = tokio::spawn(this.clone().heartbeat_loop(shutdown.clone(), leader.clone()));
        let periodic: Vec<_> = this
            .periodic
            .iter()
            .map(|(every, task)| {
                tokio::spawn(periodic_loop(
                    *every,
                    task.clone(),
                    this.options.leader_key.is_some(),
                    leader.clone(),
                    shutdown.clone(),
                ))
            })
            .collect();
        let queues: Vec<String> = this.handlers.keys().cloned().collect();
        let permits = Arc::new(Semaphore::new(this.options.concurrency));
        // Running jobs belong to this task: if it is aborted (a crash), they stop with it.
        let mut running = JoinSet::new();
        while !shutdown.is_cancelled() {
            while running.try_join_next().is_some() {}
            let Ok(permit) = permits.clone().acquire_owned().await else { break };
            let claimed = if queues.is_empty() {
                Ok(None)
            } else {
                this.jobs.claim(&queues, &this.options.id, this.options.lease).await
            };
            match claimed {
                Ok(Some(job)) => {
                    let worker = this.clone();
                    running.spawn(async move {
                        worker.process(job).await;
                        drop(permit);
                    });
                }
                Ok(None) => {
                    drop(permit);
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(this.options.poll_interval) => {}
                    }
                }
                Err(err) => {
                    drop(permit);
                    tracing::error!(worker = %this.options.id, error = %err, "claiming jobs failed");
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(this.options.poll_interval * 4) => {}
                    }
                }
            }
        }
        let _ = this.beat("stopping", leader.load(Ordering::Relaxed)).await;
        let all = u32::try_from(this.options.concurrency).unwrap_or(u32::MAX);
        if tokio::time::timeout(this.options.shutdown_grace, permits.acquire_many(all)).await.is_err() {
            tracing::warn!(worker = %this.options.id, "shutdown grace ran out with jobs still running; their leases will expire");
        }
        running.shutdown().await;
        let _ = beats.await;
        for task in periodic {
            let _ = task.await;
        }
        leader.store(false, Ordering::Relaxed);
        this.beat("stopped", false).await
    }

    async fn process(&self, job: Job) {
        let handler = match self.handlers.get(&job.queue) {
            Some(h) => h.clone(),
            None => return,
        };
        let renew_every = self.options.lease / 3;
        let run = {
            let job = job.clone();
            // Spawned so a panic becomes an outcome; aborted with this task on a crash.
            tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move { handler.handle(&job).await }))
        };
        tokio::pin!(run);
        let outcome = loop {
            tokio::select! {
                result = &mut run => break result.unwrap_or_else(|e| Outcome::Retry(format!("handler panicked: {e}"))),
                () = tokio::time::sleep(renew_every) => {
                    match self.jobs.renew_lease(&job, &self.options.id, self.options.lease).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(job = %job.id, "lost the lease of a running job"),
                        Err(e) => tracing::warn!(job = %job.id, error = %e, "could not renew a lease"),
                    }
                }
            }
        };
        if let Err(err) = self.jobs.finish(&job, &self.options.id, outcome).await {
            tracing::error!(job = %job.id, error = %err, "could not record a job's outcome; its lease will expire");
        }
    }

    async fn heartbeat_loop(self: Arc<Self>, shutdown: CancellationToken, leader: Arc<AtomicBool>) {
        let mut lock_conn: Option<PgConnection> = None;
        loop {
            if let Some(key) = self.options.leader_key {
                let is_leader = self.hold_leadership(key, &mut lock_conn).await;
                leader.store(is_leader, Ordering::Relaxed);
            }
            if let Err(e) = self.beat("running", leader.load(Ordering::Relaxed)).await {
                tracing::warn!(worker = %self.options.id, error = %e, "heartbeat failed");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.options.heartbeat) => {}
            }
        }
        if let Some(conn) = lock_conn {
            // Closing the dedicated connection releases the lock.
            let _ = conn.close().await;
        }
    }

    /// Keeps (or tries to take) the session-level advisory lock. The lock lives on a
    /// connection detached from the pool, so it can never leak to another pool user: when
    /// the worker stops or crashes, the connection closes and the lock goes with it.
    async fn hold_leadership(&self, key: i64, conn: &mut Option<PgConnection>) -> bool {
        if let Some(held) = conn {
            if sqlx::query("SELECT 1").execute(&mut *held).await.is_ok() {
                return true;
            }
            // The connection died, and the lock with it.
            *conn = None;
        }
        let Ok(pooled) = self.db.pool().acquire().await else { return false };
        let mut fresh = pooled.detach();
        let won: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut fresh)
            .await
            .unwrap_or(false);
        if won {
            *conn = Some(fresh);
        } else {
            let _ = fresh.close().await;
        }
        won
    }

    async fn beat(&self, status: &str, is_leader: bool) -> Result<(), JobError> {
        sqlx::query(
            "INSERT INTO public.worker_heartbeats (worker_id, kind, host, pid, started_at, last_beat_at, status, is_leader) \
             VALUES ($1, $2, $3, $4, now(), now(), $5, $6) \
             ON CONFLICT (worker_id) DO UPDATE SET last_beat_at = now(), status = $5, is_leader = $6",
        )
        .bind(&self.options.id)
        .bind(&self.options.kind)
        .bind(hostname())
        .bind(i32::try_from(std::process::id()).unwrap_or(0))
        .bind(status)
        .bind(is_leader)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }
}

async fn periodic_loop(
    every: Duration,
    task: Arc<dyn PeriodicTask>,
    needs_leader: bool,
    leader: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(every) => {}
        }
        if !needs_leader || leader.load(Ordering::Relaxed) {
            tracing::debug!(task = task.name(), "periodic task");
            task.run().await;
        }
    }
}
