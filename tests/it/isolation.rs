//! Tenant isolation is enforced by PostgreSQL: inside tenant A's `TenantTx`, everything of
//! tenant B and of the platform is out of reach.

use aegis_core::{
    Aegis,
    config::Config,
    tenancy::{Caller, NewTenant, TenantId, TenantScope, Tier},
};
use aegis_it::{config_for, fresh_db};

async fn two_tenants(max_connections: u32) -> (Aegis, TenantScope, TenantScope) {
    let db = fresh_db().await;
    let mut config: Config = config_for(&db);
    config.database.max_connections = max_connections;
    let aegis = Aegis::builder().config(config).build().await.unwrap();
    let op = Caller::system("test");
    for (id, tier) in [("alpha", Tier::Free), ("beta", Tier::Enterprise)] {
        let new = NewTenant { id: TenantId::parse(id).unwrap(), tier, name: None };
        aegis.tenants().create(&new, &op).await.unwrap();
    }
    let a = aegis.tenants().scope(&TenantId::parse("alpha").unwrap(), op.clone()).await.unwrap();
    let b = aegis.tenants().scope(&TenantId::parse("beta").unwrap(), op).await.unwrap();
    (aegis, a, b)
}

async fn put(scope: &TenantScope, key: &str) {
    let mut tx = scope.begin().await.unwrap();
    sqlx::query("INSERT INTO settings (key, value) VALUES ($1, '1')").bind(key).execute(tx.conn()).await.unwrap();
    tx.commit().await.unwrap();
}

async fn keys(scope: &TenantScope) -> Vec<String> {
    let mut tx = scope.begin().await.unwrap();
    let keys = sqlx::query_scalar("SELECT key FROM settings ORDER BY key").fetch_all(tx.conn()).await.unwrap();
    tx.commit().await.unwrap();
    keys
}

/// Runs `sql` in a fresh transaction of `scope` and returns the SQLSTATE it failed with.
async fn denied(scope: &TenantScope, sql: &str) -> String {
    let mut tx = scope.begin().await.unwrap();
    let err = sqlx::raw_sql(sql).execute(tx.conn()).await.expect_err(sql);
    let code = err.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned()).unwrap_or_default();
    tx.rollback().await.unwrap();
    code
}

#[tokio::test]
async fn tenant_a_cannot_touch_tenant_b_or_the_platform() {
    let (_aegis, a, b) = two_tenants(4).await;
    put(&b, "b-secret").await;
    let attempts = [
        "SELECT * FROM tenant_beta.settings",
        "INSERT INTO tenant_beta.settings (key, value) VALUES ('x', '1')",
        "UPDATE tenant_beta.settings SET value = '2'",
        "DELETE FROM tenant_beta.settings",
        "TRUNCATE tenant_beta.settings",
        "CREATE TABLE tenant_beta.planted (id int)",
        "CREATE TABLE public.planted (id int)",
        "CREATE TABLE tenant_alpha.ddl_in_own_schema (id int)",
        "SELECT * FROM public.platform_secrets",
        "SELECT * FROM public.tenants",
        "SELECT * FROM public.platform_audit",
        "INSERT INTO public.jobs (id, queue, source_key, run_at, created_at, updated_at) VALUES (gen_random_uuid(), 'q', 'k', now(), now(), now())",
        "SELECT * FROM tenant_alpha.schema_migrations",
    ];
    for sql in attempts {
        assert_eq!(denied(&a, sql).await, "42501", "expected a permission error for: {sql}");
    }
    // B's row is untouched and A sees only its own table.
    assert_eq!(keys(&b).await, ["b-secret"]);
    assert!(keys(&a).await.is_empty());
}

#[tokio::test]
async fn the_role_and_search_path_end_with_the_transaction() {
    let (aegis, a, _b) = two_tenants(1).await;
    let mut tx = a.begin().await.unwrap();
    let (user, path): (String, String) =
        sqlx::query_as("SELECT current_user::text, current_setting('search_path')").fetch_one(tx.conn()).await.unwrap();
    assert!(user.ends_with("_t_alpha"), "{user}");
    assert_eq!(path, "tenant_alpha, ext");
    // Dropped without commit: rolled back, and the connection returns clean.
    drop(tx);
    let (user, path): (String, String) = sqlx::query_as("SELECT current_user::text, current_setting('search_path')")
        .fetch_one(aegis.db().pool())
        .await
        .unwrap();
    assert_eq!(user, "aegis");
    assert_eq!(path, "\"$user\", public");
}

#[tokio::test]
async fn a_one_connection_pool_alternating_tenants_never_mixes_rows() {
    let (_aegis, a, b) = two_tenants(1).await;
    for i in 0..25 {
        put(&a, &format!("a{i:02}")).await;
        put(&b, &format!("b{i:02}")).await;
        let (seen_a, seen_b) = (keys(&a).await, keys(&b).await);
        assert!(seen_a.iter().all(|k| k.starts_with('a')) && seen_a.len() == i + 1, "{seen_a:?}");
        assert!(seen_b.iter().all(|k| k.starts_with('b')) && seen_b.len() == i + 1, "{seen_b:?}");
        // A transaction that fails half-way must not leak either.
        let _ = denied(&a, "SELECT * FROM tenant_beta.settings").await;
    }
}

#[test]
fn hostile_ids_are_rejected_before_sql() {
    let long = "a".repeat(41);
    for id in ["a;drop", "A", "tenant_x\"", long.as_str(), "ünïcode", "ⓐ", "a b", "public", "pg_catalog", ""] {
        assert!(TenantId::parse(id).is_err(), "{id:?} was accepted");
    }
}
