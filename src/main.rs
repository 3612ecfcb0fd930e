use clap::Parser;
use tweet_sentiment::{commands, config::Cli};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    commands::run(Cli::parse()).await
}
