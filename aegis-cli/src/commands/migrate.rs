//! `aegis migrate [status]`.

use crate::output::outln;
use std::process::ExitCode;

use aegis_core::{config::Config, tenancy::TenantUpgrade};

use crate::{
    cli::{MigrateAction, MigrateArgs},
    output,
};

pub async fn run(config: Config, args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let parallelism = args.parallelism.unwrap_or(config.migrate.parallelism);
    let aegis = super::connect(config).await?;
    if let Some(MigrateAction::Status { json }) = args.action {
        let versions = aegis.tenants().versions().await?;
        if json || args.json {
            output::json(&versions)?;
        } else {
            let rows = versions
                .iter()
                .map(|v| {
                    let state = if v.version >= v.latest { "current" } else { "behind" };
                    vec![v.tenant.clone(), v.version.to_string(), v.latest.to_string(), state.into()]
                })
                .collect::<Vec<_>>();
            output::table(&["tenant", "version", "latest", "state"], &rows);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = aegis.migrate(parallelism, &aegis_core::tenancy::Caller::local_operator()).await?;
    if args.json {
        output::json(&report)?;
    } else {
        for entry in &report.tenants.tenants {
            match entry {
                TenantUpgrade::Current { tenant, version } => outln!("{tenant}: current (v{version})"),
                TenantUpgrade::Upgraded { tenant, from, to } => outln!("{tenant}: upgraded v{from} -> v{to}"),
                TenantUpgrade::Failed { tenant, error } => outln!("{tenant}: FAILED: {error}"),
            }
        }
        outln!(
            "public: {} applied now; tenants: {} upgraded, {} failed, {} total (latest v{})",
            report.public_applied.len(),
            report.tenants.upgraded(),
            report.tenants.failed(),
            report.tenants.tenants.len(),
            report.tenants.latest
        );
    }
    Ok(if report.tenants.failed() > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS })
}
