//! The local-folder store: each container is a directory, each blob a file.
//!
//! The models container maps to its own directory (the repository's `models/` by default), so the
//! committed model versions serve as they are; every other container lives under the data directory.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::{
    validate_blob_name, Blob, BlobInfo, BlobStore, ETag, StoreError, StoreResult, WriteCondition,
};

#[derive(Debug)]
pub struct FsStore {
    data_dir: PathBuf,
    models_dir: PathBuf,
    models_container: String,
    /// Serialises writes, so that a conditional put's check and rename are one step for every
    /// writer in this process.
    write_lock: Mutex<()>,
}

impl FsStore {
    pub fn new(data_dir: PathBuf, models_dir: PathBuf, models_container: String) -> Self {
        Self {
            data_dir,
            models_dir,
            models_container,
            write_lock: Mutex::new(()),
        }
    }

    fn container_dir(&self, container: &str) -> StoreResult<PathBuf> {
        validate_blob_name(container)?;
        if container.contains('/') {
            return Err(StoreError::InvalidName(container.to_owned()));
        }
        Ok(if container == self.models_container {
            self.models_dir.clone()
        } else {
            self.data_dir.join(container)
        })
    }

    fn path(&self, container: &str, name: &str) -> StoreResult<PathBuf> {
        validate_blob_name(name)?;
        Ok(self.container_dir(container)?.join(name))
    }
}

fn etag_of(bytes: &[u8]) -> ETag {
    let digest = Sha256::digest(bytes);
    ETag(format!("\"{}\"", hex::encode(&digest[..16])))
}

fn io_error(context: &Path, err: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("{}: {err}", context.display()))
}

fn not_found(container: &str, name: &str) -> StoreError {
    StoreError::NotFound {
        container: container.to_owned(),
        name: name.to_owned(),
    }
}

/// Runs blocking file work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> StoreResult<T> + Send + 'static,
) -> StoreResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Unavailable(format!("file task failed: {e}")))?
}

fn read_existing(path: &Path, container: &str, name: &str) -> StoreResult<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => Err(not_found(container, name)),
        Err(e) => Err(io_error(path, e)),
    }
}

#[async_trait]
impl BlobStore for FsStore {
    async fn get(&self, container: &str, name: &str) -> StoreResult<Blob> {
        let path = self.path(container, name)?;
        let (c, n) = (container.to_owned(), name.to_owned());
        blocking(move || {
            let bytes = read_existing(&path, &c, &n)?.ok_or_else(|| not_found(&c, &n))?;
            let etag = etag_of(&bytes);
            Ok(Blob {
                bytes: Bytes::from(bytes),
                etag,
            })
        })
        .await
    }

