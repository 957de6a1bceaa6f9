//! Where a download's bytes go: the streaming pipeline of one transfer.
//!
//! Every chunk received is handed, reference-counted, to a hashing thread and a disk thread,
//! so receiving, hashing and writing overlap. A release signature whose digest algorithm is one
//! the hashing thread computes anyway (SHA-512 for current Apache releases) is checked from a
//! copy of that running hash after the last byte, so signed downloads hash each byte once;
//! any other signature gets a verifier thread hashing the same chunks, in the same read.
//!
//! The sink knows nothing of mirrors or retries; [`super`] drives it: [`Sink::write`] per
//! chunk, [`Sink::settle`] after a failed attempt, then [`Sink::rehash_from_disk`] to resume or
//! [`Sink::restart`] when the server ignored the range, and [`Sink::finish`] for the file, its
//! size, digests and signature verdict.

use std::sync::Arc;

use tempfile::NamedTempFile;
use url::Url;

use super::FetchError;
use crate::digest::{Running, Sha256};
use crate::redact::redact_url;
use crate::signature::{Keyring, PendingSignature};
use crate::verify::{self, Algorithm, MultiHasher};

/// Write buffer between the network and the temp file: one write per 4 MiB.
const WRITE_BUFFER: usize = 4 << 20;

/// The temp file a download streams into.
///
/// The network task only receives: every chunk goes, reference-counted, to a hashing thread
/// and to a disk thread, so receiving, hashing and writing one download all overlap. The disk
/// thread writes whole aligned blocks with `O_DIRECT` where the file system allows it: the
/// data then goes from imgforge's buffer to the device without a page-cache copy and without
/// the kernel's writeback work, which on these machines costs more CPU than hashing does.
/// Elsewhere it falls back to buffered writes with early writeback.
pub(super) struct Sink {
    temp: NamedTempFile,
    hasher: Worker<Digests>,
    writer: Worker<u64>,
    /// A signature the hashing thread checks from its own state at the end.
    shared: Option<Arc<PendingSignature>>,
    /// Any other signature: the verifier reading the same chunks, and what it needs to start
    /// again when the transfer restarts.
    verifier: Option<(Worker<SignatureOutcome>, Arc<PendingSignature>)>,
    /// Bytes accepted so far; a resumed transfer starts here.
    written: u64,
    url: String,
    /// The published checksum's algorithm, for a fresh hashing thread.
    algorithm: Algorithm,
}

/// What the hashing and disk threads are told.
enum Message {
    Data(bytes::Bytes),
    /// Forget everything received so far (the transfer restarts from byte 0).
    Reset,
    /// Disk thread only: write everything buffered, continue with buffered writes after it,
    /// and answer with the file's size.
    Settle(tokio::sync::oneshot::Sender<std::io::Result<u64>>),
}

/// How a pipeline thread stopped before it was told to finish.
enum Stopped<T> {
    /// It returned a result early: for the signature verifier, its verdict (the cause).
    Finished(T),
    /// It failed.
    Failed(std::io::Error),
}

/// A blocking-pool thread consuming [`Message`]s and producing a `T` once the sender is dropped.
struct Worker<T> {
    sender: tokio::sync::mpsc::Sender<Message>,
    handle: tokio::task::JoinHandle<std::io::Result<T>>,
}

/// Chunks in flight between the network task and each thread.
const QUEUE: usize = 16;
/// Block alignment for direct I/O; a multiple of every common logical block size.
const DIRECT_ALIGN: usize = 4096;

impl<T: Send + 'static> Worker<T> {
    fn start(
        work: impl FnOnce(tokio::sync::mpsc::Receiver<Message>) -> std::io::Result<T> + Send + 'static,
    ) -> Self {
        let (sender, receiver) = tokio::sync::mpsc::channel(QUEUE);
        Worker {
            sender,
            handle: tokio::task::spawn_blocking(move || work(receiver)),
        }
    }

    /// Send `message`; if the thread has stopped, return what it stopped with.
    async fn send(&mut self, message: Message) -> Result<(), Stopped<T>> {
        if self.sender.send(message).await.is_ok() {
            return Ok(());
        }
        Err(match (&mut self.handle).await {
            Ok(Ok(value)) => Stopped::Finished(value),
            Ok(Err(error)) => Stopped::Failed(error),
            Err(join) => Stopped::Failed(std::io::Error::other(join)),
        })
    }

    async fn finish(self) -> std::io::Result<T> {
        drop(self.sender);
        self.handle.await.map_err(std::io::Error::other)?
    }
}

