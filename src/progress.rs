//! Progress reporting: the [`Reporter`] trait stages call, and its implementations — one
//! indicatif bar per task on a terminal, one plain line per event otherwise, or nothing.
//!
//! This is the only module that knows about indicatif. Stage code never writes to the
//! terminal itself; it describes what happens and the reporter decides how to show it.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::OutputOptions;

/// Identifies one task (an artifact download, a build step) within a reporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskId(usize);

/// Where a task stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Transferring bytes from `url`.
    Downloading {
        /// The URL being read.
        url: String,
    },
    /// Continuing an interrupted transfer from byte `offset`.
    Resuming {
        /// Bytes already on disk.
        offset: u64,
    },
    /// The server ignored a range request, so the transfer starts over.
    Restarting,
    /// A transient failure; another attempt follows after a pause.
    Retrying {
        /// The attempt about to be made (2 for the first retry).
        attempt: u32,
        /// The most attempts that will be made.
        of: u32,
        /// What went wrong.
        reason: String,
    },
    /// Checking the digest.
    Verifying,
    /// The engine is pushing the image to `registry`; `status` is its latest word on a layer
    /// (`Pushing`, `Layer already exists`), none when the push starts.
    Pushing {
        /// The registry the image goes to.
        registry: String,
        /// The engine's latest status line.
        status: Option<String>,
    },
    /// The engine is pulling the image from `registry`.
    Pulling {
        /// The registry the image comes from.
        registry: String,
    },
    /// An image build is at `step`; `output` is a line the step printed, if any.
    Building {
        /// The step, as the engine prints it (`Step 3/7 : RUN …`).
        step: String,
        /// One line of the step's output.
        output: Option<String>,
    },
    /// Found in the cache; nothing transferred.
    Cached,
    /// Finished successfully; `detail` is a short summary such as a digest prefix.
    Done {
        /// Short summary.
        detail: String,
    },
    /// Failed; the error is reported separately.
    Failed,
}

impl Phase {
    fn label(&self) -> &'static str {
        match self {
            Phase::Downloading { .. } => "downloading",
            Phase::Resuming { .. } => "resuming",
            Phase::Restarting => "restarting",
            Phase::Retrying { .. } => "retrying",
            Phase::Verifying => "verifying",
            Phase::Pulling { .. } => "pulling",
            Phase::Pushing { .. } => "pushing",
            Phase::Building { .. } => "building",
            Phase::Cached => "cached",
            Phase::Done { .. } => "done",
            Phase::Failed => "failed",
        }
    }
}

/// How stages tell the user what is happening.
pub trait Reporter: Send + Sync {
    /// Start a task named `name` and return its id.
    fn task(&self, name: &str) -> TaskId;
    /// The task moved to `phase`.
    fn phase(&self, task: TaskId, phase: Phase);
    /// The task's total size in bytes became known (or unknown).
    fn length(&self, task: TaskId, total: Option<u64>);
    /// The task's absolute position in bytes, after a resume or restart.
    fn position(&self, task: TaskId, position: u64);
    /// `bytes` more were transferred.
    fn advance(&self, task: TaskId, bytes: u64);
    /// Something the user should know about that does not stop the work.
    fn warn(&self, message: &str);
    /// A line of information.
    fn info(&self, message: &str);
}

/// Choose the reporter the output options and the terminal call for.
pub fn reporter_for(options: &OutputOptions) -> Box<dyn Reporter> {
    if options.quiet {
        Box::new(QuietReporter)
    } else if options.no_progress || !std::io::stderr().is_terminal() {
        Box::new(PlainReporter::default())
    } else {
        Box::new(TerminalReporter::new())
    }
}

/// Reports nothing but warnings are still dropped: `--quiet` means errors only.
#[derive(Debug, Default)]
pub struct QuietReporter;

impl Reporter for QuietReporter {
    fn task(&self, _name: &str) -> TaskId {
        TaskId(0)
    }
    fn phase(&self, _task: TaskId, _phase: Phase) {}
    fn length(&self, _task: TaskId, _total: Option<u64>) {}
    fn position(&self, _task: TaskId, _position: u64) {}
    fn advance(&self, _task: TaskId, _bytes: u64) {}
    fn warn(&self, _message: &str) {}
    fn info(&self, _message: &str) {}
}

/// One line on stderr per event, for logs and CI.
#[derive(Debug, Default)]
pub(crate) struct PlainReporter {
    names: Mutex<Vec<String>>,
}

