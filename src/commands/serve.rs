//! `serve`: the custom handler (or local API) until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::ServeArgs;
use crate::functions::{self, AppState};
use crate::model::Registry;
use crate::reports::Reports;
use crate::service::Service;
use crate::store;

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let store = store::from_args(&args.store)?;
    let registry = Arc::new(Registry::new(
        store.clone(),
        args.store.models_container.clone(),
    ));
    // Bind before loading, so the host sees the port early; health says 503 until a model is in.
    let addr = SocketAddr::new(args.bind_address, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(address = %listener.local_addr()?, store = %store.describe(), "listening");

    let shutdown = CancellationToken::new();
    let concurrency = args.inference_concurrency.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let service = Arc::new(Service::new(
        registry.clone(),
        concurrency,
        store.describe(),
    ));
    let refresher = {
        let registry = registry.clone();
        let shutdown = shutdown.clone();
        let period = Duration::from_secs(args.model_poll_seconds);
        tokio::spawn(async move {
            registry.refresh().await;
            registry.spawn_poller(period, shutdown).await.ok();
        })
    };

    let signal_token = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        signal_token.cancel();
    });
    let server_token = shutdown.clone();
    let reports = Reports::new(store.clone(), args.store.reports_container.clone());
    functions::serve(listener, AppState { service, reports }, async move {
        server_token.cancelled().await
    })
    .await;
    shutdown.cancel();
    refresher.await.ok();
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.ok();
}