/// The keyring and detached signature one download is checked against.
#[derive(Clone)]
pub(super) struct SignedBy {
    /// The keys trusted to sign.
    pub(super) keyring: Arc<Keyring>,
    /// The detached signature, armored or binary.
    pub(super) signature: Arc<Vec<u8>>,
}

/// What the verifier thread concludes.
pub(super) type SignatureOutcome =
    Result<crate::signature::SignatureCheck, crate::signature::SignatureError>;

/// A verifier thread hashing the chunks it will be sent for `pending`, in a pass of its own.
fn start_verifier(pending: &Arc<PendingSignature>) -> Worker<SignatureOutcome> {
    let pending = Arc::clone(pending);
    Worker::start(move |receiver| {
        let content = ChunkReader {
            receiver,
            current: bytes::Bytes::new(),
        };
        Ok(pending.verify_reader(content))
    })
}

/// The chunks sent to a worker, read as one byte stream (the verifier hashes it as it reads).
struct ChunkReader {
    receiver: tokio::sync::mpsc::Receiver<Message>,
    current: bytes::Bytes,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.receiver.blocking_recv() {
                Some(Message::Data(chunk)) => self.current = chunk,
                // The verifier is replaced on a restart rather than told about it.
                Some(Message::Reset) => {
                    return Err(std::io::Error::other("the transfer restarted"));
                }
                Some(Message::Settle(_)) => {}
                None => return Ok(0),
            }
        }
        let length = buffer.len().min(self.current.len());
        buffer[..length].copy_from_slice(&self.current[..length]);
        let _ = self.current.split_to(length);
        Ok(length)
    }
}

impl Sink {
    pub(super) fn new(
        temp: NamedTempFile,
        url: &Url,
        algorithm: Algorithm,
    ) -> Result<Self, FetchError> {
        let write_error = |source| FetchError::Write {
            url: redact_url(url),
            path: temp.path().display().to_string(),
            source,
        };
        let (file, direct) = match open_direct(temp.path()) {
            Some(file) => (file, true),
            None => (temp.as_file().try_clone().map_err(write_error)?, false),
        };
        let writer = Worker::start(move |receiver| DiskWriter::new(file, direct).run(receiver));
        let hasher = start_hasher(algorithm, None);
        Ok(Sink {
            temp,
            hasher,
            writer,
            shared: None,
            verifier: None,
            written: 0,
            url: redact_url(url),
            algorithm,
        })
    }

    /// Check the signature over everything written from now on (called before any byte).
    /// Whatever can be checked before the content (the signature's form, its signer in the
    /// keyring, revocations, the subkey binding) is checked now, and refused here.
    pub(super) fn verify_with(&mut self, signed_by: SignedBy) -> Result<(), FetchError> {
        let pending = PendingSignature::new(
            &signed_by.keyring,
            &signed_by.signature,
            &subject(&self.url),
        )
        .map_err(|source| FetchError::Signature {
            url: self.url.clone(),
            source: Box::new(source),
        })?;
        let pending = Arc::new(pending);
        let shared = pending
            .shares()
            .is_some_and(|algorithm| hashed_anyway(self.algorithm).contains(&algorithm));
        if shared {
            // No byte has been sent to the hashing thread yet: a fresh one loses nothing.
            self.shared = Some(pending);
            self.hasher = start_hasher(self.algorithm, self.shared.clone());
        } else {
            self.verifier = Some((start_verifier(&pending), pending));
        }
        Ok(())
    }

    fn io_error(&self, source: std::io::Error) -> FetchError {
        FetchError::Write {
            url: self.url.clone(),
            path: self.temp.path().display().to_string(),
            source,
        }
    }

    async fn send(&mut self, message: impl Fn() -> Message) -> Result<(), FetchError> {
        // The verifier first: when it has stopped, its verdict is the cause of everything
        // else (a signature refused before the body was read must be reported as such, never
        // as the "stopped early" consequence the other threads would see).
        if let Some((verifier, _)) = &mut self.verifier {
            verifier
                .send(message())
                .await
                .map_err(|stopped| self.verifier_stopped(stopped))?;
        }
        self.writer
            .send(message())
            .await
            .map_err(|stopped| self.thread_stopped(stopped))?;
        self.hasher
            .send(message())
            .await
            .map_err(|stopped| self.thread_stopped(stopped))
    }

