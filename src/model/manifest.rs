//! `manifest.json`: what a model version is and how to feed it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ModelError, ModelRef};

pub const MODEL_FILE: &str = "model.onnx";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    NaiveBayes,
    Lstm,
    Transformer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputKind {
    /// Already P(class): one column is P(positive); two columns are P(negative), P(positive).
    Probability,
    /// Raw scores: one column goes through a sigmoid, two columns through a softmax.
    Logits,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    pub input_ids: String,
    #[serde(default)]
    pub attention_mask: Option<String>,
    #[serde(default)]
    pub token_type_ids: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    pub name: String,
    pub kind: OutputKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub kind: ModelKind,
    pub created_at: String,
    pub inputs: Inputs,
    pub output: Output,
    pub max_tokens: usize,
    /// `score ≥ threshold` is positive. Below 0.5 when a missed complaint costs more than a
    /// false alarm.
    pub threshold: f32,
    /// The score is `sigmoid(margin / temperature)`, where the margin is the model's
    /// log P(positive) − log P(negative): a temperature fitted on validation makes the score a
    /// calibrated probability. 1 leaves the model's own scores.
    #[serde(default = "unit_temperature")]
    pub temperature: f32,
    /// File name → `sha256:<hex>`.
    pub files: BTreeMap<String, String>,
    #[serde(default)]
    pub training: serde_json::Value,
    /// Ten-bin histogram of validation scores, the reference for drift.
    #[serde(default)]
    pub reference_scores: Vec<f64>,
}

fn unit_temperature() -> f32 {
    1.0
}

/// The class a score stands for. Lives with the model, because only the model's manifest knows
/// where the line between the two is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sentiment {
    Positive,
    Negative,
}

impl std::fmt::Display for Sentiment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad` so that width and alignment in format strings apply.
        f.pad(match self {
            Sentiment::Positive => "positive",
            Sentiment::Negative => "negative",
        })
    }
}

impl Sentiment {
    /// The true-label convention of the API and the log: 1 positive, 0 negative.
    pub fn label(self) -> u8 {
        match self {
            Sentiment::Positive => 1,
            Sentiment::Negative => 0,
        }
    }
}

/// A name or version is used as a blob path segment: keep it to a safe alphabet.
pub fn is_safe_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub fn sha256_tag(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl Manifest {
    /// The one place a score becomes a class.
    pub fn sentiment(&self, score: f32) -> Sentiment {
        if score >= self.threshold {
            Sentiment::Positive
        } else {
            Sentiment::Negative
        }
    }

    /// The version this manifest describes, as pointers and records name it.
    pub fn model_ref(&self) -> ModelRef {
        ModelRef {
            name: self.name.clone(),
            version: self.version.clone(),
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, ModelError> {
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| ModelError::InvalidManifest(e.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), ModelError> {
        let invalid = |m: String| Err(ModelError::InvalidManifest(m));
        if !is_safe_segment(&self.name) || !is_safe_segment(&self.version) {
            return invalid(format!(
                "name {:?} and version {:?} must be letters, digits, '-', '_' or '.'",
                self.name, self.version
            ));
        }
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return invalid(format!("threshold {} is not in (0, 1)", self.threshold));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return invalid(format!(
                "temperature {} is not a positive number",
                self.temperature
            ));
        }
        if self.max_tokens == 0 || self.max_tokens > 4096 {
            return invalid(format!("max_tokens {} is not in 1..=4096", self.max_tokens));
        }
        for file in [MODEL_FILE, TOKENIZER_FILE] {
            match self.files.get(file) {
                None => return invalid(format!("files has no entry for {file}")),
                Some(tag) => {
                    let hex = tag.strip_prefix("sha256:").unwrap_or("");
                    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                        return invalid(format!("{file}: {tag:?} is not sha256:<64 hex digits>"));
                    }
                }
            }
        }
        if self.kind == ModelKind::Transformer && self.inputs.attention_mask.is_none() {
            return invalid("a transformer needs an attention_mask input".into());
        }
        Ok(())
    }

    /// Checks a file's content against the digest the manifest recorded for it.
    pub fn verify(&self, file: &str, bytes: &[u8]) -> Result<(), ModelError> {
        let expected = self
            .files
            .get(file)
            .ok_or_else(|| ModelError::InvalidManifest(format!("files has no entry for {file}")))?;
        let actual = sha256_tag(bytes);
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(ModelError::ChecksumMismatch {
                file: file.to_owned(),
                expected: expected.clone(),
                actual,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_json(threshold: f32, digest: &str) -> String {
        format!(
            r#"{{"name":"lstm","version":"2026.11.25-1","kind":"lstm","created_at":"2026-11-25T10:00:00Z",
            "inputs":{{"input_ids":"input_ids","attention_mask":null,"token_type_ids":null}},
            "output":{{"name":"probabilities","kind":"probability"}},"max_tokens":64,"threshold":{threshold},
            "files":{{"model.onnx":"{digest}","tokenizer.json":"{digest}"}}}}"#
        )
    }

    #[test]
    fn parses_and_verifies_digests() {
        let digest = sha256_tag(b"abc");
        let m = Manifest::parse(manifest_json(0.5, &digest).as_bytes()).unwrap();
        assert_eq!(m.kind, ModelKind::Lstm);
        m.verify(MODEL_FILE, b"abc").unwrap();
        assert_eq!(m.temperature, 1.0, "an old manifest scores as before");
        assert_eq!(m.sentiment(0.5), Sentiment::Positive);
        assert_eq!(m.sentiment(0.49), Sentiment::Negative);
        assert!(matches!(
            m.verify(MODEL_FILE, b"abd"),
            Err(ModelError::ChecksumMismatch { .. })
        ));
    }

    #[test]
    fn rejects_bad_threshold_digest_and_names() {
        let digest = sha256_tag(b"abc");
        assert!(Manifest::parse(manifest_json(1.5, &digest).as_bytes()).is_err());
        assert!(Manifest::parse(manifest_json(0.5, "sha256:xyz").as_bytes()).is_err());
        let frozen =
            manifest_json(0.5, &digest).replace("\"threshold\"", "\"temperature\":0,\"threshold\"");
        assert!(Manifest::parse(frozen.as_bytes()).is_err());
        let escaping =
            manifest_json(0.5, &digest).replace("\"lstm\",\"version\"", "\"../x\",\"version\"");
        assert!(Manifest::parse(escaping.as_bytes()).is_err());
        assert!(!is_safe_segment(".."));
        assert!(is_safe_segment("2026.11.25-1"));
    }
}
