//! The database: connection pool, migrations, the embedded PostgreSQL manager and the
//! platform (owner-role) transaction helper.
//!
//! Tenant data is never touched from here: it goes through [`crate::tenancy::TenantTx`].

pub mod batch;
pub mod embedded;
pub mod migrate;

use std::{str::FromStr, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use sqlx::{
    PgPool, Postgres, Transaction,
    postgres::{PgConnectOptions, PgPoolOptions},
};

/// A database failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A query failed.
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// The URL could not be parsed (the URL itself is not echoed: it may hold a password).
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// The embedded cluster could not be managed.
    #[error("embedded PostgreSQL: {0}")]
    Embedded(String),
    /// A migration failed.
    #[error("migration {version} (`{name}`) failed in schema `{schema}`: {source}")]
    Migration {
        /// The schema being migrated.
        schema: String,
        /// The failing migration's version.
        version: i32,
        /// Its name.
        name: String,
        /// The underlying error.
        source: sqlx::Error,
    },
    /// The database lacks something AEGIS needs (an old pgvector, say).
    #[error("unsupported database: {0}")]
    Unsupported(String),
    /// A schema holds a migration this binary does not know, or one whose text changed.
    #[error("schema `{schema}` migration {version}: {reason}")]
    MigrationMismatch {
        /// The schema.
        schema: String,
        /// The version concerned.
        version: i32,
        /// What is wrong.
        reason: String,
    },
}

/// The oldest pgvector AEGIS runs on (major, minor): `halfvec` (0.7) and iterative index
/// scans (0.8).
pub const MIN_PGVECTOR: (u32, u32) = (0, 8);

/// Whether a dotted version (`0.8.5`) is at least `min` (major, minor).
pub fn version_at_least(version: &str, min: (u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= min
}

/// A pool of connections as the AEGIS owner role.
#[derive(Debug, Clone)]
pub struct Database {
    pool: PgPool,
}

/// A transaction as the owner role, for platform tables (always schema-qualified).
pub type PlatformTx = Transaction<'static, Postgres>;

impl Database {
    /// Connects to `url` with at most `max_connections` pooled connections.
    pub async fn connect(url: &SecretString, max_connections: u32) -> Result<Self, DbError> {
        let options = PgConnectOptions::from_str(url.expose_secret())
            .map_err(|e| DbError::InvalidUrl(redact_url_error(&e)))?
            .application_name("aegis");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// A second pool to the same database whose sessions commit asynchronously
    /// (`synchronous_commit = off`): a commit returns before its WAL reaches disk, so a hot
    /// row's lock is not held through an fsync. Only a crash of the PostgreSQL server
    /// itself (not of AEGIS) can lose the last ~0.6 s of such commits. Used for meters and
    /// batched append-only rows.
    ///
    /// Its connections are not tested when taken from the pool: sqlx's test is a round trip
    /// before every statement (and another when the connection goes back), on the request
    /// path of a metered call. Its users run a statement again when its connection turns out
    /// lost ([`connection_lost`]).
    pub fn async_commit(&self, max_connections: u32) -> Self {
        let (options, pool) = self.async_commit_parts(max_connections);
        Self { pool: pool.connect_lazy_with(options) }
    }

    fn async_commit_parts(&self, max_connections: u32) -> (PgConnectOptions, PgPoolOptions) {
        let options = (*self.pool.connect_options()).clone().options([("synchronous_commit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .test_before_acquire(false);
        (options, pool)
    }

    /// [`Database::async_commit`] for the batched append-only writers. When this process's
    /// runtime is split ([`crate::cpus::active_split`]) and the database is on this machine
    /// (a loopback or socket host), each connection's backend is moved to the writers' half
    /// of the CPUs as it connects, off the CPUs of the threads serving requests.
    pub fn batch_writers(&self, max_connections: u32) -> Self {
        let (options, mut pool) = self.async_commit_parts(max_connections);
        let options = options.application_name(BATCH_WRITERS_APPLICATION);
        let local = is_local_host(options.get_host());
        if let Some(split) = crate::cpus::active_split().filter(|_| local) {
            let cpus = split.database.clone();
            pool = pool.after_connect(move |conn, _| {
                let cpus = cpus.clone();
                Box::pin(async move {
                    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *conn).await?;
                    if let Err(error) = crate::cpus::pin_backend(pid, &cpus) {
                        tracing::debug!(pid, %error, "cannot move a writer's backend to its CPUs");
                    }
                    Ok(())
                })
            });
        }
        Self { pool: pool.connect_lazy_with(options) }
    }

    /// The underlying pool, for platform queries.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Begins a transaction as the owner role. Only for platform tables and for DDL in the
    /// tenancy module; tenant data goes through `TenantTx`.
    #[allow(clippy::disallowed_methods)]
    pub async fn begin_platform(&self) -> Result<PlatformTx, DbError> {
        Ok(self.pool.begin().await?)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The name of the connected database.
    pub async fn database_name(&self) -> Result<String, DbError> {
        Ok(sqlx::query_scalar("SELECT current_database()").fetch_one(&self.pool).await?)
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Whether `err` says the connection itself is gone (its server process ended, or the
/// socket broke) rather than that the statement failed, so that the statement may be run on
/// another connection: an I/O error, or SQLSTATE class 08 (connection exception) or 57P
/// (the server shutting down or terminating the backend).
pub fn connection_lost(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

/// The `application_name` of the batched writers' connections (in `pg_stat_activity`).
pub const BATCH_WRITERS_APPLICATION: &str = "aegis-batch-writer";

/// Whether a connection to `host` reaches this machine: a Unix socket directory, `localhost`
/// or a loopback address.
fn is_local_host(host: &str) -> bool {
    host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn redact_url_error(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Configuration(inner) => inner.to_string(),
        _ => "could not parse it".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::{is_local_host, version_at_least};

    #[test]
    fn only_this_machine_is_local() {
        for host in ["127.0.0.1", "127.0.0.53", "localhost", "::1", "[::1]", "/var/run/postgresql"] {
            assert!(is_local_host(host), "{host}");
        }
        for host in ["10.0.0.5", "db.example.org", "192.168.1.1", ""] {
            assert!(!is_local_host(host), "{host}");
        }
    }

    #[test]
    fn versions_compare() {
        assert!(version_at_least("0.6.2", (0, 6)));
        assert!(version_at_least("0.7.0", (0, 6)));
        assert!(version_at_least("1.0", (0, 6)));
        assert!(!version_at_least("0.5.1", (0, 6)));
        assert!(!version_at_least("", (0, 6)));
    }
}