    fn verifier_stopped(&self, stopped: Stopped<SignatureOutcome>) -> FetchError {
        match stopped {
            Stopped::Finished(Err(source)) => FetchError::Signature {
                url: self.url.clone(),
                source: Box::new(source),
            },
            Stopped::Finished(Ok(_)) => self.io_error(std::io::Error::other(
                "the signature check ended before the download did",
            )),
            Stopped::Failed(error) => self.io_error(error),
        }
    }

    fn thread_stopped<T>(&self, stopped: Stopped<T>) -> FetchError {
        self.io_error(match stopped {
            Stopped::Finished(_) => std::io::Error::other("a download thread stopped early"),
            Stopped::Failed(error) => error,
        })
    }

    /// After a failed attempt: make the disk thread write everything it holds, so what a
    /// resume continues from is exactly what is on disk.
    pub(super) async fn settle(&mut self) -> Result<(), FetchError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.writer
            .send(Message::Settle(reply))
            .await
            .map_err(|stopped| self.thread_stopped(stopped))?;
        let size = answer
            .await
            .map_err(|_| self.io_error(std::io::Error::other("the disk thread stopped")))?
            .map_err(|source| self.io_error(source))?;
        self.written = size;
        Ok(())
    }

    /// Before a resumed transfer continues: start the hash (and the signature check) again
    /// over the bytes of the `.partial` file as they are on disk now, rather than trusting
    /// the state built from what was received.
    pub(super) async fn rehash_from_disk(&mut self) -> Result<(), FetchError> {
        use tokio::io::AsyncReadExt;
        // Dropping a worker closes its channel; its thread ends on its own.
        self.hasher = start_hasher(self.algorithm, self.shared.clone());
        if let Some((verifier, pending)) = self.verifier.take() {
            drop(verifier);
            self.verifier = Some((start_verifier(&pending), pending));
        }
        let mut file = tokio::fs::File::open(self.temp.path())
            .await
            .map_err(|source| self.io_error(source))?;
        let mut remaining = self.written;
        while remaining > 0 {
            let mut buffer = vec![0u8; remaining.min(WRITE_BUFFER as u64) as usize];
            let count = file
                .read(&mut buffer)
                .await
                .map_err(|source| self.io_error(source))?;
            if count == 0 {
                return Err(self.io_error(std::io::Error::other(format!(
                    "the partial download holds fewer bytes on disk than the {} received",
                    self.written
                ))));
            }
            buffer.truncate(count);
            let chunk = bytes::Bytes::from(buffer);
            if let Some((verifier, _)) = &mut self.verifier {
                verifier
                    .send(Message::Data(chunk.clone()))
                    .await
                    .map_err(|stopped| self.verifier_stopped(stopped))?;
            }
            self.hasher
                .send(Message::Data(chunk))
                .await
                .map_err(|stopped| self.thread_stopped(stopped))?;
            remaining -= count as u64;
        }
        Ok(())
    }

    pub(super) async fn write(&mut self, chunk: bytes::Bytes) -> Result<(), FetchError> {
        let length = chunk.len() as u64;
        self.send(|| Message::Data(chunk.clone())).await?;
        self.written += length;
        Ok(())
    }

    /// Discard everything received so far: the server ignored the range request.
    pub(super) async fn restart(&mut self) -> Result<(), FetchError> {
        // A verifier cannot rewind: the old one is dropped (its reader ends) and a new one
        // reads the transfer from byte 0.
        if let Some((verifier, pending)) = self.verifier.take() {
            drop(verifier);
            self.verifier = Some((start_verifier(&pending), pending));
        }
        self.writer
            .send(Message::Reset)
            .await
            .map_err(|stopped| self.thread_stopped(stopped))?;
        self.hasher
            .send(Message::Reset)
            .await
            .map_err(|stopped| self.thread_stopped(stopped))?;
        self.written = 0;
        Ok(())
    }

    /// Bytes accepted so far: where a resumed transfer continues.
    pub(super) fn written(&self) -> u64 {
        self.written
    }

    /// Wait for every thread; the temp file with everything written, and what was computed.
    pub(super) async fn finish(self) -> Result<Written, FetchError> {
        let Sink {
            temp,
            hasher,
            writer,
            verifier,
            url,
            ..
        } = self;
        let outcome = match writer.finish().await {
            Ok(size) => hasher.finish().await.map(|hashes| (size, hashes)),
            Err(error) => Err(error),
        };
        let verified = match verifier {
            Some((verifier, _)) => match verifier.finish().await {
                Ok(check) => Some(check),
                Err(source) => {
                    return Err(FetchError::Write {
                        url,
                        path: temp.path().display().to_string(),
                        source,
                    });
                }
            },
            None => None,
        };
        match outcome {
            Ok((size, (hashes, sha256, shared))) => Ok(Written {
                temp,
                size,
                hashes,
                sha256,
                signature: verified.or(shared),
            }),
            Err(source) => Err(FetchError::Write {
                url,
                path: temp.path().display().to_string(),
                source,
            }),
        }
    }
}

