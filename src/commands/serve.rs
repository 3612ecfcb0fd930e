//! `serve`: the custom handler (or local API) until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::{ReportTimer, ServeArgs};
use crate::functions::{self, AppState};
use crate::log::{PredictionLog, PredictionLogConfig};
use crate::metrics::schedule::Schedule;
use crate::model::Registry;
use crate::reports::Reports;
use crate::service::{Service, ServiceConfig};
use crate::store;

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let store = store::from_args(&args.store)?;
    let schedule = Schedule::parse(&args.metrics_schedule)
        .map_err(|e| anyhow::anyhow!("METRICS_SCHEDULE: {e}"))?;
    let registry = Arc::new(Registry::new(
        store.clone(),
        args.store.models_container.clone(),
    ));
    // Bind before loading, so the host sees the port early; health says 503 until a model is in.
    let addr = SocketAddr::new(args.bind_address, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let instance = args
        .instance_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
    tracing::info!(address = %listener.local_addr()?, store = %store.describe(), instance = %instance, "listening");

    let log = Arc::new(PredictionLog::new(
        store.clone(),
        PredictionLogConfig {
            instance,
            container: args.store.logs_container.clone(),
            max_batch: args.log_batch_records.max(1),
            max_age: Duration::from_millis(args.log_batch_milliseconds.max(10)),
            max_pending: args.log_max_pending.max(1),
        },
    ));
    let concurrency = args.inference_concurrency.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let service = Arc::new(Service::new(
        registry.clone(),
        store.clone(),
        log.clone(),
        ServiceConfig {
            concurrency,
            text_mode: args.log_text,
            report: args.report.report_config(&args.store),
        },
    ));

    // Two stages of shutdown: the signal stops the server (requests in flight finish), and only
    // then do the background tasks stop, so the log's final flush sees every record.
    let stop_serving = CancellationToken::new();
    let stop_background = CancellationToken::new();
    let refresher = {
        let registry = registry.clone();
        let stop = stop_background.clone();
        let period = Duration::from_secs(args.model_poll_seconds);
        tokio::spawn(async move {
            registry.refresh().await;
            registry.spawn_poller(period, stop).await.ok();
        })
    };
    let flusher = log
        .clone()
        .spawn_flusher(stop_background.clone(), Duration::from_secs(10));
    let under_host = std::env::var_os("FUNCTIONS_CUSTOMHANDLER_PORT").is_some();
    let own_timer = match args.report_timer {
        ReportTimer::Always => true,
        ReportTimer::Never => false,
        ReportTimer::Auto => !under_host,
    };
    let timer = own_timer.then(|| {
        tokio::spawn(report_timer(
            service.clone(),
            schedule,
            stop_background.clone(),
        ))
    });

    let signal_token = stop_serving.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        signal_token.cancel();
    });
    let reports = Reports::new(store.clone(), args.store.reports_container.clone());
    functions::serve(listener, AppState { service, reports }, async move {
        stop_serving.cancelled().await
    })
    .await;
    stop_background.cancel();
    refresher.await.ok();
    flusher.await.ok();
    if let Some(timer) = timer {
        timer.await.ok();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Runs the report on the schedule, for a `serve` without a Functions host.
async fn report_timer(service: Arc<Service>, schedule: Schedule, stop: CancellationToken) {
    loop {
        let now = time::OffsetDateTime::now_utc();
        let Some(next) = schedule.next_after(now) else {
            tracing::warn!("METRICS_SCHEDULE never fires; the report timer is off");
            return;
        };
        let wait = Duration::try_from(next - now).unwrap_or_default();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if let Err(error) = service.run_report().await {
            tracing::error!(%error, "metrics report failed");
        }
    }
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
