//! The aggregation state: everything the report needs, updated from new log lines, small enough to
//! be stored as one checkpoint blob together with the log offsets it reflects.
//!
//! Why this makes reruns safe: the offsets and the counts derived from the bytes before them are
//! written in one blob, in one conditional write. A run that dies before that write leaves the
//! previous checkpoint untouched, so the next run reads the same bytes again and counts them once;
//! a run that finds the checkpoint changed under it (another run) writes nothing.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::confusion::Confusion;
use super::histogram::{score_bin, LatencyHistogram, SCORE_BINS};
use crate::log::{FeedbackRecord, PredictionRecord};
use crate::model::Role;

/// Width of a time bucket. Windows are made of whole buckets.
pub const BUCKET_SECONDS: i64 = 300;
/// Buckets are kept for two days: the last 24 h and the 24 h baseline before them.
pub const BUCKET_RETENTION_SECONDS: i64 = 49 * 3600;
/// How long a prediction waits for feedback, and feedback for its prediction, before giving up.
pub const FEEDBACK_HORIZON_SECONDS: i64 = 72 * 3600;
/// The series of all champion predictions, whatever the version.
pub const OVERALL: &str = "overall";

/// What the report needs of a prediction record: everything but the text, which is skipped
/// while parsing rather than copied (it is most of a record's bytes).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CountedPrediction {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub ts: time::OffsetDateTime,
    pub model: crate::model::ModelRef,
    pub role: Role,
    pub score: f32,
    pub sentiment: crate::model::Sentiment,
    pub latency_ms: f64,
    #[serde(default)]
    pub true_label: Option<u8>,
}

impl From<PredictionRecord> for CountedPrediction {
    fn from(r: PredictionRecord) -> Self {
        Self {
            id: r.id,
            ts: r.ts,
            model: r.model,
            role: r.role,
            score: r.score,
            sentiment: r.sentiment,
            latency_ms: r.latency_ms,
            true_label: r.true_label,
        }
    }
}

/// Counts over a set of predictions; merging two is adding them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub predictions: u64,
    pub predicted_negative: u64,
    pub confusion: Confusion,
    pub latency: LatencyHistogram,
    pub scores: [u64; SCORE_BINS],
}

impl Tally {
    fn add_prediction(&mut self, score: f32, predicted_positive: bool, latency_ms: f64) {
        self.predictions += 1;
        self.predicted_negative += u64::from(!predicted_positive);
        self.latency.record(latency_ms);
        self.scores[score_bin(score)] += 1;
    }

    pub fn merge(&mut self, other: &Tally) {
        self.predictions += other.predictions;
        self.predicted_negative += other.predicted_negative;
        self.confusion.merge(&other.confusion);
        self.latency.merge(&other.latency);
        for (a, b) in self.scores.iter_mut().zip(other.scores) {
            *a += b;
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub since_start: Tally,
    /// Bucket start (unix seconds) → tally of predictions made in that bucket.
    pub buckets: BTreeMap<i64, Tally>,
}

/// A prediction kept until its feedback arrives (or the horizon passes). Compact on purpose: the
/// checkpoint holds one per recent prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// `name/version/role` of the model that made it, shared by every entry of that model.
    #[serde(rename = "s")]
    pub series: Arc<str>,
    #[serde(rename = "t")]
    pub ts: i64,
    #[serde(rename = "p")]
    pub predicted_positive: bool,
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub label: Option<u8>,
    /// The run that read the prediction, to tell late feedback from feedback read with it.
    #[serde(rename = "r")]
    pub run: u64,
    /// On a challenger's entry: already counted in [`State::paired`] with the champion's.
    #[serde(rename = "d", default, skip_serializing_if = "std::ops::Not::not")]
    pub paired: bool,
}

/// The same labelled tweets as the champion and a challenger scored them: what a paired
/// comparison needs (both confusion matrices, and who was right where they disagree).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairedCounts {
    /// Tweets per `(true label, champion says positive, challenger says positive)`, at index
    /// `label * 4 + champion * 2 + challenger`.
    pub cells: [u64; 8],
    /// Time of the first and the last paired prediction (unix seconds).
    pub first_ts: i64,
    pub last_ts: i64,
}

