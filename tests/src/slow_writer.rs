//! A file copy that takes its time, as a recorder writes a recording.
//!
//! [`SlowWriter::start`] copies a file in chunks with a pause between them from a background
//! thread, holding the destination open for writing until the last chunk is written, so a test
//! can check what the agent does with a recording in progress while it polls. The process that
//! holds the file open is the test process itself, as `/proc/PID/fd` shows to the agent.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How the writer holds the destination file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Open once (create, truncate, write-only) and keep it open until the last chunk is
    /// written, as a recorder does.
    HoldOpen,
    /// Open in append mode for each chunk and close it after writing: the file is never open
    /// between chunks, so only its growing size and mtime show that it is unfinished.
    ReopenPerChunk,
}

/// How [`SlowWriter::start_with`] writes.
#[derive(Clone, Debug)]
pub struct SlowWriteOptions {
    /// Number of pieces `src` is split into (at least 1).
    pub chunks: usize,
    /// Pause between two chunks.
    pub interval: Duration,
    /// Whether the file stays open between chunks.
    pub mode: OpenMode,
    /// With [`OpenMode::HoldOpen`], how long the file stays open after the last chunk (size and
    /// mtime stable, file still open). Ignored with [`OpenMode::ReopenPerChunk`].
    pub linger: Duration,
}

