//! `aegis apikey create | list | revoke`.

use crate::output::outln;
use std::process::ExitCode;

use aegis_core::{
    auth::{NewApiKey, Scope, reveal},
    config::Config,
    tenancy::{Caller, TenantId},
};

use crate::{cli::ApikeyAction, output};

pub async fn run(config: Config, action: ApikeyAction) -> anyhow::Result<ExitCode> {
    let caller = Caller::local_operator();
    match action {
        ApikeyAction::Create { tenant, name, scopes, expires_in_days } => {
            let tenant = TenantId::parse(&tenant)?;
            let scopes = scopes.iter().map(|s| s.trim().parse::<Scope>()).collect::<Result<Vec<_>, _>>()?;
            let expires_at = expires_in_days.map(|d| chrono::Utc::now() + chrono::Duration::days(i64::from(d)));
            let aegis = super::connect(config).await?;
            let created = aegis.api_keys().create(&NewApiKey { tenant, name, scopes, expires_at }, &caller).await?;
            eprintln!("key id {} (prefix {}); store the key now, it is not shown again:", created.id, created.prefix);
            outln!("{}", reveal(&created));
        }
        ApikeyAction::List { tenant, json } => {
            let tenant = TenantId::parse(&tenant)?;
            let aegis = super::connect(config).await?;
            let keys = aegis.api_keys().list(&tenant).await?;
            if json {
                output::json(&keys)?;
            } else {
                let rows: Vec<Vec<String>> = keys
                    .iter()
                    .map(|k| {
                        let state = if k.revoked_at.is_some() { "revoked" } else { "active" };
                        let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
                            t.map_or("-".into(), |t| t.format("%Y-%m-%d %H:%M").to_string())
                        };
                        vec![
                            k.id.to_string(),
                            k.name.clone(),
                            k.prefix.clone(),
                            k.scopes.join(","),
                            state.into(),
                            when(k.expires_at),
                            when(k.last_used_at),
                        ]
                    })
                    .collect();
                output::table(&["id", "name", "prefix", "scopes", "state", "expires", "last used"], &rows);
            }
        }
        ApikeyAction::Revoke { tenant, key_id } => {
            let tenant = TenantId::parse(&tenant)?;
            let key_id =
                key_id.parse().map_err(|_| anyhow::anyhow!("`{key_id}` is not a key id (see `aegis apikey list`)"))?;
            let aegis = super::connect(config).await?;
            aegis.api_keys().revoke(&tenant, key_id, &caller).await?;
            outln!("revoked {key_id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