impl PairedCounts {
    pub fn cell(label: u8, champion_positive: bool, challenger_positive: bool) -> usize {
        usize::from(label) * 4
            + usize::from(champion_positive) * 2
            + usize::from(challenger_positive)
    }

    pub fn total(&self) -> u64 {
        self.cells.iter().sum()
    }

    fn add(&mut self, cell: usize, ts: i64) {
        if self.total() == 0 || ts < self.first_ts {
            self.first_ts = ts;
        }
        self.last_ts = self.last_ts.max(ts);
        self.cells[cell] += 1;
    }
}

/// The key of a champion/challenger pair in [`State::paired`]: `champion-name/version vs
/// challenger-name/version`.
pub fn pair_key(champion: &str, challenger: &str) -> String {
    format!("{champion} vs {challenger}")
}

/// `name/version` of a series key `name/version/role`.
fn model_of(series: &str) -> &str {
    series.rsplit_once('/').map_or(series, |(model, _)| model)
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Orphan {
    pub ts: i64,
    pub true_label: u8,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackCounts {
    /// Feedback joined to its prediction.
    pub joined: u64,
    /// Of those, feedback read in a later run than its prediction.
    pub late: u64,
    /// A second label for a prediction already labelled; the first label stands.
    pub duplicate: u64,
    /// Feedback whose prediction never appeared within the horizon.
    pub unknown: u64,
    /// The same feedback record read again (a retried request or append); counted once.
    #[serde(default)]
    pub repeated: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    pub ts: i64,
    pub macro_f1: Option<f64>,
    pub negative_share: Option<f64>,
    pub predictions: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// How many runs have committed.
    pub runs: u64,
    /// Log blob → bytes already counted.
    pub offsets: BTreeMap<String, u64>,
    pub series: BTreeMap<String, Series>,
    /// Predictions waiting for their feedback (72 hours): by far the largest part of the
    /// checkpoint, so it is written as a compact table ([`pending_table`]).
    #[serde(rename = "pending_table", with = "pending_table", default)]
    pub pending: HashMap<Uuid, Vec<Pending>>,
    /// The same table as checkpoints before the compact form wrote it; read, merged into
    /// `pending` by [`State::upgrade`], never written.
    #[serde(rename = "pending", default, skip_serializing)]
    pub legacy_pending: HashMap<Uuid, Vec<Pending>>,
    pub orphans: HashMap<Uuid, Orphan>,
    pub feedback: FeedbackCounts,
    /// Lines that were not valid records (skipped, counted).
    pub invalid_lines: u64,
    /// Prediction records seen again (a retried append), in this run or an earlier one; skipped.
    pub duplicate_predictions: u64,
    /// Feedback record id → its time, for the horizon: a record read twice counts once. Written
    /// as a compact table too ([`seen_table`]).
    #[serde(rename = "feedback_seen_table", with = "seen_table", default)]
    pub feedback_seen: HashMap<Uuid, i64>,
    /// The same map as checkpoints before the compact form wrote it; merged by [`State::upgrade`].
    #[serde(rename = "feedback_seen", default, skip_serializing)]
    pub legacy_feedback_seen: HashMap<Uuid, i64>,
    pub history: Vec<HistoryPoint>,
    /// Champion/challenger pair ([`pair_key`]) → their paired counts since the challenger started.
    #[serde(default)]
    pub paired: BTreeMap<String, PairedCounts>,
}

/// A uuid in a checkpoint table: 22 characters of URL-safe base64 (32 hex digits are read too).
mod compact_id {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use uuid::Uuid;

    pub fn encode<'b>(id: &Uuid, buf: &'b mut [u8; 22]) -> &'b str {
        let written = URL_SAFE_NO_PAD
            .encode_slice(id.as_bytes(), buf)
            .expect("16 bytes are 22 base64 characters");
        std::str::from_utf8(&buf[..written]).expect("base64 is ASCII")
    }

    pub fn decode<E: serde::de::Error>(text: &str) -> Result<Uuid, E> {
        if text.len() == 32 {
            return Uuid::try_parse(text).map_err(E::custom);
        }
        let mut bytes = [0u8; 16];
        match URL_SAFE_NO_PAD.decode_slice(text, &mut bytes) {
            Ok(16) => Ok(Uuid::from_bytes(bytes)),
            _ => Err(E::custom(format!("{text:?} is not a compact id"))),
        }
    }
}

