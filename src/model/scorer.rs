//! The scorer: `tokenizer.json` → token ids → tract → P(positive).
//!
//! All text normalisation lives in the tokenizer file that training produced, so Python and Rust
//! see the same ids. The graph is loaded with symbolic batch and sequence dimensions, optimised
//! once, and run synchronously: callers put it on a blocking thread.

use std::io::Cursor;
use std::sync::Arc;

use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};
use tract_onnx::prelude::*;

use super::manifest::{Manifest, ModelKind, OutputKind, MODEL_FILE, TOKENIZER_FILE};
use super::ModelError;

type Plan = Arc<TypedRunnableModel>;

/// What each graph input is fed with, in the graph's input order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    InputIds,
    AttentionMask,
    TokenTypeIds,
}

pub struct Scorer {
    manifest: Manifest,
    tokenizer: Tokenizer,
    plan: Plan,
    feeds: Vec<Feed>,
    /// Recurrent graphs only: plans for fixed batch sizes, largest first (see [`build_plan`]).
    /// A batch is scored in runs of these sizes, and what is left one text at a time.
    fixed_batches: Vec<(usize, Plan)>,
    /// Recurrent graphs have a plan for batch 1 and the fixed sizes only; see [`build_plan`].
    recurrent: bool,
}

impl std::fmt::Debug for Scorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scorer")
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .finish()
    }
}

fn onnx_error(e: impl std::fmt::Display) -> ModelError {
    ModelError::Onnx(format!("{e:#}"))
}

impl Scorer {
    /// Verifies both files against the manifest, then builds the tokenizer and the optimised plan.
    /// CPU-heavy for large models: call it off the async runtime.
    pub fn load(
        manifest: Manifest,
        tokenizer_json: &[u8],
        model_onnx: &[u8],
    ) -> Result<Self, ModelError> {
        // Where cold start goes, phase by phase, in one log line per load.
        let clock = std::time::Instant::now();
        let lap = |since: &mut std::time::Instant| {
            let ms = since.elapsed().as_secs_f64() * 1e3;
            *since = std::time::Instant::now();
            (ms * 10.0).round() / 10.0
        };
        let mut since = clock;
        // The plan (the long part: parsing and optimising the graph) is built on a second thread
        // while this one checks both digests and builds the tokenizer. The plan of a file whose
        // digest is wrong is thrown away unused: it only ever ran tract's (memory-safe) parser.
        let (digests, tokenizer, built) = std::thread::scope(|scope| {
            let plan = scope.spawn(|| {
                let started = std::time::Instant::now();
                (build_plan(&manifest, model_onnx), started.elapsed())
            });
            let digests = manifest
                .verify(TOKENIZER_FILE, tokenizer_json)
                .and_then(|()| manifest.verify(MODEL_FILE, model_onnx));
            let digest_time = since.elapsed();
            let tokenizer = build_tokenizer(&manifest, tokenizer_json);
            (
                digests.map(|()| digest_time),
                tokenizer,
                plan.join().expect("plan thread panicked"),
            )
        });
        let sha256_ms = (digests?.as_secs_f64() * 1e4).round() / 10.0;
        let (plan, plan_time) = built;
        let tokenizer = tokenizer?;
        let plans = plan?;
        let build_ms = lap(&mut since);
        let mut scorer = Self {
            manifest,
            tokenizer,
            plan: plans.single,
            feeds: plans.feeds,
            fixed_batches: plans.fixed_batches,
            recurrent: plans.recurrent,
        };
        // Unverified fixed-batch plans are dropped first, so that the contract is proven on the
        // plans that will serve.
        scorer.check_fixed_batches();
        scorer.prove_contract()?;
        tracing::info!(
            model = %scorer.manifest.model_ref(),
            sha256_ms,
            build_ms,
            plan_ms = (plan_time.as_secs_f64() * 1e4).round() / 10.0,
            first_scores_ms = lap(&mut since),
            total_ms = (clock.elapsed().as_secs_f64() * 1e4).round() / 10.0,
            "model built"
        );
        Ok(scorer)
    }

