//! `aegis migrate`: bounded, per-tenant, resumable.

use std::borrow::Cow;

use aegis_core::{
    Aegis,
    db::migrate::{Migration, MigrationSet},
    tenancy::{Caller, NewTenant, TenantId, TenantUpgrade, Tier},
};
use aegis_it::{config_for, fresh_db};

fn widgets() -> Migration {
    Migration {
        version: 100,
        name: Cow::Borrowed("widgets"),
        sql: Cow::Borrowed(
            "CREATE TABLE widgets (id bigserial PRIMARY KEY, name text NOT NULL); CREATE INDEX widgets_name ON widgets (name);",
        ),
    }
}

#[tokio::test]
async fn one_failing_tenant_does_not_stop_the_others_and_a_rerun_resumes() {
    let db = fresh_db().await;
    let op = Caller::system("test");
    let v1 = Aegis::builder().config(config_for(&db)).build().await.unwrap();
    let ids: Vec<String> = (0..6).map(|i| format!("t{i}")).collect();
    for id in &ids {
        v1.tenants()
            .create(&NewTenant { id: TenantId::parse(id).unwrap(), tier: Tier::Free, name: None }, &op)
            .await
            .unwrap();
    }
    // Tenant t3 has a conflicting table, so migration 100 fails there only.
    sqlx::raw_sql("CREATE TABLE tenant_t3.widgets (blocker int)").execute(v1.db().pool()).await.unwrap();

    let v2 = Aegis::builder()
        .config(config_for(&db))
        .tenant_migrations(MigrationSet::tenant().with(widgets()).unwrap())
        .build()
        .await
        .unwrap();
    let first = v2.migrate(3, &op).await.unwrap();
    assert_eq!(first.tenants.failed(), 1, "{first:?}");
    assert_eq!(first.tenants.upgraded(), 5, "{first:?}");
    let failed = first.tenants.tenants.iter().find(|t| matches!(t, TenantUpgrade::Failed { .. })).unwrap();
    let TenantUpgrade::Failed { tenant, error } = failed else { unreachable!() };
    assert_eq!(tenant, "t3");
    assert!(error.contains("widgets"), "{error}");

    let versions = v2.tenants().versions().await.unwrap();
    for v in &versions {
        assert_eq!(v.version, if v.tenant == "t3" { MigrationSet::tenant().latest() } else { 100 }, "{v:?}");
    }
    let applied_at_before: Vec<(String, chrono::DateTime<chrono::Utc>)> = applied_at(&v2).await;

    // The fix: remove the blocker. The rerun upgrades only t3.
    sqlx::raw_sql("DROP TABLE tenant_t3.widgets").execute(v2.db().pool()).await.unwrap();
    let second = v2.migrate(3, &op).await.unwrap();
    assert_eq!(second.tenants.failed(), 0, "{second:?}");
    assert_eq!(second.tenants.upgraded(), 1, "{second:?}");
    assert!(
        second
            .tenants
            .tenants
            .iter()
            .any(|t| matches!(t, TenantUpgrade::Upgraded { tenant, from, to: 100 } if tenant == "t3" && *from == MigrationSet::tenant().latest()))
    );
    let applied_at_after = applied_at(&v2).await;
    for (schema, at) in &applied_at_before {
        let after = applied_at_after.iter().find(|(s, _)| s == schema).unwrap();
        assert_eq!(&after.1, at, "{schema}'s migration 2 ran again");
    }
    // The tenant role can use the new table and its sequence.
    let scope = v2.tenants().scope(&TenantId::parse("t3").unwrap(), op).await.unwrap();
    let mut tx = scope.begin().await.unwrap();
    sqlx::query("INSERT INTO widgets (name) VALUES ('w')").execute(tx.conn()).await.unwrap();
    tx.commit().await.unwrap();
}

async fn applied_at(aegis: &Aegis) -> Vec<(String, chrono::DateTime<chrono::Utc>)> {
    let mut out = Vec::new();
    for v in aegis.tenants().versions().await.unwrap() {
        // The tenant's schema (from its checked id) bound as the platform transaction's
        // search path, since its role may not read the migration table: no SQL text is
        // built from the tenant id.
        let schema = TenantId::parse(&v.tenant).unwrap().schema();
        let mut tx = aegis.db().begin_platform().await.unwrap();
        sqlx::query("SELECT set_config('search_path', $1, true)")
            .bind(schema.as_str())
            .execute(&mut *tx)
            .await
            .unwrap();
        let at = sqlx::query_scalar("SELECT applied_at FROM schema_migrations WHERE version = 100")
            .fetch_optional(&mut *tx)
            .await
            .unwrap();
        if let Some(at) = at {
            out.push((schema.as_str().to_owned(), at));
        }
    }
    out
}

#[tokio::test]
async fn an_edited_migration_is_refused() {
    let db = fresh_db().await;
    let op = Caller::system("test");
    let v2 = Aegis::builder()
        .config(config_for(&db))
        .tenant_migrations(MigrationSet::tenant().with(widgets()).unwrap())
        .build()
        .await
        .unwrap();
    v2.tenants()
        .create(&NewTenant { id: TenantId::parse("edit").unwrap(), tier: Tier::Pro, name: None }, &op)
        .await
        .unwrap();
    let mut edited = widgets();
    edited.sql = Cow::Borrowed("CREATE TABLE widgets (id int)");
    let mut all = MigrationSet::tenant().migrations().to_vec();
    all.push(edited);
    all.push(Migration { version: 101, name: Cow::Borrowed("more"), sql: Cow::Borrowed("CREATE TABLE more (id int)") });
    let v3 = Aegis::builder()
        .config(config_for(&db))
        .tenant_migrations(MigrationSet::new(all).unwrap())
        .build()
        .await
        .unwrap();
    let report = v3.migrate(1, &op).await.unwrap();
    let TenantUpgrade::Failed { error, .. } = &report.tenants.tenants[0] else { panic!("{report:?}") };
    assert!(error.contains("changed after it was applied"), "{error}");
}
