//! Read access to the latest metrics report, which [`super::run`] writes to the reports
//! container.

use std::sync::Arc;

use super::run::{LATEST_HTML, LATEST_JSON};
use crate::store::{BlobStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum LatestReportError {
    #[error(
        "no metrics report has been written yet: run `tweet-sentiment report` (or wait for the metrics-report timer) to write the first one"
    )]
    NoReport,
    #[error("the latest report is not valid JSON: {0}")]
    Unreadable(String),
    #[error("reading the latest report failed: {0}")]
    Store(#[from] StoreError),
}

/// The reports container, read-only.
#[derive(Debug, Clone)]
pub struct LatestReport {
    store: Arc<dyn BlobStore>,
    container: String,
}

impl LatestReport {
    pub fn new(store: Arc<dyn BlobStore>, container: impl Into<String>) -> Self {
        Self {
            store,
            container: container.into(),
        }
    }

    /// The latest report as written. It is parsed only to make sure callers get JSON: its fields
    /// belong to the aggregation and are passed through untouched.
    pub async fn latest(&self) -> Result<serde_json::Value, LatestReportError> {
        let blob = match self.store.get(&self.container, LATEST_JSON).await {
            Ok(blob) => blob,
            Err(StoreError::NotFound { .. }) => return Err(LatestReportError::NoReport),
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&blob.bytes)
            .map_err(|e| LatestReportError::Unreadable(e.to_string()))
    }

    /// The latest report as a page, as the run rendered it.
    pub async fn latest_html(&self) -> Result<bytes::Bytes, LatestReportError> {
        match self.store.get(&self.container, LATEST_HTML).await {
            Ok(blob) => Ok(blob.bytes),
            Err(StoreError::NotFound { .. }) => Err(LatestReportError::NoReport),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fs::FsStore;
    use crate::store::WriteCondition;

    fn reports(dir: &std::path::Path) -> (Arc<dyn BlobStore>, LatestReport) {
        let store: Arc<dyn BlobStore> = Arc::new(FsStore::new(
            dir.join("data"),
            dir.join("models"),
            "models".into(),
        ));
        (store.clone(), LatestReport::new(store, "reports"))
    }

    #[tokio::test]
    async fn latest_report_is_read_or_reported_missing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, reports) = reports(dir.path());
        assert!(matches!(
            reports.latest().await,
            Err(LatestReportError::NoReport)
        ));

        let report = serde_json::json!({"generated_at": "2026-11-25T10:00:00Z", "overall": {}});
        store
            .put(
                "reports",
                LATEST_JSON,
                serde_json::to_vec(&report).unwrap().into(),
                WriteCondition::Always,
            )
            .await
            .unwrap();
        assert_eq!(reports.latest().await.unwrap(), report);

        store
            .put(
                "reports",
                LATEST_JSON,
                bytes::Bytes::from_static(b"{truncated"),
                WriteCondition::Always,
            )
            .await
            .unwrap();
        assert!(matches!(
            reports.latest().await,
            Err(LatestReportError::Unreadable(_))
        ));
    }
}
