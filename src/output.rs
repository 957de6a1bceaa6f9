//! Everything imgforge prints on stdout, and the final error report on stderr.
//!
//! Results go to stdout — a JSON document with `--json`, plain text otherwise — so they
//! can be piped; progress and diagnostics go to stderr through [`crate::progress`].

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::OutputOptions;
use crate::error::Error;
use crate::redact::redact_text;

/// Print a command's result: `json` with `--json`, else `human` unless `--quiet`.
pub(crate) fn result(options: &OutputOptions, human: &str, json: &serde_json::Value) {
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (`imgforge … | head`) is not worth a second error.
    // Credentials in a URL never reach stdout, whatever put the URL into the result.
    if options.json {
        let text = serde_json::to_string_pretty(json).unwrap_or_default();
        let _ = writeln!(stdout, "{}", redact_text(&text));
    } else if !options.quiet && !human.is_empty() {
        let _ = write!(stdout, "{}", redact_text(human));
        if !human.ends_with('\n') {
            let _ = writeln!(stdout);
        }
    }
}

/// Print a document a command produces (a manifest): `json` with `--json`, else `text`
/// even with `--quiet`, since the document is what was asked for.
pub(crate) fn document(options: &OutputOptions, text: &str, json: &serde_json::Value) {
    if options.json {
        result(options, "", json);
        return;
    }
    let mut stdout = std::io::stdout().lock();
    let _ = write!(stdout, "{}", redact_text(text));
}

/// Print `error` with its causes and hint on stderr, once (credentials in URLs masked).
pub fn error(error: &Error) {
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "{}", redact_text(&error_text(error)));
}

/// `error` with its causes and hint, as [`error`] prints it.
pub(crate) fn error_text(error: &Error) -> String {
    use std::fmt::Write as _;
    let report = ErrorReport::of(error);
    let mut stderr = String::new();
    let _ = writeln!(stderr, "error: {}", report.message);
    for cause in &report.causes {
        let _ = writeln!(stderr, "  caused by: {cause}");
    }
    if let Some(hint) = &report.hint {
        let _ = writeln!(stderr, "  hint: {hint}");
    }
    stderr
}

/// A failure as the `error` object of a `--json` report: what the stderr report says, in
/// fields, with the exit code and a stable [`Error::kind`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct ErrorReport {
    /// The error's own message (the `error:` line).
    pub message: String,
    /// Each cause's message, outermost first (the `caused by:` lines).
    pub causes: Vec<String>,
    /// What the user can do about it (the `hint:` line), when there is something to say.
    pub hint: Option<String>,
    /// The code the process exits with.
    pub exit_code: u8,
    /// The error's class, e.g. `network.not_found` (see [`Error::kind`]).
    pub kind: &'static str,
}

impl ErrorReport {
    /// The report of `error`.
    pub fn of(error: &Error) -> ErrorReport {
        let message = error.to_string();
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            let text = cause.to_string();
            // Transparent variants share their inner error's message; skip it so nothing
            // repeats.
            if text != message {
                causes.push(text);
            }
            source = cause.source();
        }
        ErrorReport {
            message,
            causes,
            hint: error.hint(),
            exit_code: error.exit_code(),
            kind: error.kind(),
        }
    }

    /// The report of a panic at `location`: imgforge's bug, described without the panic's
    /// own text (see [`internal_error`]).
    pub fn internal(location: Option<(&str, u32)>) -> ErrorReport {
        ErrorReport {
            message: internal_message(location),
            causes: Vec::new(),
            hint: None,
            exit_code: crate::exit::INTERNAL,
            kind: "internal",
        }
    }
}

/// Set once a run printed its failure as JSON: a run prints at most one document, even when
/// a panic and the error it caused both end it.
static FAILURE_PRINTED: AtomicBool = AtomicBool::new(false);

/// With `--json`, the one document of a failed run on stdout: `command` (`None` when the
/// command line named none), `error` and the `partial` results known before the failure.
/// Printed once per process; later calls do nothing.
pub fn failure(
    command: Option<&str>,
    error: &ErrorReport,
    partial: serde_json::Map<String, serde_json::Value>,
) {
    if FAILURE_PRINTED.swap(true, Ordering::SeqCst) {
        return;
    }
    let mut document = partial;
    document.insert("command".into(), serde_json::json!(command));
    document.insert("error".into(), serde_json::json!(error));
    let text = serde_json::to_string_pretty(&document).unwrap_or_default();
    let _ = writeln!(std::io::stdout().lock(), "{}", redact_text(&text));
}

/// Say that imgforge hit a bug (a panic) without the panic's own text: an assertion message
/// speaks of imgforge's internals, never of anything the user can act on.
pub fn internal_error(location: Option<(&str, u32)>) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "error: {}",
        internal_message(location)
    );
}

fn internal_message(location: Option<(&str, u32)>) -> String {
    let place = location
        .map(|(file, line)| format!(" (at {file}:{line})"))
        .unwrap_or_default();
    format!(
        "imgforge stopped on an internal error{place}; this is a bug in imgforge, not \
         something you did. Temporary files were removed. Please report it with the command you ran."
    )
}
