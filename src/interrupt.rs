//! Stopping on a signal: SIGINT (Ctrl-C), SIGTERM (how CI cancels a job) and SIGHUP (a closed
//! terminal) all end a run the same way, with nothing partial left behind.
//!
//! `main` races the command against [`wait`]. When a signal wins, the command's future is
//! dropped, which removes the temp files and staging trees it holds. Work already handed to
//! blocking threads (unpacking a tarball) cannot be dropped from outside, so it polls
//! [`requested`] and stops early; its own guards then remove what it wrote before the runtime
//! lets the process exit.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// A signal that stops a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT: Ctrl-C.
    Interrupt,
    /// SIGTERM: how CI systems and service managers cancel a job.
    Terminate,
    /// SIGHUP: the terminal went away.
    Hangup,
}

impl Signal {
    /// The process exit code after this signal: 128 + the signal number, as shells report it.
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => crate::exit::INTERRUPTED,
            Signal::Terminate => 143,
            Signal::Hangup => 129,
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
            Signal::Hangup => "SIGHUP",
        })
    }
}

/// Whether a stopping signal arrived; long blocking work checks this between steps.
pub(crate) fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// Ask blocking work to stop (what a signal does; also usable by tests of that work).
pub(crate) fn request() {
    REQUESTED.store(true, Ordering::Relaxed);
}

/// The error blocking work returns when it stops because a signal arrived.
pub(crate) fn stopped() -> std::io::Error {
    std::io::Error::other("stopped: imgforge is being interrupted")
}

/// Wait for SIGINT, SIGTERM or SIGHUP; record it for blocking work and return which one came.
///
/// If the handlers cannot be installed, this never returns: the run then ends as it would have
/// without them.
pub async fn wait() -> Signal {
    use tokio::signal::unix::{SignalKind, signal};
    let streams = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    );
    let (Ok(mut interrupt), Ok(mut terminate), Ok(mut hangup)) = streams else {
        tracing::warn!("cannot install signal handlers; signals end the run without cleanup");
        return std::future::pending().await;
    };
    let signal = tokio::select! {
        _ = interrupt.recv() => Signal::Interrupt,
        _ = terminate.recv() => Signal::Terminate,
        _ = hangup.recv() => Signal::Hangup,
    };
    request();
    signal
}
