//! `aegis tenant create | list | show | set-tier | delete`.

use crate::output::outln;
use std::process::ExitCode;

use aegis_core::{
    config::Config,
    tenancy::{Caller, NewTenant, TenantId, TenantInfo, Tier},
};

use crate::{cli::TenantAction, output};

pub async fn run(config: Config, action: TenantAction) -> anyhow::Result<ExitCode> {
    // Check user input before touching the database.
    let caller = Caller::local_operator();
    match action {
        TenantAction::Create { id, tier, name, json } => {
            let new = NewTenant { id: TenantId::parse(&id)?, tier: tier.parse::<Tier>()?, name };
            let aegis = super::connect(config).await?;
            let info = aegis.tenants().create(&new, &caller).await?;
            if json {
                output::json(&info)?;
            } else {
                outln!(
                    "created tenant {} ({}): schema {}, role {}",
                    info.id,
                    info.tier.0,
                    info.schema_name,
                    info.role_name
                );
            }
        }
        TenantAction::List { json } => {
            let aegis = super::connect(config).await?;
            let tenants = aegis.tenants().list().await?;
            if json {
                output::json(&tenants)?;
            } else {
                let rows: Vec<Vec<String>> = tenants.iter().map(row).collect();
                output::table(&["id", "tier", "name", "version", "created"], &rows);
            }
        }
        TenantAction::Show { id, json } => {
            let id = TenantId::parse(&id)?;
            let aegis = super::connect(config).await?;
            let info = aegis.tenants().get(&id).await?;
            if json {
                output::json(&info)?;
            } else {
                outln!("id:             {}", info.id);
                outln!("name:           {}", info.name);
                outln!("tier:           {}", info.tier.0);
                outln!("schema:         {}", info.schema_name);
                outln!("role:           {}", info.role_name);
                outln!("schema version: {}", info.schema_version);
                outln!("created:        {}", info.created_at.to_rfc3339());
            }
        }
        TenantAction::SetTier { id, tier } => {
            let (id, tier) = (TenantId::parse(&id)?, tier.parse::<Tier>()?);
            let aegis = super::connect(config).await?;
            let info = aegis.tenants().set_tier(&id, tier, &caller).await?;
            outln!("tenant {} is now {}", info.id, info.tier.0);
        }
        TenantAction::Delete { id, yes } => {
            let id = TenantId::parse(&id)?;
            if !yes {
                anyhow::bail!("deleting tenant `{id}` drops its schema, role and all its data: pass --yes to confirm");
            }
            let aegis = super::connect(config).await?;
            aegis.tenants().delete(&id, true, &caller).await?;
            outln!("deleted tenant {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn row(t: &TenantInfo) -> Vec<String> {
    vec![
        t.id.clone(),
        t.tier.0.to_string(),
        t.name.clone(),
        t.schema_version.to_string(),
        t.created_at.format("%Y-%m-%d %H:%M").to_string(),
    ]
}
