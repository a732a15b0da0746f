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
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let mut ready = false;
    for _ in 0..200 {
        if let Ok(r) = http.get(&url).send().await
            && r.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "aegis serve never became ready");
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
