//! Logging: `tracing` to stdout. Under the Functions host stdout goes to Application Insights, so
//! there it is one JSON object per line, carrying the span fields (the invocation id); at a
//! terminal it is readable text.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// The server: stdout is what the Functions host forwards to Application Insights.
    Stdout,
    /// One-shot commands: stdout is their answer, so their logs go to stderr.
    Stderr,
}

/// Installs the global subscriber. `RUST_LOG` overrides the default level (`info`).
pub fn init(format: LogFormat, sink: Sink) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || -> Box<dyn std::io::Write> {
            match sink {
                Sink::Stdout => Box::new(std::io::stdout()),
                Sink::Stderr => Box::new(std::io::stderr()),
            }
        });
    let format = match format {
        LogFormat::Auto if sink == Sink::Stderr => LogFormat::Pretty,
        LogFormat::Auto if std::io::IsTerminal::is_terminal(&std::io::stdout()) => {
            LogFormat::Pretty
        }
        LogFormat::Auto => LogFormat::Json,
        chosen => chosen,
    };
    let result = match format {
        LogFormat::Auto | LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    // A second initialisation (tests) keeps the first subscriber.
    let _ = result;
}
