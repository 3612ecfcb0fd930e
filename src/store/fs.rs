//! The local-folder store: each container is a directory, each blob a file.
//!
//! The models container maps to its own directory (the repository's `models/` by default), so the
//! committed model versions serve as they are; every other container lives under the data directory.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Mutex;

use super::{
    validate_blob_name, Blob, BlobInfo, BlobStore, ETag, StoreError, StoreResult, WriteCondition,
};

#[derive(Debug)]
pub struct FsStore {
    data_dir: PathBuf,
    models_dir: PathBuf,
    models_container: String,
    /// Most appends one blob takes; its count is kept beside the file (`.<name>.blocks`).
    block_limit: u32,
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
            block_limit: super::APPEND_BLOCK_LIMIT,
            write_lock: Mutex::new(()),
        }
    }

    /// The same store with another block limit per append blob (tests set it low).
    pub fn with_block_limit(mut self, limit: u32) -> Self {
        self.block_limit = limit.max(1);
        self
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

    /// The blob's file. Every component below the container's folder must be a plain folder or
    /// file: a symbolic link could lead a read or a write out of the store.
    fn path(&self, container: &str, name: &str) -> StoreResult<PathBuf> {
        validate_blob_name(name)?;
        let root = self.container_dir(container)?;
        let mut path = root.clone();
        for segment in name.split('/') {
            path.push(segment);
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(StoreError::InvalidName(name.to_owned()));
            }
        }
        Ok(path)
    }

    /// The container's lock file, taken around a conditional write so that the check and the
    /// rename are one step for every process sharing the folder, not only for this one.
    fn lock_file(&self, container: &str) -> StoreResult<PathBuf> {
        Ok(self.container_dir(container)?.join(".write.lock"))
    }
}

/// Holds an exclusive `flock` on a file until dropped.
struct FileLock(std::fs::File);

impl FileLock {
    fn acquire(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| io_error(path, e))?;
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: flock only reads the descriptor, which `file` keeps open.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(io_error(path, std::io::Error::last_os_error()));
            }
        }
        Ok(Self(file))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: as in `acquire`; closing the file would release the lock as well.
            unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
        }
    }
}

/// A blob's tag from its file's metadata: size, modification time and inode. Every write of a
/// whole blob renames a fresh file into place (a new inode), and every append changes the size,
/// so the tag changes whenever the content may have; and it costs a `stat`, where hashing the
/// content cost 20 ms for a 45 MB model on each read.
fn etag_of(meta: &std::fs::Metadata) -> ETag {
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0u64;
    ETag(format!("\"{:x}-{modified:x}-{inode:x}\"", meta.len()))
}

/// The tag of the file at `path`, or `None` when there is none.
fn etag_at(path: &Path, container: &str, name: &str) -> StoreResult<Option<ETag>> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(not_found(container, name)),
        Ok(meta) => Ok(Some(etag_of(&meta))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, e)),
    }
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

/// The content of the file at `path` and its tag, both from one open file (so they agree), or
/// `None` when there is none.
fn read_existing(path: &Path, container: &str, name: &str) -> StoreResult<Option<(Vec<u8>, ETag)>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path, e)),
    };
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    if meta.is_dir() {
        return Err(not_found(container, name));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes)
        .map_err(|e| io_error(path, e))?;
    Ok(Some((bytes, etag_of(&meta))))
}

#[async_trait]
impl BlobStore for FsStore {
    async fn get(&self, container: &str, name: &str) -> StoreResult<Blob> {
        let path = self.path(container, name)?;
        let (c, n) = (container.to_owned(), name.to_owned());
        blocking(move || {
            let (bytes, etag) = read_existing(&path, &c, &n)?.ok_or_else(|| not_found(&c, &n))?;
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
        blocking(move || etag_at(&path, &c, &n)).await
    }

    async fn put(
        &self,
        container: &str,
        name: &str,
        bytes: Bytes,
        condition: WriteCondition,
    ) -> StoreResult<ETag> {
        let path = self.path(container, name)?;
        let lock = (!matches!(condition, WriteCondition::Always))
            .then(|| self.lock_file(container))
            .transpose()?;
        let (c, n) = (container.to_owned(), name.to_owned());
        let _guard = self.write_lock.lock().await;
        blocking(move || {
            let _other_processes = lock.as_deref().map(FileLock::acquire).transpose()?;
            let current = etag_at(&path, &c, &n)?;
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
            // The tag of the file just written: taken before the rename, from the open file, so
            // that a concurrent writer's file can never lend us its tag.
            let etag = etag_of(&file.metadata().map_err(|e| io_error(&tmp, e))?);
            std::fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))?;
            Ok(etag)
        })
        .await
    }

