//! The paired verdict on a challenger: champion and challenger compared on the same labelled
//! tweets, ending in `promote`, `keep` or `not_enough_labels`. Pure: counts in, verdict out.
//!
//! Why paired: both models scored the very same tweets, so the comparison needs no assumption
//! about traffic changing between two periods, and it needs far fewer labels than comparing two
//! separate samples. Two tests, both on these counts:
//! - the macro-F1 difference (challenger − champion) with a bootstrap 95 % interval, resampling
//!   tweets (the 8 cells of [`PairedCounts`]), because macro-F1 is what the report tracks;
//! - McNemar's exact test on the tweets where exactly one model is right, because it is the
//!   standard test of two classifiers on one test set and needs no resampling.
//!
//! The rule: fewer than `min_labels` paired tweets → `not_enough_labels` (with how many are still
//! needed); else `promote` when the interval's lower end is above `min_gain` and McNemar's p is
//! below `alpha` in the challenger's favour; else `keep`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::aggregate::PairedCounts;
use super::confusion::Confusion;

/// The thresholds of the rule.
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictConfig {
    /// Paired labelled tweets needed before any verdict but `not_enough_labels`.
    pub min_labels: u64,
    /// McNemar's p-value must be below this.
    pub alpha: f64,
    /// The lower end of the macro-F1 difference's 95 % interval must be above this.
    pub min_gain: f64,
    /// Bootstrap resamples (fewer for very large samples, to bound the time).
    pub resamples: u32,
}

