//! The prediction and feedback log: JSON Lines in append blobs, partitioned by hour and instance,
//! and cut into segments.
//!
//! `logs/predictions/YYYY/MM/DD/HH/<instance>.jsonl`, then `<instance>.1.jsonl`, `<instance>.2.jsonl`…
//! (the same under `feedback/`): one writer per blob, since each instance has its own id, and a
//! new segment before a blob reaches the most blocks an append blob may hold
//! ([`crate::store::APPEND_BLOCK_LIMIT`]). The report reads every blob under the prefix, so it
//! reads every segment.

pub mod appender;
pub mod export;
pub mod record;
pub mod segments;

pub use appender::{LogStatus, PredictionLog, PredictionLogConfig};
pub use record::{FeedbackRecord, PredictionRecord, TextMode};

use time::OffsetDateTime;

pub const PREDICTIONS_PREFIX: &str = "predictions/";
pub const FEEDBACK_PREFIX: &str = "feedback/";

/// The folder of the hour `ts` falls in, under `prefix`.
pub fn partition_dir(prefix: &str, ts: OffsetDateTime) -> String {
    let ts = ts.to_offset(time::UtcOffset::UTC);
    format!(
        "{prefix}{:04}/{:02}/{:02}/{:02}/",
        ts.year(),
        u8::from(ts.month()),
        ts.day(),
        ts.hour()
    )
}

/// Segment `segment` of `instance`'s blob in a partition folder: the first has no number.
pub fn segment_blob(dir: &str, instance: &str, segment: u32) -> String {
    match segment {
        0 => format!("{dir}{instance}.jsonl"),
        n => format!("{dir}{instance}.{n}.jsonl"),
    }
}

/// The first segment of the blob a record written at `ts` by `instance` goes to, under `prefix`.
pub fn partition_blob(prefix: &str, ts: OffsetDateTime, instance: &str) -> String {
    segment_blob(&partition_dir(prefix, ts), instance, 0)
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
        assert_eq!(
            segment_blob("feedback/2026/11/26/01/", "i1", 3),
            "feedback/2026/11/26/01/i1.3.jsonl"
        );
    }
}
