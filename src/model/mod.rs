//! Scoring: the model artifact contract, the scorer (tokenizers → tract) and the registry that
//! keeps the champion loaded and swaps it when `champion.json` changes.

mod fast_paths;
pub mod manifest;
pub mod registry;
pub mod scorer;

pub use manifest::{Manifest, ModelKind, OutputKind, Sentiment};
pub use registry::{LoadedModel, ModelRef, Registry, Role};
pub use scorer::Scorer;

use crate::store::StoreError;

/// Most texts one request may score at once: part of the API contract, and so part of what a
/// model version must prove it serves before it is loaded.
pub const MAX_BATCH: usize = 64;

/// Errors of the model layer.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    #[error("{file} does not match the manifest's sha256 (expected {expected}, got {actual})")]
    ChecksumMismatch {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("onnx model: {0}")]
    Onnx(String),
    #[error("inference: {0}")]
    Inference(String),
    #[error("invalid model pointer: {0}")]
    InvalidPointer(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}
