//! The embedded PostgreSQL 16 + pgvector cluster that AEGIS runs when no database URL is
//! configured.
//!
//! Layout under `<data_dir>/postgres`: `pgdata/` (the cluster, owned by the user that runs
//! PostgreSQL), `password` (the generated password of the `aegis` and `aegis_super` roles,
//! mode 0600) and `lock` (held while starting or stopping, so that two processes starting
//! at once end with one cluster). The cluster listens on 127.0.0.1 only, with password
//! authentication and no Unix socket.

mod binaries;
mod pidfile;
mod run_as;

pub use binaries::{PgBinaries, PgWheel, locate};
pub use run_as::RunAs;

use std::{
    fs::File,
    io::Write,
    net::TcpListener,
    path::{Path, PathBuf},
    process::Output,
    time::Duration,
};

use rand::Rng;
use secrecy::SecretString;

use crate::{config::Config, db::DbError};

/// The character type of the clusters AEGIS creates (see `initdb`).
const UNICODE_CTYPE: &str = "C.UTF-8";

/// The superuser created by initdb (used only to bootstrap).
pub const SUPERUSER: &str = "aegis_super";
/// The owner role AEGIS connects as.
pub const OWNER: &str = "aegis";
/// The database AEGIS uses.
pub const DATABASE: &str = "aegis";

/// A managed local cluster.
#[derive(Debug, Clone)]
pub struct EmbeddedPostgres {
    root: PathBuf,
    pgdata: PathBuf,
    binaries: PgBinaries,
    run_as: RunAs,
    preferred_port: u16,
}

/// Whether the cluster runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterStatus {
    /// No cluster has been created in this data directory.
    NotInitialized,
    /// Created but not running (a stale lock file, if any, is reported).
    Stopped {
        /// A `postmaster.pid` left by a process that is gone.
        stale_pid: Option<u32>,
    },
    /// Running.
    Running {
        /// The postmaster's pid.
        pid: u32,
        /// The port it listens on (127.0.0.1).
        port: u16,
    },
}

/// A started cluster.
#[derive(Debug, Clone)]
pub struct RunningCluster {
    /// The owner role's URL.
    pub url: SecretString,
    /// The port.
    pub port: u16,
    /// The postmaster's pid.
    pub pid: u32,
    /// False when it was already running.
    pub started_now: bool,
}