/// A finished transfer: the temp file and what the pipeline computed over its bytes.
pub(super) struct Written {
    /// The file, complete.
    pub(super) temp: NamedTempFile,
    /// Its size in bytes.
    pub(super) size: u64,
    /// SHA-512 and the published checksum's algorithm.
    pub(super) hashes: verify::Hashes,
    /// The SHA-256 the cache index records (hex).
    pub(super) sha256: String,
    /// The signature verdict, when the release is signed.
    pub(super) signature: Option<SignatureOutcome>,
}

/// What the hashing thread computes: SHA-512 and the checksum's algorithm, the SHA-256 the
/// cache index records for verify-on-use, and the verdict on a signature checked from one of
/// them.
type Digests = (verify::Hashes, String, Option<SignatureOutcome>);

/// The algorithms the hashing thread computes for a checksum of `algorithm`: SHA-512 (the
/// cache key), the checksum's own and SHA-256 (the cache index's).
fn hashed_anyway(algorithm: Algorithm) -> [Algorithm; 3] {
    [Algorithm::Sha512, algorithm, Algorithm::Sha256]
}

/// The hashing thread of one download; with `signature`, it checks that signature from a copy
/// of its own state after the last byte (the caller made sure the algorithm is one it has).
fn start_hasher(algorithm: Algorithm, signature: Option<Arc<PendingSignature>>) -> Worker<Digests> {
    Worker::start(move |mut receiver| {
        let fresh = || {
            let sha256 = (algorithm != Algorithm::Sha256).then(Sha256::new);
            (MultiHasher::new(algorithm), sha256)
        };
        let (mut hasher, mut sha256) = fresh();
        while let Some(message) = receiver.blocking_recv() {
            match message {
                Message::Data(chunk) => {
                    hasher.update(&chunk);
                    if let Some(sha256) = &mut sha256 {
                        sha256.update(&chunk);
                    }
                }
                Message::Reset => (hasher, sha256) = fresh(),
                Message::Settle(_) => {}
            }
        }
        let verdict = signature.and_then(|pending| {
            let algorithm = pending.shares()?;
            let state = match &sha256 {
                Some(sha256) if algorithm == Algorithm::Sha256 => {
                    Some(Running::Sha256(sha256.clone()))
                }
                _ => hasher.state(algorithm),
            }?;
            Some(pending.verify_hashed(state))
        });
        let hashes = hasher.finish();
        let sha256 = match sha256 {
            Some(sha256) => hex::encode(sha256.finish()),
            None => hashes.extra.hex(),
        };
        Ok((hashes, sha256, verdict))
    })
}

/// How a download is named in signature errors: its URL's file path.
fn subject(url: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(url)
}

/// Open `path` for direct I/O, or `None` where the file system does not support it.
fn open_direct(path: &std::path::Path) -> Option<std::fs::File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        None
    }
}

/// The disk thread's state: the file and a block-aligned buffer.
struct DiskWriter {
    file: std::fs::File,
    direct: bool,
    /// Backing storage; `start..start + WRITE_BUFFER` of it is the aligned buffer.
    storage: Vec<u8>,
    start: usize,
    filled: usize,
    /// Bytes already written to the file.
    flushed: u64,
}

impl DiskWriter {
    fn new(file: std::fs::File, direct: bool) -> Self {
        let storage = vec![0u8; WRITE_BUFFER + DIRECT_ALIGN];
        // Aligning a sub-slice of a plain Vec keeps this free of unsafe allocation code.
        let start = storage
            .as_ptr()
            .align_offset(DIRECT_ALIGN)
            .min(DIRECT_ALIGN);
        DiskWriter {
            file,
            direct,
            storage,
            start,
            filled: 0,
            flushed: 0,
        }
    }