impl SlowWriteOptions {
    /// `chunks` pieces, `interval` apart, held open, closed right after the last one.
    pub fn new(chunks: usize, interval: Duration) -> Self {
        SlowWriteOptions {
            chunks,
            interval,
            mode: OpenMode::HoldOpen,
            linger: Duration::ZERO,
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    closed_at: Mutex<Option<Instant>>,
    written: AtomicU64,
}

/// A copy in progress; see the [module docs](self).
///
/// When [`SlowWriter::start`] returns, the destination exists and holds the first chunk. The
/// rest follows from a background thread. Dropping a `SlowWriter` before it finishes stops the
/// copy (leaving the file short) and closes the file; [`SlowWriter::abort`] does the same on
/// purpose, like a recorder that crashes.
#[must_use = "dropping a SlowWriter stops the copy"]
#[derive(Debug)]
pub struct SlowWriter {
    dest: PathBuf,
    total: u64,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<io::Result<Instant>>>,
    shared: Arc<Shared>,
}

impl SlowWriter {
    /// Copies `src` to `dest` in `chunks` pieces `interval` apart, holding `dest` open for
    /// writing until the last piece is written and closing it right after.
    ///
    /// The copy takes about `(chunks - 1) * interval`. Panics if `src` cannot be read or `dest`
    /// cannot be created.
    pub fn start(src: &Path, dest: &Path, chunks: usize, interval: Duration) -> SlowWriter {
        SlowWriter::start_with(src, dest, SlowWriteOptions::new(chunks, interval))
    }

    /// Like [`SlowWriter::start`], but opens `dest` for each chunk (appending) and closes it
    /// again ([`OpenMode::ReopenPerChunk`]).
    pub fn start_reopening(
        src: &Path,
        dest: &Path,
        chunks: usize,
        interval: Duration,
    ) -> SlowWriter {
        let options = SlowWriteOptions {
            mode: OpenMode::ReopenPerChunk,
            ..SlowWriteOptions::new(chunks, interval)
        };
        SlowWriter::start_with(src, dest, options)
    }

    /// Starts a copy as `options` say.
    pub fn start_with(src: &Path, dest: &Path, options: SlowWriteOptions) -> SlowWriter {
        assert!(options.chunks >= 1, "a SlowWriter needs at least one chunk");
        let bytes =
            fs::read(src).unwrap_or_else(|err| panic!("cannot read {}: {err}", src.display()));
        let pieces = split(bytes, options.chunks);
        let total = pieces.iter().map(|p| p.len() as u64).sum();
        let shared = Arc::new(Shared::default());

        // The first chunk is written before `start` returns, so the file exists at once.
        let first = open(dest, true, options.mode)
            .unwrap_or_else(|err| panic!("cannot open {} for writing: {err}", dest.display()));
        let mut first = Some(first);
        write_chunk(&mut first, dest, &pieces[0], options.mode, &shared)
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", dest.display()));

        let (stop, stopped) = mpsc::channel();
        let thread_dest = dest.to_path_buf();
        let thread_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("slow-writer".to_owned())
            .spawn(move || {
                run(
                    first,
                    &thread_dest,
                    &pieces[1..],
                    &options,
                    &stopped,
                    &thread_shared,
                )
            })
            .expect("spawn slow-writer thread");

        SlowWriter {
            dest: dest.to_path_buf(),
            total,
            stop: Some(stop),
            thread: Some(thread),
            shared,
        }
    }

    /// Waits until the copy is complete and the file closed, and returns when it was closed.
    /// Panics if writing failed.
    pub fn wait(mut self) -> Instant {
        self.join()
    }

    /// Stops writing now, closes the file (leaving it short unless it was complete) and
    /// returns when it was closed.
    pub fn abort(mut self) -> Instant {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.join()
    }

    /// When the file was closed for the last time, once it has been.
    pub fn closed_at(&self) -> Option<Instant> {
        *self.shared.closed_at.lock().unwrap()
    }

    /// Whether the copy is over and the file closed.
    pub fn is_closed(&self) -> bool {
        self.closed_at().is_some()
    }

    /// Bytes written to the destination so far.
    pub fn bytes_written(&self) -> u64 {
        self.shared.written.load(Ordering::SeqCst)
    }

    /// Size of the complete copy.
    pub fn total_len(&self) -> u64 {
        self.total
    }

    /// The destination file.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    fn join(&mut self) -> Instant {
        let thread = self.thread.take().expect("a SlowWriter is joined once");
        match thread.join() {
            Ok(Ok(closed_at)) => closed_at,
            Ok(Err(err)) => panic!("slow writer to {} failed: {err}", self.dest.display()),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for SlowWriter {
    fn drop(&mut self) {
        // Disconnecting the channel wakes the writer up and makes it stop.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(
    mut file: Option<File>,
    dest: &Path,
    pieces: &[Vec<u8>],
    options: &SlowWriteOptions,
    stopped: &mpsc::Receiver<()>,
    shared: &Shared,
) -> io::Result<Instant> {
    let mut result = Ok(());
    for piece in pieces {
        if pause(stopped, options.interval) {
            break;
        }
        if options.mode == OpenMode::ReopenPerChunk {
            file = Some(open(dest, false, options.mode)?);
        }
        result = write_chunk(&mut file, dest, piece, options.mode, shared);
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() && options.mode == OpenMode::HoldOpen && !options.linger.is_zero() {
        pause(stopped, options.linger);
    }
    drop(file);
    let closed_at = Instant::now();
    *shared.closed_at.lock().unwrap() = Some(closed_at);
    result.map(|()| closed_at)
}

/// Sleeps for `period` unless told to stop; true if told to stop.
fn pause(stopped: &mpsc::Receiver<()>, period: Duration) -> bool {
    !matches!(stopped.recv_timeout(period), Err(RecvTimeoutError::Timeout))
}

fn open(dest: &Path, first: bool, mode: OpenMode) -> io::Result<File> {
    let mut options = OpenOptions::new();
    if first {
        options.write(true).create(true).truncate(true);
    } else {
        debug_assert_eq!(mode, OpenMode::ReopenPerChunk);
        options.append(true);
    }
    options.open(dest)
}

/// Writes `piece`; with [`OpenMode::ReopenPerChunk`] also closes the file.
fn write_chunk(
    file: &mut Option<File>,
    dest: &Path,
    piece: &[u8],
    mode: OpenMode,
    shared: &Shared,
) -> io::Result<()> {
    let handle = file
        .as_mut()
        .ok_or_else(|| io::Error::other(format!("{} is not open", dest.display())))?;
    handle.write_all(piece)?;
    handle.flush()?;
    shared
        .written
        .fetch_add(piece.len() as u64, Ordering::SeqCst);
    if mode == OpenMode::ReopenPerChunk {
        drop(file.take());
    }
    Ok(())
}

/// Splits `bytes` into `chunks` pieces of nearly equal length (some empty if there are more
/// chunks than bytes).
fn split(bytes: Vec<u8>, chunks: usize) -> Vec<Vec<u8>> {
    let len = bytes.len();
    (0..chunks)
        .map(|i| bytes[i * len / chunks..(i + 1) * len / chunks].to_vec())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn splits_into_nearly_equal_pieces() {
        let pieces = split((0..10).collect(), 3);
        assert_eq!(pieces, [vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8, 9]]);
        assert_eq!(split(vec![1, 2], 4).concat(), [1, 2]);
    }
}
