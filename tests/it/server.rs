//! The HTTP server: health, readiness, the worker it runs, graceful shutdown.

use std::time::Duration;

use aegis_core::Aegis;
use aegis_it::{aegis_bin, config_for, fresh_db};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn health_readiness_and_graceful_shutdown() {
    let db = fresh_db().await;
    let mut config = config_for(&db);
    config.workers.enabled = true;
    config.workers.heartbeat_secs = 1;
    let aegis = Aegis::builder().config(config).build().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(aegis_server::launch_with_listener(aegis.clone(), listener, shutdown.clone()));
    let http = reqwest::Client::new();

    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body, serde_json::json!({ "database": true, "migrations_current": true }));

    // A database whose public migrations are behind is not ready.
    sqlx::query(
        "DELETE FROM public.schema_migrations WHERE version = (SELECT max(version) FROM public.schema_migrations)",
    )
    .execute(aegis.db().pool())
    .await
    .unwrap();
    let behind = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(behind.status(), 503);
    assert_eq!(http.get(format!("{base}/nope")).send().await.unwrap().status(), 404);

    let beats: i64 =
        sqlx::query_scalar("SELECT count(*) FROM public.worker_heartbeats WHERE kind = 'serve' AND status = 'running'")
            .fetch_one(aegis.db().pool())
            .await
            .unwrap();
    assert_eq!(beats, 1, "aegis serve runs a worker");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server).await.expect("shut down in time").unwrap().unwrap();
    let stopped: String = sqlx::query_scalar("SELECT status FROM public.worker_heartbeats WHERE kind = 'serve'")
        .fetch_one(aegis.db().pool())
        .await
        .unwrap();
    assert_eq!(stopped, "stopped");
}

#[tokio::test]
async fn the_serve_binary_answers_and_stops_on_sigterm() {
    let db = fresh_db().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = tokio::process::Command::new(aegis_bin())
        .args(["serve", "--database-url", &db.url, "--bind", &format!("127.0.0.1:{port}")])
        .kill_on_drop(true)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_ready(&reqwest::Client::new(), &format!("http://127.0.0.1:{port}")).await;
    let pid = child.id().unwrap();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let out = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
        .await
        .expect("exit after SIGTERM")
        .unwrap();
    assert!(out.status.success(), "{}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("aegis serving on http://127.0.0.1:{port}")), "says where it listens: {stderr}");
}

#[tokio::test]
async fn the_serve_binary_keeps_its_writers_backends_off_its_workers_cpus() {
    use aegis_core::{
        auth::{NewApiKey, Scope, reveal},
        cpus::{self, CpuSplit},
        db::BATCH_WRITERS_APPLICATION,
        tenancy::{Caller, NewTenant, TenantId, Tier},
    };
    let db = fresh_db().await;
    let aegis = Aegis::builder().config(config_for(&db)).build().await.unwrap();
    let op = Caller::system("test");
    let tenant = TenantId::parse("cpu_t").unwrap();
    aegis.tenants().create(&NewTenant { id: tenant.clone(), tier: Tier::Pro, name: None }, &op).await.unwrap();
    let key = NewApiKey { tenant, name: "k".into(), scopes: vec![Scope::Gateway], expires_at: None };
    let key = reveal(&aegis.api_keys().create(&key, &op).await.unwrap()).to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _child = tokio::process::Command::new(aegis_bin())
        .args(["serve", "--database-url", &db.url, "--bind", &format!("127.0.0.1:{port}")])
        .env("AEGIS_WORKERS__ENABLED", "false")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_ready(&http, &base).await;
    // A call no provider can answer still records its decision, through the writers.
    let body = serde_json::json!({"model": "intent:chat", "messages": [{"role": "user", "content": "hi"}]});
    let answer = http.post(format!("{base}/v1/chat/completions")).bearer_auth(&key).json(&body).send().await.unwrap();
    assert!(answer.status().is_client_error() || answer.status().is_server_error(), "{}", answer.status());
    // The backend shows in pg_stat_activity as it connects, and is moved just after.
    let expected = CpuSplit::of(cpus::allowed()).map_or_else(|| cpus::allowed().to_vec(), |s| s.database);
    let mut seen = None;
    for _ in 0..100 {
        let writer = sqlx::query_scalar::<_, i32>(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database() LIMIT 1",
        )
        .bind(BATCH_WRITERS_APPLICATION)
        .fetch_optional(aegis.db().pool())
        .await
        .unwrap();
        seen = writer.map(|pid| cpus::of_process(pid).expect("the backend's CPUs can be read"));
        if seen.as_ref() == Some(&expected) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let on = seen.expect("the batched writers connected");
    assert_eq!(on, expected, "the writer's backend runs on the database half (all CPUs when there is one)");
}

/// Polls `{base}/readyz` for up to 10 s; fails the test if it never answers 200.
async fn wait_until_ready(http: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("aegis serve never became ready");
}
