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
    /// Run a loader for `queue.mode = "pubsub"`: pull from `pubsub.subscription` and write
    /// Parquet to `[sink]`. Serves /health, /ready and /metrics on `loader.listen`.
    Loader {
        /// TOML config file; `EVENTKIT_<SECTION>__<KEY>` environment variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

/// glibc's allocator spends a measurable share of each request in `malloc`/`free` under many
/// small, short-lived allocations across threads; mimalloc's thread-local heaps do not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    hold_freed_memory_between_flushes();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let served = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(serve(cli)));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line naming the problem (and its key), not a backtrace: this is what an
            // operator sees when a setting is wrong.
            eprintln!("eventkit: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// mimalloc's `purge_delay` option: stable in `mimalloc.h`, not exported by the Rust bindings.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// mimalloc v3's own default for it, which also confirms the option number before it is set.
const MIMALLOC_PURGE_DELAY_MS: std::ffi::c_long = 1_000;
/// Every flush frees its column and encoder buffers and the next one allocates them again, less
/// than a second later under load. Handed back to the kernel after mimalloc's 1 s, they come back
/// as page faults (a few percent of CPU per event under sustained load); held for 10 s (jemalloc's
/// default decay) they are reused, and an idle collector still shrinks back soon after load ends.
const HOLD_FREED_MS: std::ffi::c_long = 10_000;

/// `MIMALLOC_PURGE_DELAY` in the environment, read by mimalloc itself, still wins.
fn hold_freed_memory_between_flushes() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: both calls only read or write mimalloc's option table. Options are not
    // synchronised, so this runs first in `main`, before any other thread exists.
    unsafe {
        if libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == MIMALLOC_PURGE_DELAY_MS {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, HOLD_FREED_MS);
        }
    }
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let config = Config::load(config.as_deref())?;
            let listener = bind("server.listen", config.server.listen).await?;
            eventkit::server::run(config, listener, shutdown_signal()).await?;
        }
        Command::Loader { config } => {
            let config = Config::load(config.as_deref())?;
            let listener = bind("loader.listen", config.loader.listen).await?;
            eventkit::loader::run(config, listener, shutdown_signal()).await?;
        }
    }
    Ok(())
}

async fn bind(key: &str, addr: std::net::SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("{key}: cannot listen on {addr}"))
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