/// The feedback ids already counted, as `{"t0": …, "rows": [[id, seconds after t0], …]}`.
pub mod seen_table {
    use std::collections::HashMap;

    use serde::ser::{SerializeSeq, SerializeStruct};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use uuid::Uuid;

    struct Rows<'a>(&'a HashMap<Uuid, i64>, i64);

    impl Serialize for Rows<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
            for (id, ts) in self.0 {
                let mut buf = [0u8; 22];
                seq.serialize_element(&(super::compact_id::encode(id, &mut buf), ts - self.1))?;
            }
            seq.end()
        }
    }

    pub fn serialize<S: Serializer>(
        seen: &HashMap<Uuid, i64>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let t0 = seen.values().copied().min().unwrap_or(0);
        let mut table = serializer.serialize_struct("SeenTable", 2)?;
        table.serialize_field("t0", &t0)?;
        table.serialize_field("rows", &Rows(seen, t0))?;
        table.end()
    }

    #[derive(Deserialize)]
    struct Table<'a> {
        t0: i64,
        #[serde(borrow)]
        rows: Vec<(&'a str, i64)>,
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<HashMap<Uuid, i64>, D::Error> {
        let table = Table::deserialize(deserializer)?;
        table
            .rows
            .into_iter()
            .map(|(id, offset)| Ok((super::compact_id::decode(id)?, table.t0 + offset)))
            .collect()
    }
}

/// The join table as rows rather than a map of objects: the series names once, then one array
/// per entry, `[id (22 base64 characters), series index, seconds after t0, flags, run]`, flags being
/// `predicted_positive | has_label << 1 | label << 2 | paired << 3`. About half the bytes of the
/// map form (which repeats every key and the series name in each entry), and faster to parse.
pub mod pending_table {
    use std::collections::HashMap;

    use serde::ser::SerializeStruct;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use uuid::Uuid;

    use super::Pending;

    type Row<'a> = (&'a str, u32, i64, u8, u64);

    struct Rows<'a> {
        pending: &'a HashMap<Uuid, Vec<Pending>>,
        index: HashMap<&'a str, u32>,
        t0: i64,
    }

    impl Serialize for Rows<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            let count = self.pending.values().map(Vec::len).sum();
            let mut seq = serializer.serialize_seq(Some(count))?;
            for (id, entries) in self.pending {
                let mut buf = [0u8; 22];
                let id = super::compact_id::encode(id, &mut buf);
                for e in entries {
                    let flags = u8::from(e.predicted_positive)
                        | u8::from(e.label.is_some()) << 1
                        | u8::from(e.label == Some(1)) << 2
                        | u8::from(e.paired) << 3;
                    seq.serialize_element(&(
                        id,
                        self.index[&*e.series],
                        e.ts - self.t0,
                        flags,
                        e.run,
                    ))?;
                }
            }
            seq.end()
        }
    }

    pub fn serialize<S: Serializer>(
        pending: &HashMap<Uuid, Vec<Pending>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let names: Vec<&str> = pending
            .values()
            .flatten()
            .map(|e| &*e.series)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, i as u32))
            .collect();
        let t0 = pending.values().flatten().map(|e| e.ts).min().unwrap_or(0);
        let mut table = serializer.serialize_struct("PendingTable", 3)?;
        table.serialize_field("series", &names)?;
        table.serialize_field("t0", &t0)?;
        table.serialize_field("rows", &Rows { pending, index, t0 })?;
        table.end()
    }

    #[derive(Deserialize)]
    struct Table<'a> {
        series: Vec<String>,
        t0: i64,
        #[serde(borrow)]
        rows: Vec<Row<'a>>,
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<HashMap<Uuid, Vec<Pending>>, D::Error> {
        let table = Table::deserialize(deserializer)?;
        let mut pending: HashMap<Uuid, Vec<Pending>> = HashMap::with_capacity(table.rows.len());
        let names: Vec<std::sync::Arc<str>> =
            table.series.iter().map(|n| n.as_str().into()).collect();
        for (id, series, offset, flags, run) in table.rows {
            let id = super::compact_id::decode(id)?;
            let series = names.get(series as usize).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "pending row names series {series}, which is not in the table"
                ))
            })?;
            pending.entry(id).or_default().push(Pending {
                series: std::sync::Arc::clone(series),
                ts: table.t0 + offset,
                predicted_positive: flags & 1 != 0,
                label: (flags & 2 != 0).then_some((flags >> 2) & 1),
                run,
                paired: flags & 8 != 0,
            });
        }
        Ok(pending)
    }
}