fn err(msg: impl Into<String>) -> DbError {
    DbError::Embedded(msg.into())
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> DbError {
    err(format!("{what} `{}`: {e}", path.display()))
}

impl EmbeddedPostgres {
    /// Finds (or installs) binaries and the user to run them as. Creates nothing else.
    pub async fn prepare(config: &Config) -> Result<Self, DbError> {
        let config = config.clone();
        tokio::task::spawn_blocking(move || Self::prepare_blocking(&config))
            .await
            .map_err(|e| err(format!("prepare task failed: {e}")))?
    }

    fn prepare_blocking(config: &Config) -> Result<Self, DbError> {
        let embedded = &config.database.embedded;
        let run_as = RunAs::resolve(&embedded.system_user)?;
        let cache = config.cache_dir();
        let wheel: PgWheel =
            embedded.pg_wheel.parse().map_err(|e: String| err(format!("database.embedded.pg_wheel: {e}")))?;
        let binaries = locate(embedded.pg_bin.as_deref(), &cache, &wheel)?;
        run_as.check_reachable(&binaries.bin_dir)?;
        let root = absolute(&config.data_dir.join("postgres"))?;
        Ok(Self { pgdata: root.join("pgdata"), root, binaries, run_as, preferred_port: embedded.port })
    }

    /// The cluster directory.
    pub fn pgdata(&self) -> &Path {
        &self.pgdata
    }

    /// The binaries in use.
    pub fn binaries(&self) -> &PgBinaries {
        &self.binaries
    }

    /// Reports whether the cluster runs, without changing anything.
    pub fn status(&self) -> ClusterStatus {
        if !self.pgdata.join("PG_VERSION").exists() {
            return ClusterStatus::NotInitialized;
        }
        match pidfile::read(&self.pgdata) {
            Some(p) if pidfile::is_live_postmaster(p.pid, &self.pgdata) => {
                ClusterStatus::Running { pid: p.pid, port: p.port }
            }
            Some(p) => ClusterStatus::Stopped { stale_pid: Some(p.pid) },
            None => ClusterStatus::Stopped { stale_pid: None },
        }
    }

    /// The owner URL of the running cluster.
    pub fn url(&self) -> Result<SecretString, DbError> {
        match self.status() {
            ClusterStatus::Running { port, .. } => Ok(self.owner_url(port)?),
            other => Err(err(format!("the cluster in `{}` is not running ({other:?})", self.pgdata.display()))),
        }
    }

    /// Starts the cluster, creating it first when needed; returns the running one if it is
    /// already up. Recovers from a stale `postmaster.pid` and a taken port.
    pub async fn start(&self) -> Result<RunningCluster, DbError> {
        let this = self.clone();
        let (lock, started) = tokio::task::spawn_blocking(move || {
            let lock = this.lock()?;
            this.start_blocking().map(|started| (lock, started))
        })
        .await
        .map_err(|e| err(format!("start task failed: {e}")))??;
        // Still under the lock, and also when it was already running: a crash between
        // initdb and bootstrap is repaired here.
        let bootstrapped = self.bootstrap(started.port).await;
        drop(lock);
        bootstrapped.map(|()| started)
    }

    /// Stops the cluster (fast shutdown: open transactions roll back). Returns false when it
    /// was not running.
    pub async fn stop(&self) -> Result<bool, DbError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.stop_blocking())
            .await
            .map_err(|e| err(format!("stop task failed: {e}")))?
    }

    fn lock(&self) -> Result<File, DbError> {
        std::fs::create_dir_all(&self.root).map_err(|e| io_err("cannot create", &self.root, e))?;
        if let RunAs::SystemUser { .. } = self.run_as {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o711))
                .map_err(|e| io_err("chmod", &self.root, e))?;
            self.run_as.check_reachable(&self.root)?;
        }
        let path = self.root.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_err("cannot open", &path, e))?;
        file.lock().map_err(|e| io_err("cannot lock", &path, e))?;
        Ok(file)
    }

    /// Creates and starts the cluster; the caller holds the lock.
    fn start_blocking(&self) -> Result<RunningCluster, DbError> {
        if !self.pgdata.join("PG_VERSION").exists() {
            self.initdb()?;
        }
        let mut last_error = String::new();
        for attempt in 0..5 {
            match self.status() {
                ClusterStatus::Running { pid, port } => {
                    return Ok(RunningCluster { url: self.owner_url(port)?, port, pid, started_now: false });
                }
                ClusterStatus::Stopped { stale_pid: Some(pid) } => {
                    tracing::warn!(pid, "removing a stale postmaster.pid left by a process that is gone");
                    let path = self.pgdata.join("postmaster.pid");
                    std::fs::remove_file(&path).map_err(|e| io_err("cannot remove", &path, e))?;
                }
                _ => {}
            }
            let port = free_port(self.preferred_port)?;
            let out = self.pg_ctl_start(port)?;
            match (out.status.success(), pidfile::read(&self.pgdata)) {
                (true, Some(p)) => {
                    return Ok(RunningCluster {
                        url: self.owner_url(p.port)?,
                        port: p.port,
                        pid: p.pid,
                        started_now: true,
                    });
                }
                _ => {
                    last_error = format!("{}{}", String::from_utf8_lossy(&out.stderr), self.log_tail());
                    tracing::warn!(attempt, port, error = %last_error.trim(), "PostgreSQL did not start; retrying");
                    // Backends of a killed postmaster may still hold shared memory for a moment.
                    std::thread::sleep(Duration::from_millis(300 * (attempt + 1)));
                }
            }
        }
        Err(err(format!("PostgreSQL did not start in `{}`: {}", self.pgdata.display(), last_error.trim())))
    }

    fn stop_blocking(&self) -> Result<bool, DbError> {
        let _lock = self.lock()?;
        let ClusterStatus::Running { pid, .. } = self.status() else { return Ok(false) };
        let out = self
            .run_as
            .command(&self.binaries.program("pg_ctl"))
            .arg("stop")
            .arg("-D")
            .arg(&self.pgdata)
            .args(["-m", "fast", "-w", "-t", "60"])
            .output()
            .map_err(|e| err(format!("cannot run pg_ctl stop: {e}")))?;
        if !out.status.success() {
            return Err(err(format!("pg_ctl stop failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
        // pg_ctl returns once postmaster.pid is gone, which the postmaster removes on its way
        // out: wait for the process itself, so that "stopped" means its port and memory are free.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while pidfile::is_running(pid) {
            if std::time::Instant::now() > deadline {
                return Err(err(format!("the postmaster (pid {pid}) removed its lock file but did not exit")));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(true)
    }

    fn pg_ctl_start(&self, port: u16) -> Result<Output, DbError> {
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=300 \
             -c shared_buffers=512MB"
        );
        self.run_as
            .command(&self.binaries.program("pg_ctl"))
            .arg("start")
            .arg("-D")
            .arg(&self.pgdata)
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "60", "-o", &options])
            .output()
            .map_err(|e| err(format!("cannot run pg_ctl start: {e}")))
    }

    fn log_path(&self) -> PathBuf {
        self.pgdata.join("aegis-postgres.log")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    fn password(&self) -> Result<String, DbError> {
        let path = self.root.join("password");
        std::fs::read_to_string(&path).map(|s| s.trim().to_owned()).map_err(|e| io_err("cannot read", &path, e))
    }

    fn owner_url(&self, port: u16) -> Result<SecretString, DbError> {
        Ok(SecretString::from(format!("postgres://{OWNER}:{}@127.0.0.1:{port}/{DATABASE}", self.password()?)))
    }

    fn superuser_url(&self, port: u16, database: &str) -> Result<SecretString, DbError> {
        Ok(SecretString::from(format!("postgres://{SUPERUSER}:{}@127.0.0.1:{port}/{database}", self.password()?)))
    }

    fn initdb(&self) -> Result<(), DbError> {
        use std::os::unix::fs::OpenOptionsExt;
        tracing::info!(pgdata = %self.pgdata.display(), version = %self.binaries.version, "creating the PostgreSQL cluster");
        let password: String = rand::rng().sample_iter(&rand::distr::Alphanumeric).take(32).map(char::from).collect();
        let pw_path = self.root.join("password");
        let mut file = File::options()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&pw_path)
            .map_err(|e| io_err("cannot write", &pw_path, e))?;
        file.write_all(password.as_bytes()).map_err(|e| io_err("cannot write", &pw_path, e))?;
        // initdb reads the password from a file the PostgreSQL user can read.
        let init_pw = self.root.join("initdb-password");
        std::fs::write(&init_pw, &password).map_err(|e| io_err("cannot write", &init_pw, e))?;
        self.run_as.chown(&init_pw)?;
        let partial = self.pgdata.with_extension("partial");
        // Byte-order collation (fast, stable across machines) with Unicode character
        // classes: full-text search lowercases with the database's LC_CTYPE, and under `C`
        // only ASCII letters fold (ZÜRICH would not find Zürich). A system without the
        // C.UTF-8 locale gets `C` and the warning `migrate` gives for it.
        let initdb = |ctype: &str| {
            let _ = std::fs::remove_dir_all(&partial);
            std::fs::create_dir_all(&partial).map_err(|e| io_err("cannot create", &partial, e))?;
            self.run_as.chown(&partial)?;
            self.run_as
                .command(&self.binaries.program("initdb"))
                .arg("-D")
                .arg(&partial)
                .args(["-U", SUPERUSER, "-A", "scram-sha-256", "-E", "UTF8", "--locale=C"])
                .arg(format!("--lc-ctype={ctype}"))
                .arg("--no-instructions")
                .arg(format!("--pwfile={}", init_pw.display()))
                .output()
                .map_err(|e| err(format!("cannot run initdb: {e}")))
        };
        let out = initdb(UNICODE_CTYPE).and_then(|out| {
            if out.status.success() {
                return Ok(out);
            }
            tracing::warn!(
                stderr = %String::from_utf8_lossy(&out.stderr).trim(),
                "initdb refused LC_CTYPE {UNICODE_CTYPE}; creating the cluster with C"
            );
            initdb("C")
        });
        let _ = std::fs::remove_file(&init_pw);
        let out = out?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
        // The cluster appears under its real name only once complete, so a crash during
        // initdb never leaves a half-made cluster behind.
        std::fs::rename(&partial, &self.pgdata).map_err(|e| io_err("cannot rename", &partial, e))
    }

    /// Creates the owner role, the `aegis` database and pgvector in schema `ext` of
    /// `template1` (so every database created later has it). Idempotent.
    async fn bootstrap(&self, port: u16) -> Result<(), DbError> {
        use secrecy::ExposeSecret;
        use sqlx::{Connection, PgConnection};
        let url = self.superuser_url(port, "template1")?;
        let mut conn = PgConnection::connect(url.expose_secret()).await?;
        let has_owner: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(OWNER)
            .fetch_one(&mut conn)
            .await?;
        if has_owner {
            return self.update_vector(url.expose_secret(), &mut conn).await;
        }
        tracing::info!("bootstrapping the embedded cluster");
        sqlx::raw_sql(
            "CREATE SCHEMA IF NOT EXISTS ext; \
             CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA ext; \
             GRANT USAGE ON SCHEMA ext TO PUBLIC; \
             REVOKE CREATE ON SCHEMA public FROM PUBLIC;",
        )
        .execute(&mut conn)
        .await?;
        // DDL takes no bind parameters: the server quotes the names and the password
        // (`format` with %I and %L) from bound values, and the statements it returns are run.
        let password = self.password()?;
        let (create_role, create_database): (String, String) = sqlx::query_as(
            "SELECT format('CREATE ROLE %I LOGIN CREATEROLE CREATEDB PASSWORD %L', $1::text, $2::text), \
                    format('CREATE DATABASE %I OWNER %I', $3::text, $1::text)",
        )
        .bind(OWNER)
        .bind(password.as_str())
        .bind(DATABASE)
        .fetch_one(&mut conn)
        .await?;
        sqlx::raw_sql(&create_role).execute(&mut conn).await?;
        sqlx::raw_sql(&create_database).execute(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }

    /// After the binaries moved to a newer pgvector (a cluster made by an older AEGIS),
    /// updates the extension in every database that has it, `template1` (whose copy later
    /// databases get) last: a start interrupted halfway finds `template1` still old and
    /// goes through every database again. A no-op once `template1` is current.
    async fn update_vector(&self, template1_url: &str, template1: &mut sqlx::PgConnection) -> Result<(), DbError> {
        use sqlx::{ConnectOptions, postgres::PgConnectOptions};
        let (installed, available): (Option<String>, Option<String>) = sqlx::query_as(
            "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector'), \
                    (SELECT default_version FROM pg_available_extensions WHERE name = 'vector')",
        )
        .fetch_one(&mut *template1)
        .await?;
        if installed.is_none() || installed == available {
            return Ok(());
        }
        let databases: Vec<String> = sqlx::query_scalar(
            "SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname = 'template1', datname",
        )
        .fetch_all(&mut *template1)
        .await?;
        let options: PgConnectOptions = template1_url.parse()?;
        for database in databases {
            let mut conn = options.clone().database(&database).connect().await?;
            let before: Option<String> =
                sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
                    .fetch_optional(&mut conn)
                    .await?;
            if before.is_some() && before != available {
                sqlx::raw_sql("ALTER EXTENSION vector UPDATE").execute(&mut conn).await?;
                tracing::info!(%database, from = ?before, to = ?available, "updated pgvector");
            }
            sqlx::Connection::close(conn).await?;
        }
        Ok(())
    }
}

/// `preferred` when it is free on 127.0.0.1, else a free port chosen by the kernel.
fn free_port(preferred: u16) -> Result<u16, DbError> {
    if preferred != 0 && TcpListener::bind(("127.0.0.1", preferred)).is_ok() {
        return Ok(preferred);
    }
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(|e| err(format!("no free port: {e}")))?;
    let port = listener.local_addr().map_err(|e| err(format!("no free port: {e}")))?.port();
    if preferred != 0 {
        tracing::info!(preferred, port, "preferred PostgreSQL port is taken; using another");
    }
    Ok(port)
}

fn absolute(path: &Path) -> Result<PathBuf, DbError> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    Ok(std::env::current_dir().map_err(|e| err(format!("no current directory: {e}")))?.join(path))
}
