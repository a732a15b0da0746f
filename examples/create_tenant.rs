//! Embeds `aegis-core`: opens the platform (the embedded PostgreSQL unless
//! `AEGIS_DATABASE_URL` is set), creates a tenant, writes one row in the tenant's own
//! schema through a `TenantTx`, and lists tenants.
//!
//! `cargo run --example create_tenant -- <tenant-id> [tier]`

use aegis_core::{
    Aegis,
    config::{Config, Overrides},
    tenancy::{Caller, NewTenant, TenantId, Tier},
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let id = TenantId::parse(&args.next().unwrap_or_else(|| "example".into()))?;
    let tier: Tier = args.next().as_deref().unwrap_or("trial").parse()?;

    let config = Config::load(None, &Overrides::default())?;
    let aegis = Aegis::builder().config(config).build().await?;
    let caller = Caller::system("example");
    let tenant = aegis.tenants().create(&NewTenant { id: id.clone(), tier, name: None }, &caller).await?;
    println!(
        "created {} ({}) in schema {} with role {}",
        tenant.id, tenant.tier.0, tenant.schema_name, tenant.role_name
    );

    // Tenant data only through a scope: one short transaction as the tenant's role.
    let scope = aegis.tenants().scope(&id, caller).await?;
    let mut tx = scope.begin().await?;
    sqlx::query("INSERT INTO settings (key, value) VALUES ('greeting', '\"hello\"')").execute(tx.conn()).await?;
    tx.commit().await?;

    for t in aegis.tenants().list().await? {
        println!("{}\t{}", t.id, t.tier.0);
    }
    Ok(())
}
