//! The embedded PostgreSQL manager, driven through the `aegis db` commands as separate
//! processes: a stale postmaster.pid after kill -9, a taken port, two processes starting
//! at once, and a clean stop.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use aegis_it::aegis_bin;
use sqlx::Connection;

struct Cluster {
    dir: PathBuf,
}

impl Cluster {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("aegis-it-embedded-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(aegis_bin());
        cmd.arg("--data-dir")
            .arg(&self.dir)
            .args(args)
            .env_remove("AEGIS_DATABASE_URL")
            .env_remove("AEGIS_DATABASE__URL");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "aegis {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn status(&self) -> serde_json::Value {
        serde_json::from_slice(&self.run(&["db", "status", "--json"]).stdout).unwrap()
    }

    fn pgdata(&self) -> PathBuf {
        self.dir.join("postgres/pgdata")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.run(&["db", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn can_query(url: &str) {
    let mut conn = sqlx::PgConnection::connect(url.trim()).await.unwrap();
    let n: i32 = sqlx::query_scalar("SELECT 41 + 1").fetch_one(&mut conn).await.unwrap();
    assert_eq!(n, 42);
    let ext: String = sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(ext.starts_with("0.") || ext.starts_with('1'), "{ext}");
}

fn pid_alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z")
}

#[tokio::test]
async fn recovers_from_a_stale_pid_file_after_kill_9() {
    let cluster = Cluster::new();
    cluster.ok(&["db", "start"]);
    let url = cluster.ok(&["db", "url"]);
    can_query(&url).await;
    let pid = cluster.status()["pid"].as_u64().unwrap();
    assert!(Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().success());
    for _ in 0..100 {
        if !pid_alive(pid) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(cluster.pgdata().join("postmaster.pid").exists(), "kill -9 leaves the lock file behind");
    let status = cluster.status();
    assert_eq!(status["state"], "stopped", "{status}");
    assert_eq!(status["stale_pid"].as_u64(), Some(pid));
    let started = cluster.ok(&["db", "start"]);
    assert!(started.contains("started"), "{started}");
    let new_pid = cluster.status()["pid"].as_u64().unwrap();
    assert_ne!(new_pid, pid);
    can_query(&cluster.ok(&["db", "url"])).await;
}

#[tokio::test]
async fn picks_another_port_when_the_preferred_one_is_taken() {
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let cluster = Cluster::new();
    let out = cluster.cmd(&["db", "start"]).env("AEGIS_DATABASE__EMBEDDED__PORT", taken.to_string()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let port = cluster.status()["port"].as_u64().unwrap();
    assert_ne!(port, u64::from(taken));
    let url = cluster.ok(&["db", "url"]);
    assert!(url.contains(&format!(":{port}/")), "{url}");
    can_query(&url).await;
    // Once the port is free again, the preferred port is used: the setting is applied.
    cluster.ok(&["db", "stop"]);
    drop(squatter);
    let out = cluster.cmd(&["db", "start"]).env("AEGIS_DATABASE__EMBEDDED__PORT", taken.to_string()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(cluster.status()["port"].as_u64(), Some(u64::from(taken)));
}

#[tokio::test]
async fn two_processes_starting_at_once_share_one_cluster() {
    let cluster = Cluster::new();
    let children: Vec<_> =
        (0..2).map(|_| cluster.cmd(&["db", "start"]).stdout(std::process::Stdio::piped()).spawn().unwrap()).collect();
    let outputs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        })
        .collect();
    let pid = cluster.status()["pid"].as_u64().unwrap();
    for out in &outputs {
        assert!(out.contains(&format!("pid {pid} ")), "{out}");
    }
    assert_eq!(outputs.iter().filter(|o| o.contains("already running")).count(), 1, "{outputs:?}");
    can_query(&cluster.ok(&["db", "url"])).await;
}

#[tokio::test]
async fn stops_cleanly_and_restarts_with_data_intact() {
    let cluster = Cluster::new();
    assert_eq!(cluster.status()["state"], "not_initialized");
    cluster.ok(&["db", "start"]);
    let url = cluster.ok(&["db", "url"]);
    let mut conn = sqlx::PgConnection::connect(url.trim()).await.unwrap();
    sqlx::raw_sql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let pid = cluster.status()["pid"].as_u64().unwrap();
    assert_eq!(cluster.ok(&["db", "stop"]).trim(), "stopped");
    assert!(!pid_alive(pid));
    assert!(!cluster.pgdata().join("postmaster.pid").exists());
    let status = cluster.run(&["db", "status", "--json"]);
    assert_eq!(status.status.code(), Some(3));
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["state"], "stopped");
    assert!(status["stale_pid"].is_null());
    assert_eq!(cluster.ok(&["db", "stop"]).trim(), "not running");
    assert!(!cluster.run(&["db", "url"]).status.success());
    cluster.ok(&["db", "start"]);
    let mut conn = sqlx::PgConnection::connect(cluster.ok(&["db", "url"]).trim()).await.unwrap();
    let v: String = sqlx::query_scalar("SELECT v FROM kept").fetch_one(&mut conn).await.unwrap();
    assert_eq!(v, "still here");
}
