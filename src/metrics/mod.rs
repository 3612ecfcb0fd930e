//! Classification metrics, and the report aggregated from the prediction and feedback log.

pub mod aggregate;
pub mod confusion;
pub mod histogram;
pub mod html;
pub mod report;
pub mod schedule;

pub use confusion::{ClassMetrics, Confusion};
pub use report::{run_report, AggregationError, Report, ReportConfig};
