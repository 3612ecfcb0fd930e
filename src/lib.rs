//! tweet-sentiment scores tweets for sentiment behind an HTTP API: an Azure Functions custom
//! handler, or a local server, serving ONNX model versions from Blob Storage (or a local folder)
//! and swapping them without a redeploy.
//!
//! # Layout
//!
//! Dependencies point one way, from the top of this list to the bottom:
//!
//! - [`functions`]: the HTTP and host adapter. One file per Azure Function, the route registry
//!   ([`functions::FUNCTIONS`]), the typed host protocol ([`functions::host`]) and the one table
//!   mapping errors to status codes ([`functions::ApiError`]).
//! - [`commands`]: the command-line verbs (`serve`, `predict`, `evaluate`, `promote`, `report`).
//! - [`service`]: the core. Validates input, scores off the async runtime, reports health.
//! - [`reports`]: read access to the metrics reports (the latest one, for `GET /api/report`).
//! - [`metrics`]: confusion matrix, precision, recall and F1; the aggregation of the log into
//!   reports (checkpointed, incremental), the report page, the NCRONTAB schedule.
//! - [`log`]: prediction and feedback records, appended to hourly, per-instance blobs.
//! - [`model`]: the model artifact (manifest, sha256 checks), the scorer (tokenizers → tract) and
//!   the registry that hot-swaps the champion.
//! - [`store`]: the [`store::BlobStore`] trait, with a local-folder and an Azure Blob implementation.
//! - [`config`]: every option, each also an environment variable.
//! - [`telemetry`]: JSON log lines on stdout.
//!
//! [`serve`] is the library's entry point for the server: it takes a bound listener and a
//! shutdown signal, so tests bind port 0 and stop it at will.

pub mod commands;
pub mod config;
pub mod functions;
pub mod log;
pub mod metrics;
pub mod model;
pub mod reports;
pub mod service;
pub mod store;
pub mod telemetry;

pub use functions::{serve, AppState};