/// How many points of history the report's chart keeps (a week at one run every 15 minutes).
pub const HISTORY_POINTS: usize = 672;

pub fn series_key(name: &str, version: &str, role: Role) -> String {
    let role = match role {
        Role::Champion => "champion",
        Role::Challenger => "challenger",
    };
    format!("{name}/{version}/{role}")
}

fn bucket_of(ts: i64) -> i64 {
    ts.div_euclid(BUCKET_SECONDS) * BUCKET_SECONDS
}

impl State {
    /// Folds what an older checkpoint format held into the current fields.
    pub fn upgrade(&mut self) {
        for (id, entries) in self.legacy_pending.drain() {
            self.pending.entry(id).or_default().extend(entries);
        }
        self.feedback_seen.extend(self.legacy_feedback_seen.drain());
    }

    /// The series a prediction counts in: its model's, and the overall one for the champion.
    fn keys_for(series: &str) -> impl Iterator<Item = &str> {
        let overall = series.ends_with("/champion").then_some(OVERALL);
        std::iter::once(series).chain(overall)
    }

    /// Applies `count` to every tally a prediction of `series` at `ts` counts in: since-start and
    /// its bucket, of its own series and (for the champion) of the overall one. The series must
    /// exist ([`State::ensure_series`]).
    fn count(&mut self, series: &str, ts: i64, now: i64, mut count: impl FnMut(&mut Tally)) {
        let bucket = bucket_of(ts);
        let keep_bucket = bucket > now - BUCKET_RETENTION_SECONDS;
        for key in Self::keys_for(series) {
            if let Some(s) = self.series.get_mut(key) {
                count(&mut s.since_start);
                if keep_bucket {
                    count(s.buckets.entry(bucket).or_default());
                }
            }
        }
    }

    fn ensure_series(&mut self, series: &str) {
        for key in Self::keys_for(series) {
            if !self.series.contains_key(key) {
                self.series.insert(key.to_owned(), Series::default());
            }
        }
    }

    /// Counts one run's new prediction records. A record seen before (same id and model: an
    /// append retried after a lost answer), in this run or in an earlier one within the feedback
    /// horizon, is skipped: the ids of that horizon are in the checkpoint already, as `pending`.
    pub fn add_predictions(&mut self, records: &[CountedPrediction], now: i64) {
        let run = self.runs + 1;
        let mut seen: HashSet<(Uuid, Role)> = HashSet::with_capacity(records.len());
        // One shared name per model and role: a run holds few of them and many records.
        let mut names: Vec<(&str, &str, Role, Arc<str>)> = Vec::new();
        for record in records {
            let (name, version) = (record.model.name.as_str(), record.model.version.as_str());
            let series = match names
                .iter()
                .find(|(n, v, r, _)| *n == name && *v == version && *r == record.role)
            {
                Some((_, _, _, key)) => Arc::clone(key),
                None => {
                    let key: Arc<str> = series_key(name, version, record.role).into();
                    self.ensure_series(&key);
                    names.push((name, version, record.role, Arc::clone(&key)));
                    key
                }
            };
            let earlier = self.pending.get(&record.id);
            let counted_before =
                earlier.is_some_and(|entries| entries.iter().any(|e| e.series == series));
            if !seen.insert((record.id, record.role)) || counted_before {
                self.duplicate_predictions += 1;
                continue;
            }
            let ts = record.ts.unix_timestamp();
            let positive = record.sentiment == crate::model::Sentiment::Positive;
            // A label is a property of the tweet: feedback joined to the champion's record before
            // the challenger's shadow record was read labels the challenger's too.
            let label = record
                .true_label
                .filter(|l| *l <= 1)
                .or_else(|| earlier.and_then(|entries| entries.iter().find_map(|e| e.label)));
            let paired_before = earlier.is_some();
            self.count(&series, ts, now, |tally| {
                tally.add_prediction(record.score, positive, record.latency_ms);
                if let Some(label) = label {
                    tally.confusion.record(label, positive);
                }
            });
            if ts > now - FEEDBACK_HORIZON_SECONDS {
                self.pending.entry(record.id).or_default().push(Pending {
                    series,
                    ts,
                    predicted_positive: positive,
                    label,
                    run,
                    paired: false,
                });
                // Only a second record of the same tweet can complete a pair.
                if paired_before {
                    self.pair(record.id);
                }
            }
        }
    }

