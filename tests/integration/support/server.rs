//! A real HTTP/1.1 mirror on `127.0.0.1:0` that serves a directory tree the way an Apache dist
//! mirror and a Maven 2 repository do, with per-path fault injection and a request log.
//!
//! The server runs on its own thread with its own tokio runtime, so tests that drive the real
//! `imgforge` binary (a child process) and tests that use async clients can both use it through
//! the blocking API of [`MirrorServer`]. Dropping the server stops it and aborts every open
//! connection, including ones stuck in an injected delay or stall.
//!
//! What it serves, for a request path `/a/b`:
//! - a regular file under the root: `200` (or `206` for `Range: bytes=N-`, `bytes=N-M` and
//!   `bytes=-S`), `Content-Type: application/octet-stream`, streamed from disk in chunks so files
//!   of hundreds of megabytes never sit in memory; `416` for a range that starts past the end;
//! - a directory with a trailing slash: an Apache-style HTML index (`<a href="name/">`);
//! - a directory without one: `301` to the slash form, as Apache does, so relative links in the
//!   index resolve against the directory;
//! - anything else: `404`; a path with `..` segments: `400`; a method other than GET/HEAD: `405`.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// How many bytes one body chunk carries at most.
const CHUNK_BYTES: u64 = 256 * 1024;

/// How long a body waits before an injected connection drop, so that the bytes sent before it
/// (and the response head) are flushed to the socket rather than discarded with the connection.
const FLUSH_BEFORE_CLOSE: Duration = Duration::from_millis(100);

/// A misbehaviour injected for one exact request path (see [`MirrorServer::inject`]).
///
/// Count-limited faults (`Status`, `CloseMidBody`) are used up one request at a time and then
/// forgotten; the others apply to every request for the path until
/// [`MirrorServer::clear_faults`]. When several faults are injected for one path, a firing
/// `Status` wins (the request gets that status and nothing else); otherwise every body and
/// timing fault applies together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer `code` (with a short text body) for the next `times` requests, then serve
    /// normally. `usize::MAX` means forever.
    Status {
        /// The HTTP status code to answer with.
        code: u16,
        /// How many requests get it.
        times: usize,
    },
    /// For the next `times` GET requests, send the usual 200/206 head with the true
    /// Content-Length, write `after` body bytes, then drop the connection.
    CloseMidBody {
        /// Body bytes sent before the connection is dropped.
        after: u64,
        /// How many requests are cut (`usize::MAX` means forever).
        times: usize,
    },
    /// Always answer 200 with the full body, ignoring any Range header.
    IgnoreRange,
    /// Sleep this long before sending the response head (`Duration::MAX`: never answer).
    DelayHeaders(Duration),
    /// Send `after` body bytes, stall for `stall`, then send the rest.
    StallBody {
        /// Body bytes sent before the stall.
        after: u64,
        /// How long the body stalls.
        stall: Duration,
    },
    /// Answer 200 with a chunked body of filler bytes and no Content-Length, instead of the
    /// file: as far as any sane cap is concerned, endless. It stops after `stop_after` bytes
    /// only so that a client without a cap ends (and fails its test) instead of running the
    /// machine out of memory; [`RequestRecord::completed`] says whether it got that far.
    Endless {
        /// Bytes sent before the body ends.
        stop_after: u64,
    },
    /// Answer 200 with the file's true Content-Length, then send its body one byte every
    /// `every`: a server that never stalls long enough for a read timeout, yet never finishes.
    Drip {
        /// The pause before each byte.
        every: Duration,
    },
    /// Answer `302 Found` with `Location: to` (an absolute URL or a path on this server),
    /// whatever the path holds; a path need not exist to redirect.
    Redirect {
        /// Where to.
        to: String,
    },
    /// Answer 200 with `Content-Length: announced` and send the whole file regardless, which
    /// may be longer (hyper cuts a longer body at the announced length on the wire).
    AnnounceLength {
        /// The Content-Length sent.
        announced: u64,
    },
}

/// One request as the server saw and answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// The request method, e.g. `GET` or `HEAD`.
    pub method: String,
    /// The request path exactly as sent (percent-encoding kept, query string removed).
    pub path: String,
    /// The raw `Range` header, if any.
    pub range: Option<String>,
    /// The status code sent, or 0 while the response head has not been sent yet.
    pub status: u16,
    /// Body bytes handed to the connection so far.
    pub bytes_sent: u64,
    /// Whether the whole body was sent (false while streaming, after an injected drop, or when
    /// the client went away early).
    pub completed: bool,
}

