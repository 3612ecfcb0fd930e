//! The registry on the local-folder store: a new champion is swapped in, a bad one is refused while
//! the old one keeps serving, and a challenger comes and goes with its pointer.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{models_dir_with_fixtures, version_copy};
use tweet_sentiment::model::{Registry, Role};
use tweet_sentiment::store::fs::FsStore;
use tweet_sentiment::store::{BlobStore, WriteCondition};

fn serving(registry: &Registry, role: Role) -> Option<String> {
    registry.get(role).map(|m| m.model_ref().to_string())
}

async fn point(store: &dyn BlobStore, role: Role, name: &str, version: &str) {
    let body = serde_json::json!({ "name": name, "version": version }).to_string();
    store
        .put(
            "models",
            role.pointer(),
            Bytes::from(body),
            WriteCondition::Always,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn swaps_refuses_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let models = models_dir_with_fixtures(dir.path());
    let store: Arc<dyn BlobStore> = Arc::new(FsStore::new(
        dir.path().join("data"),
        models.clone(),
        "models".into(),
    ));
    let registry = Registry::new(store.clone(), "models");

    registry.refresh().await;
    assert_eq!(
        serving(&registry, Role::Champion).as_deref(),
        Some("fixture-nb/1")
    );
    assert!(
        !registry.refresh_role(Role::Champion).await.unwrap(),
        "unchanged pointer, no reload"
    );

    point(store.as_ref(), Role::Champion, "fixture-transformer", "1").await;
    assert!(registry.refresh_role(Role::Champion).await.unwrap());
    assert_eq!(
        serving(&registry, Role::Champion).as_deref(),
        Some("fixture-transformer/1")
    );

    // A version whose model.onnx does not match its manifest.
    let bad = version_copy("fixture-lstm", "2", &models);
    let mut bytes = std::fs::read(bad.join("model.onnx")).unwrap();
    bytes[10] ^= 0x55;
    std::fs::write(bad.join("model.onnx"), bytes).unwrap();
    point(store.as_ref(), Role::Champion, "fixture-lstm", "2").await;
    assert!(registry.refresh_role(Role::Champion).await.is_err());
    assert_eq!(
        serving(&registry, Role::Champion).as_deref(),
        Some("fixture-transformer/1")
    );
    let error = registry.last_error(Role::Champion).unwrap();
    assert!(error.contains("sha256"), "{error}");
    // The refused pointer is not downloaded again until it changes.
    assert!(!registry.refresh_role(Role::Champion).await.unwrap());

    // A pointer to a version that does not exist, and a pointer that is not JSON.
    point(store.as_ref(), Role::Champion, "fixture-lstm", "404").await;
    assert!(registry.refresh_role(Role::Champion).await.is_err());
    store
        .put(
            "models",
            "champion.json",
            Bytes::from_static(b"oops"),
            WriteCondition::Always,
        )
        .await
        .unwrap();
    assert!(registry.refresh_role(Role::Champion).await.is_err());
    assert_eq!(
        serving(&registry, Role::Champion).as_deref(),
        Some("fixture-transformer/1")
    );

    // Fixing the pointer recovers and clears the error.
    point(store.as_ref(), Role::Champion, "fixture-lstm", "1").await;
    assert!(registry.refresh_role(Role::Champion).await.unwrap());
    assert_eq!(
        serving(&registry, Role::Champion).as_deref(),
        Some("fixture-lstm/1")
    );
    assert_eq!(registry.last_error(Role::Champion), None);

    // Challenger: loaded when its pointer appears, retired when it goes.
    assert_eq!(serving(&registry, Role::Challenger), None);
    point(store.as_ref(), Role::Challenger, "fixture-nb", "1").await;
    registry.refresh().await;
    assert_eq!(
        serving(&registry, Role::Challenger).as_deref(),
        Some("fixture-nb/1")
    );
    std::fs::remove_file(models.join("challenger.json")).unwrap();
    registry.refresh().await;
    assert_eq!(serving(&registry, Role::Challenger), None);
    assert_eq!(
        serving(&registry, Role::Champion).as_deref(),
        Some("fixture-lstm/1")
    );
}

#[tokio::test]
async fn local_store_honours_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(
        dir.path().join("data"),
        dir.path().join("models"),
        "models".into(),
    );
    common::exercise_store(&store, "conformance").await;
}
