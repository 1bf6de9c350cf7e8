//! The `hearth-server` binary: the command line, logging, the runtime and signals; the server
//! and the operator's commands are in the library.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use hearth_server::cli::{Cli, Command};
use hearth_server::config::Config;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            // The chain of causes, without a backtrace: this is for the person at the console.
            eprintln!("hearth-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    forget_empty_settings();
    tune_allocator();
    let cli = Cli::parse();
    let config = Config::load(cli.options)?;
    match cli.command {
        None | Some(Command::Serve) => {
            hearth_server::logging::init(config.log_format, "info");
            let runtime = hearth_server::runtime().context("starting runtime")?;
            runtime.block_on(async {
                let shutdown = CancellationToken::new();
                tokio::spawn(on_signal(shutdown.clone()));
                hearth_server::serve(config, shutdown).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Some(command) => {
            // The operator's commands print their results; the log only says what went wrong.
            hearth_server::logging::init(config.log_format, "warn");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting runtime")?;
            runtime.block_on(hearth_server::cli::run(command, config))
        }
    }
}

/// glibc's malloc, told to give large blocks back. By default it raises its mmap threshold to
/// the size of the largest block freed so far (up to 32 MiB), after which the password
/// hashers' 19 MiB blocks come from the heap and stay resident after they are freed; a fixed
/// threshold keeps them in mappings of their own that `free` returns. 4 MiB: above the HTTP
/// and image buffers that come and go often, below argon2's. See ARCHITECTURE.md, "Memory".
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    }
}

/// An empty `HEARTH_*` variable counts as unset: compose files and unit files pass variables
/// the operator left empty (`HEARTH_TURN_RELAY_ADDRESS: ${HEARTH_TURN_RELAY_ADDRESS:-}`), and
/// an empty address is not an address.
fn forget_empty_settings() {
    let empty: Vec<_> = std::env::vars_os()
        .filter(|(name, value)| value.is_empty() && name.to_str().is_some_and(|n| n.starts_with("HEARTH_")))
        .map(|(name, _)| name)
        .collect();
    for name in empty {
        // SAFETY: called first thing in main, before any other thread exists that could read
        // the environment concurrently.
        unsafe { std::env::remove_var(name) };
    }
}

/// SIGTERM or Ctrl-C starts a graceful shutdown.
async fn on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops gracefully");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown requested");
    shutdown.cancel();
}
