//! Test support for h264create.
//!
//! `h264-testkit` is a library for the integration tests of `h264-agent`, the controller and
//! fleetctl. It is never published and never shipped. Everything here uses the real
//! `ffmpeg` and `ffprobe` from `PATH`: tests that need media call [`ffmpeg::require_ffmpeg`]
//! (the fixture functions do it for them) and fail loudly when FFmpeg is missing instead of
//! being skipped.
//!
//! - [`ffmpeg`]: checks that `ffmpeg`/`ffprobe` exist and runs them with readable failures.
//! - [`captions`]: media with real CEA-608 captions (CC1, CC3, in the video or in a `c608`
//!   track) made at test time, and their cues read back.
//! - [`ccextractor`]: a CCExtractor stand-in that behaves like the real program (reads MPEG-TS
//!   and PS, finds nothing in MP4 and WTV), and an RCWT `.bin` reader.
//! - [`exposition`]: a strict reader of the Prometheus text exposition format.
//! - [`fixtures`]: small, fast media made with FFmpeg's `lavfi` sources (interlaced MPEG-2 in
//!   TS, WTV, H.264 in MP4 and TS, a truncated TS, a zero-byte file, a text file named like a
//!   video) and a per-process cache, [`fixtures::Fixtures`], that makes each one once and copies
//!   it under any file name.
//! - [`recordings`]: recordings as real recorders write them, made with FFmpeg and byte edits
//!   (a cut last packet, duplicated audio timestamps, a data stream, a two-programme multiplex
//!   on two clocks, a fragmented MP4 whose header claims more, stray timestamps, scrambled,
//!   audio-only and data-only streams).
//! - [`probe`]: `ffprobe` results as plain structs, and the MP4 top-level box order
//!   ([`probe::moov_before_mdat`]).
//! - [`slow_writer`]: copies a file slowly in a background thread, holding it open for writing
//!   the whole time as a recorder does (or reopening it for each chunk).
//! - [`wait`]: polling with a deadline and a clear message, instead of bare sleeps.
//! - [`port`]: a loopback port held for a server that comes and goes (refused while it is down).
//! - [`notify`]: a service manager's notification socket (`NOTIFY_SOCKET`), for the systemd
//!   readiness, watchdog and stopping tests.
//! - [`otlp`]: a collector stand-in speaking OTLP/gRPC on loopback that keeps the spans it
//!   receives, and a check that every span's parent is in its trace.
//! - [`process`]: finds processes, their descendants and their open files through `/proc`
//!   (Linux).
//! - [`smtp`]: a real SMTP server on loopback (Python's `aiosmtpd`) that keeps every message it
//!   receives, for the alert e-mail tests of the agent and the controller.
//!
//! ```no_run
//! use h264_testkit::fixtures::Fixture;
//! use h264_testkit::probe::probe;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let src = Fixture::Mpeg2InterlacedTs.copy_to(dir.path(), "news at 6.ts");
//! let info = probe(&src);
//! assert_eq!(info.video.unwrap().codec, "mpeg2video");
//! ```

pub mod captions;
pub mod ccextractor;
pub mod exposition;
pub mod ffmpeg;
pub mod fixtures;
pub mod notify;
pub mod otlp;
pub mod port;
pub mod probe;
pub mod process;
pub mod recordings;
pub mod slow_writer;
pub mod smtp;
pub mod wait;

pub use fixtures::{Fixture, Fixtures};
pub use probe::{moov_before_mdat, probe, AudioInfo, MediaInfo, VideoInfo};
pub use slow_writer::SlowWriter;
pub use wait::wait_until;
