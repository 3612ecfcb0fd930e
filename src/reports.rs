//! Read access to the metrics reports that the `metrics-report` timer writes to the reports
//! container. Only the latest report is read here; writing belongs to the aggregation.

use std::sync::Arc;

use crate::store::{BlobStore, StoreError};

/// Name of the latest report inside the reports container.
pub const LATEST_REPORT: &str = "latest.json";

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "no metrics report has been written yet; the metrics-report timer writes the first one"
    )]
    NoReport,
    #[error("the latest report is not valid JSON: {0}")]
    Unreadable(String),
    #[error("reading the latest report failed: {0}")]
    Store(#[from] StoreError),
}

/// The reports container, read-only.
#[derive(Debug, Clone)]
pub struct Reports {
    store: Arc<dyn BlobStore>,
    container: String,
}

impl Reports {
    pub fn new(store: Arc<dyn BlobStore>, container: impl Into<String>) -> Self {
        Self {
            store,
            container: container.into(),
        }
    }

    /// The latest report as written. It is parsed only to make sure callers get JSON: its fields
    /// belong to the aggregation and are passed through untouched.
    pub async fn latest(&self) -> Result<serde_json::Value, ReportError> {
        let blob = match self.store.get(&self.container, LATEST_REPORT).await {
            Ok(blob) => blob,
            Err(StoreError::NotFound { .. }) => return Err(ReportError::NoReport),
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&blob.bytes).map_err(|e| ReportError::Unreadable(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fs::FsStore;
    use crate::store::WriteCondition;

    fn reports(dir: &std::path::Path) -> (Arc<dyn BlobStore>, Reports) {
        let store: Arc<dyn BlobStore> = Arc::new(FsStore::new(
            dir.join("data"),
            dir.join("models"),
            "models".into(),
        ));
        (store.clone(), Reports::new(store, "reports"))
    }

    #[tokio::test]
    async fn latest_report_is_read_or_reported_missing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, reports) = reports(dir.path());
        assert!(matches!(reports.latest().await, Err(ReportError::NoReport)));

        let report = serde_json::json!({"generated_at": "2026-11-25T10:00:00Z", "overall": {}});
        store
            .put(
                "reports",
                LATEST_REPORT,
                serde_json::to_vec(&report).unwrap().into(),
                WriteCondition::Always,
            )
            .await
            .unwrap();
        assert_eq!(reports.latest().await.unwrap(), report);

        store
            .put(
                "reports",
                LATEST_REPORT,
                bytes::Bytes::from_static(b"{truncated"),
                WriteCondition::Always,
            )
            .await
            .unwrap();
        assert!(matches!(
            reports.latest().await,
            Err(ReportError::Unreadable(_))
        ));
    }
}