    /// Write every chunk received; return the file's final size.
    fn run(mut self, mut receiver: tokio::sync::mpsc::Receiver<Message>) -> std::io::Result<u64> {
        while let Some(message) = receiver.blocking_recv() {
            match message {
                Message::Data(chunk) => self.accept(&chunk)?,
                Message::Reset => self.reset()?,
                Message::Settle(reply) => {
                    let settled = self.settle();
                    let failed = settled.as_ref().err().map(|error| error.kind());
                    let _ = reply.send(settled);
                    if let Some(kind) = failed {
                        return Err(std::io::Error::new(
                            kind,
                            "cannot write the partial download",
                        ));
                    }
                }
            }
        }
        self.finish()
    }

    fn accept(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let room = WRITE_BUFFER - self.filled;
            let take = room.min(data.len());
            let at = self.start + self.filled;
            self.storage[at..at + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled == WRITE_BUFFER {
                self.flush_full()?;
            }
        }
        Ok(())
    }

    /// Write the full buffer at the current file offset.
    fn flush_full(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let block = &self.storage[self.start..self.start + self.filled];
        self.file.write_all_at(block, self.flushed)?;
        if !self.direct {
            start_writeback(&self.file, self.flushed, self.filled as u64);
        }
        self.flushed += self.filled as u64;
        self.filled = 0;
        Ok(())
    }

    /// Write everything buffered and continue after it with buffered writes (direct I/O
    /// needs aligned offsets, which a partial download's end rarely is); the file's size.
    fn settle(&mut self) -> std::io::Result<u64> {
        let size = self.write_tail()?;
        if self.direct {
            clear_direct(&self.file)?;
            self.direct = false;
        }
        self.flushed = size;
        self.filled = 0;
        Ok(size)
    }

    fn reset(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.filled = 0;
        self.flushed = 0;
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<u64> {
        self.write_tail()
    }

    /// Write the buffered tail at the end of the file; the file's size.
    fn write_tail(&mut self) -> std::io::Result<u64> {
        use std::os::unix::fs::FileExt;
        let size = self.flushed + self.filled as u64;
        if self.filled > 0 {
            // Direct I/O writes whole blocks: pad the tail with zeros, then cut the file back.
            let length = if self.direct {
                self.filled.next_multiple_of(DIRECT_ALIGN)
            } else {
                self.filled
            };
            self.storage[self.start + self.filled..self.start + length].fill(0);
            self.file
                .write_all_at(&self.storage[self.start..self.start + length], self.flushed)?;
            if length != self.filled {
                self.file.set_len(size)?;
            }
        }
        Ok(size)
    }
}

/// Turn direct I/O off on `file`, so writes may start at any offset.
fn clear_direct(file: &std::fs::File) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor belongs to `file`, which is open for both calls; F_GETFL and
        // F_SETFL only read and set the descriptor's status flags.
        let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
        if flags < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: as above.
        let result =
            unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_DIRECT) };
        if result < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
    Ok(())
}

