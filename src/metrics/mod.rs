//! Classification metrics, and the report aggregated from the prediction and feedback log.
//!
//! - [`confusion`], [`histogram`]: the measures (P/R/F1, score bins, PSI, latency quantiles).
//! - [`aggregate`]: the checkpointed state the log's records are folded into.
//! - [`report`]: the report's types and `build_report`, pure.
//! - [`verdict`]: the paired champion/challenger comparison and its verdict, pure.
//! - [`run`]: one run: read the log tails, update the state, write the outputs, commit.
//! - [`html`]: the report as a page; depends on the report's types only.
//! - [`latest`]: read access to the latest report, for `GET /api/report`.
//! - [`schedule`]: the NCRONTAB schedule of the timer.

pub mod aggregate;
pub mod confusion;
pub mod histogram;
pub mod html;
pub mod latest;
pub mod report;
pub mod run;
pub mod schedule;
pub mod verdict;

pub use confusion::{ClassMetrics, Confusion};
pub use latest::{LatestReport, LatestReportError};
pub use report::{Report, ReportConfig};
pub use run::{log_summary, run_report, AggregationError};
pub use verdict::{ChallengerVerdict, Decision, VerdictConfig};
