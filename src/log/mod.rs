//! The prediction and feedback log: JSON Lines in append blobs, partitioned by hour and instance.
//!
//! `logs/predictions/YYYY/MM/DD/HH/<instance>.jsonl` and `logs/feedback/YYYY/MM/DD/HH/<instance>.jsonl`:
//! one writer per blob (each instance has its own id), and an hour of one instance's batched
//! appends stays far below an append blob's 50,000 blocks.

pub mod appender;
pub mod record;

pub use appender::{LogStatus, PredictionLog, PredictionLogConfig};
pub use record::{FeedbackRecord, PredictionRecord, TextMode};

use time::OffsetDateTime;

pub const PREDICTIONS_PREFIX: &str = "predictions/";
pub const FEEDBACK_PREFIX: &str = "feedback/";

/// The blob a record written at `ts` by `instance` goes to, under `prefix`.
pub fn partition_blob(prefix: &str, ts: OffsetDateTime, instance: &str) -> String {
    let ts = ts.to_offset(time::UtcOffset::UTC);
    format!(
        "{prefix}{:04}/{:02}/{:02}/{:02}/{instance}.jsonl",
        ts.year(),
        u8::from(ts.month()),
        ts.day(),
        ts.hour()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_by_utc_hour() {
        let ts = time::macros::datetime!(2026-11-25 23:59:59 -02:00);
        assert_eq!(
            partition_blob(PREDICTIONS_PREFIX, ts, "i1"),
            "predictions/2026/11/26/01/i1.jsonl"
        );
    }
}
