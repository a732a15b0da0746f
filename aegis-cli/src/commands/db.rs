//! `aegis db start | stop | status | url`.

use crate::output::outln;
use std::process::ExitCode;

use aegis_core::{
    config::Config,
    db::embedded::{ClusterStatus, EmbeddedPostgres},
};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::{cli::DbAction, output};

pub async fn run(config: &Config, action: DbAction) -> anyhow::Result<ExitCode> {
    if config.database.url.is_some() {
        anyhow::bail!("a database URL is configured: AEGIS manages only its embedded cluster (unset database.url)");
    }
    let cluster = EmbeddedPostgres::prepare(config).await?;
    match action {
        DbAction::Start => {
            let running = cluster.start().await?;
            let verb = if running.started_now { "started" } else { "already running" };
            outln!(
                "PostgreSQL {} {verb}: pid {} on 127.0.0.1:{}",
                cluster.binaries().version,
                running.pid,
                running.port
            );
        }
        DbAction::Stop => {
            let stopped = cluster.stop().await?;
            outln!("{}", if stopped { "stopped" } else { "not running" });
        }
        DbAction::Status { json } => {
            let status = cluster.status();
            let pgdata = cluster.pgdata().display().to_string();
            let value = match &status {
                ClusterStatus::NotInitialized => json!({ "state": "not_initialized", "pgdata": pgdata }),
                ClusterStatus::Stopped { stale_pid } => {
                    json!({ "state": "stopped", "stale_pid": stale_pid, "pgdata": pgdata })
                }
                ClusterStatus::Running { pid, port } => {
                    json!({ "state": "running", "pid": pid, "port": port, "pgdata": pgdata })
                }
            };
            if json {
                output::json(&value)?;
            } else {
                match status {
                    ClusterStatus::NotInitialized => outln!("not initialized ({pgdata})"),
                    ClusterStatus::Stopped { stale_pid: Some(pid) } => {
                        outln!(
                            "stopped, with a stale postmaster.pid (pid {pid}) that the next start removes ({pgdata})"
                        );
                    }
                    ClusterStatus::Stopped { stale_pid: None } => outln!("stopped ({pgdata})"),
                    ClusterStatus::Running { pid, port } => {
                        outln!("running: pid {pid} on 127.0.0.1:{port} ({pgdata})")
                    }
                }
            }
            if !matches!(status, ClusterStatus::Running { .. }) {
                return Ok(ExitCode::from(3));
            }
        }
        DbAction::Url => outln!("{}", cluster.url()?.expose_secret()),
    }
    Ok(ExitCode::SUCCESS)
}