impl PlainReporter {
    fn name(&self, task: TaskId) -> String {
        self.names
            .lock()
            .map(|names| names.get(task.0).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    fn line(&self, text: &str) {
        // A failed write to stderr has nowhere better to be reported.
        let _ = writeln!(
            std::io::stderr().lock(),
            "{}",
            crate::redact::redact_text(text)
        );
    }
}

impl Reporter for PlainReporter {
    fn task(&self, name: &str) -> TaskId {
        let mut names = self
            .names
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        names.push(name.to_string());
        TaskId(names.len() - 1)
    }

    fn phase(&self, task: TaskId, phase: Phase) {
        let name = self.name(task);
        let text = match &phase {
            Phase::Downloading { url } => format!("downloading {name} from {url}"),
            Phase::Resuming { offset } => format!("resuming {name} at byte {offset}"),
            Phase::Restarting => format!("restarting {name}: the server ignored the range request"),
            Phase::Retrying {
                attempt,
                of,
                reason,
            } => {
                format!("retrying {name} (attempt {attempt} of {of}): {reason}")
            }
            Phase::Verifying => format!("verifying {name}"),
            Phase::Pulling { registry } => format!("pulling {name} from {registry}"),
            // One line when the push starts; the layers' statuses are for the terminal.
            Phase::Pushing {
                registry,
                status: None,
            } => format!("pushing {name} to {registry}"),
            Phase::Pushing { .. } => return,
            Phase::Building { step, output } => match output {
                // Every line in plain mode: logs keep the whole build output.
                Some(line) => format!("  {name} | {line}"),
                None => format!("building {name}: {step}"),
            },
            Phase::Cached => format!("cached {name}"),
            Phase::Done { detail } => format!("done {name} {detail}"),
            // The error itself is printed once, by main.
            Phase::Failed => return,
        };
        self.line(&text);
    }

    fn length(&self, _task: TaskId, _total: Option<u64>) {}
    fn position(&self, _task: TaskId, _position: u64) {}
    fn advance(&self, _task: TaskId, _bytes: u64) {}

    fn warn(&self, message: &str) {
        self.line(&format!("warning: {message}"));
    }

    fn info(&self, message: &str) {
        self.line(message);
    }
}

/// indicatif bars, one per task, under a shared [`MultiProgress`].
pub(crate) struct TerminalReporter {
    multi: MultiProgress,
    bars: Mutex<Vec<ProgressBar>>,
    names: Mutex<Vec<String>>,
}

impl TerminalReporter {
    /// A reporter drawing on stderr.
    pub(crate) fn new() -> Self {
        Self::drawing_on(ProgressDrawTarget::stderr())
    }

    fn drawing_on(target: ProgressDrawTarget) -> Self {
        TerminalReporter {
            multi: MultiProgress::with_draw_target(target),
            bars: Mutex::new(Vec::new()),
            names: Mutex::new(Vec::new()),
        }
    }

    fn name(&self, task: TaskId) -> String {
        self.names
            .lock()
            .map(|names| names.get(task.0).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    fn step_style() -> ProgressStyle {
        ProgressStyle::with_template("{prefix:>11.cyan.bold} {spinner} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
    }

    fn bar(&self, task: TaskId) -> Option<ProgressBar> {
        self.bars
            .lock()
            .ok()
            .and_then(|bars| bars.get(task.0).cloned())
    }

    /// One line as wide as the terminal (80 columns hold it): the name takes what the fixed
    /// parts leave and is cut to fit.
    fn bytes_style() -> ProgressStyle {
        ProgressStyle::with_template(
            "{prefix:>11.cyan.bold} {wide_msg} [{bar:10}] {bytes:>9}/{total_bytes:<9} {bytes_per_sec:>11}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
    }

    fn finished_style() -> ProgressStyle {
        ProgressStyle::with_template("{prefix:>11.green.bold} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
    }
}

impl Default for TerminalReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter for TerminalReporter {
    fn task(&self, name: &str) -> TaskId {
        let bar = self.multi.add(ProgressBar::new(0));
        bar.set_style(Self::bytes_style());
        bar.set_prefix("waiting");
        bar.set_message(name.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        self.names
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(name.to_string());
        let mut bars = self
            .bars
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        bars.push(bar);
        TaskId(bars.len() - 1)
    }

    fn phase(&self, task: TaskId, phase: Phase) {
        let Some(bar) = self.bar(task) else { return };
        match &phase {
            Phase::Cached | Phase::Done { .. } | Phase::Failed => {
                bar.set_style(Self::finished_style());
                bar.set_prefix(phase.label());
                let name = self.name(task);
                match &phase {
                    Phase::Done { detail } => bar.set_message(format!("{name} {detail}")),
                    _ => bar.set_message(name),
                }
                bar.finish();
            }
            Phase::Retrying {
                attempt,
                of,
                reason,
            } => {
                bar.set_prefix(phase.label());
                bar.println(crate::redact::redact_text(&format!(
                    "retrying {} (attempt {attempt} of {of}): {reason}",
                    bar.message()
                )));
            }
            Phase::Pushing { registry, status } => {
                bar.set_style(Self::step_style());
                bar.set_prefix(phase.label());
                let name = self.name(task);
                match status {
                    Some(status) => bar.set_message(format!("{name} to {registry}: {status}")),
                    None => bar.set_message(format!("{name} to {registry}")),
                }
            }
            Phase::Building { step, output } => {
                // The step in progress and the latest line of its output, on one line.
                bar.set_style(Self::step_style());
                bar.set_prefix(phase.label());
                let name = self.name(task);
                match output {
                    Some(line) => bar.set_message(format!("{name}: {step} | {line}")),
                    None => bar.set_message(format!("{name}: {step}")),
                }
            }
            _ => bar.set_prefix(phase.label()),
        }
    }

    fn length(&self, task: TaskId, total: Option<u64>) {
        if let Some(bar) = self.bar(task) {
            bar.set_length(total.unwrap_or(0));
        }
    }

    fn position(&self, task: TaskId, position: u64) {
        if let Some(bar) = self.bar(task) {
            bar.set_position(position);
        }
    }

    fn advance(&self, task: TaskId, bytes: u64) {
        if let Some(bar) = self.bar(task) {
            bar.inc(bytes);
        }
    }

    fn warn(&self, message: &str) {
        let _ = self
            .multi
            .println(format!("warning: {}", crate::redact::redact_text(message)));
    }

    fn info(&self, message: &str) {
        let _ = self.multi.println(crate::redact::redact_text(message));
    }
}
/// Human-readable byte count.
pub(crate) fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A terminal of `width` columns that keeps every line drawn on it.
    #[derive(Debug)]
    struct Screen {
        width: u16,
        lines: std::sync::Arc<Mutex<Vec<String>>>,
    }

    /// A terminal reporter drawing on a [`Screen`] of `width` columns, and what it drew.
    fn on_screen(width: u16) -> (TerminalReporter, std::sync::Arc<Mutex<Vec<String>>>) {
        let lines = std::sync::Arc::new(Mutex::new(Vec::new()));
        let screen = Screen {
            width,
            lines: std::sync::Arc::clone(&lines),
        };
        let reporter =
            TerminalReporter::drawing_on(ProgressDrawTarget::term_like(Box::new(screen)));
        (reporter, lines)
    }

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            self.width
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, line: &str) -> std::io::Result<()> {
            self.write_str(line)
        }
        fn write_str(&self, text: &str) -> std::io::Result<()> {
            if let Ok(mut lines) = self.lines.lock() {
                lines.extend(text.lines().map(str::to_string));
            }
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn two_builds_at_once_draw_one_line_each_named_by_its_image() {
        let (reporter, lines) = on_screen(80);
        let spark = reporter.task("spark");
        let metastore = reporter.task("hive-metastore");
        for step in 1..=3 {
            for (task, output) in [(spark, "copying jars"), (metastore, "importing CAs")] {
                reporter.phase(
                    task,
                    Phase::Building {
                        step: format!("Step {step}/3 : RUN make"),
                        output: Some(output.to_string()),
                    },
                );
            }
        }
        reporter.phase(
            spark,
            Phase::Done {
                detail: "0123abcd4567 (3 steps, 1 from cache)".into(),
            },
        );
        let drawn = lines.lock().unwrap().clone();
        let steps: Vec<String> = drawn
            .iter()
            .map(|line| console::strip_ansi_codes(line).to_string())
            .filter(|line| line.contains("Step "))
            .collect();
        assert!(!steps.is_empty(), "nothing drawn: {drawn:?}");
        for line in &steps {
            assert!(console::measure_text_width(line) <= 80, "{line:?}");
            // Each line is one build's: its image's name and that build's own output.
            let spark = line.contains("spark: Step") && line.contains("copying jars");
            let metastore = line.contains("hive-metastore: Step") && line.contains("importing CAs");
            assert!(spark != metastore, "{line:?}");
        }
        assert!(
            steps
                .iter()
                .any(|line| line.contains("hive-metastore: Step"))
        );
    }

    #[test]
    fn a_download_line_fits_an_80_column_terminal() {
        let (reporter, lines) = on_screen(80);
        let task = reporter.task("aws-java-sdk-bundle-1.12.262-with-a-long-classifier.jar");
        reporter.phase(
            task,
            Phase::Downloading {
                url: "https://archive.apache.org/dist/spark/spark-3.5.4/x.tgz".into(),
            },
        );
        reporter.length(task, Some(412 * 1024 * 1024 + 17));
        for position in [1u64 << 20, 123 * 1024 * 1024, 400 * 1024 * 1024] {
            reporter.position(task, position);
        }
        let drawn = lines.lock().unwrap().clone();
        let bars: Vec<&String> = drawn.iter().filter(|line| line.contains("MiB")).collect();
        assert!(!bars.is_empty(), "nothing drawn: {drawn:?}");
        for line in bars {
            let plain = console::strip_ansi_codes(line);
            let width = console::measure_text_width(&plain);
            assert!(width <= 80, "{width} columns: {plain:?}");
            assert!(plain.contains("aws-java-sdk-bundle"), "{plain:?}");
        }
    }
}