    /// Counts the champion's and the challenger's answers on one tweet in [`State::paired`], once
    /// both records are read and the tweet has its label.
    fn pair(&mut self, id: Uuid) {
        let Some(entries) = self.pending.get_mut(&id) else {
            return;
        };
        let Some((champion, champion_positive, label)) = entries
            .iter()
            .filter(|e| e.series.ends_with("/champion"))
            .find_map(|e| {
                Some((
                    model_of(&e.series).to_owned(),
                    e.predicted_positive,
                    e.label?,
                ))
            })
        else {
            return;
        };
        let Some(challenger) = entries
            .iter_mut()
            .find(|e| e.series.ends_with("/challenger") && e.label.is_some() && !e.paired)
        else {
            return;
        };
        challenger.paired = true;
        let cell = PairedCounts::cell(label, champion_positive, challenger.predicted_positive);
        let key = pair_key(&champion, model_of(&challenger.series));
        let ts = challenger.ts;
        self.paired.entry(key).or_default().add(cell, ts);
    }

    /// Joins feedback (this run's, and earlier feedback still waiting for its prediction) to
    /// predictions.
    pub fn add_feedback(&mut self, records: &[FeedbackRecord], now: i64) {
        let run = self.runs + 1;
        let mut waiting: Vec<(Uuid, Orphan)> = self.orphans.drain().collect();
        let mut fresh = Vec::with_capacity(records.len());
        for record in records.iter().filter(|r| r.true_label <= 1) {
            match self.feedback_seen.entry(record.id()) {
                Entry::Occupied(_) => self.feedback.repeated += 1,
                Entry::Vacant(slot) => {
                    slot.insert(record.ts.unix_timestamp());
                    fresh.push(record);
                }
            }
        }
        waiting.extend(fresh.into_iter().map(|r| {
            (
                r.prediction_id,
                Orphan {
                    ts: r.ts.unix_timestamp(),
                    true_label: r.true_label,
                },
            )
        }));
        for (id, feedback) in waiting {
            let Some(entries) = self.pending.get_mut(&id) else {
                match self.orphans.entry(id) {
                    Entry::Occupied(_) => self.feedback.duplicate += 1,
                    Entry::Vacant(slot) => {
                        slot.insert(feedback);
                    }
                }
                continue;
            };
            if entries.iter().all(|e| e.label.is_some()) {
                self.feedback.duplicate += 1;
                continue;
            }
            let mut updates = Vec::new();
            for entry in entries.iter_mut().filter(|e| e.label.is_none()) {
                entry.label = Some(feedback.true_label);
                updates.push((
                    Arc::clone(&entry.series),
                    entry.ts,
                    entry.predicted_positive,
                    entry.run,
                ));
            }
            self.feedback.joined += 1;
            if updates.iter().any(|u| u.3 < run) {
                self.feedback.late += 1;
            }
            for (series, ts, positive, _) in updates {
                self.count(&series, ts, now, |tally| {
                    tally.confusion.record(feedback.true_label, positive)
                });
            }
            self.pair(id);
        }
    }

    /// Forgets what is older than the horizons; counts feedback that never found its prediction.
    pub fn expire(&mut self, now: i64) {
        let horizon = now - FEEDBACK_HORIZON_SECONDS;
        self.pending.retain(|_, entries| {
            entries.retain(|e| e.ts > horizon);
            !entries.is_empty()
        });
        self.feedback_seen.retain(|_, ts| *ts > horizon);
        let before = self.orphans.len();
        self.orphans.retain(|_, o| o.ts > horizon);
        self.feedback.unknown += (before - self.orphans.len()) as u64;
        for series in self.series.values_mut() {
            series
                .buckets
                .retain(|bucket, _| *bucket > now - BUCKET_RETENTION_SECONDS);
        }
    }

