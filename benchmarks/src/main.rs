use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use eventkit_bench::landing::Sink;
use eventkit_bench::ops::{self, Readiness};
use eventkit_bench::report::{self, RunInfo, UNAVAILABLE_FILE};
use eventkit_bench::suite::{self, ALL_SCENARIOS, SuiteOpts};

#[derive(Parser)]
#[command(
    name = "eventkit-bench",
    about = "Load generator and end-to-end benchmark suite for eventkit"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up and matched once: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run scenarios against a running collector and write <out>/<scenario>.{json,csv}.
    Suite {
        /// Queue mode the collector runs in; only labels the results.
        #[arg(long, default_value = "async")]
        mode: String,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        target: String,
        /// Where the collector writes (its EVENTKIT_SINK__URL): file:///abs/dir, gs://bucket/prefix or memory://.
        #[arg(long, env = "EVENTKIT_SINK__URL")]
        sink: String,
        /// Needed to read a gs:// sink back.
        #[arg(long, env = "STORAGE_EMULATOR_HOST")]
        storage_emulator_host: Option<String>,
        /// Collector process, for RSS sampling.
        #[arg(long)]
        collector_pid: Option<u32>,
        #[arg(long)]
        out: PathBuf,
        /// Short durations (whole suite well under two minutes), for CI.
        #[arg(long)]
        quick: bool,
        /// Comma-separated subset of: ceiling, baseline, payload-size, realistic, burst, error-rate.
        #[arg(long, value_delimiter = ',')]
        scenarios: Option<Vec<String>>,
        /// URL of a running ceiling server, or "off"; by default one is started.
        #[arg(long)]
        ceiling: Option<String>,
        /// Write key the collector maps to stream bench_realistic (EVENTKIT_SOURCES).
        #[arg(long, default_value = "bench-realistic")]
        write_key: String,
        /// Closed-loop virtual users (10 is the seed reference shape).
        #[arg(long, default_value_t = 10)]
        users: usize,
        /// Run id shared by several invocations of one run (see run.sh); default: a new one.
        #[arg(long)]
        run_id: Option<String>,
        /// Generator worker threads; the collector needs the other core(s).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// pubsub mode: the loader's probe address (http://host:port); events count as stored
        /// once the loader has written them.
        #[arg(long)]
        loader_url: Option<String>,
        /// pubsub mode: the loader process, for CPU time.
        #[arg(long)]
        loader_pid: Option<u32>,
        /// Emulator processes (with their children), for CPU time.
        #[arg(long, value_delimiter = ',')]
        emulator_pids: Vec<u32>,
        /// Write key the collector maps to stream bench_realistic_wrk (wrk comparison).
        #[arg(long, default_value = "bench-wrk")]
        wrk_write_key: String,
        /// The collector's queue.capacity, reported beside burst's queue depth.
        #[arg(long)]
        queue_bound_events: Option<u64>,
        /// The collector's queue.capacity_bytes in MiB, reported beside burst's peak RSS.
        #[arg(long)]
        queue_bound_mib: Option<f64>,
    },
    /// Serve the ceiling: a bare handler answering 202. Prints "listening on ADDR".
    CeilingServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// Write README.md and report.html from <results>/<mode>/*.json.
    Report {
        #[arg(long)]
        results: PathBuf,
        #[arg(long)]
        quick: bool,
    },
    /// Print a free loopback port.
    FreePort,
    /// Wait until URL answers 2xx. Exit 0 when ready, 3 if --pid exits first, 1 on timeout.
    WaitReady {
        #[arg(long)]
        url: String,
        #[arg(long)]
        pid: Option<u32>,
        #[arg(long, default_value_t = 30)]
        timeout_secs: u64,
    },
    /// Record that a mode could not run, so reports show it instead of stale figures.
    Unavailable {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        reason: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Suite {
            mode,
            target,
            sink,
            storage_emulator_host,
            collector_pid,
            out,
            quick,
            scenarios,
            ceiling,
            write_key,
            users,
            run_id,
            threads,
            loader_url,
            loader_pid,
            emulator_pids,
            wrk_write_key,
            queue_bound_events,
            queue_bound_mib,
        } => {
            let sink = Sink::parse(&sink, storage_emulator_host.as_deref())?;
            let opts = SuiteOpts {
                mode,
                collector_url: target,
                sink,
                collector_pid,
                out_dir: out,
                quick,
                scenarios: scenarios
                    .unwrap_or_else(|| ALL_SCENARIOS.iter().map(|s| (*s).to_owned()).collect()),
                ceiling,
                write_key,
                users: users.max(1),
                run_id,
                loader_url,
                loader_pid,
                emulator_pids,
                wrk_write_key,
                queue_bound: (queue_bound_events, queue_bound_mib),
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads.max(1))
                .enable_all()
                .build()
                .context("starting the runtime")?;
            let results = rt.block_on(suite::run(opts))?;
            let failed: Vec<String> = results
                .iter()
                .filter(|r| !r.ok)
                .map(|r| r.scenario.clone())
                .collect();
            if !failed.is_empty() {
                // The failed checks are already in the output and the JSON; a backtrace of
                // this line would add nothing.
                eprintln!("checks failed in: {}", failed.join(", "));
                std::process::exit(1);
            }
            Ok(())
        }
        Command::CeilingServer { listen } => {
            let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .with_context(|| format!("binding {listen}"))?;
                println!("listening on {}", listener.local_addr()?);
                let shutdown = async {
                    let _ = tokio::signal::ctrl_c().await;
                };
                eventkit_bench::ceiling::serve(listener, shutdown).await?;
                anyhow::Ok(())
            })
        }
        Command::Report { results, quick } => {
            let (md, html) = report::write_summary(&results, &RunInfo::detect(quick))?;
            eprintln!("wrote {} and {}", md.display(), html.display());
            Ok(())
        }
        Command::FreePort => {
            println!("{}", ops::free_port()?);
            Ok(())
        }
        Command::WaitReady {
            url,
            pid,
            timeout_secs,
        } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            match rt.block_on(ops::wait_ready(
                &url,
                pid,
                Duration::from_secs(timeout_secs),
            )) {
                Readiness::Ready => Ok(()),
                Readiness::Exited => std::process::exit(3),
                Readiness::TimedOut => bail!("{url} not ready after {timeout_secs} s"),
            }
        }
        Command::Unavailable { out, reason } => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            // Stale figures from an earlier run must not sit next to the notice.
            for s in ALL_SCENARIOS {
                for ext in ["json", "csv"] {
                    let _ = std::fs::remove_file(out.join(format!("{s}.{ext}")));
                }
            }
            let path = out.join(UNAVAILABLE_FILE);
            std::fs::write(&path, format!("{reason}\n"))
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(())
        }
    }
}
