//! `aegis serve`.

use std::process::ExitCode;

use aegis_core::config::Config;
use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;

pub async fn run(mut config: Config, args: ServeArgs) -> anyhow::Result<ExitCode> {
    if let Some(bind) = args.bind {
        config.server.bind = bind;
    }
    let aegis = super::connect(config).await?;
    let bind = aegis.config().server.bind;
    let listener =
        tokio::net::TcpListener::bind(bind).await.map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
    // One line whatever the log level: where to point a browser or an OpenAI client.
    let addr = listener.local_addr()?;
    eprintln!("aegis serving on http://{addr} (gateway at http://{addr}/v1; stop with Ctrl-C)");
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    aegis_server::launch_with_listener(aegis.clone(), listener, shutdown).await?;
    aegis.db().close().await;
    Ok(ExitCode::SUCCESS)
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            let _ = ctrl_c.await;
            shutdown.cancel();
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
