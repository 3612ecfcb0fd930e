//! Dynamic batching: texts from concurrent requests are scored together, off the async runtime.
//!
//! Requests join a queue; `workers` threads each take the next batch and score it. A batch is
//! formed in rounds: each round takes up to `chunk` texts from every waiting request of the same
//! model, in arrival order, until `max_batch` texts. A 64-text request therefore gives its texts
//! eight at a time while a single tweet that arrived after it rides in the next round, instead of
//! waiting behind the whole batch. Inside a batch, texts are sorted by length and cut where the
//! length doubles, so short tweets are not padded to a long one. Past `max_queued` texts waiting,
//! a request is refused at once (503 with Retry-After) rather than queued without end.
//!
//! Recurrent models (the LSTM) go through the same queue; the scorer runs their batches with plans
//! for fixed batch sizes (4, 2, then one text at a time).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::model::{LoadedModel, ModelError};

#[derive(Debug, Clone)]
pub struct BatcherConfig {
    /// Threads scoring batches at once (each batch on one core).
    pub workers: usize,
    /// Most texts in one model call.
    pub max_batch: usize,
    /// Most texts one request gives to a round.
    pub chunk: usize,
    /// How long a worker that found fewer than `max_batch` texts waits for more.
    pub max_wait: Duration,
    /// Most texts waiting; past it new requests are refused.
    pub max_queued: usize,
}

/// The outcome of one request: a score per text, in order, and the time its texts spent in the
/// model.
pub type Scored = Result<(Vec<f32>, f64), ModelError>;

#[derive(Debug, thiserror::Error)]
#[error("{queued} texts are already waiting to be scored (the limit is {limit})")]
pub struct Overloaded {
    pub queued: usize,
    pub limit: usize,
}

/// One request's texts, scored in pieces by whichever batches take them.
struct Job {
    model: Arc<LoadedModel>,
    texts: Vec<String>,
    /// Texts handed to batches so far.
    taken: usize,
    outcome: Arc<Outcome>,
}

struct Outcome {
    scores: Mutex<Vec<f32>>,
    left: AtomicUsize,
    model_ms: Mutex<f64>,
    failed: Mutex<Option<ModelError>>,
    done: Mutex<Option<tokio::sync::oneshot::Sender<Scored>>>,
}

impl Outcome {
    fn finish_part(&self, at: usize, scores: Result<&[f32], &ModelError>, ms: f64, n: usize) {
        match scores {
            Ok(scores) => self.scores.lock().expect("poisoned")[at..at + n].copy_from_slice(scores),
            Err(e) => {
                let mut failed = self.failed.lock().expect("poisoned");
                failed.get_or_insert_with(|| ModelError::Inference(e.to_string()));
            }
        }
        *self.model_ms.lock().expect("poisoned") += ms;
        if self.left.fetch_sub(n, Ordering::AcqRel) == n {
            let result = match self.failed.lock().expect("poisoned").take() {
                Some(e) => Err(e),
                None => Ok((
                    std::mem::take(&mut *self.scores.lock().expect("poisoned")),
                    *self.model_ms.lock().expect("poisoned"),
                )),
            };
            if let Some(done) = self.done.lock().expect("poisoned").take() {
                // The caller may have gone; its texts were scored all the same.
                let _ = done.send(result);
            }
        }
    }
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    queued_texts: usize,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    arrived: Condvar,
    config: BatcherConfig,
    batches: AtomicUsize,
    batched_texts: AtomicUsize,
}

/// What the batcher is doing, for `/api/health`.
#[derive(Debug, Clone, Copy, serde::Serialize, PartialEq, Eq)]
pub struct QueueStatus {
    pub waiting_requests: usize,
    pub waiting_texts: usize,
    pub max_queued: usize,
    /// Model calls made so far, and the texts they scored.
    pub batches: usize,
    pub batched_texts: usize,
}

pub struct Batcher {
    shared: Arc<Shared>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("config", &self.shared.config)
            .finish()
    }
}

