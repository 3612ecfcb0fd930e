//! Mergeable histograms: latency on a log scale (for percentiles) and scores in ten bins (for drift).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Buckets per factor of ten: each bucket is about 6% wide, so a percentile read from the
/// histogram is within about 3% of the exact one.
const BUCKETS_PER_DECADE: f64 = 40.0;

/// Sparse log-scale histogram of latencies in milliseconds. Merging two is adding counts, so
/// windows can be assembled from time buckets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyHistogram {
    counts: BTreeMap<i32, u64>,
}

impl LatencyHistogram {
    fn index(ms: f64) -> i32 {
        let ms = ms.max(1e-4);
        (ms.log10() * BUCKETS_PER_DECADE).floor() as i32
    }

    /// The geometric middle of a bucket.
    fn value(index: i32) -> f64 {
        10f64.powf((index as f64 + 0.5) / BUCKETS_PER_DECADE)
    }

    pub fn record(&mut self, ms: f64) {
        if ms.is_finite() {
            *self.counts.entry(Self::index(ms)).or_default() += 1;
        }
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (index, count) in &other.counts {
            *self.counts.entry(*index).or_default() += count;
        }
    }

    pub fn count(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The `q` quantile (0..=1), or `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        // The rank of the q-quantile among `total` sorted values, 1-based.
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (index, count) in &self.counts {
            seen += count;
            if seen >= rank {
                return Some(Self::value(*index));
            }
        }
        None
    }
}

pub const SCORE_BINS: usize = 10;

/// Scores in ten equal bins over [0, 1]; 1.0 falls in the last bin.
pub fn score_bin(score: f32) -> usize {
    ((score.clamp(0.0, 1.0) * SCORE_BINS as f32) as usize).min(SCORE_BINS - 1)
}

/// Population stability index of `actual` counts against `expected` proportions. Empty bins are
/// floored at a small share so that the logarithm stays finite. `None` when there is nothing to
/// compare.
pub fn psi(actual: &[u64; SCORE_BINS], expected: &[f64]) -> Option<f64> {
    let total: u64 = actual.iter().sum();
    let expected_total: f64 = expected.iter().sum();
    if total == 0 || expected.len() != SCORE_BINS || expected_total <= 0.0 {
        return None;
    }
    const FLOOR: f64 = 1e-4;
    Some(
        actual
            .iter()
            .zip(expected)
            .map(|(&a, &e)| {
                let a = (a as f64 / total as f64).max(FLOOR);
                let e = (e / expected_total).max(FLOOR);
                (a - e) * (a / e).ln()
            })
            .sum(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_the_bucket_resolution() {
        let mut h = LatencyHistogram::default();
        for i in 1..=1000 {
            h.record(i as f64 / 10.0); // 0.1 ms .. 100 ms, uniformly
        }
        for (q, exact) in [(0.5, 50.0), (0.95, 95.0), (0.99, 99.0)] {
            let got = h.quantile(q).unwrap();
            assert!((got - exact).abs() / exact < 0.04, "q{q}: {got} vs {exact}");
        }
        let mut a = LatencyHistogram::default();
        let mut b = LatencyHistogram::default();
        a.record(1.0);
        b.record(100.0);
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(LatencyHistogram::default().quantile(0.5), None);
    }

    #[test]
    fn score_bins_and_psi() {
        assert_eq!(score_bin(0.0), 0);
        assert_eq!(score_bin(0.05), 0);
        assert_eq!(score_bin(0.95), 9);
        assert_eq!(score_bin(1.0), 9);
        let uniform = [0.1; SCORE_BINS];
        assert!(psi(&[10; SCORE_BINS], &uniform).unwrap().abs() < 1e-12);
        // All mass in one bin against a uniform reference: 0.9 ln 9 + 9 × (−0.1) ln(0.001) …
        let mut skewed = [0u64; SCORE_BINS];
        skewed[0] = 100;
        let expected: f64 =
            (1.0 - 0.1) * (1.0f64 / 0.1).ln() + 9.0 * (1e-4 - 0.1) * (1e-4f64 / 0.1).ln();
        assert!((psi(&skewed, &uniform).unwrap() - expected).abs() < 1e-9);
        assert_eq!(psi(&[0; SCORE_BINS], &uniform), None);
        assert_eq!(psi(&skewed, &[]), None);
    }
}
