//! Shared by the benchmarks: a throwaway embedded cluster and latency statistics.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use aegis_core::{config::Config, db::embedded::EmbeddedPostgres};
use secrecy::ExposeSecret;

/// A cluster in a temporary data directory, stopped and removed by [`Cluster::stop`].
pub struct Cluster {
    pub config: Config,
    pub url: String,
    embedded: EmbeddedPostgres,
}

impl Cluster {
    /// Starts one.
    pub async fn start() -> anyhow::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let data_dir = std::env::temp_dir().join(format!("aegis-bench-{}", std::process::id()));
        std::fs::create_dir_all(&data_dir)?;
        std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755))?;
        let mut config = Config { data_dir, ..Config::default() };
        config.workers.enabled = false;
        config.database.embedded.pg_bin = std::env::var_os("AEGIS_PG_BIN").map(PathBuf::from);
        let embedded = EmbeddedPostgres::prepare(&config).await?;
        let t0 = Instant::now();
        let running = embedded.start().await?;
        println!("cluster: PostgreSQL {} started in {}", embedded.binaries().version, ms(t0.elapsed()));
        let url = running.url.expose_secret().to_owned();
        config.database.url = Some(url.clone().into());
        Ok(Self { config, url, embedded })
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }

    /// The postmaster's pid (from `postmaster.pid`), for reading the cluster's CPU.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.embedded.pgdata().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Stops it and removes its directory.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.embedded.stop().await?;
        std::fs::remove_dir_all(&self.config.data_dir).ok();
        Ok(())
    }
}

/// `d` in milliseconds with one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// The `p` quantile of sorted values.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}