impl Batcher {
    pub fn new(config: BatcherConfig) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            arrived: Condvar::new(),
            config,
            batches: AtomicUsize::new(0),
            batched_texts: AtomicUsize::new(0),
        });
        let workers = (0..shared.config.workers.max(1))
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("scorer-{i}"))
                    .spawn(move || work(&shared))
                    .expect("starting a scoring thread")
            })
            .collect();
        Self { shared, workers }
    }

    /// Queues `texts` for `model` and waits for their scores.
    pub async fn score(
        &self,
        model: Arc<LoadedModel>,
        texts: Vec<String>,
    ) -> Result<Scored, Overloaded> {
        let n = texts.len();
        let (done, outcome) = tokio::sync::oneshot::channel();
        {
            let mut queue = self.shared.queue.lock().expect("poisoned");
            let limit = self.shared.config.max_queued;
            // A request larger than the whole limit still runs when nothing else waits.
            if queue.queued_texts > 0 && queue.queued_texts + n > limit {
                return Err(Overloaded {
                    queued: queue.queued_texts,
                    limit,
                });
            }
            queue.queued_texts += n;
            queue.jobs.push_back(Job {
                model,
                outcome: Arc::new(Outcome {
                    scores: Mutex::new(vec![0.0; n]),
                    left: AtomicUsize::new(n),
                    model_ms: Mutex::new(0.0),
                    failed: Mutex::new(None),
                    done: Mutex::new(Some(done)),
                }),
                texts,
                taken: 0,
            });
        }
        self.shared.arrived.notify_one();
        Ok(outcome
            .await
            .unwrap_or_else(|_| Err(ModelError::Inference("the scoring thread stopped".into()))))
    }

    pub fn status(&self) -> QueueStatus {
        let queue = self.shared.queue.lock().expect("poisoned");
        QueueStatus {
            waiting_requests: queue.jobs.len(),
            waiting_texts: queue.queued_texts,
            max_queued: self.shared.config.max_queued,
            batches: self.shared.batches.load(Ordering::Relaxed),
            batched_texts: self.shared.batched_texts.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.shared.queue.lock().expect("poisoned").closed = true;
        self.shared.arrived.notify_all();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// A piece of a batch: `len` texts of one request, starting at its text `at`.
struct Piece {
    texts: Vec<String>,
    at: usize,
    outcome: Arc<Outcome>,
}

/// Takes the next batch off the queue: rounds of at most `chunk` texts per request, for the
/// model of the oldest request, up to `max_batch` texts.
fn take_batch(queue: &mut Queue, config: &BatcherConfig) -> Option<(Arc<LoadedModel>, Vec<Piece>)> {
    let model = queue.jobs.front()?.model.clone();
    let mut pieces = Vec::new();
    let mut count = 0;
    'rounds: loop {
        let mut took_any = false;
        for job in queue.jobs.iter_mut() {
            if !Arc::ptr_eq(&job.model, &model) || job.taken == job.texts.len() {
                continue;
            }
            let room = config.max_batch - count;
            let n = config.chunk.min(room).min(job.texts.len() - job.taken);
            pieces.push(Piece {
                texts: job.texts[job.taken..job.taken + n].to_vec(),
                at: job.taken,
                outcome: job.outcome.clone(),
            });
            job.taken += n;
            count += n;
            took_any = true;
            if count == config.max_batch {
                break 'rounds;
            }
        }
        if !took_any {
            break;
        }
    }
    queue.queued_texts -= count;
    // True round robin: the requests served go behind those that were not, so the next batch
    // starts with whoever waited; otherwise a request behind several long ones would starve
    // until they finished.
    let served: std::collections::HashSet<*const Outcome> =
        pieces.iter().map(|p| Arc::as_ptr(&p.outcome)).collect();
    let (mut waited, rest): (VecDeque<Job>, VecDeque<Job>) = queue
        .jobs
        .drain(..)
        .filter(|job| job.taken < job.texts.len())
        .partition(|job| !served.contains(&Arc::as_ptr(&job.outcome)));
    waited.extend(rest);
    queue.jobs = waited;
    Some((model, pieces))
}

fn work(shared: &Shared) {
    loop {
        let (model, pieces) = {
            let mut queue = shared.queue.lock().expect("poisoned");
            while queue.jobs.is_empty() && !queue.closed {
                queue = shared.arrived.wait(queue).expect("poisoned");
            }
            if queue.jobs.is_empty() {
                return;
            }
            // A lone short request waits a moment for company, then goes alone.
            let config = &shared.config;
            if queue.queued_texts < config.max_batch && !config.max_wait.is_zero() {
                let deadline = Instant::now() + config.max_wait;
                while queue.queued_texts < config.max_batch {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    queue = shared
                        .arrived
                        .wait_timeout(queue, left)
                        .expect("poisoned")
                        .0;
                }
            }
            match take_batch(&mut queue, config) {
                Some(batch) => batch,
                None => continue,
            }
        };
        // More may be waiting: let another worker look.
        shared.arrived.notify_one();
        score_batch(shared, &model, pieces);
    }
}

/// Scores the pieces' texts in groups of similar length and hands each piece its scores.
fn score_batch(shared: &Shared, model: &LoadedModel, pieces: Vec<Piece>) {
    let mut order: Vec<(usize, usize)> = pieces
        .iter()
        .enumerate()
        .flat_map(|(p, piece)| (0..piece.texts.len()).map(move |t| (p, t)))
        .collect();
    let len = |&(p, t): &(usize, usize)| pieces[p].texts[t].len();
    order.sort_by_key(len);
    let mut scores: Vec<Vec<f32>> = pieces.iter().map(|p| vec![0.0; p.texts.len()]).collect();
    let mut failure: Option<ModelError> = None;
    let started = Instant::now();
    let mut start = 0;
    while start < order.len() {
        // A group ends where a text is more than twice as long as the group's first.
        let first = len(&order[start]).max(16);
        let end = order[start..]
            .iter()
            .position(|o| len(o) > 2 * first)
            .map_or(order.len(), |k| start + k);
        let texts: Vec<&str> = order[start..end]
            .iter()
            .map(|&(p, t)| pieces[p].texts[t].as_str())
            .collect();
        match model.scorer.score(&texts) {
            Ok(out) => {
                for (&(p, t), s) in order[start..end].iter().zip(out) {
                    scores[p][t] = s;
                }
            }
            Err(e) => failure = Some(e),
        }
        shared.batches.fetch_add(1, Ordering::Relaxed);
        shared
            .batched_texts
            .fetch_add(end - start, Ordering::Relaxed);
        start = end;
    }
    let ms = started.elapsed().as_secs_f64() * 1e3;
    for (piece, scores) in pieces.iter().zip(&scores) {
        let result = match &failure {
            None => Ok(scores.as_slice()),
            Some(e) => Err(e),
        };
        piece
            .outcome
            .finish_part(piece.at, result, ms, piece.texts.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_batch: usize, chunk: usize) -> BatcherConfig {
        BatcherConfig {
            workers: 1,
            max_batch,
            chunk,
            max_wait: Duration::ZERO,
            max_queued: 10_000,
        }
    }

    fn fixture() -> Arc<LoadedModel> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/models/fixture-nb/1");
        let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
        let manifest = crate::model::Manifest::parse(&read("manifest.json")).unwrap();
        let scorer =
            crate::model::Scorer::load(manifest, &read("tokenizer.json"), &read("model.onnx"))
                .unwrap();
        Arc::new(LoadedModel {
            scorer,
            loaded_at: time::OffsetDateTime::now_utc(),
        })
    }

    fn job(model: &Arc<LoadedModel>, n: usize) -> Job {
        let (done, _) = tokio::sync::oneshot::channel();
        Job {
            model: model.clone(),
            texts: (0..n).map(|i| format!("text {i}")).collect(),
            taken: 0,
            outcome: Arc::new(Outcome {
                scores: Mutex::new(vec![0.0; n]),
                left: AtomicUsize::new(n),
                model_ms: Mutex::new(0.0),
                failed: Mutex::new(None),
                done: Mutex::new(Some(done)),
            }),
        }
    }

    #[test]
    fn a_single_tweet_rides_in_the_first_batch_beside_a_long_request() {
        let model = fixture();
        let mut queue = Queue::default();
        queue.jobs.push_back(job(&model, 64));
        queue.jobs.push_back(job(&model, 1));
        queue.queued_texts = 65;
        let (_, pieces) = take_batch(&mut queue, &config(16, 4)).unwrap();
        let sizes: Vec<usize> = pieces.iter().map(|p| p.texts.len()).collect();
        // Round one: four of the long request, then the single tweet; then rounds of four.
        assert_eq!(sizes, [4, 1, 4, 4, 3]);
        assert_eq!(queue.queued_texts, 49);
        assert_eq!(queue.jobs.len(), 1, "the single tweet is fully taken");
        assert_eq!(queue.jobs[0].taken, 15);
    }

    #[test]
    fn requests_behind_long_ones_are_served_in_turn_not_starved() {
        let model = fixture();
        let mut queue = Queue::default();
        for n in [64, 64, 64, 64, 1] {
            queue.jobs.push_back(job(&model, n));
        }
        queue.queued_texts = 257;
        let config = config(4, 2);
        let first = take_batch(&mut queue, &config).unwrap().1;
        assert_eq!(first.len(), 2, "two requests fill the first batch");
        // The next batch starts with the requests that waited: the third long one and the single
        // tweet's turn comes in the batch after, not after 256 texts.
        let second = take_batch(&mut queue, &config).unwrap().1;
        let third = take_batch(&mut queue, &config).unwrap().1;
        let sizes: Vec<usize> = second.iter().chain(&third).map(|p| p.texts.len()).collect();
        assert!(
            sizes.contains(&1),
            "the single tweet is in the second or third batch: {sizes:?}"
        );
    }

    #[test]
    fn a_batch_holds_one_model_only() {
        let (a, b) = (fixture(), fixture());
        let mut queue = Queue::default();
        queue.jobs.push_back(job(&a, 2));
        queue.jobs.push_back(job(&b, 2));
        queue.jobs.push_back(job(&a, 2));
        queue.queued_texts = 6;
        let (model, pieces) = take_batch(&mut queue, &config(16, 4)).unwrap();
        assert!(Arc::ptr_eq(&model, &a));
        assert_eq!(pieces.len(), 2);
        assert_eq!(queue.jobs.len(), 1);
        assert!(Arc::ptr_eq(&queue.jobs[0].model, &b));
    }

    #[tokio::test]
    async fn answers_come_back_in_order_and_match_scoring_alone() {
        let model = fixture();
        let batcher = Arc::new(Batcher::new(BatcherConfig {
            workers: 2,
            ..config(8, 2)
        }));
        let requests: Vec<Vec<String>> = (0..12)
            .map(|r| {
                (0..(r % 5 + 1))
                    .map(|i| format!("great flight {r} {i} thanks"))
                    .collect()
            })
            .collect();
        let answers = futures::future::join_all(
            requests
                .iter()
                .map(|texts| batcher.score(model.clone(), texts.clone())),
        )
        .await;
        for (texts, answer) in requests.iter().zip(answers) {
            let (scores, _) = answer.unwrap().unwrap();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let alone = model.scorer.score(&refs).unwrap();
            assert_eq!(scores.len(), texts.len());
            for (a, b) in scores.iter().zip(alone) {
                assert!((a - b).abs() < 1e-6, "{a} vs {b}");
            }
        }
        let status = batcher.status();
        assert_eq!(
            status.batched_texts,
            requests.iter().map(Vec::len).sum::<usize>()
        );
        assert_eq!(status.waiting_texts, 0);
    }

    #[tokio::test]
    async fn past_the_queue_limit_a_request_is_refused_not_queued() {
        let model = fixture();
        let batcher = Batcher::new(BatcherConfig {
            max_queued: 64,
            ..config(16, 4)
        });
        let texts = || (0..64).map(|i| format!("tweet {i}")).collect::<Vec<_>>();
        let answers =
            futures::future::join_all((0..50).map(|_| batcher.score(model.clone(), texts()))).await;
        let refused = answers.iter().filter(|a| a.is_err()).count();
        let served = answers.iter().filter(|a| matches!(a, Ok(Ok(_)))).count();
        assert!(refused > 0, "50 × 64 texts against a limit of 64");
        assert_eq!(
            refused + served,
            50,
            "every request is answered one way or the other"
        );
    }
}
