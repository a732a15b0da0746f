//! The durable job queue and its workers.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use aegis_core::{
    Aegis,
    jobs::{Job, JobHandler, NewJob, Outcome, Worker, WorkerHandle, WorkerOptions},
};
use aegis_it::aegis;
use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

/// Records every job it runs, then behaves as told.
struct Recorder {
    queue: &'static str,
    seen: Arc<Mutex<Vec<(uuid::Uuid, i32)>>>,
    behaviour: Behaviour,
}

#[derive(Clone, Copy)]
enum Behaviour {
    Succeed,
    AlwaysRetry,
    HangOnFirstAttempt,
}

#[async_trait]
impl JobHandler for Recorder {
    fn queue(&self) -> &str {
        self.queue
    }
    async fn handle(&self, job: &Job) -> Outcome {
        self.seen.lock().unwrap().push((job.id, job.attempts));
        match self.behaviour {
            Behaviour::Succeed => {
                tokio::time::sleep(Duration::from_millis(2)).await;
                Outcome::Done(Some(serde_json::json!({ "ok": job.payload })))
            }
            Behaviour::AlwaysRetry => Outcome::Retry("upstream unavailable".into()),
            Behaviour::HangOnFirstAttempt if job.attempts == 1 => {
                std::future::pending::<()>().await;
                unreachable!()
            }
            Behaviour::HangOnFirstAttempt => Outcome::Done(None),
        }
    }
}

fn options(id: &str, lease: Duration) -> WorkerOptions {
    WorkerOptions {
        id: id.into(),
        kind: "test".into(),
        concurrency: 4,
        poll_interval: Duration::from_millis(20),
        heartbeat: Duration::from_millis(100),
        lease,
        leader_key: None,
        shutdown_grace: Duration::from_secs(5),
    }
}

