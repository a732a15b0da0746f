//! Tenant provisioning, listing, tiers, deletion and the operator audit.

use std::borrow::Cow;

use aegis_core::{
    db::migrate::{Migration, MigrationSet},
    tenancy::{Caller, NewTenant, TenancyError, TenantId, Tier},
};
use aegis_it::{aegis, aegis_with};

fn new(id: &str, tier: Tier) -> NewTenant {
    NewTenant { id: TenantId::parse(id).unwrap(), tier, name: None }
}

async fn exists(aegis: &aegis_core::Aegis, sql: &str, name: &str) -> bool {
    sqlx::query_scalar::<_, bool>(sql).bind(name).fetch_one(aegis.db().pool()).await.unwrap()
}

const SCHEMA_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)";
const ROLE_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)";

#[tokio::test]
async fn create_list_show_set_tier_delete() {
    let aegis = aegis().await;
    let op = Caller::Operator { name: "tester".into() };
    let acme = aegis.tenants().create(&new("acme", Tier::Pro), &op).await.unwrap();
    assert_eq!(acme.schema_name, "tenant_acme");
    assert!(acme.role_name.ends_with("_t_acme"), "{}", acme.role_name);
    assert_eq!(acme.schema_version, MigrationSet::tenant().latest());
    aegis.tenants().create(&new("bravo", Tier::Free), &op).await.unwrap();

    let ids: Vec<String> = aegis.tenants().list().await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(ids, ["acme", "bravo"]);

    let dup = aegis.tenants().create(&new("acme", Tier::Free), &op).await.unwrap_err();
    assert!(matches!(dup, TenancyError::AlreadyExists(_)), "{dup}");

    let changed = aegis.tenants().set_tier(&TenantId::parse("bravo").unwrap(), Tier::Business, &op).await.unwrap();
    assert_eq!(changed.tier.0, Tier::Business);

    let bravo = TenantId::parse("bravo").unwrap();
    let refused = aegis.tenants().delete(&bravo, false, &op).await.unwrap_err();
    assert!(matches!(refused, TenancyError::NotConfirmed(_)));
    assert!(exists(&aegis, SCHEMA_EXISTS, "tenant_bravo").await);
    let role = aegis.tenants().get(&bravo).await.unwrap().role_name;
    aegis.tenants().delete(&bravo, true, &op).await.unwrap();
    assert!(!exists(&aegis, SCHEMA_EXISTS, "tenant_bravo").await);
    assert!(!exists(&aegis, ROLE_EXISTS, &role).await);
    assert!(matches!(aegis.tenants().get(&bravo).await.unwrap_err(), TenancyError::NotFound(_)));

    let actions: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT actor, action, tenant_id FROM public.platform_audit ORDER BY at, id")
            .fetch_all(aegis.db().pool())
            .await
            .unwrap();
    let names: Vec<&str> = actions.iter().map(|a| a.1.as_str()).collect();
    assert_eq!(names, ["tenant.create", "tenant.create", "tenant.set_tier", "tenant.delete"]);
    assert!(actions.iter().all(|a| a.0 == "operator:tester"));
}

#[tokio::test]
async fn a_failed_creation_leaves_nothing_behind() {
    let broken = MigrationSet::tenant()
        .with(Migration {
            version: 99,
            name: Cow::Borrowed("broken"),
            sql: Cow::Borrowed("CREATE TABLE x (id int); SELECT 1/0;"),
        })
        .unwrap();
    let aegis = aegis_with(broken).await;
    let err = aegis.tenants().create(&new("halfway", Tier::Free), &Caller::system("test")).await.unwrap_err();
    assert!(err.to_string().contains("division by zero"), "{err}");
    assert!(!exists(&aegis, SCHEMA_EXISTS, "tenant_halfway").await);
    let role = aegis.tenants().prefix().tenant_role(&TenantId::parse("halfway").unwrap());
    assert!(!exists(&aegis, ROLE_EXISTS, role.as_str()).await);
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM public.tenants").fetch_one(aegis.db().pool()).await.unwrap();
    assert_eq!(rows, 0);
    let audits: i64 =
        sqlx::query_scalar("SELECT count(*) FROM public.platform_audit").fetch_one(aegis.db().pool()).await.unwrap();
    assert_eq!(audits, 0);
}

#[tokio::test]
async fn concurrent_creation_of_one_id_yields_one_tenant() {
    let aegis = aegis().await;
    let attempts = (0..4).map(|_| {
        let aegis = aegis.clone();
        tokio::spawn(async move { aegis.tenants().create(&new("race", Tier::Trial), &Caller::system("test")).await })
    });
    let results = futures_join(attempts).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "{results:?}");
    assert_eq!(aegis.tenants().list().await.unwrap().len(), 1);
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
