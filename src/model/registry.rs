//! The model registry: the champion (and an optional challenger) kept loaded and swapped
//! atomically when their pointer blob changes.
//!
//! Loading never happens on the request path. A poller checks the pointers' ETags (one cheap HEAD
//! each); on a change it downloads the version, verifies every file against the manifest, builds
//! the plan on a blocking thread and only then swaps. A version that fails any of this is refused
//! and logged, and whatever was serving keeps serving.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::manifest::{is_safe_segment, Manifest, MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE};
use super::{ModelError, Scorer};
use crate::store::{BlobStore, ETag, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Champion,
    Challenger,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Champion, Role::Challenger];

    /// The pointer blob naming this role's version, in the models container.
    pub fn pointer(self) -> &'static str {
        match self {
            Role::Champion => "champion.json",
            Role::Challenger => "challenger.json",
        }
    }
}

/// A pointer's content: which version plays a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    pub name: String,
    pub version: String,
}

impl ModelRef {
    pub fn parse(bytes: &[u8]) -> Result<Self, ModelError> {
        let r: ModelRef =
            serde_json::from_slice(bytes).map_err(|e| ModelError::InvalidPointer(e.to_string()))?;
        if !is_safe_segment(&r.name) || !is_safe_segment(&r.version) {
            return Err(ModelError::InvalidPointer(format!(
                "{}/{} is not a valid name/version",
                r.name, r.version
            )));
        }
        Ok(r)
    }

    pub fn blob(&self, file: &str) -> String {
        format!("{}/{}/{file}", self.name, self.version)
    }
}

impl std::fmt::Display for ModelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.name, self.version)
    }
}

#[derive(Debug)]
pub struct LoadedModel {
    pub scorer: Scorer,
    pub loaded_at: OffsetDateTime,
}

impl LoadedModel {
    pub fn model_ref(&self) -> ModelRef {
        self.scorer.manifest().model_ref()
    }
}

#[derive(Default)]
struct Slot {
    model: RwLock<Option<Arc<LoadedModel>>>,
    /// The pointer ETag last acted on, loaded or refused, so that a refused version is not
    /// downloaded again on every poll.
    seen: Mutex<Option<ETag>>,
    last_error: Mutex<Option<String>>,
}

pub struct Registry {
    store: Arc<dyn BlobStore>,
    container: String,
    slots: [Slot; 2],
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("container", &self.container)
            .finish()
    }
}

/// Downloads a version from the store and builds its scorer off the async runtime.
pub async fn load_version(
    store: &dyn BlobStore,
    container: &str,
    version: &ModelRef,
) -> Result<Scorer, ModelError> {
    let started = std::time::Instant::now();
    let manifest_blob = store.get(container, &version.blob(MANIFEST_FILE)).await?;
    let manifest = Manifest::parse(&manifest_blob.bytes)?;
    if manifest.name != version.name || manifest.version != version.version {
        return Err(ModelError::InvalidManifest(format!(
            "{version} holds a manifest for {}/{}",
            manifest.name, manifest.version
        )));
    }
    // The two files download side by side.
    let (tokenizer_blob, model_blob) = (version.blob(TOKENIZER_FILE), version.blob(MODEL_FILE));
    let (tokenizer, model) = tokio::try_join!(
        store.get(container, &tokenizer_blob),
        store.get(container, &model_blob)
    )?;
    tracing::info!(
        model = %version,
        download_ms = (started.elapsed().as_secs_f64() * 1e4).round() / 10.0,
        bytes = tokenizer.bytes.len() + model.bytes.len(),
        "model downloaded"
    );
    tokio::task::spawn_blocking(move || Scorer::load(manifest, &tokenizer.bytes, &model.bytes))
        .await
        .map_err(|e| ModelError::Onnx(format!("loading task failed: {e}")))?
}

impl Registry {
    pub fn new(store: Arc<dyn BlobStore>, container: impl Into<String>) -> Self {
        Self {
            store,
            container: container.into(),
            slots: Default::default(),
        }
    }

