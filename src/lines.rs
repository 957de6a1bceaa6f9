//! Lines of work that run at once — the spark and hive-metastore builds, pushes of images
//! that share no layers — each run to its end even when another fails, so that what one line
//! finished is whole and reported; the first failure is the run's.
//!
//! Lines are futures polled together (`join`), not spawned tasks: they borrow the run's
//! state, and their heavy work (unpacking, streaming a build context) already runs on threads
//! of its own.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::progress::Reporter;

/// Lines that run at once: which failed first, and the line telling the user that the
/// others are let finish.
pub struct Lines<'a> {
    running: AtomicUsize,
    failures: AtomicUsize,
    reporter: &'a dyn Reporter,
}

impl<'a> Lines<'a> {
    /// `count` lines about to start.
    pub fn new(count: usize, reporter: &'a dyn Reporter) -> Lines<'a> {
        Lines {
            running: AtomicUsize::new(count),
            failures: AtomicUsize::new(0),
            reporter,
        }
    }

    /// Run one line; a failure carries its place among the failures (0: the first).
    pub async fn run<T, E: std::fmt::Display>(
        &self,
        line: impl Future<Output = Result<T, E>>,
    ) -> Result<T, (usize, E)> {
        let result = line.await;
        let still_running = self
            .running
            .fetch_sub(1, Ordering::SeqCst)
            .saturating_sub(1);
        result.map_err(|error| {
            let place = self.failures.fetch_add(1, Ordering::SeqCst);
            if place == 0 && still_running > 0 {
                let text = error.to_string();
                let headline = text.lines().next().unwrap_or_default();
                self.reporter.info(&format!(
                    "{headline}; the work still running is let finish, then the run stops"
                ));
            }
            (place, error)
        })
    }

    /// The first failure of `results`, if any; the later ones are shown as warnings.
    pub fn first_failure<E: std::fmt::Display>(
        &self,
        results: impl IntoIterator<Item = Result<(), (usize, E)>>,
    ) -> Result<(), E> {
        let mut failures: Vec<(usize, E)> = results.into_iter().filter_map(Result::err).collect();
        failures.sort_by_key(|(place, _)| *place);
        let mut failures = failures.into_iter().map(|(_, error)| error);
        let Some(first) = failures.next() else {
            return Ok(());
        };
        for later in failures {
            self.reporter.warn(&format!("also failed: {later}"));
        }
        Err(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::QuietReporter;

    #[tokio::test]
    async fn the_first_failure_in_time_is_the_one_returned() {
        let lines = Lines::new(3, &QuietReporter);
        let (first, second, third) = tokio::join!(
            lines.run(async {
                tokio::task::yield_now().await;
                tokio::task::yield_now().await;
                Err::<(), _>("later")
            }),
            lines.run(async { Err::<(), _>("first") }),
            lines.run(async { Ok::<(), &str>(()) }),
        );
        assert_eq!(lines.first_failure([first, second, third]), Err("first"));
        let lines = Lines::new(1, &QuietReporter);
        let ok = lines.run(async { Ok::<(), &str>(()) }).await;
        assert_eq!(lines.first_failure([ok]), Ok(()));
    }
}
