//! Classification metrics over true labels and predictions.

pub mod confusion;

pub use confusion::{ClassMetrics, Confusion};
