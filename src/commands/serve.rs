//! `serve`: the custom handler (or local API) until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::{ReportTimer, ServeArgs};
use crate::functions::{self, AppState, ServerLimits};
use crate::log::{PredictionLog, PredictionLogConfig};
use crate::metrics::schedule::Schedule;
use crate::model::Registry;
use crate::service::batcher::BatcherConfig;
use crate::service::{Service, ServiceConfig};

/// `serve`: binds the configured address and serves until SIGTERM or Ctrl-C.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    raise_file_limit();
    let addr = SocketAddr::new(args.bind_address, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    serve_on(listener, args, async {
        wait_for_signal().await;
        tracing::info!("shutting down");
    })
    .await
}

/// Serves on a ready listener until `shutdown` resolves, then drains and flushes the log. The
/// library's entry point for the server: tests bind port 0 and stop it at will.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    args: ServeArgs,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let store = args.store.open()?;
    let schedule = Schedule::parse(&args.metrics_schedule)
        .map_err(|e| anyhow::anyhow!("METRICS_SCHEDULE: {e}"))?;
    let registry = Arc::new(Registry::new(
        store.clone(),
        args.store.models_container.clone(),
    ));
    // The listener is bound before any model loads, so the host sees the port early; health
    // says 503 until a model is in.
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
            min_flush_interval: Duration::from_millis(args.log_min_flush_milliseconds),
            block_limit: args.store.append_block_limit.max(1),
        },
    ));
    let workers = args.inference_concurrency.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let batching = BatcherConfig {
        workers: workers.max(1),
        max_batch: args.batch_max_texts.max(1),
        chunk: args.batch_chunk_texts.max(1),
        max_wait: Duration::from_micros(args.batch_wait_microseconds),
        max_queued: args.queue_max_texts.max(1),
    };
    let service = Arc::new(Service::new(
        registry.clone(),
        store.clone(),
        log.clone(),
        ServiceConfig {
            batching,
            text_mode: args.log_text.into(),
            report: args.report.report_config(&args.store),
        },
    ));

    // Two stages of shutdown: the signal stops the server (requests in flight finish, or are
    // dropped at the deadline), and only then do the background tasks stop, so the log's final
    // flush sees every record.
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

    let limits = ServerLimits {
        max_connections: args.max_connections.max(1),
        header_timeout: Duration::from_secs(args.header_timeout_seconds.max(1)),
        shutdown_deadline: Duration::from_secs(args.shutdown_seconds),
    };
    let state = AppState {
        service,
        body_timeout: Duration::from_secs(args.body_timeout_seconds.max(1)),
    };
    functions::serve(listener, state, limits, shutdown).await;
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

/// Lifts the soft limit on open files to the hard one: every connection is a descriptor, and a
/// default of 1,024 would run out long before `MAX_CONNECTIONS`.
fn raise_file_limit() {
    #[cfg(unix)]
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
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