impl Default for VerdictConfig {
    fn default() -> Self {
        Self {
            min_labels: 200,
            alpha: 0.05,
            min_gain: 0.0,
            resamples: 2000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Promote,
    Keep,
    NotEnoughLabels,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Promote => "promote",
            Decision::Keep => "keep",
            Decision::NotEnoughLabels => "not_enough_labels",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disagreements {
    /// Tweets the champion got right and the challenger wrong.
    pub champion_right: u64,
    /// Tweets the challenger got right and the champion wrong.
    pub challenger_right: u64,
}

/// The rule's thresholds as they were applied, so that a report explains itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub min_labels: u64,
    pub alpha: f64,
    pub min_gain: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChallengerVerdict {
    /// `name/version` of the champion and of the challenger.
    pub champion: String,
    pub challenger: String,
    /// Labelled tweets both scored.
    pub labelled: u64,
    /// Time of the first paired prediction.
    #[serde(with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    pub champion_confusion: Confusion,
    pub challenger_confusion: Confusion,
    pub champion_macro_f1: Option<f64>,
    pub challenger_macro_f1: Option<f64>,
    /// Challenger's macro-F1 minus the champion's.
    pub difference: Option<f64>,
    /// Bootstrap 95 % interval of the difference.
    pub difference_ci95: Option<[f64; 2]>,
    pub disagreements: Disagreements,
    /// McNemar's exact two-sided p-value on the disagreements.
    pub mcnemar_p: Option<f64>,
    pub verdict: Decision,
    /// Paired labelled tweets still needed (with `not_enough_labels`).
    pub labels_needed: u64,
    /// One sentence on why.
    pub reason: String,
    pub rule: Rule,
}

fn confusions(cells: &[u64; 8]) -> (Confusion, Confusion) {
    let mut champion = Confusion::default();
    let mut challenger = Confusion::default();
    for label in 0..=1u8 {
        for champion_positive in [false, true] {
            for challenger_positive in [false, true] {
                let n = cells[PairedCounts::cell(label, champion_positive, challenger_positive)];
                champion.add(label, champion_positive, n);
                challenger.add(label, challenger_positive, n);
            }
        }
    }
    (champion, challenger)
}

fn difference(cells: &[u64; 8]) -> Option<f64> {
    let (champion, challenger) = confusions(cells);
    Some(challenger.macro_f1()? - champion.macro_f1()?)
}

/// (champion right only, challenger right only).
fn disagreements(cells: &[u64; 8]) -> (u64, u64) {
    let mut champion_right = 0;
    let mut challenger_right = 0;
    for label in 0..=1u8 {
        let truth = label == 1;
        for (champion_positive, challenger_positive) in [(false, true), (true, false)] {
            let n = cells[PairedCounts::cell(label, champion_positive, challenger_positive)];
            if champion_positive == truth {
                champion_right += n;
            } else if challenger_positive == truth {
                challenger_right += n;
            }
        }
    }
    (champion_right, challenger_right)
}

/// McNemar's exact test: under "both models are as good", each of the `b + c` disagreements goes
/// either way with probability ½; the two-sided p-value of seeing a split this uneven.
pub fn mcnemar_exact(b: u64, c: u64) -> Option<f64> {
    let n = b + c;
    if n == 0 {
        return None;
    }
    let k = b.min(c);
    // ln C(n, i) · 2^-n, summed for i = 0..=k in log space so that large n does not overflow.
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    let mut ln_choose = 0.0f64;
    let mut tail = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_choose + ln_half_n).exp();
    }
    Some((2.0 * tail).min(1.0))
}

/// SplitMix64: a small, seeded generator, so that the same counts always give the same interval
/// (the aggregation bench generates its log with it too).
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Bound on the work of one bootstrap, in draws (resamples × tweets).
const BOOTSTRAP_DRAWS: u64 = 20_000_000;

/// Percentile bootstrap 95 % interval of the macro-F1 difference: resample the paired tweets
/// with replacement, recompute both macro-F1s, take the 2.5th and 97.5th percentiles.
pub fn bootstrap_ci(cells: &[u64; 8], resamples: u32) -> Option<[f64; 2]> {
    let n = cells.iter().sum::<u64>();
    if n == 0 {
        return None;
    }
    let resamples = u64::from(resamples.max(1)).min((BOOTSTRAP_DRAWS / n).max(200));
    let mut cumulative = [0u64; 8];
    let mut sum = 0;
    for (c, n) in cumulative.iter_mut().zip(cells) {
        sum += n;
        *c = sum;
    }
    let mut rng = SplitMix64(0x5EED_F00D_A15E);
    let mut differences = Vec::with_capacity(resamples as usize);
    for _ in 0..resamples {
        let mut sample = [0u64; 8];
        for _ in 0..n {
            let draw = rng.below(n);
            let cell = cumulative.partition_point(|c| *c <= draw);
            sample[cell] += 1;
        }
        if let Some(d) = difference(&sample) {
            differences.push(d);
        }
    }
    if differences.is_empty() {
        return None;
    }
    differences.sort_by(f64::total_cmp);
    let at = |q: f64| differences[((differences.len() - 1) as f64 * q).round() as usize];
    Some([at(0.025), at(0.975)])
}

/// The verdict on `challenger` against `champion` from their paired counts (none yet: zero).
pub fn verdict(
    champion: &str,
    challenger: &str,
    counts: Option<&PairedCounts>,
    config: &VerdictConfig,
) -> ChallengerVerdict {
    let counts = counts.copied().unwrap_or_default();
    let labelled = counts.total();
    let (champion_confusion, challenger_confusion) = confusions(&counts.cells);
    let (champion_right, challenger_right) = disagreements(&counts.cells);
    let mcnemar_p = mcnemar_exact(champion_right, challenger_right);
    let diff = difference(&counts.cells);
    let enough = labelled >= config.min_labels.max(1);
    let ci = if enough {
        bootstrap_ci(&counts.cells, config.resamples)
    } else {
        None
    };
    let (decision, reason) = if !enough {
        (
            Decision::NotEnoughLabels,
            format!(
                "{labelled} paired labelled tweets, {} needed",
                config.min_labels
            ),
        )
    } else {
        let ci_clear = ci.is_some_and(|[low, _]| low > config.min_gain);
        let significant =
            challenger_right > champion_right && mcnemar_p.is_some_and(|p| p < config.alpha);
        match (ci_clear, significant) {
            (true, true) => (
                Decision::Promote,
                "the challenger's macro-F1 is higher beyond the interval and McNemar's test".into(),
            ),
            (false, _) => (
                Decision::Keep,
                format!(
                    "the difference's 95 % interval does not clear {:+.3}",
                    config.min_gain
                ),
            ),
            (true, false) => (
                Decision::Keep,
                format!(
                    "McNemar's test does not favour the challenger at {}",
                    config.alpha
                ),
            ),
        }
    };
    ChallengerVerdict {
        champion: champion.to_owned(),
        challenger: challenger.to_owned(),
        labelled,
        since: (labelled > 0)
            .then(|| OffsetDateTime::from_unix_timestamp(counts.first_ts).ok())
            .flatten(),
        champion_macro_f1: champion_confusion.macro_f1(),
        challenger_macro_f1: challenger_confusion.macro_f1(),
        champion_confusion,
        challenger_confusion,
        difference: diff,
        difference_ci95: ci,
        disagreements: Disagreements {
            champion_right,
            challenger_right,
        },
        mcnemar_p,
        verdict: decision,
        labels_needed: config.min_labels.saturating_sub(labelled),
        reason,
        rule: Rule {
            min_labels: config.min_labels,
            alpha: config.alpha,
            min_gain: config.min_gain,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(cells: [u64; 8]) -> PairedCounts {
        PairedCounts {
            cells,
            first_ts: 1_790_000_000,
            last_ts: 1_790_000_600,
        }
    }

    /// `n` tweets per label where both are right, plus `b` where only the champion is and `c`
    /// where only the challenger is (half of each per label).
    fn scenario(n: u64, b: u64, c: u64) -> PairedCounts {
        let mut cells = [0u64; 8];
        cells[PairedCounts::cell(1, true, true)] = n;
        cells[PairedCounts::cell(0, false, false)] = n;
        cells[PairedCounts::cell(1, true, false)] = b / 2;
        cells[PairedCounts::cell(0, false, true)] = b - b / 2;
        cells[PairedCounts::cell(1, false, true)] = c / 2;
        cells[PairedCounts::cell(0, true, false)] = c - c / 2;
        counts(cells)
    }

    #[test]
    fn mcnemar_matches_the_binomial_by_hand() {
        // 0 vs 5 disagreements: 2 · (1/2)^5 = 0.0625.
        assert!((mcnemar_exact(0, 5).unwrap() - 0.0625).abs() < 1e-12);
        // 1 vs 9: 2 · (1 + 10) / 1024.
        assert!((mcnemar_exact(1, 9).unwrap() - 22.0 / 1024.0).abs() < 1e-12);
        assert_eq!(mcnemar_exact(4, 4), Some(1.0));
        assert_eq!(mcnemar_exact(0, 0), None);
        // Large counts stay finite and tiny.
        assert!(mcnemar_exact(100, 400).unwrap() < 1e-30);
    }

    #[test]
    fn too_few_labels_says_how_many_are_missing() {
        let v = verdict(
            "m/1",
            "m/2",
            Some(&scenario(40, 0, 30)),
            &VerdictConfig::default(),
        );
        assert_eq!(v.verdict, Decision::NotEnoughLabels);
        assert_eq!(v.labelled, 110);
        assert_eq!(v.labels_needed, 90);
        assert_eq!(v.difference_ci95, None);
        let none = verdict("m/1", "m/2", None, &VerdictConfig::default());
        assert_eq!((none.labelled, none.labels_needed), (0, 200));
        assert_eq!(none.since, None);
    }

    #[test]
    fn a_clearly_better_challenger_is_promoted_and_an_equal_one_kept() {
        let config = VerdictConfig::default();
        let better = verdict("m/1", "m/2", Some(&scenario(200, 10, 60)), &config);
        assert_eq!(better.verdict, Decision::Promote, "{better:?}");
        let [low, high] = better.difference_ci95.unwrap();
        let d = better.difference.unwrap();
        assert!(low > 0.0 && low < d && d < high, "{low} {d} {high}");
        assert_eq!(better.disagreements.challenger_right, 60);

        let equal = verdict("m/1", "m/2", Some(&scenario(200, 30, 30)), &config);
        assert_eq!(equal.verdict, Decision::Keep);
        assert!(equal.difference_ci95.unwrap()[0] < 0.0);

        let worse = verdict("m/1", "m/2", Some(&scenario(200, 60, 10)), &config);
        assert_eq!(worse.verdict, Decision::Keep);
        assert!(worse.difference.unwrap() < 0.0);
    }

    #[test]
    fn the_interval_is_reproducible() {
        let c = scenario(300, 25, 45);
        assert_eq!(bootstrap_ci(&c.cells, 500), bootstrap_ci(&c.cells, 500));
    }
}