/// Ask the kernel to start writing a range to disk without waiting, so the fsync before the
/// commit waits only for the tail rather than the whole file (buffered fallback only).
fn start_writeback(file: &std::fs::File, offset: u64, length: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(length)) = (i64::try_from(offset), i64::try_from(length)) else {
            return;
        };
        // SAFETY: the descriptor belongs to `file`, which is open for the whole call.
        let result = unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                offset,
                length,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        if result != 0 {
            // Only an optimisation: the fsync before the commit still makes the file durable.
            tracing::debug!(
                "sync_file_range failed: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, length);
}

#[cfg(test)]
mod tests {
    use pgp::composed::{
        ArmorOptions, DetachedSignature, EncryptionCaps, KeyType, SecretKeyParamsBuilder,
        SignedSecretKey,
    };
    use pgp::crypto::hash::HashAlgorithm;
    use pgp::types::Password;
    use sha2::Digest as _;

    use super::*;
    use crate::signature::ContentHash;

    /// Bytes whose every position matters (a period prime to every block size).
    fn content(length: usize) -> Vec<u8> {
        (0..length).map(|index| (index % 251) as u8).collect()
    }

    fn sink_in(dir: &std::path::Path, algorithm: Algorithm) -> Sink {
        let temp = NamedTempFile::new_in(dir).expect("temp file");
        let url = Url::parse("https://mirror.example/dist/spark.tgz").expect("url");
        Sink::new(temp, &url, algorithm).expect("sink")
    }

    async fn feed(sink: &mut Sink, bytes: &[u8], chunk: usize) {
        for piece in bytes.chunks(chunk.max(1)) {
            sink.write(bytes::Bytes::copy_from_slice(piece))
                .await
                .expect("write");
        }
    }

    /// The file on disk, its size and every digest match `bytes`.
    /// A first attempt writes `first`; then a byte of it changes on disk before the resume
    /// re-hashes the file. Returns the bytes as they are on disk.
    async fn first_attempt_then_tamper(sink: &mut Sink, first: &[u8]) -> Vec<u8> {
        feed(sink, first, 10_000).await;
        sink.settle().await.expect("settle");
        let mut on_disk = first.to_vec();
        on_disk[10] ^= 0xff;
        std::fs::write(sink.temp.path(), &on_disk).expect("tamper");
        sink.rehash_from_disk().await.expect("rehash");
        on_disk
    }

    fn assert_written(written: &Written, bytes: &[u8]) {
        let on_disk = std::fs::read(written.temp.path()).expect("read back");
        assert_eq!(on_disk.len(), bytes.len());
        assert!(on_disk == bytes, "the file differs from what was sent");
        assert_eq!(written.size, bytes.len() as u64);
        assert_eq!(
            written.hashes.sha512.hex(),
            hex::encode(sha2::Sha512::digest(bytes))
        );
        assert_eq!(written.sha256, hex::encode(sha2::Sha256::digest(bytes)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bytes_reach_the_file_and_the_hashes_whatever_the_sizes() {
        let dir = tempfile::tempdir().expect("temp dir");
        // length, chunk size, the published checksum's algorithm
        let cases = [
            (0, 1024, Algorithm::Sha512),
            (1, 1, Algorithm::Sha512),
            (DIRECT_ALIGN - 1, 1000, Algorithm::Sha256),
            (DIRECT_ALIGN, DIRECT_ALIGN, Algorithm::Sha512),
            (WRITE_BUFFER, 65_536, Algorithm::Sha256),
            (WRITE_BUFFER + 1, 65_543, Algorithm::Sha512),
            (2 * WRITE_BUFFER + 12_345, 1 << 20, Algorithm::Sha1),
        ];
        for (length, chunk, algorithm) in cases {
            let bytes = content(length);
            let mut sink = sink_in(dir.path(), algorithm);
            feed(&mut sink, &bytes, chunk).await;
            assert_eq!(sink.written(), length as u64);
            let written = sink.finish().await.expect("finish");
            assert_written(&written, &bytes);
            assert_eq!(written.hashes.extra.algorithm(), algorithm);
            assert!(written.signature.is_none());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restart_forgets_what_came_before() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut sink = sink_in(dir.path(), Algorithm::Sha512);
        feed(&mut sink, &vec![7u8; WRITE_BUFFER + 100], 1 << 16).await;
        sink.restart().await.expect("restart");
        assert_eq!(sink.written(), 0);
        let bytes = content(WRITE_BUFFER / 2 + 3);
        feed(&mut sink, &bytes, 4096).await;
        assert_written(&sink.finish().await.expect("finish"), &bytes);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_resume_hashes_what_is_on_disk_not_what_was_received() {
        let dir = tempfile::tempdir().expect("temp dir");
        let bytes = content(WRITE_BUFFER + 5000);
        let (first, rest) = bytes.split_at(WRITE_BUFFER / 2 + 77);
        let mut sink = sink_in(dir.path(), Algorithm::Sha512);
        feed(&mut sink, first, 10_000).await;
        sink.settle().await.expect("settle");
        assert_eq!(sink.written(), first.len() as u64);
        sink.rehash_from_disk().await.expect("rehash");
        feed(&mut sink, rest, 10_000).await;
        assert_written(&sink.finish().await.expect("finish"), &bytes);

        // A byte changed on disk between the attempts is in the digest, as it is in the file.
        let mut sink = sink_in(dir.path(), Algorithm::Sha512);
        let mut on_disk = first_attempt_then_tamper(&mut sink, first).await;
        feed(&mut sink, rest, 10_000).await;
        on_disk.extend_from_slice(rest);
        assert_written(&sink.finish().await.expect("finish"), &on_disk);
    }

    /// A release manager's key (an Ed25519 primary key that signs) and its keyring.
    fn release_key() -> (SignedSecretKey, Arc<Keyring>) {
        let mut params = SecretKeyParamsBuilder::default();
        params
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(true)
            .can_encrypt(EncryptionCaps::None)
            .primary_user_id("Release Manager <rm@apache.org>".into());
        let key = params
            .build()
            .expect("key params")
            .generate(rand::thread_rng())
            .expect("key");
        let keys = key
            .to_public_key()
            .to_armored_string(ArmorOptions::default())
            .expect("armored key");
        let keyring = Arc::new(Keyring::parse_keys_file(&keys).expect("keyring"));
        (key, keyring)
    }

    /// An armored binary-mode signature over `bytes` with `hash`.
    fn sign(key: &SignedSecretKey, hash: HashAlgorithm, bytes: &[u8]) -> Vec<u8> {
        DetachedSignature::sign_binary_data(
            rand::thread_rng(),
            &key.primary_key,
            &Password::empty(),
            hash,
            bytes,
        )
        .expect("sign")
        .to_armored_bytes(ArmorOptions::default())
        .expect("armored signature")
    }

    /// Stream `bytes` through a sink checking `signature`; the verdict, and whether a verifier
    /// thread (a second hash) was started for it.
    async fn verdict(
        keyring: &Arc<Keyring>,
        signature: Vec<u8>,
        checksum: Algorithm,
        bytes: &[u8],
    ) -> (SignatureOutcome, bool) {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut sink = sink_in(dir.path(), checksum);
        sink.verify_with(SignedBy {
            keyring: Arc::clone(keyring),
            signature: Arc::new(signature),
        })
        .expect("signature inputs");
        let second_hash = sink.verifier.is_some();
        feed(&mut sink, bytes, 1 << 16).await;
        let written = sink.finish().await.expect("finish");
        assert_written(&written, bytes);
        (written.signature.expect("a verdict"), second_hash)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_signature_is_checked_over_the_streamed_bytes() {
        let (key, keyring) = release_key();
        let bytes = content(WRITE_BUFFER + 999);
        let signature = sign(&key, HashAlgorithm::Sha512, &bytes);
        let signed_by = SignedBy {
            keyring,
            signature: Arc::new(signature),
        };
        let dir = tempfile::tempdir().expect("temp dir");

        // Good: the verdict names the signer, also after a restart mid-transfer.
        let mut sink = sink_in(dir.path(), Algorithm::Sha512);
        sink.verify_with(signed_by.clone())
            .expect("signature inputs");
        feed(&mut sink, &bytes[..5000], 1000).await;
        sink.restart().await.expect("restart");
        feed(&mut sink, &bytes, 1 << 16).await;
        let written = sink.finish().await.expect("finish");
        assert_written(&written, &bytes);
        let check = written
            .signature
            .expect("a verdict")
            .expect("a good signature");
        assert_eq!(check.signer, "Release Manager <rm@apache.org>");

        // Bad: one flipped byte, and the verdict is an error, not a good signature.
        let mut tampered = bytes.clone();
        tampered[WRITE_BUFFER] ^= 1;
        let mut sink = sink_in(dir.path(), Algorithm::Sha512);
        sink.verify_with(signed_by).expect("signature inputs");
        feed(&mut sink, &tampered, 1 << 16).await;
        let verdict = sink.finish().await.expect("finish").signature;
        assert!(matches!(verdict, Some(Err(_))), "{verdict:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sha512_signature_is_checked_from_the_checksum_hash_without_a_second_hash() {
        let (key, keyring) = release_key();
        let bytes = content(2 * WRITE_BUFFER + 4321);
        let signature = sign(&key, HashAlgorithm::Sha512, &bytes);

        let (outcome, second_hash) =
            verdict(&keyring, signature.clone(), Algorithm::Sha512, &bytes).await;
        let check = outcome.expect("a good signature");
        assert!(!second_hash, "no verifier thread hashes the bytes again");
        assert_eq!(check.content_hash, ContentHash::Shared(Algorithm::Sha512));
        assert_eq!(check.signer, "Release Manager <rm@apache.org>");

        // One flipped byte: refused from the shared state, as rPGP's own pass refuses it.
        let mut tampered = bytes.clone();
        tampered[12_345] ^= 0x20;
        let (outcome, second_hash) =
            verdict(&keyring, signature.clone(), Algorithm::Sha512, &tampered).await;
        assert!(!second_hash);
        let error = outcome.expect_err("a bad signature");
        assert!(
            matches!(error, crate::signature::SignatureError::BadSignature { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("BAD signature"), "{error}");
        let own_pass =
            PendingSignature::new(&keyring, &signature, std::path::Path::new("spark.tgz"))
                .expect("signature inputs")
                .verify_reader(tampered.as_slice());
        assert!(own_pass.is_err(), "rPGP agrees: {own_pass:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn signatures_in_other_algorithms_verify_in_the_same_read() {
        let (key, keyring) = release_key();
        let bytes = content(WRITE_BUFFER + 77);

        // SHA-256 over a SHA-512 checksum: the cache index's SHA-256 is hashed anyway.
        let signature = sign(&key, HashAlgorithm::Sha256, &bytes);
        let (outcome, second_hash) = verdict(&keyring, signature, Algorithm::Sha512, &bytes).await;
        let check = outcome.expect("a good SHA-256 signature");
        assert!(!second_hash);
        assert_eq!(check.content_hash, ContentHash::Shared(Algorithm::Sha256));

        // SHA-384, which nothing else hashes: a verifier thread hashes the same chunks.
        let signature = sign(&key, HashAlgorithm::Sha384, &bytes);
        let (outcome, second_hash) =
            verdict(&keyring, signature.clone(), Algorithm::Sha512, &bytes).await;
        let check = outcome.expect("a good SHA-384 signature");
        assert!(second_hash);
        assert_eq!(check.content_hash, ContentHash::OwnPass);
        // …and shares the checksum's state when the checksum is SHA-384 too.
        let (outcome, second_hash) = verdict(&keyring, signature, Algorithm::Sha384, &bytes).await;
        assert!(!second_hash);
        assert_eq!(
            outcome.expect("a good signature").content_hash,
            ContentHash::Shared(Algorithm::Sha384)
        );

        // Text mode hashes canonical line endings, not the bytes: never the shared state.
        let text = b"line one\nline two\n".repeat(1000);
        let signature = DetachedSignature::sign_text_data(
            rand::thread_rng(),
            &key.primary_key,
            &Password::empty(),
            HashAlgorithm::Sha512,
            text.as_slice(),
        )
        .expect("sign")
        .to_armored_bytes(ArmorOptions::default())
        .expect("armored signature");
        let (outcome, second_hash) = verdict(&keyring, signature, Algorithm::Sha512, &text).await;
        assert!(second_hash);
        assert_eq!(
            outcome.expect("a good text signature").content_hash,
            ContentHash::OwnPass
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_resumed_download_is_checked_from_the_hash_of_the_whole_file() {
        let (key, keyring) = release_key();
        let bytes = content(WRITE_BUFFER + 5000);
        let signature = Arc::new(sign(&key, HashAlgorithm::Sha512, &bytes));
        let (first, rest) = bytes.split_at(WRITE_BUFFER / 2 + 77);
        let dir = tempfile::tempdir().expect("temp dir");

        let mut sink = sink_in(dir.path(), Algorithm::Sha512);
        sink.verify_with(SignedBy {
            keyring: Arc::clone(&keyring),
            signature: Arc::clone(&signature),
        })
        .expect("signature inputs");
        feed(&mut sink, first, 10_000).await;
        sink.settle().await.expect("settle");
        sink.rehash_from_disk().await.expect("rehash");
        feed(&mut sink, rest, 10_000).await;
        assert!(sink.verifier.is_none());
        let written = sink.finish().await.expect("finish");
        assert_written(&written, &bytes);
        let check = written.signature.expect("a verdict").expect("good");
        assert_eq!(check.content_hash, ContentHash::Shared(Algorithm::Sha512));

        // A byte changed on disk between the attempts fails the signature too.
        let mut sink = sink_in(dir.path(), Algorithm::Sha512);
        sink.verify_with(SignedBy { keyring, signature })
            .expect("signature inputs");
        first_attempt_then_tamper(&mut sink, first).await;
        feed(&mut sink, rest, 10_000).await;
        let verdict = sink.finish().await.expect("finish").signature;
        assert!(matches!(verdict, Some(Err(_))), "{verdict:?}");
    }
}
