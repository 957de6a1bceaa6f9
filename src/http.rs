//! Bounds on what a server may send: size caps on every small document imgforge reads
//! (checksum files, `KEYS`, signatures, POMs, registry JSON, directory listings), and the
//! redirect policy every download client follows.
//!
//! A capped read takes the body chunk by chunk and stops at the first byte past the cap, so
//! memory stays flat whatever a server sends. The caps are far above anything real (a Spark
//! `KEYS` file is about 100 KiB, a checksum file under 1 KiB).

use std::time::Duration;

use reqwest::Response;
use url::Url;

use crate::redact::redact_url;

/// A published checksum file (`.sha512`, `.sha256`, `.mds`, `.sha1`).
pub const CHECKSUM_CAP: u64 = 1 << 20;
/// A detached signature (`.asc`).
pub const SIGNATURE_CAP: u64 = 1 << 20;
/// A project's `KEYS` file.
pub const KEYS_CAP: u64 = 8 << 20;
/// A Maven POM.
pub const POM_CAP: u64 = 4 << 20;
/// A JSON document from a registry (manifest, tag list, token answer).
pub const REGISTRY_JSON_CAP: u64 = 4 << 20;
/// A mirror's directory listing.
pub const LISTING_CAP: u64 = 1 << 20;

/// At most this many redirects are followed for one request.
pub const MAX_REDIRECTS: usize = 10;

/// Why a capped read failed.
#[derive(Debug, thiserror::Error)]
pub enum BoundedReadError {
    /// The body is longer than the cap (announced or as it streamed).
    #[error("{url} sent more than {} ({cap} bytes), the limit for {what}", crate::progress::bytes(*cap))]
    TooLarge {
        /// The URL (credentials masked).
        url: String,
        /// What was being read, e.g. "a checksum file".
        what: &'static str,
        /// The cap in bytes.
        cap: u64,
    },
    /// The body arrived slower than the minimum speed.
    #[error("reading {url} failed: {why}")]
    TooSlow {
        /// The URL (credentials masked).
        url: String,
        /// How slow.
        why: String,
    },
    /// The transfer broke.
    #[error("reading {url} failed")]
    Transport {
        /// The URL (credentials masked).
        url: String,
        /// What the client saw.
        #[source]
        source: reqwest::Error,
    },
}

/// Read `response`'s body, refusing it as soon as it exceeds `cap` bytes; `what` names the
/// document in the error. A `Content-Length` above the cap is refused before any byte is read.
pub async fn read_bounded(
    response: Response,
    cap: u64,
    what: &'static str,
) -> Result<Vec<u8>, BoundedReadError> {
    let no_minimum = MinSpeed {
        bytes_per_second: 0,
        window: Duration::from_secs(1),
    };
    read_bounded_at_speed(response, cap, what, no_minimum).await
}

/// [`read_bounded`], also failing when the body arrives slower than `min_speed`.
pub async fn read_bounded_at_speed(
    mut response: Response,
    cap: u64,
    what: &'static str,
    min_speed: MinSpeed,
) -> Result<Vec<u8>, BoundedReadError> {
    let url = redact_url(response.url());
    let too_large = || BoundedReadError::TooLarge {
        url: url.clone(),
        what,
        cap,
    };
    if response.content_length().is_some_and(|length| length > cap) {
        return Err(too_large());
    }
    let mut speed = SpeedWindow::new(min_speed);
    let mut body = Vec::new();
    loop {
        let chunk = match tokio::time::timeout_at(speed.window_end(), response.chunk()).await {
            Ok(chunk) => chunk.map_err(|source| BoundedReadError::Transport {
                url: url.clone(),
                source,
            })?,
            Err(_) => {
                speed.check().map_err(|why| BoundedReadError::TooSlow {
                    url: url.clone(),
                    why,
                })?;
                continue;
            }
        };
        let Some(chunk) = chunk else { break };
        if body.len() as u64 + chunk.len() as u64 > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
        speed.record(chunk.len() as u64);
        speed.check().map_err(|why| BoundedReadError::TooSlow {
            url: url.clone(),
            why,
        })?;
    }
    Ok(body)
}

