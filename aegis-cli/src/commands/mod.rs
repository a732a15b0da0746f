//! Command implementations: each loads what it needs and makes one core call.

mod apikey;
mod db;
mod migrate;
mod serve;
mod tenant;

use std::process::ExitCode;

use aegis_core::{
    Aegis,
    config::{Config, EXAMPLE_TOML, Overrides},
};

use crate::cli::{Cli, Command, ConfigAction};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let overrides = Overrides { data_dir: cli.data_dir.clone(), database_url: cli.database_url.clone() };
    if let Command::Config { action: ConfigAction::Example } = &cli.command {
        print!("{EXAMPLE_TOML}");
        return Ok(ExitCode::SUCCESS);
    }
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    match cli.command {
        Command::Config { action: ConfigAction::Show } => {
            print!("{}", toml_of(&config)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Config { action: ConfigAction::Example } => Ok(ExitCode::SUCCESS),
        Command::Db { action } => db::run(&config, action).await,
        Command::Serve(args) => serve::run(config, args).await,
        Command::Migrate(args) => migrate::run(config, args).await,
        Command::Tenant { action } => tenant::run(config, action).await,
        Command::Apikey { action } => apikey::run(config, action).await,
    }
}

fn toml_of(config: &Config) -> anyhow::Result<String> {
    let value = serde_json::to_value(config)?;
    Ok(format!("{}\n", serde_json::to_string_pretty(&value)?))
}

/// Connects to the platform (starting the embedded cluster when no URL is configured).
pub async fn connect(config: Config) -> anyhow::Result<Aegis> {
    Ok(Aegis::builder().config(config).build().await?)
}