    /// A graph that loads but cannot serve what the manifest and the API promise (a text at
    /// `max_tokens`, a batch of `MAX_BATCH` texts, a sane output) is refused here, at load, rather
    /// than on the request that finds out.
    fn prove_contract(&self) -> Result<(), ModelError> {
        let refuse = |what: &str, e: ModelError| {
            ModelError::Inference(format!(
                "the version cannot serve {what} as its manifest promises: {e}"
            ))
        };
        // The probes are independent: the longest text runs on a second thread (half of cold
        // start's probing time on 2 cores).
        std::thread::scope(|scope| {
            let longest = scope.spawn(|| {
                // Far more words than tokens allowed: the tokenizer truncates it to max_tokens.
                let longest = "word ".repeat(self.manifest.max_tokens * 2 + 8);
                self.score(&[longest.as_str()]).map_err(|e| {
                    refuse(
                        &format!("a text of max_tokens ({})", self.manifest.max_tokens),
                        e,
                    )
                })
            });
            self.score(&["loaded"])
                .map_err(|e| refuse("a short text", e))?;
            // Empty texts (only the special tokens) keep the widest batch as cheap as a batch can
            // be: it proves the batch dimension, not the arithmetic, and the texts' length made
            // it most of the probing time (3 tokens a text: 54–68 ms for MiniLM).
            let batch = vec![""; super::MAX_BATCH];
            self.score(&batch)
                .map_err(|e| refuse(&format!("a batch of {} texts", super::MAX_BATCH), e))?;
            longest.join().expect("probe thread panicked")?;
            Ok(())
        })
    }

    /// A recurrent graph's fixed-batch plans must score each text as it scores alone (padding on
    /// the right never reaches a real token's state, and the pooling is masked). Where they do
    /// not, the version still serves, one text at a time.
    fn check_fixed_batches(&mut self) {
        const TEXTS: [&str; 4] = [
            "the flight was delayed for three hours and nobody told us anything",
            "ok",
            "thanks for nothing",
            "lost my bag again :(",
        ];
        let mut worst = 0f32;
        let mut failure = None;
        for (size, plan) in &self.fixed_batches {
            let texts: Vec<&str> = TEXTS.iter().cycle().take(*size).copied().collect();
            let together = self.run_plan(plan, &texts);
            let alone: Result<Vec<f32>, ModelError> = texts
                .iter()
                .map(|t| self.run_plan(&self.plan, &[t]).map(|s| s[0]))
                .collect();
            match (together, alone) {
                (Ok(together), Ok(alone)) => {
                    for (a, b) in together.iter().zip(&alone) {
                        worst = worst.max((a - b).abs());
                    }
                }
                (Err(e), _) | (_, Err(e)) => failure = Some(e.to_string()),
            }
        }
        if failure.is_some() || worst > 1e-5 {
            tracing::warn!(
                model = %self.manifest.model_ref(),
                worst_difference = worst,
                error = failure.as_deref().unwrap_or(""),
                "batched plans of a recurrent graph do not score as texts alone; scoring one text at a time"
            );
            self.fixed_batches.clear();
        }
    }