/// `[network] min_speed_bytes` over `min_speed_secs`, like curl's `--speed-limit` and
/// `--speed-time`: the bytes received in each window must average at least the minimum.
pub struct SpeedWindow {
    min_bytes_per_second: u64,
    window: Duration,
    start: tokio::time::Instant,
    received: u64,
}

/// A minimum transfer speed: `bytes_per_second` averaged over each `window` (0: none).
#[derive(Debug, Clone, Copy)]
pub struct MinSpeed {
    /// `[network] min_speed_bytes`.
    pub bytes_per_second: u64,
    /// `[network] min_speed_secs`.
    pub window: Duration,
}

impl SpeedWindow {
    /// A window starting now.
    pub fn new(min_speed: MinSpeed) -> Self {
        SpeedWindow {
            min_bytes_per_second: min_speed.bytes_per_second,
            window: min_speed.window,
            start: tokio::time::Instant::now(),
            received: 0,
        }
    }

    /// When the current window closes (far in the future when there is no minimum).
    pub fn window_end(&self) -> tokio::time::Instant {
        if self.min_bytes_per_second == 0 {
            // About 30 years: never, for a download.
            self.start + Duration::from_secs(1 << 30)
        } else {
            self.start + self.window
        }
    }

    /// Count `bytes` received.
    pub fn record(&mut self, bytes: u64) {
        self.received += bytes;
    }

    /// At the end of a window: fail when it was too slow, else start the next one.
    pub fn check(&mut self) -> Result<(), String> {
        let now = tokio::time::Instant::now();
        if self.min_bytes_per_second == 0 || now < self.window_end() {
            return Ok(());
        }
        let seconds = self.window.as_secs().max(1);
        if self.received < self.min_bytes_per_second.saturating_mul(seconds) {
            return Err(format!(
                "too slow: {} bytes in {seconds} s, below the minimum of {} bytes/s \
                 ([network] min_speed_bytes over min_speed_secs)",
                self.received, self.min_bytes_per_second
            ));
        }
        self.start = now;
        self.received = 0;
        Ok(())
    }
}

/// Why a redirect was not followed.
#[derive(Debug, thiserror::Error)]
pub enum RedirectError {
    /// More than [`MAX_REDIRECTS`] in a row.
    #[error("more than {MAX_REDIRECTS} redirects, starting at {first}, the last to {last}")]
    TooMany {
        /// The URL first asked for.
        first: String,
        /// Where the last redirect pointed.
        last: String,
    },
    /// A redirect back to a URL already visited.
    #[error("redirect loop: {from} redirects back to {to}, which was already visited")]
    Loop {
        /// The URL that redirected.
        from: String,
        /// The URL already visited.
        to: String,
    },
    /// A redirect from `https` to plain `http`.
    #[error("refused a redirect from {from} to plain http at {to}: it would drop TLS")]
    Downgrade {
        /// The https URL.
        from: String,
        /// The http URL.
        to: String,
    },
}

/// Whether a redirect from the last of `previous` to `next` may be followed.
pub fn check_redirect(previous: &[Url], next: &Url) -> Result<(), RedirectError> {
    let (Some(first), Some(last)) = (previous.first(), previous.last()) else {
        return Ok(());
    };
    if last.scheme() == "https" && next.scheme() == "http" {
        return Err(RedirectError::Downgrade {
            from: redact_url(last),
            to: redact_url(next),
        });
    }
    if previous.iter().any(|visited| visited == next) {
        return Err(RedirectError::Loop {
            from: redact_url(last),
            to: redact_url(next),
        });
    }
    if previous.len() > MAX_REDIRECTS {
        return Err(RedirectError::TooMany {
            first: redact_url(first),
            last: redact_url(next),
        });
    }
    Ok(())
}

