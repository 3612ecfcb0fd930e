//! Blob storage behind one small trait.
//!
//! Two implementations: [`fs::FsStore`], a local folder that needs no account (the embedded default),
//! and [`azure::AzureStore`], Azure Blob Storage through the official SDK. Everything above this layer
//! speaks only [`BlobStore`], so tests and local runs exercise the same code paths as production.

pub mod azure;
pub mod connection_string;
pub mod fs;
pub mod sas;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use std::path::PathBuf;
use std::time::Duration;

/// An opaque version tag of a blob's content, compared for equality only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ETag(pub String);

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A downloaded blob and the tag of the content that was read.
#[derive(Debug, Clone)]
pub struct Blob {
    pub bytes: Bytes,
    pub etag: ETag,
}

/// Precondition on a write, so that concurrent writers never silently overwrite each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// Overwrite whatever is there.
    Always,
    /// Write only if the blob does not exist yet.
    IfAbsent,
    /// Write only if the blob still has this tag.
    IfMatch(ETag),
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub name: String,
    pub size: u64,
}

/// Errors of the storage layer. Messages never contain credentials: the Azure implementation
/// redacts SAS signatures before building them.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("blob {container}/{name} not found")]
    NotFound { container: String, name: String },
    #[error("precondition failed writing {container}/{name}: it was changed or already exists")]
    ConditionFailed { container: String, name: String },
    #[error("invalid blob name {0:?}")]
    InvalidName(String),
    /// The append blob holds as many blocks as it may (50,000 on Azure): append to another one.
    #[error("append blob {container}/{name} is full: it holds the most blocks a blob may")]
    BlockLimit { container: String, name: String },
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The call got no answer (a timeout, a connection lost mid-request): the operation may or
    /// may not have taken effect.
    #[error("storage did not answer, the operation may or may not have taken effect: {0}")]
    Uncertain(String),
    #[error("storage configuration: {0}")]
    Config(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The storage operations the product needs, and no more.
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// Reads a whole blob.
    async fn get(&self, container: &str, name: &str) -> StoreResult<Blob>;

    /// Reads a blob from byte `offset` to its end; an offset at or past the end gives no bytes.
    async fn get_from(&self, container: &str, name: &str, offset: u64) -> StoreResult<Bytes>;

    /// The current tag of a blob, or `None` when it does not exist. Cheap: no content is read.
    async fn etag(&self, container: &str, name: &str) -> StoreResult<Option<ETag>>;

    /// Writes a whole blob under a precondition and returns the new tag.
    async fn put(
        &self,
        container: &str,
        name: &str,
        bytes: Bytes,
        condition: WriteCondition,
    ) -> StoreResult<ETag>;

    /// Deletes a blob when it is there and matches `tag`. A blob already gone is `NotFound`; one
    /// changed since `tag` was read is `ConditionFailed` and stays.
    async fn delete_if_match(&self, container: &str, name: &str, tag: &ETag) -> StoreResult<()>;

    /// Appends bytes to an append blob, creating it when missing. Returns only once the bytes
    /// are durably stored: an `Ok` is a promise that they will be read back.
    async fn append(&self, container: &str, name: &str, bytes: Bytes) -> StoreResult<()>;

    /// Lists blobs whose names start with `prefix`, sorted by name.
    async fn list(&self, container: &str, prefix: &str) -> StoreResult<Vec<BlobInfo>>;

    /// A short description for the operator's logs, without secrets.
    fn describe(&self) -> String;

    /// What kind of store this is, for anonymous callers: no paths, no endpoint.
    fn kind(&self) -> &'static str;

    /// Where a person finds a blob: a file path for the local store, a URL for Azure.
    fn locate(&self, container: &str, name: &str) -> String;
}

/// Rejects names that could escape a container on the local store or confuse the Azure URL
/// builder: empty names, absolute paths, `..`/`.` segments and control characters.
pub fn validate_blob_name(name: &str) -> StoreResult<()> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name.ends_with('/')
        || name.contains('\\')
        || name.chars().any(char::is_control)
        || name
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        Err(StoreError::InvalidName(name.to_owned()))
    } else {
        Ok(())
    }
}

/// Most blocks one append blob holds on Azure; past it every append fails. The local store
/// enforces the same limit, so no writer can rely on a limit only the cloud has.
pub const APPEND_BLOCK_LIMIT: u32 = 50_000;

/// Which Entra ID credential the Azure store uses with an account URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// The app's managed identity (in Azure).
    ManagedIdentity,
    /// The Azure CLI or Azure Developer CLI login.
    DeveloperTools,
}

/// Where blobs live, as plain values. The command line builds it from flags and environment.
#[derive(Clone)]
pub struct StoreConfig {
    /// An Azure Storage connection string (Azurite's, or one with an account key).
    pub connection_string: Option<String>,
    /// A blob service URL, used with `credential` when there is no connection string.
    pub account_url: Option<String>,
    pub credential: Credential,
    /// Local store: the folder holding every container but the models one…
    pub data_dir: PathBuf,
    /// …the folder serving as the models container…
    pub models_dir: PathBuf,
    /// …and that container's name.
    pub models_container: String,
    /// Upper bound on one storage operation, retries included.
    pub timeout: Duration,
    /// Local store: most appends (blocks) one append blob takes, as Azure's 50,000; lower in tests.
    pub append_block_limit: u32,
}

impl fmt::Debug for StoreConfig {
    /// The connection string may hold an account key: never shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field(
                "connection_string",
                &self.connection_string.as_ref().map(|_| "REDACTED"),
            )
            .field("account_url", &self.account_url)
            .field("credential", &self.credential)
            .field("data_dir", &self.data_dir)
            .field("models_dir", &self.models_dir)
            .field("models_container", &self.models_container)
            .field("timeout", &self.timeout)
            .field("append_block_limit", &self.append_block_limit)
            .finish()
    }
}

/// Builds the store the configuration asks for: a connection string first, then an account URL
/// with an Entra ID credential, else the local folder.
pub fn open(config: &StoreConfig) -> StoreResult<Arc<dyn BlobStore>> {
    let timeout = config.timeout.max(Duration::from_secs(1));
    if let Some(connection_string) = config.connection_string.as_deref() {
        let parsed = connection_string::ConnectionString::parse(connection_string)?;
        return Ok(Arc::new(azure::AzureStore::with_account_key(
            parsed, timeout,
        )?));
    }
    if let Some(url) = config.account_url.as_deref() {
        return Ok(Arc::new(azure::AzureStore::with_credential(
            url,
            config.credential,
            timeout,
        )?));
    }
    Ok(Arc::new(
        fs::FsStore::new(
            config.data_dir.clone(),
            config.models_dir.clone(),
            config.models_container.clone(),
        )
        .with_block_limit(config.append_block_limit),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_names_that_could_escape_are_rejected() {
        for bad in [
            "", "/abs", "a/../b", "./a", "a//b", "a/", "a\\b", "a\nb", "..",
        ] {
            assert!(
                validate_blob_name(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        for good in ["champion.json", "lstm/2026.11.25-1/model.onnx", "a.b/c-d_e"] {
            assert!(
                validate_blob_name(good).is_ok(),
                "{good:?} should be accepted"
            );
        }
    }
}
