#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Test support for AEGIS integration tests: a fresh database per test on the throwaway
//! cluster that `scripts/test.sh` starts, and the path of the `aegis` binary.

use std::{path::PathBuf, str::FromStr};

use aegis_core::{
    Aegis,
    config::Config,
    db::{Database, migrate::MigrationSet},
};
use sqlx::{Connection, PgConnection};

pub mod provider;

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
    let create: String = sqlx::query_scalar("SELECT format('CREATE DATABASE %I', $1::text)")
        .bind(&name)
        .fetch_one(&mut conn)
        .await
        .expect("quote the test database's name");
    sqlx::raw_sql(&create).execute(&mut conn).await.expect("create test database");
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

/// Runs the `aegis` binary on `url` with extra environment variables, whatever its exit
/// status.
pub fn aegis_output(url: &str, envs: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    std::process::Command::new(aegis_bin())
        .arg("--database-url")
        .arg(url)
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("run aegis")
}

/// Runs the `aegis` binary on `url` with extra environment variables and returns its
/// stdout; a failed run fails the test with its stderr.
pub fn aegis_ok(url: &str, envs: &[(&str, &str)], args: &[&str]) -> String {
    let out = aegis_output(url, envs, args);
    assert!(out.status.success(), "aegis {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// `base` pointing at database `name` (query parameters kept).
fn url_for_database(base: &str, name: &str) -> String {
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

/// `GET url` with a bearer key, answered as JSON (any status).
pub async fn get_json(http: &reqwest::Client, url: &str, key: &str) -> serde_json::Value {
    http.get(url).bearer_auth(key).send().await.unwrap().json().await.unwrap()
}

/// Parses a URL-ish string into connect options (for tests that need raw connections).
pub fn connect_options(url: &str) -> sqlx::postgres::PgConnectOptions {
    sqlx::postgres::PgConnectOptions::from_str(url).expect("valid url")
}

/// Model configuration for tests: providers `alpha` and `beta` at `provider`, aliases
/// `fast` = [alpha/m1, beta/m2] (funded) and `premium` = [alpha/p1 (premium), alpha/m1],
/// the offline `embed`; free and trial get `fast`, pro `fast`, business and enterprise
/// `premium` then `fast`. Backoff is 1 ms so retries are quick.
pub fn test_models(provider: &provider::TestProvider) -> aegis_core::llm::config::ModelsConfig {
    use aegis_core::{
        llm::config::{AliasConfig, ModelConfig, ModelKind, ModelsConfig, ProviderConfig, RouterConfig},
        policy::Intent,
        tenancy::Tier,
    };
    use std::collections::BTreeMap;
    let openai = |key: &str| ProviderConfig::Openai {
        base_url: provider.base_url.clone(),
        api_key_env: None,
        api_key: Some(key.to_owned().into()),
        enabled: true,
        timeout_secs: 1,
        ca_file: None,
    };
    let model = |provider: &str, name: &str, premium: bool, input: f64, output: f64| ModelConfig {
        provider: provider.into(),
        name: name.into(),
        kind: ModelKind::Chat,
        input_price_per_mtok: input,
        output_price_per_mtok: output,
        context_window: 8192,
        premium,
        dimensions: None,
    };
    let defaults = ModelsConfig::default();
    let mut models = BTreeMap::from([
        ("alpha/m1".to_owned(), model("alpha", "m1", false, 1.0, 2.0)),
        ("beta/m2".to_owned(), model("beta", "m2", false, 0.5, 1.0)),
        ("alpha/p1".to_owned(), model("alpha", "p1", true, 1000.0, 4000.0)),
    ]);
    models.insert("offline/hash-768".into(), defaults.models["offline/hash-768"].clone());
    let alias = |models: &[&str]| AliasConfig {
        models: models.iter().map(|m| (*m).to_owned()).collect(),
        description: String::new(),
    };
    let aliases = BTreeMap::from([
        ("fast".to_owned(), alias(&["alpha/m1", "beta/m2"])),
        ("premium".to_owned(), alias(&["alpha/p1", "alpha/m1"])),
        ("embed".to_owned(), alias(&["offline/hash-768"])),
    ]);
    let matrix = |chat: &[&str]| -> BTreeMap<Intent, Vec<String>> {
        Intent::ALL
            .into_iter()
            .map(|i| {
                (
                    i,
                    if i == Intent::Embedding {
                        vec!["embed".to_owned()]
                    } else {
                        chat.iter().map(|a| (*a).to_owned()).collect()
                    },
                )
            })
            .collect()
    };
    let policy = BTreeMap::from([
        (Tier::Free, matrix(&["fast"])),
        (Tier::Trial, matrix(&["fast"])),
        (Tier::Pro, matrix(&["fast"])),
        (Tier::Business, matrix(&["premium", "fast"])),
        (Tier::Enterprise, matrix(&["premium", "fast"])),
    ]);
    ModelsConfig {
        providers: BTreeMap::from([
            ("alpha".to_owned(), openai("alpha-key")),
            ("beta".to_owned(), openai("beta-key")),
            ("offline".to_owned(), ProviderConfig::Offline),
        ]),
        models,
        aliases,
        policy,
        router: RouterConfig {
            attempts_per_model: 2,
            backoff_ms: 1,
            max_backoff_ms: 5,
            cooldown_after_failures: 3,
            cooldown_secs: 30,
        },
        premium: defaults.premium,
        log_interval_ms: defaults.log_interval_ms,
    }
}

/// A platform on a fresh database whose models are served by `provider`, with one tenant
/// per tier (`free_t`, `trial_t`, `pro_t`, `business_t`, `enterprise_t`).
pub async fn aegis_with_models(
    provider: &provider::TestProvider,
    clock: Option<aegis_core::clock::SharedClock>,
) -> Aegis {
    use aegis_core::tenancy::{Caller, NewTenant, TenantId, Tier};
    let db = fresh_db().await;
    let mut config = config_for(&db);
    config.models = test_models(provider);
    let mut builder = Aegis::builder().config(config);
    if let Some(clock) = clock {
        builder = builder.clock(clock);
    }
    let aegis = builder.build().await.expect("build aegis");
    for tier in Tier::ALL {
        let new = NewTenant { id: TenantId::parse(&format!("{tier}_t")).unwrap(), tier, name: None };
        aegis.tenants().create(&new, &Caller::system("test")).await.unwrap();
    }
    aegis
}
