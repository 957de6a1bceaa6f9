//! The `imgforge` binary: parse the command line, resolve the configuration, run one command.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use clap::Parser;

use imgforge::cli::{Cli, Command};
use imgforge::config::Config;
use imgforge::error::Error;
use imgforge::{commands, interrupt, output, progress};

/// How long an interrupted run waits for blocking work to stop and clean up.
const INTERRUPTED_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(30);

/// Set once any thread panicked: the run's outcome is then an internal error, whatever
/// error the panic caused further up (a task's join error carries the panic's text).
static PANICKED: AtomicBool = AtomicBool::new(false);

/// With `--json`, the `command` field of the run's report: every failure, a panic included,
/// still prints one JSON document naming it.
static JSON_COMMAND: OnceLock<&'static str> = OnceLock::new();

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        if !PANICKED.swap(true, Ordering::SeqCst) {
            let location = info
                .location()
                .map(|location| (location.file(), location.line()));
            output::internal_error(location);
            if let Some(command) = JSON_COMMAND.get() {
                let report = output::ErrorReport::internal(location);
                output::failure(Some(command), &report, Default::default());
            }
        }
    }));
    // Unwinding drops the command's state, which removes its temp files and staging trees.
    std::panic::catch_unwind(run).unwrap_or_else(|_| ExitCode::from(imgforge::exit::INTERNAL))
}

fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return refused(error),
    };
    if cli.global.json {
        let _ = JSON_COMMAND.set(commands::name(&cli.command));
    }
    if let Command::Init = cli.command {
        return match commands::init::run(&cli.global) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(error.into()),
        };
    }
    let config = match Config::load(&cli.global) {
        Ok(config) => config,
        Err(error) => return fail(Error::from(error).into()),
    };
    init_tracing(config.output.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return fail(Error::Runtime(format!("cannot start the async runtime: {error}")).into());
        }
    };
    let reporter: Arc<dyn progress::Reporter> = Arc::from(progress::reporter_for(&config.output));
    let result = runtime.block_on(async {
        tokio::select! {
            result = commands::run(cli.command, &config, reporter) => result,
            // Dropping the command's future removes its temp files and staging trees; blocking
            // work sees the request and removes what it wrote (see `interrupt`).
            signal = interrupt::wait() => Err(Error::Interrupted { signal }.into()),
        }
    });
    if matches!(
        result,
        Err(commands::Failure {
            error: Error::Interrupted { .. },
            ..
        })
    ) {
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
        Err(failure) => fail(failure),
    }
}

/// Report a failed run (on stderr, and with `--json` as its one document on stdout) and
/// return its exit code.
fn fail(failure: commands::Failure) -> ExitCode {
    if PANICKED.load(Ordering::SeqCst) {
        // Already reported by the panic hook, without the assertion text the error holds.
        return ExitCode::from(imgforge::exit::INTERNAL);
    }
    let commands::Failure { error, partial } = failure;
    output::error(&error);
    if let Some(command) = JSON_COMMAND.get() {
        output::failure(Some(command), &output::ErrorReport::of(&error), partial);
    }
    error.exit()
}

/// A command line clap refused (or `--help`/`--version`, which it reports the same way):
/// clap's own message on stderr, and with `--json` a document on stdout as for any failure.
fn refused(error: clap::Error) -> ExitCode {
    let code = error.exit_code();
    if error.use_stderr() && wants_json() {
        let rendered = error.render().to_string();
        // The first paragraph is the message; usage and tips follow on stderr.
        let message = rendered
            .lines()
            .take_while(|line| !line.trim().is_empty())
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ")
            .trim_start_matches("error: ")
            .to_string();
        let report = output::ErrorReport {
            message,
            causes: Vec::new(),
            hint: Some("see `imgforge --help`".into()),
            exit_code: u8::try_from(code).unwrap_or(imgforge::exit::INTERNAL),
            kind: "config.usage",
        };
        output::failure(typed_command(), &report, Default::default());
    }
    let _ = error.print();
    ExitCode::from(u8::try_from(code).unwrap_or(imgforge::exit::INTERNAL))
}

/// Whether the raw command line asks for `--json` (before any `--`).
fn wants_json() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|arg| arg != "--")
        .any(|arg| arg == "--json")
}

/// The JSON `command` name of the subcommand a refused command line names, if any.
fn typed_command() -> Option<&'static str> {
    use clap::CommandFactory;
    let matches = Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(std::env::args_os())
        .ok()?;
    let command =
        <imgforge::cli::Command as clap::FromArgMatches>::from_arg_matches(&matches).ok()?;
    Some(commands::name(&command))
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
