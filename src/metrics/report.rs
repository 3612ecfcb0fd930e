//! The metrics report's types and how one is built from the aggregated state: pure, no I/O.
//! The bad-buzz rule lives here too. Reading the log and writing the outputs is [`super::run`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::aggregate::{
    pair_key, FeedbackCounts, HistoryPoint, State, Tally, HISTORY_POINTS, OVERALL,
};
use super::confusion::{ClassMetrics, Confusion};
use super::histogram::{psi, SCORE_BINS};
use super::verdict::{verdict, ChallengerVerdict, VerdictConfig};
use crate::model::ModelRef;

/// Where the report reads and writes, and its bad-buzz rule.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    pub logs_container: String,
    pub reports_container: String,
    pub models_container: String,
    /// A window needs at least this many predictions before it can raise `bad_buzz`.
    pub bad_buzz_min_predictions: u64,
    /// `bad_buzz` when the negative share exceeds its baseline by this much…
    pub bad_buzz_delta: f64,
    /// …or reaches this share whatever the baseline.
    pub bad_buzz_share: f64,
    /// When a challenger is ready to be promoted.
    pub verdict: VerdictConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowReport {
    pub predictions: u64,
    pub labelled: u64,
    pub confusion: Confusion,
    pub accuracy: Option<f64>,
    pub positive: ClassMetrics,
    pub negative: ClassMetrics,
    pub macro_f1: Option<f64>,
    pub latency_ms: LatencySummary,
    /// Share of predictions that were negative.
    pub negative_share: Option<f64>,
    /// The same share over the 24 h before the window (`None` for `since_start`).
    pub baseline_negative_share: Option<f64>,
    pub bad_buzz: bool,
    pub score_histogram: [u64; SCORE_BINS],
    /// Drift of the score histogram against the model's reference (model series only).
    pub psi: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Windows {
    pub last_hour: WindowReport,
    pub last_24h: WindowReport,
    pub since_start: WindowReport,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    pub name: String,
    pub version: String,
    pub role: String,
    pub windows: Windows,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub prediction_records: u64,
    pub feedback_records: u64,
    pub blobs_read: u64,
    pub bytes_read: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    pub run: RunSummary,
    /// Every champion prediction, whatever the version.
    pub overall: Windows,
    pub models: Vec<ModelReport>,
    pub feedback: FeedbackCounts,
    /// Feedback read but whose prediction has not been read yet.
    pub feedback_waiting: u64,
    pub invalid_lines: u64,
    pub duplicate_predictions: u64,
    pub history: Vec<HistoryPoint>,
    /// The paired verdict on the current challenger; absent when there is none.
    #[serde(default)]
    pub challenger: Option<ChallengerVerdict>,
}

/// The models the store's pointers name when the report runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pointers {
    pub champion: Option<ModelRef>,
    pub challenger: Option<ModelRef>,
}

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

fn window_report(
    tally: &Tally,
    baseline: Option<&Tally>,
    reference: Option<&[f64]>,
    config: &ReportConfig,
) -> WindowReport {
    let share =
        |t: &Tally| (t.predictions > 0).then(|| t.predicted_negative as f64 / t.predictions as f64);
    let negative_share = share(tally);
    let baseline_negative_share = baseline.and_then(share);
    let enough = tally.predictions >= config.bad_buzz_min_predictions;
    let bad_buzz = enough
        && match (negative_share, baseline_negative_share) {
            (Some(now), Some(base)) if now - base >= config.bad_buzz_delta => true,
            (Some(now), _) => now >= config.bad_buzz_share,
            _ => false,
        };
    WindowReport {
        predictions: tally.predictions,
        labelled: tally.confusion.total(),
        confusion: tally.confusion,
        accuracy: tally.confusion.accuracy(),
        positive: tally.confusion.positive(),
        negative: tally.confusion.negative(),
        macro_f1: tally.confusion.macro_f1(),
        latency_ms: LatencySummary {
            p50: tally.latency.quantile(0.50),
            p95: tally.latency.quantile(0.95),
            p99: tally.latency.quantile(0.99),
        },
        negative_share,
        baseline_negative_share,
        bad_buzz,
        score_histogram: tally.scores,
        psi: reference.and_then(|r| psi(&tally.scores, r)),
    }
}