    /// The batch sizes scored in one run of a fixed plan (recurrent graphs), largest first; empty
    /// for graphs with a symbolic batch and for recurrent ones scored one text at a time.
    pub fn fixed_batch_sizes(&self) -> Vec<usize> {
        self.fixed_batches.iter().map(|(size, _)| *size).collect()
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Token ids of each text, without padding: what the graph sees for a batch of one.
    pub fn token_ids(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, ModelError> {
        texts
            .iter()
            .map(|t| {
                self.tokenizer
                    .encode(*t, true)
                    .map(|e| e.get_ids().to_vec())
                    .map_err(|e| ModelError::Tokenizer(e.to_string()))
            })
            .collect()
    }

    /// P(positive) for each text, in order.
    pub fn score(&self, texts: &[&str]) -> Result<Vec<f32>, ModelError> {
        if texts.len() > super::MAX_BATCH {
            // The plan was optimised for batches of at most MAX_BATCH (see `build_plan`).
            let mut scores = Vec::with_capacity(texts.len());
            for chunk in texts.chunks(super::MAX_BATCH) {
                scores.extend(self.score(chunk)?);
            }
            return Ok(scores);
        }
        if !self.recurrent {
            return self.run_plan(&self.plan, texts);
        }
        // The largest fixed batch that fits, then the next, and one at a time for the rest.
        let mut scores = Vec::with_capacity(texts.len());
        let mut rest = texts;
        while !rest.is_empty() {
            let (size, plan) = self
                .fixed_batches
                .iter()
                .find(|(size, _)| *size <= rest.len())
                .map(|(size, plan)| (*size, plan))
                .unwrap_or((1, &self.plan));
            scores.extend(self.run_plan(plan, &rest[..size])?);
            rest = &rest[size..];
        }
        Ok(scores)
    }

    /// Scores `texts` in one run of `plan`, padded to the longest.
    fn run_plan(&self, plan: &Plan, texts: &[&str]) -> Result<Vec<f32>, ModelError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let batch = encodings.len();
        // The batch padding makes every encoding the same length. A text that tokenises to
        // nothing still needs one position for the graph to have a shape.
        let seq = encodings.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
        let pad_id = self.tokenizer.get_padding().map(|p| p.pad_id).unwrap_or(0) as i64;
        let mut ids = vec![pad_id; batch * seq];
        let mut mask = vec![0i64; batch * seq];
        let mut types = vec![0i64; batch * seq];
        for (row, enc) in encodings.iter().enumerate() {
            let base = row * seq;
            for (col, ((&id, &m), &t)) in enc
                .get_ids()
                .iter()
                .zip(enc.get_attention_mask())
                .zip(enc.get_type_ids())
                .enumerate()
            {
                ids[base + col] = id as i64;
                mask[base + col] = m as i64;
                types[base + col] = t as i64;
            }
        }
        let tensor = |data: &Vec<i64>| -> Result<TValue, ModelError> {
            Ok(
                tract_ndarray::Array2::from_shape_vec((batch, seq), data.clone())
                    .map_err(|e| ModelError::Inference(e.to_string()))?
                    .into_tensor()
                    .into_tvalue(),
            )
        };
        let mut inputs = TVec::new();
        for feed in &self.feeds {
            inputs.push(match feed {
                Feed::InputIds => tensor(&ids)?,
                Feed::AttentionMask => tensor(&mask)?,
                Feed::TokenTypeIds => tensor(&types)?,
            });
        }
        let outputs = plan
            .run(inputs)
            .map_err(|e| ModelError::Inference(format!("{e:#}")))?;
        let output = outputs
            .first()
            .ok_or_else(|| ModelError::Inference("the graph produced no output".into()))?;
        let view = output
            .to_plain_array_view::<f32>()
            .map_err(|e| ModelError::Inference(format!("output is not f32: {e}")))?;
        let columns = match view.shape() {
            [b] if *b == batch => 1,
            [b, c] if *b == batch && (*c == 1 || *c == 2) => *c,
            shape => {
                return Err(ModelError::Inference(format!(
                    "output shape {shape:?} is neither [batch], [batch, 1] nor [batch, 2]"
                )))
            }
        };
        let flat: Vec<f32> = view.iter().copied().collect();
        let (kind, temperature) = (self.manifest.output.kind, self.manifest.temperature);
        let scores = flat
            .chunks(columns)
            .map(|row| positive_probability(kind, temperature, row))
            .collect::<Vec<_>>();
        if let Some(bad) = scores
            .iter()
            .find(|s| !s.is_finite() || !(0.0..=1.0).contains(*s))
        {
            return Err(ModelError::Inference(format!(
                "score {bad} is not a probability"
            )));
        }
        Ok(scores)
    }
}

/// P(positive) from one output row, as the manifest says the output is to be read:
/// `sigmoid(margin / temperature)`, the margin being log P(positive) − log P(negative).
fn positive_probability(kind: OutputKind, temperature: f32, row: &[f32]) -> f32 {
    // Probabilities are clamped before the log, as the training side does, so 0 and 1 stay finite.
    let log_p = |p: f32| (p as f64).clamp(1e-12, 1.0).ln();
    let margin = match (kind, row) {
        (OutputKind::Probability, [p]) => log_p(*p) - log_p(1.0 - *p),
        (OutputKind::Probability, [neg, pos]) => log_p(*pos) - log_p(*neg),
        (OutputKind::Logits, [z]) => *z as f64,
        (OutputKind::Logits, [neg, pos]) => (*pos - *neg) as f64,
        _ => return f32::NAN,
    };
    (1.0 / (1.0 + (-margin / temperature as f64).exp())) as f32
}

fn build_tokenizer(manifest: &Manifest, json: &[u8]) -> Result<Tokenizer, ModelError> {
    let mut tokenizer =
        Tokenizer::from_bytes(json).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: manifest.max_tokens,
            ..Default::default()
        }))
        .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
    // Keep the padding the model was trained with (id and side), but always pad a batch to its
    // longest text rather than to a fixed length.
    let padding = match tokenizer.get_padding() {
        Some(existing) => PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..existing.clone()
        },
        None => PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id: 0,
            ..Default::default()
        },
    };
    tokenizer.with_padding(Some(padding));
    Ok(tokenizer)
}