    fn slot(&self, role: Role) -> &Slot {
        &self.slots[role as usize]
    }

    /// The model playing `role` right now, if any. Cheap: an `Arc` clone under a read lock.
    pub fn get(&self, role: Role) -> Option<Arc<LoadedModel>> {
        self.slot(role)
            .model
            .read()
            .expect("registry lock poisoned")
            .clone()
    }

    /// Why the last version offered for `role` was refused, if it was.
    pub fn last_error(&self, role: Role) -> Option<String> {
        self.slot(role)
            .last_error
            .lock()
            .expect("registry lock poisoned")
            .clone()
    }

    /// Checks every pointer once and loads what changed. Errors are logged, never fatal.
    pub async fn refresh(&self) {
        for role in Role::ALL {
            if let Err(error) = self.refresh_role(role).await {
                tracing::error!(role = ?role, %error, "model refresh failed; the serving version is unchanged");
            }
        }
    }

    /// Returns whether a new version was swapped in.
    pub async fn refresh_role(&self, role: Role) -> Result<bool, ModelError> {
        let slot = self.slot(role);
        let etag = self.store.etag(&self.container, role.pointer()).await?;
        if etag == *slot.seen.lock().expect("registry lock poisoned") {
            return Ok(false);
        }
        let Some(_) = etag else {
            // No pointer. A missing challenger pointer means the challenger was retired; a missing
            // champion pointer is an operator mistake, and serving on is the safe answer.
            if role == Role::Challenger {
                *slot.model.write().expect("registry lock poisoned") = None;
            } else {
                tracing::warn!(
                    pointer = role.pointer(),
                    "champion pointer is missing; keeping the serving version"
                );
            }
            *slot.seen.lock().expect("registry lock poisoned") = None;
            return Ok(false);
        };
        let pointer = self.store.get(&self.container, role.pointer()).await?;
        let outcome = self.load_pointed(role, &pointer.bytes).await;
        match &outcome {
            // A storage hiccup is retried at the next poll; anything else is a verdict on this
            // pointer content, remembered until the pointer changes.
            Err(ModelError::Store(StoreError::Unavailable(_) | StoreError::Uncertain(_))) => {}
            Err(error) => {
                tracing::error!(role = ?role, %error, "model version refused; the serving version is unchanged");
                *slot.last_error.lock().expect("registry lock poisoned") = Some(error.to_string());
                *slot.seen.lock().expect("registry lock poisoned") = Some(pointer.etag);
            }
            Ok(_) => {
                *slot.last_error.lock().expect("registry lock poisoned") = None;
                *slot.seen.lock().expect("registry lock poisoned") = Some(pointer.etag);
            }
        }
        outcome
    }

    async fn load_pointed(&self, role: Role, pointer: &[u8]) -> Result<bool, ModelError> {
        let wanted = ModelRef::parse(pointer)?;
        if self.get(role).map(|m| m.model_ref()) == Some(wanted.clone()) {
            return Ok(false);
        }
        let started = std::time::Instant::now();
        let scorer = load_version(self.store.as_ref(), &self.container, &wanted).await?;
        let loaded = Arc::new(LoadedModel {
            scorer,
            loaded_at: OffsetDateTime::now_utc(),
        });
        let previous = self
            .slot(role)
            .model
            .write()
            .expect("registry lock poisoned")
            .replace(loaded);
        tracing::info!(
            role = ?role,
            model = %wanted,
            previous = previous.map(|p| p.model_ref().to_string()),
            load_ms = started.elapsed().as_millis() as u64,
            "model version loaded"
        );
        Ok(true)
    }

    /// Re-checks the pointers every `period` until `shutdown` fires.
    pub fn spawn_poller(
        self: Arc<Self>,
        period: Duration,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period.max(Duration::from_secs(1)));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await; // the first tick is immediate; start-up already refreshed
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = ticker.tick() => self.refresh().await,
                }
            }
        })
    }
}
