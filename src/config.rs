//! Command line and environment configuration.
//!
//! Every option is also an environment variable, so the same binary is configured by flags on a
//! workstation and by app settings under the Functions host.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::log::TextMode;
use crate::store;

#[derive(Debug, Parser)]
#[command(
    name = "tweet-sentiment",
    version,
    about = "Scores tweets for sentiment: an Azure Functions custom handler and its command line",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Options of `serve`, the default command.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP handler (the default): the Functions host's custom handler, or a local API.
    Serve(ServeArgs),
    /// Score texts locally with the champion model (or a version folder).
    Predict(PredictArgs),
    /// Score a labelled file and print accuracy, precision, recall, F1 and latency.
    Evaluate(EvaluateArgs),
    /// Upload a model version, check it loads and scores, gate it, then make it the champion (or
    /// the challenger); or promote the challenger on the report's verdict.
    Promote(PromoteArgs),
    /// Aggregate the prediction and feedback log into a metrics report, once.
    Report(ReportArgs),
    /// Export the labelled predictions of a time range as a training dataset.
    ExportLabels(ExportLabelsArgs),
}

/// A point in time on the command line: RFC 3339 (`2026-11-29T10:00:00Z`) or a UTC date
/// (`2026-11-29`, its midnight).
pub fn parse_time(value: &str) -> Result<time::OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(ts) = time::OffsetDateTime::parse(value, &Rfc3339) {
        return Ok(ts.to_offset(time::UtcOffset::UTC));
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(value, &date_format)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| {
            format!("{value:?} is neither RFC 3339 (2026-11-29T10:00:00Z) nor a date (2026-11-29)")
        })
}

#[derive(Debug, Clone, Args)]
pub struct ExportLabelsArgs {
    /// Start of the range (included): RFC 3339 or a UTC date. Default: `--days` before `--to`.
    #[arg(long, value_parser = parse_time)]
    pub from: Option<time::OffsetDateTime>,

    /// End of the range (excluded): RFC 3339 or a UTC date. Default: now, to the second.
    #[arg(long, value_parser = parse_time)]
    pub to: Option<time::OffsetDateTime>,

    /// Length of the range when `--from` is not given, in days.
    #[arg(long, default_value_t = 7)]
    pub days: u32,

    /// Also write the dataset and its manifest into this local folder (for training).
    #[arg(long)]
    pub out: Option<PathBuf>,

    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CredentialKind {
    /// The app's managed identity (in Azure).
    ManagedIdentity,
    /// The Azure CLI or Azure Developer CLI login (a workstation, or a workflow after `azure/login`).
    DeveloperTools,
}

impl From<CredentialKind> for store::Credential {
    fn from(kind: CredentialKind) -> Self {
        match kind {
            CredentialKind::ManagedIdentity => store::Credential::ManagedIdentity,
            CredentialKind::DeveloperTools => store::Credential::DeveloperTools,
        }
    }
}

/// How much tweet text the prediction log keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogText {
    /// The text as sent.
    Full,
    /// `sha256:<hex>` of the text: duplicates can be counted, the text cannot be read.
    Sha256,
    /// Nothing.
    None,
}

impl From<LogText> for TextMode {
    fn from(mode: LogText) -> Self {
        match mode {
            LogText::Full => TextMode::Full,
            LogText::Sha256 => TextMode::Sha256,
            LogText::None => TextMode::None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `pretty` when stdout is a terminal (a person reading), `json` otherwise (the host, a pipe).
    Auto,
    /// One JSON object per line, which the Functions host forwards to Application Insights.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Where blobs live. First match wins: a connection string, an account URL, else local folders.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Azure Storage connection string: `UseDevelopmentStorage=true` for Azurite, or an
    /// `AccountName=…;AccountKey=…` string (a short-lived account SAS is signed from the key).
    #[arg(long, env = "STORAGE_CONNECTION_STRING", hide_env_values = true)]
    pub storage_connection_string: Option<String>,

    /// Blob service URL (`https://<account>.blob.core.windows.net`), used with an Entra ID
    /// credential when no connection string is set.
    #[arg(long, env = "STORAGE_ACCOUNT_URL")]
    pub storage_account_url: Option<String>,

    /// Which Entra ID credential to use with `--storage-account-url`.
    #[arg(
        long,
        env = "AZURE_CREDENTIAL_KIND",
        value_enum,
        default_value = "managed-identity"
    )]
    pub azure_credential_kind: CredentialKind,