    /// The tally of buckets whose start is in `(now_bucket - span, now_bucket]`, shifted back by
    /// `offset` seconds (for baselines).
    pub fn window(&self, series: &str, now: i64, span: i64, offset: i64) -> Tally {
        let last = bucket_of(now) - offset;
        let first = last - span + BUCKET_SECONDS;
        let mut tally = Tally::default();
        if let Some(s) = self.series.get(series) {
            for (_, t) in s.buckets.range(first..=last) {
                tally.merge(t);
            }
        }
        tally
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelRef;
    use crate::model::Sentiment;
    use time::OffsetDateTime;

    fn prediction(id: u128, ts: i64, score: f32, label: Option<u8>) -> CountedPrediction {
        CountedPrediction {
            id: Uuid::from_u128(id),
            ts: OffsetDateTime::from_unix_timestamp(ts).unwrap(),
            model: ModelRef {
                name: "m".into(),
                version: "1".into(),
            },
            role: Role::Champion,
            score,
            sentiment: if score >= 0.5 {
                Sentiment::Positive
            } else {
                Sentiment::Negative
            },
            latency_ms: 2.0,
            true_label: label,
        }
    }

    fn feedback(id: u128, ts: i64, label: u8) -> FeedbackRecord {
        FeedbackRecord {
            v: 1,
            id: None,
            prediction_id: Uuid::from_u128(id),
            ts: OffsetDateTime::from_unix_timestamp(ts).unwrap(),
            true_label: label,
        }
    }

    const NOW: i64 = 1_790_000_000;

    #[test]
    fn joins_inline_early_late_duplicate_and_unknown_feedback() {
        let mut state = State::default();
        // Feedback for 2 arrives before its prediction has been read.
        state.add_feedback(&[feedback(2, NOW - 10, 0)], NOW);
        assert_eq!(state.orphans.len(), 1);
        state.add_predictions(
            &[
                prediction(1, NOW - 60, 0.9, Some(1)),
                prediction(2, NOW - 50, 0.8, None),
            ],
            NOW,
        );
        state.add_feedback(&[], NOW);
        state.runs += 1;
        // Run 2: late feedback for an older prediction, a duplicate, an unknown id.
        state.add_predictions(&[prediction(3, NOW - 40, 0.2, None)], NOW);
        state.runs += 1;
        state.add_feedback(
            &[
                feedback(3, NOW, 0),
                feedback(1, NOW, 0),
                feedback(99, NOW, 1),
            ],
            NOW,
        );
        let overall = &state.series[OVERALL].since_start;
        assert_eq!(overall.predictions, 3);
        // 1: positive, truly positive. 2: positive, truly negative. 3: negative, truly negative.
        assert_eq!(
            overall.confusion,
            Confusion {
                tp: 1,
                fp: 1,
                tn: 1,
                fn_: 0
            }
        );
        assert_eq!(state.feedback.joined, 2);
        assert_eq!(state.feedback.late, 1);
        assert_eq!(state.feedback.duplicate, 1);
        assert_eq!(state.orphans.len(), 1, "99 waits for its prediction");
        state.expire(NOW + FEEDBACK_HORIZON_SECONDS + 1);
        assert_eq!(state.feedback.unknown, 1);
        assert!(state.pending.is_empty());
    }

    #[test]
    fn windows_sum_whole_buckets_and_baselines_shift_back() {
        let mut state = State::default();
        state.add_predictions(
            &[
                prediction(1, NOW - 30, 0.1, None),
                prediction(2, NOW - 2 * 3600, 0.9, None),
                prediction(3, NOW - 20 * 3600, 0.1, None),
            ],
            NOW,
        );
        assert_eq!(state.window(OVERALL, NOW, 3600, 0).predictions, 1);
        assert_eq!(state.window(OVERALL, NOW, 24 * 3600, 0).predictions, 3);
        assert_eq!(state.window(OVERALL, NOW, 24 * 3600, 3600).predictions, 2);
        assert_eq!(
            state
                .window("m/1/champion", NOW, 3600, 0)
                .predicted_negative,
            1
        );
    }

    fn shadow(id: u128, ts: i64, score: f32, label: Option<u8>) -> CountedPrediction {
        CountedPrediction {
            role: Role::Challenger,
            model: ModelRef {
                name: "m".into(),
                version: "2".into(),
            },
            ..prediction(id, ts, score, label)
        }
    }

    #[test]
    fn champion_and_challenger_answers_pair_once_per_labelled_tweet() {
        let mut state = State::default();
        // 1: inline label, both right. 2: labelled by feedback before the shadow record is read;
        // only the challenger is right. 3: never labelled. 4: the shadow record read twice.
        state.add_predictions(
            &[
                prediction(1, NOW - 60, 0.9, Some(1)),
                shadow(1, NOW - 60, 0.8, Some(1)),
                prediction(2, NOW - 50, 0.9, None),
                prediction(3, NOW - 40, 0.9, None),
                prediction(4, NOW - 30, 0.2, Some(0)),
                shadow(4, NOW - 30, 0.7, Some(0)),
            ],
            NOW,
        );
        state.runs += 1;
        state.add_feedback(&[feedback(2, NOW - 20, 0)], NOW);
        state.add_predictions(
            &[
                shadow(2, NOW - 50, 0.1, None),
                shadow(4, NOW - 30, 0.7, Some(0)),
            ],
            NOW,
        );
        let counts = state.paired[&pair_key("m/1", "m/2")];
        assert_eq!(counts.total(), 3);
        assert_eq!(counts.cells[PairedCounts::cell(1, true, true)], 1);
        assert_eq!(counts.cells[PairedCounts::cell(0, true, false)], 1);
        assert_eq!(counts.cells[PairedCounts::cell(0, false, true)], 1);
        assert_eq!((counts.first_ts, counts.last_ts), (NOW - 60, NOW - 30));
        assert_eq!(
            state.series["m/2/challenger"].since_start.confusion.total(),
            3,
            "the shadow record of 2 inherited the feedback's label"
        );
    }

    fn json_has_tables(state: &State) -> bool {
        let json = serde_json::to_value(state).unwrap();
        json["pending_table"]["series"] == serde_json::json!(["m/1/champion", "m/2/challenger"])
            && json["pending_table"]["rows"][0][0].as_str().map(str::len) == Some(22)
            && json["feedback_seen_table"]["rows"].as_array().map(Vec::len) == Some(2)
    }

    #[test]
    fn the_join_table_round_trips_in_its_compact_form_and_old_checkpoints_still_load() {
        let mut state = State::default();
        state.add_predictions(
            &[
                prediction(1, NOW - 60, 0.9, Some(1)),
                shadow(1, NOW - 60, 0.2, None),
                prediction(2, NOW - 50, 0.1, Some(0)),
                prediction(3, NOW - 3600, 0.7, None),
            ],
            NOW,
        );
        state.add_feedback(&[feedback(2, NOW - 10, 0), feedback(9, NOW - 20, 1)], NOW);
        assert!(json_has_tables(&state));
        let json = serde_json::to_string(&state).unwrap();
        let mut back: State = serde_json::from_str(&json).unwrap();
        back.upgrade();
        assert_eq!(back, state);

        // A checkpoint written before the compact form: the same entries as a map of objects.
        let legacy = serde_json::json!({
            "runs": 3,
            "offsets": {},
            "series": {},
            "pending": {
                "00000000-0000-0000-0000-000000000007": [
                    {"s": "m/1/champion", "t": NOW - 5, "p": true, "l": 1, "r": 2}
                ]
            },
            "orphans": {},
            "feedback_seen": {"00000000-0000-0000-0000-000000000008": NOW - 4},
            "feedback": {"joined": 0, "late": 0, "duplicate": 0, "unknown": 0},
            "invalid_lines": 0,
            "duplicate_predictions": 0,
            "history": []
        });
        let mut old: State = serde_json::from_value(legacy).unwrap();
        old.upgrade();
        let entry = &old.pending[&Uuid::from_u128(7)][0];
        assert_eq!((entry.ts, entry.label, entry.run), (NOW - 5, Some(1), 2));
        assert_eq!(old.feedback_seen[&Uuid::from_u128(8)], NOW - 4);
        let rewritten = serde_json::to_string(&old).unwrap();
        assert!(
            !rewritten.contains("\"pending\":"),
            "the old form is never written back"
        );
    }

    #[test]
    fn a_retried_append_is_not_counted_twice() {
        let mut state = State::default();
        let p = prediction(1, NOW, 0.9, Some(1));
        state.add_predictions(&[p.clone(), p], NOW);
        assert_eq!(state.series[OVERALL].since_start.predictions, 1);
        assert_eq!(state.duplicate_predictions, 1);
    }
}