/// The redirect policy of imgforge's download clients (see [`check_redirect`]).
pub fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        match check_redirect(attempt.previous(), attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(error) => attempt.error(error),
        }
    })
}

/// The redirect refusal inside a client error, if that is what it is.
pub fn redirect_refusal(error: &reqwest::Error) -> Option<String> {
    if !error.is_redirect() {
        return None;
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(refusal) = cause.downcast_ref::<RedirectError>() {
            return Some(refusal.to_string());
        }
        source = cause.source();
    }
    Some("the redirect was refused".into())
}

/// A client builder with imgforge's user agent, timeouts and redirect policy.
pub fn client_builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("imgforge/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .redirect(redirect_policy())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).expect("url")
    }

    /// A raw HTTP/1.1 server on loopback answering one request with `head`, then chunks of
    /// filler until the client hangs up (or 1 GiB); returns the bytes of body it got to send.
    async fn endless_server(head: &'static str) -> (String, tokio::task::JoinHandle<u64>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/doc", listener.local_addr().expect("address"));
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            if socket.write_all(head.as_bytes()).await.is_err() {
                return 0;
            }
            let chunk = format!("{:x}\r\n{}\r\n", 65536, "0".repeat(65536));
            let mut sent = 0u64;
            while sent < 1 << 30 {
                if socket.write_all(chunk.as_bytes()).await.is_err() {
                    break;
                }
                sent += 65536;
            }
            sent
        });
        (url, server)
    }

    #[tokio::test]
    async fn an_endless_body_is_refused_at_the_cap_and_reading_stops() {
        let (url, server) =
            endless_server("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").await;
        let response = reqwest::get(&url).await.expect("response head");
        let error = read_bounded(response, 1 << 20, "a registry document")
            .await
            .expect_err("over the cap");
        assert!(
            matches!(error, BoundedReadError::TooLarge { cap, .. } if cap == 1 << 20),
            "{error}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "{url} sent more than 1.0 MiB (1048576 bytes), the limit for a registry document"
            )
        );
        let sent = server.await.expect("server");
        assert!(sent < 1 << 30, "the client read on: {sent} bytes");
    }

    #[tokio::test]
    async fn an_announced_length_over_the_cap_is_refused_before_the_body() {
        let (url, _server) =
            endless_server("HTTP/1.1 200 OK\r\nContent-Length: 1048577\r\n\r\n").await;
        let response = reqwest::get(&url).await.expect("response head");
        let error = read_bounded(response, 1 << 20, "a checksum file")
            .await
            .expect_err("over the cap");
        assert!(
            matches!(error, BoundedReadError::TooLarge { .. }),
            "{error}"
        );
    }

    #[test]
    fn redirects_are_bounded() {
        let start = url("https://a.example/x");
        assert!(check_redirect(std::slice::from_ref(&start), &url("https://b.example/x")).is_ok());
        let downgrade = check_redirect(std::slice::from_ref(&start), &url("http://b.example/x"))
            .expect_err("https to http");
        assert!(matches!(downgrade, RedirectError::Downgrade { .. }));
        assert!(
            downgrade.to_string().contains("https://a.example/x")
                && downgrade.to_string().contains("http://b.example/x")
        );
        let chain = [start.clone(), url("https://b.example/x")];
        assert!(matches!(
            check_redirect(&chain, &start),
            Err(RedirectError::Loop { .. })
        ));
        let long: Vec<Url> = (0..=MAX_REDIRECTS)
            .map(|index| url(&format!("https://a.example/{index}")))
            .collect();
        assert!(matches!(
            check_redirect(&long, &url("https://a.example/next")),
            Err(RedirectError::TooMany { .. })
        ));
        assert!(check_redirect(&long[..MAX_REDIRECTS], &url("https://a.example/next")).is_ok());
        let with_secret = check_redirect(
            &[url("https://u:secret@a.example/")],
            &url("http://a.example/"),
        )
        .expect_err("downgrade");
        assert!(!with_secret.to_string().contains("secret"));
    }
}