/// A log entry that the handler and the body stream update while the response is in flight.
#[derive(Debug)]
struct LiveRecord {
    method: String,
    path: String,
    range: Option<String>,
    status: AtomicU16,
    bytes_sent: AtomicU64,
    completed: AtomicBool,
}

impl LiveRecord {
    fn snapshot(&self) -> RequestRecord {
        RequestRecord {
            method: self.method.clone(),
            path: self.path.clone(),
            range: self.range.clone(),
            status: self.status.load(Ordering::SeqCst),
            bytes_sent: self.bytes_sent.load(Ordering::SeqCst),
            completed: self.completed.load(Ordering::SeqCst),
        }
    }
}

/// State shared between the test thread and the server's runtime.
#[derive(Debug)]
struct Shared {
    root: PathBuf,
    log: Mutex<Vec<Arc<LiveRecord>>>,
    faults: Mutex<HashMap<String, Vec<Fault>>>,
}

/// A running mirror; see the module documentation for what it serves.
#[derive(Debug)]
pub struct MirrorServer {
    address: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MirrorServer {
    /// Starts serving the files under `root` on a fresh loopback port. The socket is bound and
    /// listening when this returns.
    pub fn start(root: &Path) -> MirrorServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener
            .set_nonblocking(true)
            .expect("make the listener non-blocking");
        let address = listener.local_addr().expect("read the bound address");
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            log: Mutex::new(Vec::new()),
            faults: Mutex::new(HashMap::new()),
        });
        let (shutdown, shutdown_signal) = tokio::sync::oneshot::channel::<()>();
        let server_state = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("mirror-{}", address.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("build the mirror's runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("register the listener with tokio");
                    let app = Router::new().fallback(handle).with_state(server_state);
                    tokio::select! {
                        result = axum::serve(listener, app) => {
                            result.expect("mirror server failed");
                        }
                        _ = shutdown_signal => {}
                    }
                });
                // Dropping the runtime cancels every connection task, however slow.
                runtime.shutdown_timeout(Duration::from_secs(2));
            })
            .expect("spawn the mirror thread");
        MirrorServer {
            address,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The base URL, `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The directory being served.
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// Every request since the start or the last [`MirrorServer::clear_log`], in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log)
            .iter()
            .map(|record| record.snapshot())
            .collect()
    }

    /// The requests (GET or HEAD) whose path is exactly `path`.
    pub fn count(&self, path: &str) -> usize {
        lock(&self.shared.log)
            .iter()
            .filter(|record| {
                record.path == path && (record.method == "GET" || record.method == "HEAD")
            })
            .count()
    }

    /// The requests for exactly `path`, in arrival order.
    pub fn requests_for(&self, path: &str) -> Vec<RequestRecord> {
        lock(&self.shared.log)
            .iter()
            .filter(|record| record.path == path)
            .map(|record| record.snapshot())
            .collect()
    }

    /// Forgets every logged request.
    pub fn clear_log(&self) {
        lock(&self.shared.log).clear();
    }

    /// Adds `fault` for requests whose path is exactly `path` (e.g. `/spark/spark-3.1.1/x.tgz`).
    pub fn inject(&self, path: &str, fault: Fault) {
        lock(&self.shared.faults)
            .entry(path.to_string())
            .or_default()
            .push(fault);
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }
}

impl Drop for MirrorServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // The receiver is gone only if the server thread already ended.
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Locks a mutex, ignoring poisoning: a panicking test must not hide the log from the next one.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the faults for one request amount to.
#[derive(Debug, Default)]
struct Plan {
    status: Option<u16>,
    close_after: Option<u64>,
    ignore_range: bool,
    delay_headers: Option<Duration>,
    stall: Option<(u64, Duration)>,
    endless: Option<u64>,
    drip: Option<Duration>,
    redirect: Option<String>,
    announce: Option<u64>,
}

impl Shared {
    /// Consumes the count-limited faults this request uses and returns the combined plan.
    fn plan(&self, path: &str, method: &Method) -> Plan {
        let mut plan = Plan::default();
        let mut faults = lock(&self.faults);
        let Some(list) = faults.get_mut(path) else {
            return plan;
        };
        for fault in list.iter() {
            match fault {
                Fault::IgnoreRange => plan.ignore_range = true,
                Fault::DelayHeaders(delay) => plan.delay_headers = Some(*delay),
                Fault::StallBody { after, stall } => plan.stall = Some((*after, *stall)),
                Fault::Endless { stop_after } => plan.endless = Some(*stop_after),
                Fault::Drip { every } => plan.drip = Some(*every),
                Fault::Redirect { to } => plan.redirect = Some(to.clone()),
                Fault::AnnounceLength { announced } => plan.announce = Some(*announced),
                Fault::Status { .. } | Fault::CloseMidBody { .. } => {}
            }
        }
        if let Some(Fault::Status { code, times }) = list
            .iter_mut()
            .find(|fault| matches!(fault, Fault::Status { times, .. } if *times > 0))
        {
            plan.status = Some(*code);
            use_once(times);
        } else if *method == Method::GET
            && let Some(Fault::CloseMidBody { after, times }) = list
                .iter_mut()
                .find(|fault| matches!(fault, Fault::CloseMidBody { times, .. } if *times > 0))
        {
            plan.close_after = Some(*after);
            use_once(times);
        }
        list.retain(|fault| match fault {
            Fault::Status { times, .. } | Fault::CloseMidBody { times, .. } => *times > 0,
            _ => true,
        });
        plan
    }
}

/// Counts down a `times` field; `usize::MAX` never runs out.
fn use_once(times: &mut usize) {
    if *times != usize::MAX {
        *times -= 1;
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let range = request
        .headers()
        .get(header::RANGE)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let record = Arc::new(LiveRecord {
        method: method.to_string(),
        path: path.clone(),
        range: range.clone(),
        status: AtomicU16::new(0),
        bytes_sent: AtomicU64::new(0),
        completed: AtomicBool::new(false),
    });
    lock(&shared.log).push(Arc::clone(&record));

    let plan = shared.plan(&path, &method);
    if let Some(delay) = plan.delay_headers {
        tokio::time::sleep(delay).await;
    }
    let response = respond(&shared, &method, &path, range.as_deref(), plan, &record).await;
    record
        .status
        .store(response.status().as_u16(), Ordering::SeqCst);
    response
}

async fn respond(
    shared: &Shared,
    method: &Method,
    path: &str,
    range: Option<&str>,
    plan: Plan,
    record: &Arc<LiveRecord>,
) -> Response {
    if let Some(code) = plan.status {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return text(method, status, format!("injected status {code}\n"), record);
    }
    if let Some(to) = &plan.redirect {
        let mut response = text(method, StatusCode::FOUND, "found\n".to_string(), record);
        let location = HeaderValue::from_str(to).expect("a redirect target is a valid header");
        response.headers_mut().insert(header::LOCATION, location);
        return response;
    }
    if let Some(stop_after) = plan.endless {
        return endless_body(stop_after, record);
    }
    if *method != Method::GET && *method != Method::HEAD {
        let mut response = text(
            method,
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD\n".to_string(),
            record,
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let Some(relative) = relative_path(path) else {
        return text(
            method,
            StatusCode::BAD_REQUEST,
            "bad path\n".to_string(),
            record,
        );
    };
    let full = shared.root.join(&relative);
    let metadata = match tokio::fs::metadata(&full).await {
        Ok(metadata) => metadata,
        Err(_) => {
            return text(
                method,
                StatusCode::NOT_FOUND,
                format!("not found: {path}\n"),
                record,
            );
        }
    };
    if metadata.is_dir() {
        if !path.ends_with('/') {
            let mut response = text(
                method,
                StatusCode::MOVED_PERMANENTLY,
                "moved\n".to_string(),
                record,
            );
            let location = HeaderValue::from_str(&format!("{path}/"))
                .expect("a request path plus a slash is a valid header value");
            response.headers_mut().insert(header::LOCATION, location);
            return response;
        }
        return match directory_index(&full, path).await {
            Ok(html) => {
                let mut response = text(method, StatusCode::OK, html, record);
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html;charset=UTF-8"),
                );
                response
            }
            Err(error) => text(
                method,
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("listing {path}: {error}\n"),
                record,
            ),
        };
    }
    serve_file(method, &full, metadata, range, plan, record).await
}

/// Maps a request path to a path relative to the root, or `None` for `..`/`.` segments.
fn relative_path(path: &str) -> Option<PathBuf> {
    let mut relative = PathBuf::new();
    for segment in path.split('/').filter(|segment| !segment.is_empty()) {
        let decoded = percent_decode(segment)?;
        if decoded == "." || decoded == ".." || decoded.contains('/') || decoded.contains('\0') {
            return None;
        }
        relative.push(decoded);
    }
    Some(relative)
}

fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = segment.get(index + 1..index + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

/// A small response with a text body (no body for HEAD, but the true Content-Length).
fn text(method: &Method, status: StatusCode, body: String, record: &LiveRecord) -> Response {
    let length = body.len();
    let body = if *method == Method::HEAD {
        Body::empty()
    } else {
        record.bytes_sent.store(length as u64, Ordering::SeqCst);
        Body::from(body)
    };
    record.completed.store(true, Ordering::SeqCst);
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain;charset=UTF-8")
        .header(header::CONTENT_LENGTH, length)
        .body(body)
        .expect("a status, two headers and a body make a valid response")
}

/// The byte range a `Range` header asks for, judged against a file of `length` bytes.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// No usable single range: serve the whole file.
    Whole,
    /// Serve `start..=end`.
    Part { start: u64, end: u64 },
    /// The range starts at or past the end.
    Unsatisfiable,
}

fn parse_range(header: Option<&str>, length: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|value| value.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // A suffix range: the last `last` bytes.
        let Ok(suffix) = last.parse::<u64>() else {
            return RangeRequest::Whole;
        };
        if suffix == 0 || length == 0 {
            return RangeRequest::Unsatisfiable;
        }
        return RangeRequest::Part {
            start: length.saturating_sub(suffix),
            end: length - 1,
        };
    }
    let Ok(start) = first.parse::<u64>() else {
        return RangeRequest::Whole;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match last.parse::<u64>() {
            Ok(end) if end >= start => end,
            _ => return RangeRequest::Whole,
        }
    };
    if start >= length {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Part {
        start,
        end: end.min(length - 1),
    }
}

async fn serve_file(
    method: &Method,
    full: &Path,
    metadata: std::fs::Metadata,
    range: Option<&str>,
    plan: Plan,
    record: &Arc<LiveRecord>,
) -> Response {
    let length = metadata.len();
    let wanted = if plan.ignore_range {
        RangeRequest::Whole
    } else {
        parse_range(range, length)
    };
    let mut builder = Response::builder().header(header::CONTENT_TYPE, "application/octet-stream");
    if !plan.ignore_range {
        builder = builder.header(header::ACCEPT_RANGES, "bytes");
    }
    if let Ok(modified) = metadata.modified() {
        builder = builder.header(header::LAST_MODIFIED, http_date(modified));
    }
    let (status, start, body_length) = match wanted {
        RangeRequest::Whole => (StatusCode::OK, 0, length),
        RangeRequest::Part { start, end } => {
            builder = builder.header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{length}"),
            );
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeRequest::Unsatisfiable => {
            let mut response = text(
                method,
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range not satisfiable\n".to_string(),
                record,
            );
            let value = HeaderValue::from_str(&format!("bytes */{length}"))
                .expect("a formatted number is a valid header value");
            response.headers_mut().insert(header::CONTENT_RANGE, value);
            return response;
        }
    };
    builder = builder
        .status(status)
        .header(header::CONTENT_LENGTH, plan.announce.unwrap_or(body_length));
    if *method == Method::HEAD {
        record.completed.store(true, Ordering::SeqCst);
        return builder
            .body(Body::empty())
            .expect("a file response head is valid");
    }
    let mut file = match tokio::fs::File::open(full).await {
        Ok(file) => file,
        Err(error) => {
            return text(
                method,
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("opening {}: {error}\n", full.display()),
                record,
            );
        }
    };
    if start > 0
        && let Err(error) = file.seek(io::SeekFrom::Start(start)).await
    {
        return text(
            method,
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("seeking {}: {error}\n", full.display()),
            record,
        );
    }
    if let Some(every) = plan.drip {
        return builder
            .body(drip_body(file, body_length, every, record))
            .expect("a file response is valid");
    }
    let stream = FileBody {
        file,
        remaining: body_length,
        sent: 0,
        close_after: plan.close_after,
        stall: plan.stall,
        finished: false,
        record: Arc::clone(record),
    };
    builder
        .body(Body::from_stream(futures_util::stream::unfold(
            stream,
            FileBody::next_chunk,
        )))
        .expect("a file response is valid")
}

/// Filler bytes in 64 KiB chunks, without Content-Length, until `stop_after` or the client
/// goes away.
fn endless_body(stop_after: u64, record: &Arc<LiveRecord>) -> Response {
    const FILLER: &[u8] = &[b'0'; 64 * 1024];
    let record = Arc::clone(record);
    let stream = futures_util::stream::unfold(0u64, move |sent| {
        let record = Arc::clone(&record);
        async move {
            if sent >= stop_after {
                record.completed.store(true, Ordering::SeqCst);
                return None;
            }
            let length = (stop_after - sent).min(FILLER.len() as u64);
            record.bytes_sent.fetch_add(length, Ordering::SeqCst);
            Some((
                Ok::<_, io::Error>(Bytes::from_static(&FILLER[..length as usize])),
                sent + length,
            ))
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(Body::from_stream(stream))
        .expect("an endless response is valid")
}

/// The file's `length` bytes, one every `every`.
fn drip_body(
    file: tokio::fs::File,
    length: u64,
    every: Duration,
    record: &Arc<LiveRecord>,
) -> Body {
    let record = Arc::clone(record);
    let stream = futures_util::stream::unfold((file, 0u64), move |(mut file, sent)| {
        let record = Arc::clone(&record);
        async move {
            if sent >= length {
                record.completed.store(true, Ordering::SeqCst);
                return None;
            }
            tokio::time::sleep(every).await;
            let mut byte = [0u8; 1];
            match file.read_exact(&mut byte).await {
                Ok(_) => {
                    record.bytes_sent.fetch_add(1, Ordering::SeqCst);
                    Some((Ok(Bytes::copy_from_slice(&byte)), (file, sent + 1)))
                }
                Err(error) => Some((Err(error), (file, length))),
            }
        }
    });
    Body::from_stream(stream)
}

/// The state of one streamed file body.
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    sent: u64,
    close_after: Option<u64>,
    stall: Option<(u64, Duration)>,
    finished: bool,
    record: Arc<LiveRecord>,
}

impl FileBody {
    async fn next_chunk(mut self) -> Option<(io::Result<Bytes>, FileBody)> {
        if self.finished {
            return None;
        }
        if let Some(cut) = self.close_after
            && self.sent >= cut
            && self.remaining > 0
        {
            tokio::time::sleep(FLUSH_BEFORE_CLOSE).await;
            self.finished = true;
            let error = io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "injected fault: connection closed mid-body",
            );
            return Some((Err(error), self));
        }
        if let Some((after, stall)) = self.stall
            && self.sent >= after
        {
            tokio::time::sleep(stall).await;
            self.stall = None;
        }
        if self.remaining == 0 {
            self.finished = true;
            self.record.completed.store(true, Ordering::SeqCst);
            return None;
        }
        let mut limit = self.remaining.min(CHUNK_BYTES);
        if let Some(cut) = self.close_after {
            limit = limit.min(cut - self.sent);
        }
        if let Some((after, _)) = self.stall {
            limit = limit.min(after - self.sent);
        }
        let mut chunk = vec![0u8; limit as usize];
        let read = match self.file.read(&mut chunk).await {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being served",
            )),
            Ok(read) => Ok(read),
            Err(error) => Err(error),
        };
        match read {
            Ok(read) => {
                chunk.truncate(read);
                self.sent += read as u64;
                self.remaining -= read as u64;
                self.record
                    .bytes_sent
                    .fetch_add(read as u64, Ordering::SeqCst);
                // hyper stops polling once Content-Length bytes went out, so the last chunk
                // is where a complete body is known.
                if self.remaining == 0 {
                    self.record.completed.store(true, Ordering::SeqCst);
                }
                Some((Ok(Bytes::from(chunk)), self))
            }
            Err(error) => {
                self.finished = true;
                Some((Err(error), self))
            }
        }
    }
}

/// An Apache-style index page for the directory `full`, requested as `path` (ending in `/`).
async fn directory_index(full: &Path, path: &str) -> io::Result<String> {
    let mut entries = Vec::new();
    let mut reader = tokio::fs::read_dir(full).await?;
    while let Some(entry) = reader.next_entry().await? {
        let metadata = entry.metadata().await?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let modified = metadata.modified().unwrap_or(UNIX_EPOCH);
        entries.push((name, metadata.is_dir(), metadata.len(), modified));
    }
    entries.sort();
    let mut html = String::new();
    html.push_str("<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<html>\n <head>\n");
    html.push_str(&format!(
        "  <title>Index of {path}</title>\n </head>\n <body>\n"
    ));
    html.push_str(&format!("<h1>Index of {path}</h1>\n<pre>"));
    html.push_str("<img src=\"/icons/blank.gif\" alt=\"Icon \"> <a href=\"?C=N;O=D\">Name</a>");
    html.push_str("                    <a href=\"?C=M;O=A\">Last modified</a>");
    html.push_str("      <a href=\"?C=S;O=A\">Size</a>  <a href=\"?C=D;O=A\">Description</a><hr>");
    if path != "/" {
        let parent = match path.trim_end_matches('/').rfind('/') {
            Some(index) => &path[..=index],
            None => "/",
        };
        html.push_str(&format!(
            "<img src=\"/icons/back.gif\" alt=\"[PARENTDIR]\"> <a href=\"{parent}\">Parent Directory</a>                             -   \n"
        ));
    }
    for (name, is_dir, size, modified) in entries {
        let (icon, alt, href, size) = if is_dir {
            ("folder", "[DIR]", format!("{name}/"), "  - ".to_string())
        } else {
            ("unknown", "[   ]", name.clone(), human_size(size))
        };
        let label_width = href.chars().count();
        let padding = " ".repeat(24usize.saturating_sub(label_width).max(1));
        html.push_str(&format!(
            "<img src=\"/icons/{icon}.gif\" alt=\"{alt}\"> <a href=\"{href}\">{href}</a>{padding}{}  {size:>4}  \n",
            listing_date(modified)
        ));
    }
    html.push_str("<hr></pre>\n</body></html>\n");
    Ok(html)
}

/// Sizes as Apache's index prints them: `512`, `4.0K`, `12M`, `1.2G`.
fn human_size(size: u64) -> String {
    const UNITS: [&str; 4] = ["K", "M", "G", "T"];
    if size < 1024 {
        return size.to_string();
    }
    let mut value = size as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{value:.0}{}", UNITS[unit])
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn split_time(time: SystemTime) -> (i64, u32, u32, u64, i64) {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0);
    let days = seconds.div_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    (
        year,
        month,
        day,
        seconds.rem_euclid(86_400) as u64,
        (days + 4).rem_euclid(7),
    )
}

/// `Mon, 22 Feb 2021 01:49:00 GMT`
fn http_date(time: SystemTime) -> String {
    const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, day, seconds, weekday) = split_time(time);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[weekday as usize],
        MONTHS[month as usize - 1],
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// `2021-02-22 01:49`, as in Apache's index pages.
fn listing_date(time: SystemTime) -> String {
    let (year, month, day, seconds, _) = split_time(time);
    format!(
        "{year}-{month:02}-{day:02} {:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_forms_are_judged_against_the_length() {
        assert_eq!(parse_range(None, 10), RangeRequest::Whole);
        assert_eq!(
            parse_range(Some("bytes=4-"), 10),
            RangeRequest::Part { start: 4, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=2-5"), 10),
            RangeRequest::Part { start: 2, end: 5 }
        );
        assert_eq!(
            parse_range(Some("bytes=2-50"), 10),
            RangeRequest::Part { start: 2, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=-3"), 10),
            RangeRequest::Part { start: 7, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=10-"), 10),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=5-2"), 10), RangeRequest::Whole);
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), RangeRequest::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 10), RangeRequest::Whole);
    }

    #[test]
    fn dates_are_formatted_like_apache() {
        let time = UNIX_EPOCH + Duration::from_secs(1_613_958_540);
        assert_eq!(http_date(time), "Mon, 22 Feb 2021 01:49:00 GMT");
        assert_eq!(listing_date(time), "2021-02-22 01:49");
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn request_paths_cannot_leave_the_root() {
        assert_eq!(relative_path("/a/b%20c"), Some(PathBuf::from("a/b c")));
        assert_eq!(relative_path("/a/../b"), None);
        assert_eq!(relative_path("/a/%2e%2e/b"), None);
        assert_eq!(relative_path("/a%2fb"), None);
        assert_eq!(relative_path("/"), Some(PathBuf::new()));
    }
}