/// Batch sizes a recurrent graph gets a plan of its own for, largest first. Per text, the LSTM at
/// 15 tokens costs 172 µs alone, 142 µs in a batch of 2 and 116 µs in a batch of 4 (a step's
/// recurrent product reads its weights once for the whole batch); the batcher's batches hold at
/// most `BATCH_MAX_TEXTS` (4 by default). The two plans add about 20 ms to the load.
const RECURRENT_BATCHES: [usize; 2] = [4, 2];

/// What [`build_plan`] makes of a graph.
struct Plans {
    /// Symbolic batch for most graphs; batch 1 for recurrent ones.
    single: Plan,
    feeds: Vec<Feed>,
    recurrent: bool,
    /// Recurrent graphs: a plan per size in [`RECURRENT_BATCHES`], or none when tract cannot
    /// build them (the version then scores one text at a time).
    fixed_batches: Vec<(usize, Plan)>,
}

/// Builds the optimised plans.
///
/// tract's recurrent ops (LSTM, GRU, RNN) need a concrete batch size when the graph gives no
/// initial state, so recurrent graphs get a plan for batch 1 and one for each size in
/// [`RECURRENT_BATCHES`], all from one parse. Batches are padded on the right, which never reaches
/// a real token's recurrent state, and the load checks that a batch scores as its texts alone
/// ([`Scorer::check_fixed_batches`]). Other graphs keep a symbolic batch dimension. The sequence
/// length stays symbolic.
fn build_plan(manifest: &Manifest, onnx: &[u8]) -> Result<Plans, ModelError> {
    let mut model = tract_onnx::onnx()
        .model_for_read(&mut Cursor::new(onnx))
        .map_err(onnx_error)?;
    let recurrent = model
        .nodes()
        .iter()
        .any(|n| matches!(n.op.name().as_ref(), "LSTM" | "GRU" | "RNN"));
    let batch = model.symbols.sym("batch").to_dim();
    let seq = model.symbols.sym("seq");
    // Bounds every run keeps: `score` cuts batches at MAX_BATCH, the tokenizer truncates at
    // max_tokens, and an empty text still gets one position. Without them tract cannot prove that
    // a `batch × seq × hidden` tensor is worth a vectorised kernel, and leaves the residual adds
    // and layer norms as generic element-wise loops.
    for bound in [
        "batch>=1".to_string(),
        format!("batch<={}", super::MAX_BATCH),
        "seq>=1".to_string(),
        format!("seq<={}", manifest.max_tokens.max(1)),
    ] {
        model.symbols.add_assertion(bound).map_err(onnx_error)?;
    }

    let input_names: Vec<String> = model
        .input_outlets()
        .map_err(onnx_error)?
        .iter()
        .map(|o| model.node(o.node).name.clone())
        .collect();
    let inputs = &manifest.inputs;
    let mut feeds = Vec::with_capacity(input_names.len());
    for name in &input_names {
        let feed = if *name == inputs.input_ids {
            Feed::InputIds
        } else if inputs.attention_mask.as_deref() == Some(name.as_str()) {
            Feed::AttentionMask
        } else if inputs.token_type_ids.as_deref() == Some(name.as_str()) {
            Feed::TokenTypeIds
        } else {
            return Err(ModelError::Onnx(format!(
                "graph input {name:?} is not named in the manifest's inputs"
            )));
        };
        feeds.push(feed);
    }
    let expected = 1
        + usize::from(inputs.attention_mask.is_some())
        + usize::from(inputs.token_type_ids.is_some());
    if feeds.len() != expected || !feeds.contains(&Feed::InputIds) {
        return Err(ModelError::Onnx(format!(
            "graph inputs {input_names:?} do not match the manifest's inputs"
        )));
    }
    if manifest.kind != ModelKind::Transformer && feeds.len() != 1 {
        return Err(ModelError::Onnx(format!(
            "a {:?} model takes token ids only, the graph has {input_names:?}",
            manifest.kind
        )));
    }
    let output = model
        .output_outlets()
        .map_err(onnx_error)?
        .iter()
        .copied()
        .find(|o| {
            model.outlet_label(*o) == Some(manifest.output.name.as_str())
                || model.node(o.node).name == manifest.output.name
        })
        .ok_or_else(|| {
            ModelError::Onnx(format!(
                "graph has no output named {:?}",
                manifest.output.name
            ))
        })?;
    model.select_output_outlets(&[output]).map_err(onnx_error)?;

    let feed_count = feeds.len();
    let optimise = |mut model: InferenceModel, batch: TDim| -> Result<Plan, ModelError> {
        for ix in 0..feed_count {
            model
                .set_input_fact(
                    ix,
                    InferenceFact::dt_shape(i64::datum_type(), tvec!(batch.clone(), seq.to_dim())),
                )
                .map_err(onnx_error)?;
        }
        let mut optimized = model.into_optimized().map_err(onnx_error)?;
        super::fast_paths::apply(&mut optimized);
        optimized.into_runnable().map_err(onnx_error)
    };
    if !recurrent {
        return Ok(Plans {
            single: optimise(model, batch)?,
            feeds,
            recurrent,
            fixed_batches: Vec::new(),
        });
    }
    let fixed: Result<Vec<(usize, Plan)>, ModelError> = RECURRENT_BATCHES
        .iter()
        .map(|&size| Ok((size, optimise(model.clone(), TDim::from(size as i64))?)))
        .collect();
    let fixed_batches = fixed.unwrap_or_else(|error| {
        tracing::warn!(%error, "no batched plans for this recurrent graph; scoring one text at a time");
        Vec::new()
    });
    Ok(Plans {
        single: optimise(model, TDim::from(1))?,
        feeds,
        recurrent,
        fixed_batches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_rows_become_positive_probabilities() {
        let close = |a: f32, b: f32| (a - b).abs() < 1e-6;
        assert!(close(
            positive_probability(OutputKind::Probability, 1.0, &[0.8]),
            0.8
        ));
        assert!(close(
            positive_probability(OutputKind::Probability, 1.0, &[0.3, 0.7]),
            0.7
        ));
        assert!(close(
            positive_probability(OutputKind::Logits, 1.0, &[0.0]),
            0.5
        ));
        let p = positive_probability(OutputKind::Logits, 1.0, &[1.0, 3.0]);
        assert!(close(p, 3f32.exp() / (1f32.exp() + 3f32.exp())));
        // No overflow for extreme logits or certain probabilities.
        assert_eq!(
            positive_probability(OutputKind::Logits, 1.0, &[-1000.0, 1000.0]),
            1.0
        );
        assert!(positive_probability(OutputKind::Probability, 1.0, &[1.0, 0.0]).is_finite());
    }

    #[test]
    fn temperature_softens_the_margin_and_keeps_its_sign() {
        // margin 2 at temperature 2 is margin 1 at temperature 1.
        let soft = positive_probability(OutputKind::Logits, 2.0, &[0.0, 2.0]);
        let plain = positive_probability(OutputKind::Logits, 1.0, &[0.0, 1.0]);
        assert!((soft - plain).abs() < 1e-6);
        let p = positive_probability(OutputKind::Probability, 0.5, &[0.2, 0.8]);
        // sigmoid(ln(4) / 0.5) = 16 / 17
        assert!((p - 16.0 / 17.0).abs() < 1e-6);
        assert!(positive_probability(OutputKind::Logits, 3.0, &[1.0, -1.0]) < 0.5);
    }
}
