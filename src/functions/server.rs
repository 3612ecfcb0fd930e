//! The HTTP server: hyper driven directly over a ready listener, so that every limit a hostile or
//! stuck client could exhaust is ours to set.
//!
//! - At most `max_connections` connections are open at once; past that a new one is closed at
//!   once, so file descriptors run out for nobody.
//! - A connection that has not sent a whole request head within `header_timeout` is closed
//!   (half-open and slow-loris connections cannot pile up); bodies have their own timeout in
//!   [`super::read_body`].
//! - On shutdown the listener closes, requests in flight get until `shutdown_deadline` to finish,
//!   and whatever is still open then is dropped, so the caller can flush the log well inside the
//!   platform's grace period.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{routes, AppState};

/// What a connection may cost the server.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub shutdown_deadline: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            shutdown_deadline: Duration::from_secs(5),
        }
    }
}

/// What happened at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Connections still open at the deadline, and dropped.
    pub dropped: usize,
}

/// Serves until `shutdown` resolves, then drains as [`ServerLimits`] says.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> Drained {
    let service = TowerToHyperService::new(warp::service(routes(state)));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, _peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or a reset during the handshake: nothing to answer.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                max_connections = limits.max_connections,
                "connection limit reached; closing a new connection"
            );
            continue;
        };
        let connection =
            graceful.watch(builder.serve_connection(TokioIo::new(stream), service.clone()));
        connections.spawn(async move {
            if let Err(error) = connection.await {
                // A client that hangs up or sends garbage is the client's business, not an alert.
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let open = connections.len();
    tokio::select! {
        _ = graceful.shutdown() => Drained { dropped: 0 },
        _ = tokio::time::sleep(limits.shutdown_deadline) => {
            let dropped = connections.len();
            connections.abort_all();
            tracing::warn!(open, dropped, deadline_ms = limits.shutdown_deadline.as_millis() as u64,
                "shutdown deadline reached; dropping open connections");
            Drained { dropped }
        }
    }
}