    async fn delete_if_match(&self, container: &str, name: &str, tag: &ETag) -> StoreResult<()> {
        let path = self.path(container, name)?;
        let lock = self.lock_file(container)?;
        let (c, n, tag) = (container.to_owned(), name.to_owned(), tag.clone());
        let _guard = self.write_lock.lock().await;
        blocking(move || {
            let _other_processes = FileLock::acquire(&lock)?;
            match etag_at(&path, &c, &n)? {
                None => Err(StoreError::NotFound {
                    container: c,
                    name: n,
                }),
                Some(current) if current != tag => Err(StoreError::ConditionFailed {
                    container: c,
                    name: n,
                }),
                Some(_) => std::fs::remove_file(&path).map_err(|e| io_error(&path, e)),
            }
        })
        .await
    }

    async fn append(&self, container: &str, name: &str, bytes: Bytes) -> StoreResult<()> {
        let path = self.path(container, name)?;
        let limit = self.block_limit;
        let (c, n) = (container.to_owned(), name.to_owned());
        let _guard = self.write_lock.lock().await;
        blocking(move || {
            let dir = path.parent().expect("a blob path always has a parent");
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
            let counter = dir.join(format!(
                ".{}.blocks",
                path.file_name().unwrap_or_default().to_string_lossy()
            ));
            let blocks: u32 = std::fs::read_to_string(&counter)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            if blocks >= limit {
                return Err(StoreError::BlockLimit {
                    container: c,
                    name: n,
                });
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| io_error(&path, e))?;
            // An append is all or nothing, as an Azure append block is: a write that fails half
            // way (disk full) is cut back, so no torn line is left for a reader or a retry to
            // glue onto.
            let before = file.metadata().map_err(|e| io_error(&path, e))?.len();
            let written = file
                .write_all(&bytes)
                .and_then(|()| file.sync_data())
                .map_err(|e| io_error(&path, e));
            if written.is_err() {
                if let Err(e) = file.set_len(before).and_then(|()| file.sync_data()) {
                    tracing::error!(path = %path.display(), error = %e, "could not cut back a failed append");
                }
                return written;
            }
            // The data is stored: a counter that cannot be written only loses count, and failing
            // here would make the caller append the same bytes again.
            if let Err(e) = std::fs::write(&counter, (blocks + 1).to_string()) {
                tracing::warn!(path = %counter.display(), error = %e, "could not count an append block");
            }
            Ok(())
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

    fn kind(&self) -> &'static str {
        "local folder"
    }

    fn locate(&self, container: &str, name: &str) -> String {
        match self.path(container, name) {
            Ok(path) => path.display().to_string(),
            Err(_) => format!("{container}/{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> FsStore {
        FsStore::new(dir.join("data"), dir.join("models"), "models".into())
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symbolic_links_cannot_lead_out_of_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.json"), b"{}").unwrap();
        std::fs::create_dir_all(dir.path().join("models")).unwrap();
        std::os::unix::fs::symlink(&outside, dir.path().join("models").join("lstm")).unwrap();
        assert!(matches!(
            store.get("models", "lstm/secret.json").await,
            Err(StoreError::InvalidName(_))
        ));
        assert!(matches!(
            store
                .put(
                    "models",
                    "lstm/new.json",
                    Bytes::from_static(b"x"),
                    WriteCondition::Always
                )
                .await,
            Err(StoreError::InvalidName(_))
        ));
        assert!(!outside.join("new.json").exists());
    }

    /// Two stores on one folder stand for two processes: each has its own in-process lock, so
    /// only the file lock keeps their conditional writes from both succeeding.
    #[tokio::test]
    async fn conditional_writes_from_two_processes_never_both_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            std::sync::Arc::new(store(dir.path())),
            std::sync::Arc::new(store(dir.path())),
        );
        a.put(
            "reports",
            "c.json",
            Bytes::from_static(b"0"),
            WriteCondition::Always,
        )
        .await
        .unwrap();
        for round in 0..30u32 {
            let etag = a.etag("reports", "c.json").await.unwrap().unwrap();
            let write = |s: std::sync::Arc<FsStore>, who: &'static str| {
                let etag = etag.clone();
                tokio::spawn(async move {
                    s.put(
                        "reports",
                        "c.json",
                        Bytes::from(format!("{round}{who}")),
                        WriteCondition::IfMatch(etag),
                    )
                    .await
                })
            };
            let (ra, rb) = tokio::join!(write(a.clone(), "a"), write(b.clone(), "b"));
            let won = [ra.unwrap(), rb.unwrap()]
                .iter()
                .filter(|r| r.is_ok())
                .count();
            assert_eq!(won, 1, "round {round}: exactly one conditional write wins");
        }
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