fn windows(
    state: &State,
    series: &str,
    now: i64,
    reference: Option<&[f64]>,
    config: &ReportConfig,
) -> Windows {
    let hour = state.window(series, now, HOUR, 0);
    let hour_base = state.window(series, now, DAY, HOUR);
    let day = state.window(series, now, DAY, 0);
    let day_base = state.window(series, now, DAY, DAY);
    let all = state
        .series
        .get(series)
        .map(|s| s.since_start.clone())
        .unwrap_or_default();
    Windows {
        last_hour: window_report(&hour, Some(&hour_base), reference, config),
        last_24h: window_report(&day, Some(&day_base), reference, config),
        since_start: window_report(&all, None, reference, config),
    }
}

/// Builds the report from the state, appending a history point.
pub fn build_report(
    state: &mut State,
    now: OffsetDateTime,
    run: RunSummary,
    references: &BTreeMap<String, Vec<f64>>,
    pointers: &Pointers,
    config: &ReportConfig,
) -> Report {
    let ts = now.unix_timestamp();
    let overall = windows(state, OVERALL, ts, None, config);
    let models = state
        .series
        .keys()
        .filter(|k| k.as_str() != OVERALL)
        .filter_map(|key| {
            let mut parts = key.rsplitn(3, '/');
            let role = parts.next()?.to_owned();
            let version = parts.next()?.to_owned();
            let name = parts.next()?.to_owned();
            let reference = references
                .get(&format!("{name}/{version}"))
                .map(Vec::as_slice);
            Some(ModelReport {
                windows: windows(state, key, ts, reference, config),
                name,
                version,
                role,
            })
        })
        .collect();
    state.history.push(HistoryPoint {
        ts,
        macro_f1: overall.last_24h.macro_f1,
        negative_share: overall.last_hour.negative_share,
        predictions: overall.last_hour.predictions,
    });
    if state.history.len() > HISTORY_POINTS {
        let excess = state.history.len() - HISTORY_POINTS;
        state.history.drain(..excess);
    }
    let challenger = match (&pointers.champion, &pointers.challenger) {
        (Some(champion), Some(challenger)) => {
            let (champion, challenger) = (champion.to_string(), challenger.to_string());
            let counts = state.paired.get(&pair_key(&champion, &challenger));
            Some(verdict(&champion, &challenger, counts, &config.verdict))
        }
        _ => None,
    };
    Report {
        challenger,
        generated_at: now,
        run,
        overall,
        models,
        feedback: state.feedback,
        feedback_waiting: state.orphans.len() as u64,
        invalid_lines: state.invalid_lines,
        duplicate_predictions: state.duplicate_predictions,
        history: state.history.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn config() -> ReportConfig {
        ReportConfig {
            logs_container: "logs".into(),
            reports_container: "reports".into(),
            models_container: "models".into(),
            bad_buzz_min_predictions: 10,
            bad_buzz_delta: 0.15,
            bad_buzz_share: 0.75,
            verdict: VerdictConfig::default(),
        }
    }

    #[test]
    fn bad_buzz_needs_volume_and_a_jump_over_the_baseline() {
        let tally = |n: u64, neg: u64| Tally {
            predictions: n,
            predicted_negative: neg,
            ..Default::default()
        };
        let c = config();
        assert!(window_report(&tally(20, 12), Some(&tally(100, 30)), None, &c).bad_buzz);
        assert!(!window_report(&tally(20, 8), Some(&tally(100, 30)), None, &c).bad_buzz);
        assert!(
            !window_report(&tally(5, 5), Some(&tally(100, 30)), None, &c).bad_buzz,
            "too few"
        );
        assert!(
            window_report(&tally(20, 16), None, None, &c).bad_buzz,
            "absolute share"
        );
        assert!(!window_report(&tally(20, 10), None, None, &c).bad_buzz);
    }
}
