//! Everything imgforge prints on stdout, and the final error report on stderr.
//!
//! Results go to stdout — a JSON document with `--json`, plain text otherwise — so they
//! can be piped; progress and diagnostics go to stderr through [`crate::progress`].

use std::io::Write;

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
    let mut stderr = String::new();
    let _ = writeln!(stderr, "error: {error}");
    let mut source = std::error::Error::source(error);
    // Transparent variants share their inner error's message; skip it so nothing repeats.
    let first = error.to_string();
    while let Some(cause) = source {
        let text = cause.to_string();
        if text != first {
            let _ = writeln!(stderr, "  caused by: {text}");
        }
        source = cause.source();
    }
    if let Some(hint) = error.hint() {
        let _ = writeln!(stderr, "  hint: {hint}");
    }
    stderr
}

/// Say that imgforge hit a bug (a panic) without the panic's own text: an assertion message
/// speaks of imgforge's internals, never of anything the user can act on.
pub fn internal_error(location: Option<(&str, u32)>) {
    let place = location
        .map(|(file, line)| format!(" (at {file}:{line})"))
        .unwrap_or_default();
    let _ = writeln!(
        std::io::stderr().lock(),
        "error: imgforge stopped on an internal error{place}; this is a bug in imgforge, not \
         something you did. Temporary files were removed. Please report it with the command you ran."
    );
}
