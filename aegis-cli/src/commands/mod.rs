//! Command implementations: each loads what it needs and makes one core call.

mod agents;
mod apikey;
mod audit;
mod db;
mod knowledge;
mod migrate;
mod serve;
mod tenant;

use crate::output::out;
use std::process::ExitCode;

use aegis_core::{
    Aegis,
    config::{Config, EXAMPLE_TOML, Overrides},
    tenancy::{Caller, TenantId, TenantScope},
};

use crate::cli::{Cli, Command, ConfigAction};

/// Runs the parsed command line: loads the configuration, then runs the command on an
/// async runtime of `server.runtime_threads` threads, on their half of the CPUs unless
/// `server.split_cpus` is off.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let overrides = Overrides { data_dir: cli.data_dir.clone(), database_url: cli.database_url.clone() };
    if let Command::Config { action: ConfigAction::Example } = &cli.command {
        out!("{EXAMPLE_TOML}");
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::ExtractWorker { format, path } = &cli.command {
        let code = aegis_core::knowledge::extract::isolate::child_main(format, path);
        return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
    }
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    config.server.runtime()?.block_on(dispatch(cli.command, config))
}

async fn dispatch(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Config { action: ConfigAction::Show } => {
            out!("{}", toml_of(&config)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Config { action: ConfigAction::Example } | Command::ExtractWorker { .. } => Ok(ExitCode::SUCCESS),
        Command::Db { action } => db::run(&config, action).await,
        Command::Serve(args) => serve::run(config, args).await,
        Command::Migrate(args) => migrate::run(config, args).await,
        Command::Tenant { action } => tenant::run(config, action).await,
        Command::Apikey { action } => apikey::run(config, action).await,
        Command::Ingest { tenant, paths, json, prune } => knowledge::ingest(config, &tenant, &paths, json, prune).await,
        Command::Search { tenant, query, k, mode, documents, json, explain } => {
            knowledge::search(config, &tenant, &query, k, &mode, documents, (json, explain)).await
        }
        Command::Docs { action } => knowledge::docs(config, action).await,
        Command::Extract { path, json } => knowledge::extract(&config, &path, json).await,
        Command::Agents { action } => agents::run(config, action).await,
        Command::Chat(args) => agents::chat(config, args).await,
        Command::Conversations { action } => agents::conversations(config, action).await,
        Command::Audit { action } => audit::run(config, action).await,
    }
}

fn toml_of(config: &Config) -> anyhow::Result<String> {
    let value = serde_json::to_value(config)?;
    Ok(format!("{}\n", serde_json::to_string_pretty(&value)?))
}

/// Connects, and opens the tenant `tenant` (checked before connecting) as the local operator.
pub async fn scope_of(config: Config, tenant: &str) -> anyhow::Result<(Aegis, TenantScope)> {
    let tenant = TenantId::parse(tenant)?;
    let aegis = connect(config).await?;
    let scope = aegis.tenants().scope(&tenant, Caller::local_operator()).await?;
    Ok((aegis, scope))
}

/// Connects to the platform (starting the embedded cluster when no URL is configured).
/// Documents are extracted in child processes of this binary.
pub async fn connect(config: Config) -> anyhow::Result<Aegis> {
    let mut builder = Aegis::builder().config(config);
    if let Some(isolation) = aegis_core::knowledge::extract::isolate::Isolation::current_exe_worker() {
        builder = builder.extraction(isolation);
    }
    Ok(builder.build().await?)
}