    /// Container holding model versions and the `champion.json` pointer.
    #[arg(long, env = "MODELS_CONTAINER", default_value = "models")]
    pub models_container: String,

    /// Container holding the prediction and feedback logs.
    #[arg(long, env = "LOGS_CONTAINER", default_value = "logs")]
    pub logs_container: String,

    /// Container holding the metrics reports.
    #[arg(long, env = "REPORTS_CONTAINER", default_value = "reports")]
    pub reports_container: String,

    /// Container holding the datasets exported from the log for training.
    #[arg(long, env = "DATASETS_CONTAINER", default_value = "datasets")]
    pub datasets_container: String,

    /// Local store only: folder holding every container but the models one.
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Local store only: folder serving as the models container.
    #[arg(long, env = "MODELS_DIR", default_value = "models")]
    pub models_dir: PathBuf,

    /// Upper bound on one storage operation, retries included, in seconds.
    #[arg(long, env = "STORAGE_TIMEOUT_SECONDS", default_value_t = 20)]
    pub storage_timeout_seconds: u64,

    /// Most blocks (appends) one append blob takes. Azure's limit is 50,000 and the local store
    /// enforces the same; the log rolls over to a new segment before it. Lower it to try the
    /// rollover.
    #[arg(long, env = "APPEND_BLOCK_LIMIT", default_value_t = 50_000)]
    pub append_block_limit: u32,
}

impl StoreArgs {
    pub fn store_config(&self) -> store::StoreConfig {
        store::StoreConfig {
            connection_string: self.storage_connection_string.clone(),
            account_url: self.storage_account_url.clone(),
            credential: self.azure_credential_kind.into(),
            data_dir: self.data_dir.clone(),
            models_dir: self.models_dir.clone(),
            models_container: self.models_container.clone(),
            timeout: Duration::from_secs(self.storage_timeout_seconds.max(1)),
            append_block_limit: self.append_block_limit.max(1),
        }
    }