fn start(aegis: &Aegis, id: &str, lease: Duration, handler: Recorder, shutdown: &CancellationToken) -> WorkerHandle {
    Worker::new(aegis.db().clone(), options(id, lease)).handler(Arc::new(handler)).spawn(shutdown.clone())
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn status(aegis: &Aegis, id: uuid::Uuid) -> String {
    aegis.jobs().get(id).await.unwrap().unwrap().status
}

#[tokio::test]
async fn the_same_source_key_enqueued_twice_runs_once() {
    let aegis = aegis().await;
    let job = NewJob::new("mail", "imap:uid:42", serde_json::json!({ "n": 1 }));
    let first = aegis.jobs().enqueue(&job).await.unwrap();
    let second = aegis.jobs().enqueue(&job).await.unwrap();
    assert!(first.created && !second.created);
    assert_eq!(first.id, second.id);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let shutdown = CancellationToken::new();
    let worker = start(
        &aegis,
        "w1",
        Duration::from_secs(30),
        Recorder { queue: "mail", seen: seen.clone(), behaviour: Behaviour::Succeed },
        &shutdown,
    );
    wait_for("the job to finish", async || status(&aegis, first.id).await == "done").await;
    // Replayed after completion: still the same finished job, not a new run.
    assert!(!aegis.jobs().enqueue(&job).await.unwrap().created);
    tokio::time::sleep(Duration::from_millis(200)).await;
    shutdown.cancel();
    worker.join().await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
    let done = aegis.jobs().get(first.id).await.unwrap().unwrap();
    assert_eq!(done.result, Some(serde_json::json!({ "ok": { "n": 1 } })));
    let beat: String = sqlx::query_scalar("SELECT status FROM public.worker_heartbeats WHERE worker_id = 'w1'")
        .fetch_one(aegis.db().pool())
        .await
        .unwrap();
    assert_eq!(beat, "stopped");
}

#[tokio::test]
async fn two_workers_never_claim_one_job() {
    let aegis = aegis().await;
    let mut ids = Vec::new();
    for i in 0..150 {
        ids.push(aegis.jobs().enqueue(&NewJob::new("bulk", format!("k{i}"), serde_json::json!(i))).await.unwrap().id);
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let shutdown = CancellationToken::new();
    let workers = [
        start(
            &aegis,
            "w1",
            Duration::from_secs(30),
            Recorder { queue: "bulk", seen: seen.clone(), behaviour: Behaviour::Succeed },
            &shutdown,
        ),
        start(
            &aegis,
            "w2",
            Duration::from_secs(30),
            Recorder { queue: "bulk", seen: seen.clone(), behaviour: Behaviour::Succeed },
            &shutdown,
        ),
    ];
    wait_for("all jobs", async || {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM public.jobs WHERE status = 'done'")
            .fetch_one(aegis.db().pool())
            .await
            .unwrap();
        done == 150
    })
    .await;
    shutdown.cancel();
    for w in workers {
        w.join().await.unwrap();
    }
    let mut counts: HashMap<uuid::Uuid, usize> = HashMap::new();
    for (id, _) in seen.lock().unwrap().iter() {
        *counts.entry(*id).or_default() += 1;
    }
    assert_eq!(counts.len(), 150);
    assert!(counts.values().all(|&n| n == 1), "a job ran twice");
    let by_worker: Vec<(String, i64)> =
        sqlx::query_as("SELECT worker_id, count(*) FROM public.job_attempts GROUP BY worker_id ORDER BY worker_id")
            .fetch_all(aegis.db().pool())
            .await
            .unwrap();
    assert_eq!(by_worker.iter().map(|r| r.1).sum::<i64>(), 150);
}

#[tokio::test]
async fn a_job_of_a_killed_worker_is_retried_by_another() {
    let aegis = aegis().await;
    let job = aegis.jobs().enqueue(&NewJob::new("ingest", "upload-1", serde_json::json!({}))).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let lease = Duration::from_secs(1);
    let crash = CancellationToken::new();
    let doomed = start(
        &aegis,
        "doomed",
        lease,
        Recorder { queue: "ingest", seen: seen.clone(), behaviour: Behaviour::HangOnFirstAttempt },
        &crash,
    );
    wait_for("the first attempt to start", async || !seen.lock().unwrap().is_empty()).await;
    doomed.abort(); // like kill -9: no outcome recorded, no lease renewal.
    let shutdown = CancellationToken::new();
    let rescuer = start(
        &aegis,
        "rescuer",
        lease,
        Recorder { queue: "ingest", seen: seen.clone(), behaviour: Behaviour::HangOnFirstAttempt },
        &shutdown,
    );
    wait_for("the retry to finish", async || status(&aegis, job.id).await == "done").await;
    shutdown.cancel();
    rescuer.join().await.unwrap();
    let attempts = aegis.jobs().attempts(job.id).await.unwrap();
    let summary: Vec<(i32, &str, Option<&str>)> =
        attempts.iter().map(|a| (a.attempt, a.worker_id.as_str(), a.outcome.as_deref())).collect();
    assert_eq!(summary, [(1, "doomed", Some("lease_expired")), (2, "rescuer", Some("done"))]);
}

#[tokio::test]
async fn a_job_that_keeps_failing_is_dead_lettered() {
    let aegis = aegis().await;
    let job = aegis.jobs().enqueue(&NewJob::new("flaky", "x", serde_json::json!({})).max_attempts(2)).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let shutdown = CancellationToken::new();
    let worker = start(
        &aegis,
        "w",
        Duration::from_secs(30),
        Recorder { queue: "flaky", seen: seen.clone(), behaviour: Behaviour::AlwaysRetry },
        &shutdown,
    );
    wait_for("the dead letter", async || status(&aegis, job.id).await == "dead").await;
    shutdown.cancel();
    worker.join().await.unwrap();
    let outcomes: Vec<Option<String>> =
        aegis.jobs().attempts(job.id).await.unwrap().into_iter().map(|a| a.outcome).collect();
    assert_eq!(outcomes, [Some("retry".into()), Some("dead".into())]);
    let dead = aegis.jobs().dead_letters("flaky").await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("upstream unavailable"));
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn outbox_keys_send_once() {
    let aegis = aegis().await;
    let a = aegis
        .jobs()
        .push_outbox("telegram", "reply:chat1:msg9", None, serde_json::json!({ "text": "hi" }))
        .await
        .unwrap();
    let b = aegis
        .jobs()
        .push_outbox("telegram", "reply:chat1:msg9", None, serde_json::json!({ "text": "hi" }))
        .await
        .unwrap();
    assert!(a.created && !b.created && a.id == b.id);
    let queue: String = aegis.jobs().get(a.id).await.unwrap().unwrap().queue;
    assert_eq!(queue, "outbox:telegram");
}

#[tokio::test]
async fn exactly_one_worker_leads_and_leadership_moves_on_shutdown() {
    let aegis = aegis().await;
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    let mut opts_a = options("lead-a", Duration::from_secs(30));
    opts_a.leader_key = Some(4242);
    let mut opts_b = options("lead-b", Duration::from_secs(30));
    opts_b.leader_key = Some(4242);
    let a = Worker::new(aegis.db().clone(), opts_a).spawn(stop_a.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = Worker::new(aegis.db().clone(), opts_b).spawn(stop_b.clone());
    wait_for("a leader", async || a.is_leader() || b.is_leader()).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(a.is_leader() ^ b.is_leader(), "exactly one leader");
    let (leader, follower, stop_leader) = if a.is_leader() { (a, b, stop_a) } else { (b, a, stop_b) };
    stop_leader.cancel();
    leader.join().await.unwrap();
    wait_for("the follower to take over", async || follower.is_leader()).await;
}
