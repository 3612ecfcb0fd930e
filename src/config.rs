//! Command line and environment configuration.
//!
//! Every option is also an environment variable, so the same binary is configured by flags on a
//! workstation and by app settings under the Functions host.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Upload a model version, check it loads and scores, gate it, then make it the champion.
    Promote(PromoteArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CredentialKind {
    /// The app's managed identity (in Azure).
    ManagedIdentity,
    /// The Azure CLI or Azure Developer CLI login (a workstation, or a workflow after `azure/login`).
    DeveloperTools,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
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

    /// Local store only: folder holding every container but the models one.
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Local store only: folder serving as the models container.
    #[arg(long, env = "MODELS_DIR", default_value = "models")]
    pub models_dir: PathBuf,

    /// Upper bound on one storage operation, retries included, in seconds.
    #[arg(long, env = "STORAGE_TIMEOUT_SECONDS", default_value_t = 20)]
    pub storage_timeout_seconds: u64,
}

impl StoreArgs {
    pub fn storage_timeout(&self) -> Duration {
        Duration::from_secs(self.storage_timeout_seconds.max(1))
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

    /// How often to check `champion.json` for a new model version, in seconds.
    #[arg(long, env = "MODEL_POLL_SECONDS", default_value_t = 30)]
    pub model_poll_seconds: u64,

    /// Most inferences run at once; further requests wait. Defaults to the number of cores.
    #[arg(long, env = "INFERENCE_CONCURRENCY")]
    pub inference_concurrency: Option<usize>,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub logging: LogArgs,
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log line format on stdout.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Args)]
pub struct PredictArgs {
    /// Texts to score; one tweet per line is read from stdin when none is given.
    pub texts: Vec<String>,

    /// Score with this model version folder instead of the store's champion.
    #[arg(long, env = "VERSION_DIR")]
    pub version_dir: Option<PathBuf>,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub store: StoreArgs,
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
    pub version_dir: PathBuf,

    /// Labelled gate set (`<label>\t<text>` lines): the candidate must not score a lower
    /// macro-F1 than the current champion on it.
    #[arg(long, env = "GATE_SET")]
    pub gate_set: Option<PathBuf>,

    /// Promote even if the gate says the candidate is worse (rollback to an older version).
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub store: StoreArgs,
}