    /// The store these options point at.
    pub fn open(&self) -> store::StoreResult<std::sync::Arc<dyn store::BlobStore>> {
        store::open(&self.store_config())
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Port to listen on. The Functions host sets FUNCTIONS_CUSTOMHANDLER_PORT.
    #[arg(long, env = "FUNCTIONS_CUSTOMHANDLER_PORT", default_value_t = 7071)]
    pub port: u16,

    /// Address to bind. The host talks to the handler over loopback only.
    #[arg(long, env = "BIND_ADDRESS", default_value = "127.0.0.1")]
    pub bind_address: std::net::IpAddr,

    /// Most connections open at once; a new one past this is closed at once. Raised toward the
    /// process's file limit, which `serve` lifts to its hard maximum.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// A connection must send a whole request head within this many seconds.
    #[arg(long, env = "HEADER_TIMEOUT_SECONDS", default_value_t = 10)]
    pub header_timeout_seconds: u64,

    /// A request body must arrive within this many seconds (408 otherwise).
    #[arg(long, env = "BODY_TIMEOUT_SECONDS", default_value_t = 10)]
    pub body_timeout_seconds: u64,

    /// On SIGTERM, requests in flight get this many seconds to finish before their connections
    /// are dropped and the prediction log is flushed. Keep it, plus one storage timeout, below the
    /// host's grace period.
    #[arg(long, env = "SHUTDOWN_SECONDS", default_value_t = 5)]
    pub shutdown_seconds: u64,

    /// How often to check `champion.json` for a new model version, in seconds.
    #[arg(long, env = "MODEL_POLL_SECONDS", default_value_t = 30)]
    pub model_poll_seconds: u64,

    /// Threads scoring batches at once, one core each. Defaults to the number of cores.
    #[arg(long, env = "INFERENCE_CONCURRENCY")]
    pub inference_concurrency: Option<usize>,

    /// Most texts in one model call: concurrent requests' texts are scored together up to this.
    #[arg(long, env = "BATCH_MAX_TEXTS", default_value_t = 4)]
    pub batch_max_texts: usize,

    /// Most texts one request puts in each round of a batch, so that a long batch request
    /// interleaves with single tweets instead of going first as a whole.
    #[arg(long, env = "BATCH_CHUNK_TEXTS", default_value_t = 2)]
    pub batch_chunk_texts: usize,

    /// Microseconds a scoring thread that found fewer than BATCH_MAX_TEXTS texts waits for more.
    #[arg(long, env = "BATCH_WAIT_MICROSECONDS", default_value_t = 0)]
    pub batch_wait_microseconds: u64,

    /// Most texts waiting to be scored; past it a request gets 503 `overloaded` with Retry-After.
    #[arg(long, env = "QUEUE_MAX_TEXTS", default_value_t = 2048)]
    pub queue_max_texts: usize,

    /// How much tweet text the prediction log keeps.
    #[arg(long, env = "LOG_TEXT", value_enum, default_value = "full")]
    pub log_text: LogText,

    /// This instance's name in log blob names; each instance writes its own blobs. Defaults to
    /// a fresh id per process.
    #[arg(long, env = "INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// Append buffered prediction records once this many are waiting…
    #[arg(long, env = "LOG_BATCH_RECORDS", default_value_t = 256)]
    pub log_batch_records: usize,

    /// …or once the oldest has waited this long, in milliseconds.
    #[arg(long, env = "LOG_BATCH_MILLISECONDS", default_value_t = 1000)]
    pub log_batch_milliseconds: u64,

    /// Flushes are at least this many milliseconds apart, whatever the request rate, so that a
    /// blob gets at most 3,600,000 / this many blocks an hour (36,000 at 100).
    #[arg(long, env = "LOG_MIN_FLUSH_MILLISECONDS", default_value_t = 100)]
    pub log_min_flush_milliseconds: u64,

    /// Prediction records kept in memory while storage is unreachable; beyond that new records
    /// are dropped and counted in `/api/health`.
    #[arg(long, env = "LOG_MAX_PENDING", default_value_t = 100_000)]
    pub log_max_pending: usize,

    /// NCRONTAB schedule of the metrics report (the timer function's schedule).
    #[arg(long, env = "METRICS_SCHEDULE", default_value = "0 */15 * * * *")]
    pub metrics_schedule: String,

    /// Run the report on `METRICS_SCHEDULE` inside this process: `auto` does so unless the
    /// Functions host runs us (it has its own timer).
    #[arg(long, env = "REPORT_TIMER", value_enum, default_value = "auto")]
    pub report_timer: ReportTimer,

    #[command(flatten)]
    pub report: ReportRuleArgs,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub logging: LogArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PromoteTarget {
    Champion,
    Challenger,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportTimer {
    Auto,
    Always,
    Never,
}

/// The metrics report's rules: when to raise `bad_buzz`, and when a challenger is ready.
#[derive(Debug, Clone, Args)]
pub struct ReportRuleArgs {
    /// A window needs this many predictions before it can raise `bad_buzz`.
    #[arg(long, env = "BAD_BUZZ_MIN_PREDICTIONS", default_value_t = 20)]
    pub bad_buzz_min_predictions: u64,

    /// `bad_buzz` when the negative share is this much above its 24-hour baseline…
    #[arg(long, env = "BAD_BUZZ_DELTA", default_value_t = 0.15)]
    pub bad_buzz_delta: f64,

    /// …or at least this share, whatever the baseline.
    #[arg(long, env = "BAD_BUZZ_SHARE", default_value_t = 0.75)]
    pub bad_buzz_share: f64,

    /// Labelled tweets that champion and challenger must both have scored before the verdict is
    /// anything but `not_enough_labels`.
    #[arg(long, env = "VERDICT_MIN_LABELS", default_value_t = 200)]
    pub verdict_min_labels: u64,

    /// `promote` needs McNemar's p-value on the disagreements below this…
    #[arg(long, env = "VERDICT_ALPHA", default_value_t = 0.05)]
    pub verdict_alpha: f64,

    /// …and the lower end of the macro-F1 difference's bootstrap 95 % interval above this.
    #[arg(
        long,
        env = "VERDICT_MIN_GAIN",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub verdict_min_gain: f64,
}

impl ReportRuleArgs {
    pub fn report_config(&self, store: &StoreArgs) -> crate::metrics::ReportConfig {
        crate::metrics::ReportConfig {
            logs_container: store.logs_container.clone(),
            reports_container: store.reports_container.clone(),
            models_container: store.models_container.clone(),
            bad_buzz_min_predictions: self.bad_buzz_min_predictions,
            bad_buzz_delta: self.bad_buzz_delta,
            bad_buzz_share: self.bad_buzz_share,
            verdict: crate::metrics::VerdictConfig {
                min_labels: self.verdict_min_labels,
                alpha: self.verdict_alpha,
                min_gain: self.verdict_min_gain,
                ..Default::default()
            },
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Print the whole report as JSON instead of the summary.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub report: ReportRuleArgs,

    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log line format on stdout.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "auto")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Args)]
pub struct PredictArgs {
    /// Texts to score; one tweet per line is read from stdin when none is given.
    pub texts: Vec<String>,

    /// Score with this model version folder instead of the store's champion.
    #[arg(long, env = "VERSION_DIR", conflicts_with = "url")]
    pub version_dir: Option<PathBuf>,

    /// Score with a running app instead of locally: its API base URL, such as
    /// `https://<app>.azurewebsites.net/api` or `http://127.0.0.1:7071/api`.
    #[arg(long, env = "TWEET_SENTIMENT_URL")]
    pub url: Option<url::Url>,

    /// Function key for `--url`, sent as the `x-functions-key` header; never printed.
    #[arg(long, env = "TWEET_SENTIMENT_KEY", hide_env_values = true)]
    pub key: Option<FunctionKey>,

    /// True label of the text (1 positive, 0 negative), sent with it to `--url` so that it counts
    /// in the metrics. A single text only.
    #[arg(long, requires = "url", value_parser = clap::value_parser!(u8).range(0..=1))]
    pub label: Option<u8>,

    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub store: StoreArgs,
}

/// An Azure Functions key. Its `Debug` form is redacted, so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct FunctionKey(String);

impl FunctionKey {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for FunctionKey {
    fn from(key: String) -> Self {
        Self(key)
    }
}

impl std::fmt::Debug for FunctionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FunctionKey(REDACTED)")
    }
}

#[derive(Debug, Clone, Args)]
pub struct EvaluateArgs {
    /// Labelled file: one `<label>\t<text>` a line, label 1 positive, 0 negative.
    #[arg(long)]
    pub input: PathBuf,

    /// Evaluate this model version folder instead of the store's champion.
    #[arg(long, env = "VERSION_DIR")]
    pub version_dir: Option<PathBuf>,

    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Clone, Args)]
pub struct PromoteArgs {
    /// Local model version folder (manifest.json, tokenizer.json, model.onnx).
    #[arg(required_unless_present = "challenger")]
    pub version_dir: Option<PathBuf>,

