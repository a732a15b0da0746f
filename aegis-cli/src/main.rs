//! `aegis`: the AEGIS command line. Parses arguments, loads configuration, calls the core.

mod cli;
mod commands;
mod output;

use clap::Parser;

/// mimalloc instead of the system allocator: the server's request path allocates and frees
/// many small buffers, and glibc's malloc (with its consolidation passes) was ~12 % of the
/// gateway's CPU under load (benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AEGIS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(if cli.verbose { "info" } else { "warn" })),
        )
        .with_writer(std::io::stderr)
        .init();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
