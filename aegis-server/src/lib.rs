//! # aegis-server
//!
//! The reference HTTP server over `aegis-core` (axum). Handlers are thin: they extract
//! inputs, make one core call, and map the result. It also runs the background worker.
//!
//! Embed it with [`launch`] (binds the configured address) or [`launch_with_listener`]
//! (tests bind `127.0.0.1:0`).

mod chat;
mod documents;
mod error;
mod gateway;
mod health;
mod identity;
mod metrics;
mod routes;
mod tenant_api;
mod tiers;

pub use error::ApiError;
pub use identity::Identity;

use std::{sync::Arc, time::Duration};

use aegis_core::{
    Aegis,
    jobs::{Worker, WorkerOptions},
    knowledge::{bulk::IndexRepair, queue::IngestHandler},
    policy::meters::ReservationSweeper,
};

/// Advisory-lock key electing the one server that runs platform sweeps.
const LEADER_KEY: i64 = 0x4145_4749_535f_4c44;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use routes::router;

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The platform.
    pub aegis: Aegis,
    /// Tenant tiers, cached for the gateway.
    pub tiers: tiers::TierCache,
}

impl AppState {
    /// State over a platform.
    pub fn new(aegis: Aegis) -> Self {
        Self { tiers: tiers::TierCache::new(aegis.clone()), aegis }
    }
}

/// A server failure.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding or serving failed.
    #[error("server I/O error on {addr}: {source}")]
    Io {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// The worker failed.
    #[error(transparent)]
    Core(#[from] aegis_core::Error),
}

/// Binds `aegis.config().server.bind` and serves until `shutdown` is cancelled.
pub async fn launch(aegis: Aegis, shutdown: CancellationToken) -> Result<(), ServerError> {
    let addr = aegis.config().server.bind;
    let listener =
        TcpListener::bind(addr).await.map_err(|source| ServerError::Io { addr: addr.to_string(), source })?;
    launch_with_listener(aegis, listener, shutdown).await
}

/// Serves on `listener` until `shutdown` is cancelled, then lets in-flight requests finish
/// (up to `server.shutdown_grace_secs`) and stops the worker.
pub async fn launch_with_listener(
    aegis: Aegis,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let worker = aegis.config().workers.enabled.then(|| {
        let mut options = WorkerOptions::from_config(&aegis.config().workers, "serve");
        options.leader_key = Some(LEADER_KEY);
        let sweeper = Arc::new(ReservationSweeper {
            meters: aegis.models().meters().clone(),
            keep_finished: aegis.models().config().premium.finished_reservations_kept(),
        });
        let ingest = Arc::new(IngestHandler { knowledge: aegis.knowledge().clone(), tenants: aegis.tenants().clone() });
        let index_repair = Arc::new(IndexRepair(aegis.db().clone()));
        Worker::new(aegis.db().clone(), options)
            .handler(ingest)
            .periodic(Duration::from_secs(60), sweeper)
            .periodic(Duration::from_secs(300), index_repair)
            .spawn(shutdown.clone())
    });
    let grace = Duration::from_secs(aegis.config().server.shutdown_grace_secs);
    let app = router(AppState::new(aegis));
    tracing::info!(%addr, "aegis serving");
    let serve = axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let served = async {
        tokio::select! {
            result = serve.into_future() => result,
            () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!("shutdown grace ran out; dropping open connections");
                Ok(())
            }
        }
    }
    .await;
    if let Some(worker) = worker {
        worker.join().await.map_err(aegis_core::Error::from)?;
    }
    served.map_err(|source| ServerError::Io { addr, source })
}
