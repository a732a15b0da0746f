#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Test support for AEGIS integration tests: a fresh database per test on the throwaway
//! cluster that `scripts/test.sh` starts, and the path of the `aegis` binary.

use std::{path::PathBuf, str::FromStr};

use aegis_core::{
    Aegis,
    config::Config,
    db::{Database, migrate::MigrationSet},
};
use secrecy_url::url_for_database;
use sqlx::{Connection, PgConnection};

/// The variable holding the owner URL of the test cluster.
pub const TEST_DATABASE_URL: &str = "AEGIS_TEST_DATABASE_URL";

/// A fresh, empty database on the test cluster.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// Its name.
    pub name: String,
    /// Its URL (owner role).
    pub url: String,
}

fn cluster_url() -> String {
    std::env::var(TEST_DATABASE_URL).unwrap_or_else(|_| {
        panic!(
            "{TEST_DATABASE_URL} is not set: run the tests with scripts/test.sh, which starts a throwaway PostgreSQL"
        )
    })
}

/// Creates a new database (from `template1`, which carries pgvector in schema `ext`).
pub async fn fresh_db() -> TestDb {
    let base = cluster_url();
    let name = format!("t_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let mut conn = PgConnection::connect(&base).await.expect("connect to the test cluster");
    sqlx::raw_sql(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
    conn.close().await.ok();
    TestDb { url: url_for_database(&base, &name), name }
}

/// A config pointing at `db`, with workers off.
pub fn config_for(db: &TestDb) -> Config {
    let mut config = Config::default();
    config.database.url = Some(db.url.clone().into());
    config.database.max_connections = 8;
    config.workers.enabled = false;
    config.data_dir = std::env::temp_dir().join(format!("aegis-it-{}", db.name));
    config
}

/// A platform on a fresh database.
pub async fn aegis() -> Aegis {
    aegis_with(MigrationSet::tenant()).await
}

/// A platform on a fresh database with a custom tenant migration set.
pub async fn aegis_with(tenant_migrations: MigrationSet) -> Aegis {
    let db = fresh_db().await;
    Aegis::builder().config(config_for(&db)).tenant_migrations(tenant_migrations).build().await.expect("build aegis")
}

/// A pool on `db` with at most `max` connections.
pub async fn pool(db: &TestDb, max: u32) -> Database {
    Database::connect(&db.url.clone().into(), max).await.expect("connect")
}

/// The `aegis` binary built next to the test binary (scripts/test.sh builds the workspace
/// first).
pub fn aegis_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/it-<hash> -> target/<profile>/aegis
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("aegis");
    assert!(bin.exists(), "{} is missing: build the workspace first (scripts/test.sh does)", bin.display());
    bin
}

/// A URL with its database name replaced.
mod secrecy_url {
    /// `base` pointing at database `name`.
    pub fn url_for_database(base: &str, name: &str) -> String {
        let (without_query, query) = match base.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (base, None),
        };
        let root = without_query.rsplit_once('/').map_or(without_query, |(root, _)| root);
        match query {
            Some(q) => format!("{root}/{name}?{q}"),
            None => format!("{root}/{name}"),
        }
    }
}

/// Parses a URL-ish string into connect options (for tests that need raw connections).
pub fn connect_options(url: &str) -> sqlx::postgres::PgConnectOptions {
    sqlx::postgres::PgConnectOptions::from_str(url).expect("valid url")
}