    async fn get_from(&self, container: &str, name: &str, offset: u64) -> StoreResult<Bytes> {
        let path = self.path(container, name)?;
        let (c, n) = (container.to_owned(), name.to_owned());
        blocking(move || {
            let mut file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(not_found(&c, &n))
                }
                Err(e) => return Err(io_error(&path, e)),
            };
            let len = file.metadata().map_err(|e| io_error(&path, e))?.len();
            if offset >= len {
                return Ok(Bytes::new());
            }
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| io_error(&path, e))?;
            let mut buf = Vec::with_capacity((len - offset) as usize);
            file.read_to_end(&mut buf).map_err(|e| io_error(&path, e))?;
            Ok(Bytes::from(buf))
        })
        .await
    }

    async fn etag(&self, container: &str, name: &str) -> StoreResult<Option<ETag>> {
        let path = self.path(container, name)?;
        let (c, n) = (container.to_owned(), name.to_owned());
        blocking(move || Ok(read_existing(&path, &c, &n)?.map(|b| etag_of(&b)))).await
    }

    async fn put(
        &self,
        container: &str,
        name: &str,
        bytes: Bytes,
        condition: WriteCondition,
    ) -> StoreResult<ETag> {
        let path = self.path(container, name)?;
        let (c, n) = (container.to_owned(), name.to_owned());
        let _guard = self.write_lock.lock().await;
        blocking(move || {
            let current = read_existing(&path, &c, &n)?.map(|b| etag_of(&b));
            let allowed = match (&condition, &current) {
                (WriteCondition::Always, _) => true,
                (WriteCondition::IfAbsent, existing) => existing.is_none(),
                (WriteCondition::IfMatch(expected), Some(actual)) => expected == actual,
                (WriteCondition::IfMatch(_), None) => false,
            };
            if !allowed {
                return Err(StoreError::ConditionFailed {
                    container: c,
                    name: n,
                });
            }
            let dir = path.parent().expect("a blob path always has a parent");
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
            // Write a sibling and rename it over the target, so that readers see the old or the
            // new content, never a torn file.
            let tmp = dir.join(format!(
                ".{}.{}.tmp",
                path.file_name().unwrap_or_default().to_string_lossy(),
                uuid::Uuid::now_v7()
            ));
            let mut file = std::fs::File::create(&tmp).map_err(|e| io_error(&tmp, e))?;
            file.write_all(&bytes).map_err(|e| io_error(&tmp, e))?;
            file.sync_all().map_err(|e| io_error(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))?;
            Ok(etag_of(&bytes))
        })
        .await
    }

    async fn append(&self, container: &str, name: &str, bytes: Bytes) -> StoreResult<()> {
        let path = self.path(container, name)?;
        let _guard = self.write_lock.lock().await;
        blocking(move || {
            let dir = path.parent().expect("a blob path always has a parent");
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| io_error(&path, e))?;
            file.write_all(&bytes).map_err(|e| io_error(&path, e))?;
            // Acknowledged means on disk.
            file.sync_data().map_err(|e| io_error(&path, e))
        })
        .await
    }

    async fn list(&self, container: &str, prefix: &str) -> StoreResult<Vec<BlobInfo>> {
        let root = self.container_dir(container)?;
        let prefix = prefix.to_owned();
        blocking(move || {
            let mut found = Vec::new();
            let mut pending = vec![root.clone()];
            while let Some(dir) = pending.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_error(&dir, e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| io_error(&dir, e))?;
                    let path = entry.path();
                    let file_type = entry.file_type().map_err(|e| io_error(&path, e))?;
                    let Ok(relative) = path.strip_prefix(&root) else {
                        continue;
                    };
                    let name = relative.to_string_lossy().replace('\\', "/");
                    // Skip in-flight temporary files of `put`.
                    if entry.file_name().to_string_lossy().starts_with('.') {
                        continue;
                    }
                    if file_type.is_dir() {
                        // Only descend where the prefix can still match.
                        if prefix.starts_with(&format!("{name}/")) || name.starts_with(&prefix) {
                            pending.push(path);
                        }
                    } else if file_type.is_file() && name.starts_with(&prefix) {
                        let size = entry.metadata().map_err(|e| io_error(&path, e))?.len();
                        found.push(BlobInfo { name, size });
                    }
                }
            }
            found.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(found)
        })
        .await
    }

    fn describe(&self) -> String {
        format!(
            "local folder (data: {}, models: {})",
            self.data_dir.display(),
            self.models_dir.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> FsStore {
        FsStore::new(dir.join("data"), dir.join("models"), "models".into())
    }

    #[tokio::test]
    async fn conditional_put_refuses_stale_and_duplicate_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let first = store
            .put(
                "models",
                "champion.json",
                Bytes::from_static(b"a"),
                WriteCondition::IfAbsent,
            )
            .await
            .unwrap();
        assert!(matches!(
            store
                .put(
                    "models",
                    "champion.json",
                    Bytes::from_static(b"b"),
                    WriteCondition::IfAbsent
                )
                .await,
            Err(StoreError::ConditionFailed { .. })
        ));
        let second = store
            .put(
                "models",
                "champion.json",
                Bytes::from_static(b"b"),
                WriteCondition::IfMatch(first.clone()),
            )
            .await
            .unwrap();
        assert_ne!(first, second);
        assert!(matches!(
            store
                .put(
                    "models",
                    "champion.json",
                    Bytes::from_static(b"c"),
                    WriteCondition::IfMatch(first)
                )
                .await,
            Err(StoreError::ConditionFailed { .. })
        ));
        let blob = store.get("models", "champion.json").await.unwrap();
        assert_eq!(&blob.bytes[..], b"b");
        assert_eq!(blob.etag, second);
        assert!(dir.path().join("models/champion.json").exists());
    }

    #[tokio::test]
    async fn append_get_from_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        store
            .append("logs", "p/2026/a.jsonl", Bytes::from_static(b"one\n"))
            .await
            .unwrap();
        store
            .append("logs", "p/2026/a.jsonl", Bytes::from_static(b"two\n"))
            .await
            .unwrap();
        store
            .append("logs", "q/b.jsonl", Bytes::from_static(b"x\n"))
            .await
            .unwrap();
        assert_eq!(
            &store.get_from("logs", "p/2026/a.jsonl", 4).await.unwrap()[..],
            b"two\n"
        );
        assert!(store
            .get_from("logs", "p/2026/a.jsonl", 99)
            .await
            .unwrap()
            .is_empty());
        let listed = store.list("logs", "p/").await.unwrap();
        assert_eq!(
            listed,
            vec![BlobInfo {
                name: "p/2026/a.jsonl".into(),
                size: 8
            }]
        );
        assert_eq!(store.list("logs", "").await.unwrap().len(), 2);
        assert!(store.list("nothing", "").await.unwrap().is_empty());
        assert!(matches!(
            store.get("logs", "missing").await,
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(store.etag("logs", "missing").await.unwrap(), None);
        assert!(store.get("logs", "../escape").await.is_err());
    }
}
