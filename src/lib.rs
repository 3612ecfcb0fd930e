//! tweet-sentiment scores tweets for sentiment behind an HTTP API: an Azure Functions custom
//! handler, or a local server, serving ONNX model versions from Blob Storage (or a local folder)
//! and swapping them without a redeploy.
//!
//! # Layout
//!
//! Floors, top to bottom. A module uses only its own floor and those below it; `tests/floors.rs`
//! fails on any import that climbs.
//!
//! ```text
//!  main · commands · config · telemetry   the edge: clap, signals, process set-up
//!                   │                     (only here do flags and environment exist)
//!               functions                 HTTP and host adapter: one file per function, the
//!                   │                     route registry, wire types, the one error → status
//!                   │                     table, the server and its limits
//!                service                  the core: validation, scoring off the runtime,
//!                   │                     feedback, report runs, health; flat error kinds
//!            metrics · log                the report (types, build, run, page) and the
//!                   │                     prediction/feedback records and their appender
//!                 model                   manifest and shared vocabulary (`Sentiment`,
//!                   │                     `ModelRef`, score → class), scorer, registry
//!                 store                   `BlobStore`: a local folder, or Azure Blob
//! ```
//!
//! - [`commands`]: the command-line verbs (`serve`, `predict`, `evaluate`, `promote`, `report`,
//!   `export-labels`);
//!   [`config`] turns flags and environment into the plain config structs of the floors below.
//! - [`functions`]: [`functions::FUNCTIONS`] (the registry), [`functions::wire`] (request and
//!   answer bodies), [`functions::ApiError`] (the one table), [`functions::serve`].
//! - [`service`]: [`service::Service`], and [`service::ErrorKind`], all the HTTP layer looks at.
//! - [`metrics`]: confusion matrix and F1, the checkpointed aggregation, the report.
//! - [`log`]: prediction and feedback records, appended to hourly, per-instance blobs.
//! - [`model`]: the artifact contract, the scorer (tokenizers → tract), the hot-swap registry.
//! - [`store`]: [`store::BlobStore`] and [`store::StoreConfig`].
//!
//! [`commands::serve::serve_on`] is the library's entry point for the server: it takes a bound
//! listener and a shutdown future, so tests bind port 0 and stop it at will.

pub mod commands;
pub mod config;
pub mod functions;
pub mod log;
pub mod metrics;
pub mod model;
pub mod service;
pub mod store;
pub mod telemetry;

pub use commands::serve::serve_on;
pub use functions::AppState;
