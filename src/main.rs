//! The `imgforge` binary: parse the command line, resolve the configuration, run one command.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;

use imgforge::cli::Cli;
use imgforge::config::Config;
use imgforge::error::Error;
use imgforge::{commands, interrupt, output, progress};

/// How long an interrupted run waits for blocking work to stop and clean up.
const INTERRUPTED_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(30);

/// Set once any thread panicked: the run's outcome is then an internal error, whatever
/// error the panic caused further up (a task's join error carries the panic's text).
static PANICKED: AtomicBool = AtomicBool::new(false);

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        if !PANICKED.swap(true, Ordering::SeqCst) {
            output::internal_error(
                info.location()
                    .map(|location| (location.file(), location.line())),
            );
        }
    }));
    // Unwinding drops the command's state, which removes its temp files and staging trees.
    std::panic::catch_unwind(run).unwrap_or_else(|_| ExitCode::from(imgforge::exit::INTERNAL))
}

fn run() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.global) {
        Ok(config) => config,
        Err(error) => return fail(error.into()),
    };
    init_tracing(config.output.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return fail(Error::Runtime(format!(
                "cannot start the async runtime: {error}"
            )));
        }
    };
    let reporter: Arc<dyn progress::Reporter> = Arc::from(progress::reporter_for(&config.output));
    let result = runtime.block_on(async {
        tokio::select! {
            result = commands::run(cli.command, &config, reporter) => result,
            // Dropping the command's future removes its temp files and staging trees; blocking
            // work sees the request and removes what it wrote (see `interrupt`).
            signal = interrupt::wait() => Err(Error::Interrupted { signal }),
        }
    });
    if matches!(result, Err(Error::Interrupted { .. })) {
        // Blocking work stops within moments of the request; the bound only matters if one
        // is stuck in a system call, and then exiting beats hanging.
        runtime.shutdown_timeout(INTERRUPTED_SHUTDOWN);
    }
    // Every temp file and staging tree of this run is gone (or was handed over): its lock
    // files have nothing left to vouch for.
    imgforge::leftovers::release();
    match result {
        Ok(commands::Completion::Done) => ExitCode::SUCCESS,
        Ok(commands::Completion::NothingToDo) => ExitCode::from(imgforge::exit::NOTHING_TO_DO),
        Err(error) => fail(error),
    }
}

fn fail(error: Error) -> ExitCode {
    if PANICKED.load(Ordering::SeqCst) {
        // Already reported by the panic hook, without the assertion text the error holds.
        return ExitCode::from(imgforge::exit::INTERNAL);
    }
    output::error(&error);
    error.exit()
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::new(format!("imgforge={level}"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Events pass the redaction on their way out, like every other line on stderr.
        .with_writer(|| imgforge::redact::RedactingWriter::new(std::io::stderr()))
        .try_init();
}
