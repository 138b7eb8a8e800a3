use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use eventkit::config::Config;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "eventkit",
    version,
    about = "Customer-data event collector: Segment-compatible ingest to Parquet"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector. With no config file it runs the embedded default: listens on
    /// 127.0.0.1:8080 and writes Parquet under ./data.
    Serve {
        /// TOML config file; `EVENTKIT_<SECTION>__<KEY>` environment variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

/// glibc's allocator spends a measurable share of each request in `malloc`/`free` under many
/// small, short-lived allocations across threads; mimalloc's thread-local heaps do not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match serve(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line naming the problem (and its key), not a backtrace: this is what an
            // operator sees when a setting is wrong.
            eprintln!("eventkit: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    let Cli {
        command: Command::Serve { config },
    } = cli;
    let config = Config::load(config.as_deref())?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("server.listen: cannot listen on {}", config.server.listen))?;
    eventkit::server::run(config, listener, shutdown_signal()).await?;
    Ok(())
}

/// SIGTERM (what orchestrators send) or Ctrl-C both start a graceful stop.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested: finishing requests, then flushing");
}
