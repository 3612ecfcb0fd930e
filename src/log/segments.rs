//! Appends that never meet the block limit: each partition folder's blob is written in segments,
//! and a writer moves to the next segment before the current one is full.
//!
//! The writer counts the blocks it appended to each segment. It rolls over a little before the
//! limit, and also when the store answers [`StoreError::BlockLimit`] (a restarted process with the
//! same instance id finds segments it did not count). One writer per blob, so the count is exact.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use time::OffsetDateTime;

use super::{partition_dir, segment_blob};
use crate::store::{BlobStore, StoreError};

#[derive(Debug, Clone, Copy, Default)]
struct Segment {
    number: u32,
    blocks: u32,
}

pub struct SegmentWriter {
    store: Arc<dyn BlobStore>,
    container: String,
    instance: String,
    /// Blocks a segment takes before the next one starts.
    roll_at: u32,
    /// Partition folder → the segment being written and its blocks.
    segments: Mutex<HashMap<String, Segment>>,
}

impl std::fmt::Debug for SegmentWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentWriter")
            .field("container", &self.container)
            .field("instance", &self.instance)
            .field("roll_at", &self.roll_at)
            .finish()
    }
}

impl SegmentWriter {
    /// `block_limit` is the store's; the writer keeps a margin of 1 % below it.
    pub fn new(
        store: Arc<dyn BlobStore>,
        container: String,
        instance: String,
        block_limit: u32,
    ) -> Self {
        let margin = (block_limit / 100).min(500);
        Self {
            store,
            container,
            instance,
            roll_at: block_limit.saturating_sub(margin).max(1),
            segments: Mutex::new(HashMap::new()),
        }
    }

    /// Appends one block to the current segment of the partition `ts` falls in under `prefix`,
    /// and returns the blob it went to.
    pub async fn append(
        &self,
        prefix: &str,
        ts: OffsetDateTime,
        bytes: Bytes,
    ) -> Result<String, StoreError> {
        let dir = partition_dir(prefix, ts);
        // A blob found full moves the writer on; a few full segments in a row (a restart that
        // reuses an instance id) are skipped one by one.
        for _ in 0..64 {
            let segment = {
                let mut segments = self.segments.lock().expect("segment table poisoned");
                let current = segments.entry(dir.clone()).or_default();
                if current.blocks >= self.roll_at {
                    *current = Segment {
                        number: current.number + 1,
                        blocks: 0,
                    };
                }
                *current
            };
            let blob = segment_blob(&dir, &self.instance, segment.number);
            let outcome = self
                .store
                .append(&self.container, &blob, bytes.clone())
                .await;
            let mut segments = self.segments.lock().expect("segment table poisoned");
            let current = segments.entry(dir.clone()).or_default();
            match outcome {
                Ok(()) => {
                    if current.number == segment.number {
                        current.blocks += 1;
                    }
                    return Ok(blob);
                }
                Err(StoreError::BlockLimit { .. }) => {
                    if current.number == segment.number {
                        *current = Segment {
                            number: segment.number + 1,
                            blocks: 0,
                        };
                    }
                }
                Err(error) => {
                    // An answer that never came may still have added a block: count it.
                    if matches!(error, StoreError::Uncertain(_)) && current.number == segment.number
                    {
                        current.blocks += 1;
                    }
                    return Err(error);
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "no segment with room under {dir} for instance {}",
            self.instance
        )))
    }

    /// Forgets partitions older than the current hour's, which no writer appends to any more.
    pub fn forget_before(&self, prefix: &str, ts: OffsetDateTime) {
        let current = partition_dir(prefix, ts);
        self.segments
            .lock()
            .expect("segment table poisoned")
            .retain(|dir, _| !dir.starts_with(prefix) || dir.as_str() >= current.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fs::FsStore;

    #[tokio::test]
    async fn rolls_over_before_the_limit_and_when_a_blob_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn BlobStore> = Arc::new(
            FsStore::new(dir.path().join("data"), dir.path().join("m"), "m".into())
                .with_block_limit(3),
        );
        let ts = time::macros::datetime!(2026-11-25 10:00:00 UTC);
        let writer = SegmentWriter::new(store.clone(), "logs".into(), "i".into(), 3);
        let mut blobs = Vec::new();
        for k in 0..7 {
            let line = Bytes::from(format!("{k}\n"));
            blobs.push(writer.append("p/", ts, line).await.unwrap());
        }
        assert_eq!(
            blobs,
            [
                "p/2026/11/25/10/i.jsonl",
                "p/2026/11/25/10/i.jsonl",
                "p/2026/11/25/10/i.jsonl",
                "p/2026/11/25/10/i.1.jsonl",
                "p/2026/11/25/10/i.1.jsonl",
                "p/2026/11/25/10/i.1.jsonl",
                "p/2026/11/25/10/i.2.jsonl",
            ]
        );

        // A second writer with the same instance id (a restart) knows nothing of those blocks:
        // it learns from the store that the first segments are full, and loses nothing.
        let restarted = SegmentWriter::new(store.clone(), "logs".into(), "i".into(), 3);
        let blob = restarted
            .append("p/", ts, Bytes::from_static(b"7\n"))
            .await
            .unwrap();
        assert_eq!(blob, "p/2026/11/25/10/i.2.jsonl");
        let mut lines = Vec::new();
        for info in store.list("logs", "p/").await.unwrap() {
            let bytes = store.get("logs", &info.name).await.unwrap().bytes;
            lines.extend(
                String::from_utf8(bytes.to_vec())
                    .unwrap()
                    .lines()
                    .map(String::from),
            );
        }
        lines.sort();
        assert_eq!(lines, ["0", "1", "2", "3", "4", "5", "6", "7"]);
    }
}
