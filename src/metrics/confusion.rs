//! The binary confusion matrix and the figures derived from it.
//!
//! Labels are 1 for positive and 0 for negative. Both classes get precision, recall and F1: the
//! negative class is the one a bad buzz is made of, so it is reported as carefully as the positive.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    /// Predicted positive, truly positive.
    pub tp: u64,
    /// Predicted positive, truly negative.
    pub fp: u64,
    /// Predicted negative, truly negative.
    pub tn: u64,
    /// Predicted negative, truly positive.
    #[serde(rename = "fn")]
    pub fn_: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// `None` when the class was never predicted (0/0).
    pub precision: Option<f64>,
    /// `None` when the class never occurred (0/0).
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub support: u64,
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

fn class_metrics(hits: u64, false_alarms: u64, misses: u64) -> ClassMetrics {
    let precision = ratio(hits, hits + false_alarms);
    let recall = ratio(hits, hits + misses);
    // F1 = 2TP / (2TP + FP + FN): defined whenever the class occurred or was predicted.
    let f1 = ratio(2 * hits, 2 * hits + false_alarms + misses);
    ClassMetrics {
        precision,
        recall,
        f1,
        support: hits + misses,
    }
}

impl Confusion {
    pub fn record(&mut self, true_label: u8, predicted_positive: bool) {
        self.add(true_label, predicted_positive, 1);
    }

    /// Records `n` predictions with the same label and answer.
    pub fn add(&mut self, true_label: u8, predicted_positive: bool, n: u64) {
        match (true_label == 1, predicted_positive) {
            (true, true) => self.tp += n,
            (false, true) => self.fp += n,
            (false, false) => self.tn += n,
            (true, false) => self.fn_ += n,
        }
    }

    pub fn merge(&mut self, other: &Confusion) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.tn += other.tn;
        self.fn_ += other.fn_;
    }

    pub fn total(&self) -> u64 {
        self.tp + self.fp + self.tn + self.fn_
    }

    pub fn accuracy(&self) -> Option<f64> {
        ratio(self.tp + self.tn, self.total())
    }

    pub fn positive(&self) -> ClassMetrics {
        class_metrics(self.tp, self.fp, self.fn_)
    }

    pub fn negative(&self) -> ClassMetrics {
        class_metrics(self.tn, self.fn_, self.fp)
    }

    /// Mean of both classes' F1; a class with undefined F1 (never seen, never predicted) is left
    /// out rather than counted as 0 or 1.
    pub fn macro_f1(&self) -> Option<f64> {
        let f1s: Vec<f64> = [self.positive().f1, self.negative().f1]
            .into_iter()
            .flatten()
            .collect();
        (!f1s.is_empty()).then(|| f1s.iter().sum::<f64>() / f1s.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn hand_computed_matrix() {
        // 10 labelled: truth 6 positive / 4 negative; predicted positive for 5 of the positives
        // and 1 of the negatives.
        let mut c = Confusion::default();
        for _ in 0..5 {
            c.record(1, true);
        }
        c.record(1, false);
        c.record(0, true);
        for _ in 0..3 {
            c.record(0, false);
        }
        assert_eq!(
            c,
            Confusion {
                tp: 5,
                fp: 1,
                tn: 3,
                fn_: 1
            }
        );
        assert!(close(c.accuracy(), 0.8));
        assert!(close(c.positive().precision, 5.0 / 6.0));
        assert!(close(c.positive().recall, 5.0 / 6.0));
        assert!(close(c.negative().precision, 3.0 / 4.0));
        assert!(close(c.negative().recall, 3.0 / 4.0));
        assert!(close(c.macro_f1(), (5.0 / 6.0 + 0.75) / 2.0));
        assert_eq!(c.positive().support, 6);
        assert_eq!(c.negative().support, 4);
    }

    #[test]
    fn empty_and_one_sided_matrices_have_no_made_up_figures() {
        let c = Confusion::default();
        assert_eq!(c.accuracy(), None);
        assert_eq!(c.macro_f1(), None);
        let mut only_neg = Confusion::default();
        only_neg.record(0, false);
        only_neg.record(0, false);
        assert_eq!(only_neg.positive().precision, None);
        assert_eq!(only_neg.positive().f1, None);
        assert!(close(only_neg.macro_f1(), 1.0));
    }
}
