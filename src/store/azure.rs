//! Azure Blob Storage through the official SDK (`azure_storage_blob` 1.x).
//!
//! Two ways in: an account-key connection string (Azurite, or a developer's account), for which we
//! sign a short-lived account SAS and renew it; or an account URL with an Entra ID credential
//! (managed identity in Azure, the developer tools' login on a workstation or in a workflow).
//!
//! Every call is bounded: the SDK's default retry policy can keep a request alive for a minute or
//! more, which is longer than any caller of ours is willing to wait. We retry a few times with short
//! back-off and put a hard timeout around each operation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::{
    new_http_client, ClientOptions, ExponentialRetryOptions, HttpClientOptions, RequestContent,
    RetryOptions, StatusCode, Transport, Url,
};
use azure_storage_blob::models::{
    AppendBlobClientCreateOptions, BlobClientDeleteOptions, BlobClientDownloadOptions,
    BlobClientGetPropertiesResultHeaders, BlobContainerClientListBlobsOptions,
    BlockBlobClientUploadOptions, HttpRange,
};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
use bytes::Bytes;
use futures::TryStreamExt;
use time::OffsetDateTime;

use super::connection_string::{parse_endpoint, ConnectionString};
use super::sas::{redact, sign_account_sas, AccountSas};
use super::Credential;
use super::{
    validate_blob_name, Blob, BlobInfo, BlobStore, ETag, StoreError, StoreResult, WriteCondition,
};

const SAS_LIFETIME: time::Duration = time::Duration::hours(1);
/// Re-sign when less than this is left, so that no request carries a SAS about to expire.
const SAS_RENEW_MARGIN: time::Duration = time::Duration::minutes(15);

enum Auth {
    AccountKey {
        account_name: String,
        account_key: String,
        sas: Mutex<Option<AccountSas>>,
    },
    Credential(Arc<dyn TokenCredential>),
}

pub struct AzureStore {
    endpoint: Url,
    auth: Auth,
    /// One HTTP transport (and so one connection pool) shared by every client we build.
    transport: Transport,
    timeout: Duration,
}

impl std::fmt::Debug for AzureStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl AzureStore {
    pub fn with_account_key(cs: ConnectionString, timeout: Duration) -> StoreResult<Self> {
        // Sign once now so that a bad key is reported at start-up, not at the first request.
        sign_account_sas(
            &cs.account_name,
            &cs.account_key,
            OffsetDateTime::now_utc(),
            SAS_LIFETIME,
        )?;
        Ok(Self {
            endpoint: cs.blob_endpoint,
            auth: Auth::AccountKey {
                account_name: cs.account_name,
                account_key: cs.account_key,
                sas: Mutex::new(None),
            },
            transport: shared_transport(),
            timeout,
        })
    }

    pub fn with_credential(
        account_url: &str,
        kind: Credential,
        timeout: Duration,
    ) -> StoreResult<Self> {
        let endpoint = parse_endpoint(account_url)?;
        let credential: Arc<dyn TokenCredential> = match kind {
            Credential::ManagedIdentity => {
                azure_identity::ManagedIdentityCredential::new(None).map_err(config_error)?
            }
            Credential::DeveloperTools => {
                azure_identity::DeveloperToolsCredential::new(None).map_err(config_error)?
            }
        };
        Ok(Self {
            endpoint,
            auth: Auth::Credential(credential),
            transport: shared_transport(),
            timeout,
        })
    }