    /// Which pointer the version goes to: `champion` serves it, `challenger` scores it in shadow
    /// beside the champion so that the report can compare them on the same tweets.
    #[arg(long = "as", value_enum, default_value = "champion")]
    pub target: PromoteTarget,

    /// Promote the current challenger to champion, when the latest report's verdict says
    /// `promote` (or with `--force`), and retire the challenger pointer.
    #[arg(long, conflicts_with_all = ["version_dir", "target", "gate_set"])]
    pub challenger: bool,

    /// Labelled gate set (`<label>\t<text>` lines): the candidate must not score a lower
    /// macro-F1 than the current champion on it.
    #[arg(long, env = "GATE_SET")]
    pub gate_set: Option<PathBuf>,

    /// Promote even if the gate or the verdict says no (a rollback to an older version).
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub store: StoreArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every option the binary reads from the environment, with its default.
    fn env_options(command: &clap::Command, out: &mut Vec<(String, Option<String>)>) {
        for arg in command.get_arguments() {
            if let Some(env) = arg.get_env() {
                let default = arg
                    .get_default_values()
                    .first()
                    .map(|v| v.to_string_lossy().into_owned());
                out.push((env.to_string_lossy().into_owned(), default));
            }
        }
        for sub in command.get_subcommands() {
            env_options(sub, out);
        }
    }

    #[test]
    fn the_readme_documents_every_option_with_its_default() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let mut options = Vec::new();
        env_options(&Cli::command(), &mut options);
        options.sort();
        options.dedup();
        assert!(options.len() > 25, "only {} options found", options.len());
        let mut missing = Vec::new();
        for (env, default) in &options {
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{env}`")));
            match (row, default) {
                (None, _) => missing.push(format!("{env}: no row in the configuration table")),
                (Some(row), Some(default)) => {
                    let cell = row.split('|').nth(2).unwrap_or("").replace('`', "");
                    if cell.trim() != default {
                        missing.push(format!(
                            "{env}: README says {:?}, the code {default:?}",
                            cell.trim()
                        ));
                    }
                }
                (Some(_), None) => {}
            }
        }
        assert!(
            missing.is_empty(),
            "README configuration table:\n{}",
            missing.join("\n")
        );
    }
}