    fn client_options(&self) -> BlobContainerClientOptions {
        BlobContainerClientOptions {
            client_options: ClientOptions {
                transport: Some(self.transport.clone()),
                retry: RetryOptions::exponential(ExponentialRetryOptions {
                    initial_delay: time::Duration::milliseconds(100),
                    max_retries: 3,
                    max_delay: time::Duration::seconds(2),
                    max_total_elapsed: time::Duration::seconds(self.timeout.as_secs().max(1) as i64),
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn container(&self, container: &str) -> StoreResult<BlobContainerClient> {
        validate_blob_name(container)?;
        let mut url = self.endpoint.clone();
        url.path_segments_mut()
            .map_err(|_| StoreError::Config("blob endpoint cannot be a base URL".into()))?
            .pop_if_empty()
            .push(container);
        let credential = match &self.auth {
            Auth::AccountKey {
                account_name,
                account_key,
                sas,
            } => {
                let mut current = sas.lock().expect("SAS lock poisoned");
                let now = OffsetDateTime::now_utc();
                let fresh = matches!(&*current, Some(s) if s.expires_at - now > SAS_RENEW_MARGIN);
                if !fresh {
                    *current = Some(sign_account_sas(
                        account_name,
                        account_key,
                        now,
                        SAS_LIFETIME,
                    )?);
                }
                url.set_query(current.as_ref().map(|s| s.query.as_str()));
                None
            }
            Auth::Credential(credential) => Some(credential.clone()),
        };
        BlobContainerClient::new(url, credential, Some(self.client_options())).map_err(map_error)
    }

    /// Bounds one storage operation in time and maps its error.
    async fn bounded<T>(
        &self,
        what: impl std::future::Future<Output = azure_core::Result<T>>,
    ) -> Result<T, azure_core::Error> {
        match tokio::time::timeout(self.timeout, what).await {
            Ok(result) => result,
            Err(_) => Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Io,
                format!("storage call timed out after {:?}", self.timeout),
            )),
        }
    }

    /// Creates the container when a write found it missing. Production creates containers in
    /// infrastructure; this makes a fresh emulator or account usable without a manual step.
    async fn create_container(&self, container: &str) -> StoreResult<()> {
        let client = self.container(container)?;
        match self.bounded(client.create(None)).await {
            Ok(_) => Ok(()),
            Err(e) if e.http_status() == Some(StatusCode::Conflict) => Ok(()),
            Err(e) => Err(map_error(e)),
        }
    }
}

fn shared_transport() -> Transport {
    // Automatic decompression must stay off: the SDK's partitioned downloads rely on raw ranges.
    Transport::new(new_http_client(Some(HttpClientOptions {
        automatic_decompression: false,
    })))
}

fn config_error(e: azure_core::Error) -> StoreError {
    StoreError::Config(redact(&e.to_string()))
}

fn error_code(e: &azure_core::Error) -> Option<String> {
    match e.kind() {
        azure_core::error::ErrorKind::HttpResponse { error_code, .. } => error_code.clone(),
        _ => None,
    }
}

fn is_container_missing(e: &azure_core::Error) -> bool {
    error_code(e).as_deref() == Some("ContainerNotFound")
}

/// Maps SDK errors onto the store's, with any SAS signature removed from the text.
fn map_error(e: azure_core::Error) -> StoreError {
    if e.http_status().is_some() || never_sent(&e) {
        // The service answered and refused, or the request never left: nothing was done.
        StoreError::Unavailable(redact(&e.to_string()))
    } else {
        // No answer (timeout, connection lost mid-request): it may have reached the service.
        StoreError::Uncertain(redact(&e.to_string()))
    }
}

/// Whether the request failed before a byte of it could reach the service: no connection was
/// made (refused, unreachable, name not resolved).
fn never_sent(e: &azure_core::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(http) = err.downcast_ref::<reqwest::Error>() {
            if http.is_connect() {
                return true;
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::AddrNotAvailable
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
            ) {
                return true;
            }
        }
        source = err.source();
    }
    false
}

fn map_blob_error(e: azure_core::Error, container: &str, name: &str) -> StoreError {
    match e.http_status() {
        Some(StatusCode::NotFound) => StoreError::NotFound {
            container: container.to_owned(),
            name: name.to_owned(),
        },
        Some(StatusCode::PreconditionFailed) | Some(StatusCode::Conflict) => {
            StoreError::ConditionFailed {
                container: container.to_owned(),
                name: name.to_owned(),
            }
        }
        _ => map_error(e),
    }
}

#[async_trait]
impl BlobStore for AzureStore {
    async fn get(&self, container: &str, name: &str) -> StoreResult<Blob> {
        validate_blob_name(name)?;
        let blob = self.container(container)?.blob_client(name);
        let read = async {
            let response = blob.download(None).await?;
            let etag = response.properties.etag.clone();
            let bytes = response.body.collect().await?;
            Ok((etag, bytes))
        };
        let (etag, bytes) = self
            .bounded(read)
            .await
            .map_err(|e| map_blob_error(e, container, name))?;
        Ok(Blob {
            bytes: Bytes::from(bytes.to_vec()),
            etag: ETag(etag.map(String::from).unwrap_or_default()),
        })
    }

    async fn get_from(&self, container: &str, name: &str, offset: u64) -> StoreResult<Bytes> {
        validate_blob_name(name)?;
        let blob = self.container(container)?.blob_client(name);
        let options = BlobClientDownloadOptions {
            range: Some(HttpRange::from_offset(offset)),
            ..Default::default()
        };
        let read = async {
            let response = blob.download(Some(options)).await?;
            response.body.collect().await
        };
        match self.bounded(read).await {
            Ok(bytes) => Ok(Bytes::from(bytes.to_vec())),
            // Reading from the end of a blob is "nothing new", not an error.
            Err(e) if e.http_status() == Some(StatusCode::RequestedRangeNotSatisfiable) => {
                Ok(Bytes::new())
            }
            Err(e) => Err(map_blob_error(e, container, name)),
        }
    }

    async fn etag(&self, container: &str, name: &str) -> StoreResult<Option<ETag>> {
        validate_blob_name(name)?;
        let blob = self.container(container)?.blob_client(name);
        match self.bounded(blob.get_properties(None)).await {
            Ok(response) => {
                let etag = response.etag().map_err(map_error)?;
                Ok(Some(ETag(etag.map(String::from).unwrap_or_default())))
            }
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => Ok(None),
            Err(e) => Err(map_blob_error(e, container, name)),
        }
    }

    async fn put(
        &self,
        container: &str,
        name: &str,
        bytes: Bytes,
        condition: WriteCondition,
    ) -> StoreResult<ETag> {
        validate_blob_name(name)?;
        let upload = || async {
            let blob = self.container(container)?.blob_client(name);
            let mut options = BlockBlobClientUploadOptions::default();
            match &condition {
                WriteCondition::Always => {}
                WriteCondition::IfAbsent => options.if_none_match = Some("*".into()),
                WriteCondition::IfMatch(etag) => options.if_match = Some(etag.0.as_str().into()),
            }
            Ok::<_, StoreError>(
                self.bounded(blob.upload(RequestContent::from(bytes.to_vec()), Some(options)))
                    .await,
            )
        };
        let mut result = upload().await?;
        if matches!(&result, Err(e) if is_container_missing(e)) {
            self.create_container(container).await?;
            result = upload().await?;
        }
        let response = result.map_err(|e| map_blob_error(e, container, name))?;
        Ok(ETag(response.etag.map(String::from).unwrap_or_default()))
    }

    async fn delete_if_match(&self, container: &str, name: &str, tag: &ETag) -> StoreResult<()> {
        validate_blob_name(name)?;
        let blob = self.container(container)?.blob_client(name);
        let options = BlobClientDeleteOptions {
            if_match: Some(tag.0.as_str().into()),
            ..Default::default()
        };
        match self
            .bounded(blob.delete(Some(options)))
            .await
            .map_err(|e| map_blob_error(e, container, name))
        {
            // A conditional delete of a missing blob fails its precondition (412) rather than
            // answering 404; callers need to tell "gone" from "changed".
            Err(StoreError::ConditionFailed { .. })
                if self.etag(container, name).await?.is_none() =>
            {
                Err(StoreError::NotFound {
                    container: container.to_owned(),
                    name: name.to_owned(),
                })
            }
            result => result.map(|_| ()),
        }
    }

    async fn append(&self, container: &str, name: &str, bytes: Bytes) -> StoreResult<()> {
        validate_blob_name(name)?;
        let len = bytes.len() as u64;
        let append_once = || async {
            let append = self
                .container(container)?
                .blob_client(name)
                .append_blob_client();
            Ok::<_, StoreError>(
                self.bounded(append.append_block(RequestContent::from(bytes.to_vec()), len, None))
                    .await,
            )
        };
        let mut result = append_once().await?;
        if let Err(e) = &result {
            if e.http_status() == Some(StatusCode::NotFound) {
                if is_container_missing(e) {
                    self.create_container(container).await?;
                }
                // Create only if absent: a concurrent creator's blob and its blocks must survive.
                let append = self
                    .container(container)?
                    .blob_client(name)
                    .append_blob_client();
                match self
                    .bounded(append.create(Some(
                        AppendBlobClientCreateOptions::default().if_not_exists(),
                    )))
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.http_status() == Some(StatusCode::Conflict) => {}
                    Err(e) => return Err(map_error(e)),
                }
                result = append_once().await?;
            }
        }
        result.map(|_| ()).map_err(|e| {
            if error_code(&e).as_deref() == Some("BlockCountExceedsLimit") {
                StoreError::BlockLimit {
                    container: container.to_owned(),
                    name: name.to_owned(),
                }
            } else {
                map_error(e)
            }
        })
    }

    async fn list(&self, container: &str, prefix: &str) -> StoreResult<Vec<BlobInfo>> {
        let client = self.container(container)?;
        let options = BlobContainerClientListBlobsOptions {
            prefix: (!prefix.is_empty()).then(|| prefix.to_owned()),
            ..Default::default()
        };
        let collect = async {
            let mut pager = client.list_blobs(Some(options))?;
            let mut found = Vec::new();
            while let Some(item) = pager.try_next().await? {
                let Some(name) = item.name else { continue };
                let size = item
                    .properties
                    .and_then(|p| p.content_length)
                    .unwrap_or_default();
                found.push(BlobInfo { name, size });
            }
            Ok(found)
        };
        match self.bounded(collect).await {
            Ok(mut found) => {
                found.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(found)
            }
            Err(e) if is_container_missing(&e) => Ok(Vec::new()),
            Err(e) => Err(map_error(e)),
        }
    }

    fn describe(&self) -> String {
        let auth = match self.auth {
            Auth::AccountKey { .. } => "account SAS",
            Auth::Credential(_) => "Entra ID credential",
        };
        format!("azure blob {} ({auth})", self.endpoint)
    }

    fn kind(&self) -> &'static str {
        "azure blob"
    }

    fn locate(&self, container: &str, name: &str) -> String {
        format!(
            "{}/{container}/{name}",
            self.endpoint.as_str().trim_end_matches('/')
        )
    }
}
