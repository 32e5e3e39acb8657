//! Shadow work: each recording production converted is converted again with the candidate,
//! into the shadow area, compared, and reported.
//!
//! # Theory of operation
//! [`Shadow::offer`] is called by a production job once its outputs are published and before
//! its source disposition. It never waits: it takes a hard link to the source in the shadow
//! area (so a disposition that deletes or moves the source cannot pull it away from the
//! shadow work; on another volume, where no link can be made, the shadow job reads the source
//! in place and skips it if it is gone), opens the `shadow` span (a new trace, linked to the
//! production job's span) and spawns the shadow job on the tracker. A job waits for one of
//! the candidate's `workers` permits, then runs FFmpeg with the candidate's settings, runs
//! the candidate's caption stage when it writes sidecars ([`super::sidecars`]), compares
//! ([`super::compare`]; the sidecars with production's published ones), removes its folder
//! and sends the comparison to the fleet session. Production never waits for any of it.
//!
//! Every child a shadow job starts (the candidate's FFmpeg, ffprobe, its caption tools, the
//! comparison's FFmpeg and ffprobe) runs at the lowest priority the host grants: the job runs
//! in a [`priority::lowest`] scope (the idle scheduling and I/O classes; `nice -n 19` where
//! `chrt` is refused). So its wall time says how busy the host was, not what the candidate
//! costs: the comparison carries both encodes' CPU times ([`crate::transcode::Ran::cpu`]),
//! which `max_speed_ratio` judges. The candidate's libx264 keeps its own thread count
//! ([`THREADS`]).
//!
//! Limits: at most [`MAX_WAITING`] shadow jobs wait (more recordings are not shadowed); the
//! disk guard ([`Shadow::set_disk_ok`]) stops shadow work as soon as any volume leaves the
//! `ok` level, before production is ever held; a new candidate, a stop, or shutdown cancels
//! the previous candidate's jobs (their FFmpeg is killed with its process group). Nothing is
//! ever written outside the shadow area, nothing but the area's own links is removed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use h264_config::AgentConfig;
use h264_proto::v1::ShadowComparison;
use tokio::sync::{broadcast, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use super::compare::{self, CompareError, Pair, Tools};
use super::quality::Sampling;
use super::report::Comparison;
use super::sidecars;
use super::threads::THREADS;
use crate::plumbing::priority;

/// Shadow jobs waiting for a worker at most.
pub const MAX_WAITING: usize = 32;

/// A candidate revision to shadow.
#[derive(Debug)]
pub struct Candidate {
    /// The rollout that asked.
    pub rollout: u64,
    /// The candidate's generation.
    pub generation: u64,
    /// The candidate's settings laid over this agent's local file.
    pub config: AgentConfig,
    /// Shadow conversions at once.
    pub workers: u32,
    permits: Arc<Semaphore>,
    cancel: CancellationToken,
}

/// A recording production just converted.
#[derive(Debug, Clone)]
pub struct Production<'a> {
    /// How the agent names the source (`root/relative`).
    pub file: &'a str,
    /// The source.
    pub source: &'a Path,
    /// Production's published output.
    pub output: &'a Path,
    /// Production's encode wall time, seconds.
    pub encode_secs: f64,
    /// Production's encode CPU time, seconds (0: unknown).
    pub encode_cpu_secs: f64,
    /// The generation production ran.
    pub generation: u64,
    /// Production's sidecar formats (`captions.formats`): its sidecars are beside `output`.
    pub sidecars: &'a [String],
}

/// The agent's shadow work (see the module docs).
#[derive(Debug)]
pub struct Shadow {
    area: PathBuf,
    sampling: Sampling,
    candidate: Mutex<Option<Arc<Candidate>>>,
    reports: broadcast::Sender<ShadowComparison>,
    disk_ok: AtomicBool,
    waiting: Arc<AtomicUsize>,
    next: AtomicU64,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Shadow {
    /// Shadow work in `area` (a folder of the state directory; what a crash left there is
    /// removed), its jobs on `tracker`, stopped by `shutdown`.
    pub fn new(area: PathBuf, tracker: TaskTracker, shutdown: CancellationToken) -> Self {
        let work = area.join("work");
        if work.exists() {
            if let Err(e) = std::fs::remove_dir_all(&work) {
                tracing::warn!(path = %work.display(), error = %e, "cannot clear the shadow area");
            }
        }
        Self {
            area,
            sampling: Sampling::default(),
            candidate: Mutex::new(None),
            reports: broadcast::channel(256).0,
            disk_ok: AtomicBool::new(true),
            waiting: Arc::default(),
            next: AtomicU64::new(0),
            tracker,
            shutdown,
        }
    }

    /// Samples fewer or more segments for the quality measure.
    pub fn with_sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }

    /// Shadows `config` (candidate `generation` of rollout `rollout`, `workers` at once) from
    /// now on; `None` stops. Jobs of the previous candidate are cancelled.
    pub fn set_candidate(&self, next: Option<(u64, u64, AgentConfig, u32)>) {
        let next = next.map(|(rollout, generation, config, workers)| {
            Arc::new(Candidate {
                rollout,
                generation,
                config,
                workers: workers.clamp(1, 8),
                permits: Arc::new(Semaphore::new(workers.clamp(1, 8) as usize)),
                cancel: self.shutdown.child_token(),
            })
        });
        match &next {
            Some(c) => tracing::info!(rollout = c.rollout, generation = c.generation, "shadow work starts: recordings are converted with the candidate too, never published"),
            None => tracing::info!("shadow work stops"),
        }
        let old = std::mem::replace(&mut *self.lock(), next);
        if let Some(old) = old {
            old.cancel.cancel();
        }
    }

    /// The candidate shadowed now.
    pub fn candidate(&self) -> Option<Arc<Candidate>> {
        self.lock().clone()
    }

    /// The disk guard's word: false as soon as a volume is below `disk.warn`, which cancels
    /// shadow work and holds it until space returns.
    pub fn set_disk_ok(&self, ok: bool) {
        let was = self.disk_ok.swap(ok, Ordering::SeqCst);
        if was && !ok {
            tracing::warn!("shadow work stopped by the disk guard: a volume is below disk.warn");
            let current = self.candidate();
            if let Some(c) = current {
                // The candidate stays; only its running and waiting jobs are stopped.
                let again = (c.rollout, c.generation, c.config.clone(), c.workers);
                self.set_candidate(Some(again));
            }
        }
    }

    /// Comparisons as they are made (for the fleet session).
    pub fn subscribe(&self) -> broadcast::Receiver<ShadowComparison> {
        self.reports.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<Candidate>>> {
        self.candidate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues the shadow conversion of a recording production converted (never waits; see
    /// the module docs). Call it in the production job's span, before the source's disposition.
    pub fn offer(&self, p: &Production<'_>) {
        let Some(candidate) = self.candidate() else {
            return;
        };
        if !self.disk_ok.load(Ordering::SeqCst) {
            tracing::debug!(
                file = p.file,
                "not shadowed: the disk guard holds shadow work"
            );
            return;
        }
        if self.waiting.load(Ordering::SeqCst) >= MAX_WAITING {
            tracing::warn!(
                file = p.file,
                "not shadowed: {MAX_WAITING} shadow jobs already wait"
            );
            return;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let dir = self.area.join("work").join(id.to_string());
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!(path = %dir.display(), error = %e, "not shadowed: cannot make the shadow folder");
            return;
        }
        let ext = p
            .source
            .extension()
            .map(|e| e.to_string_lossy().into_owned());
        let link = dir.join(format!("source.{}", ext.as_deref().unwrap_or("bin")));
        let source = match std::fs::hard_link(p.source, &link) {
            Ok(()) => link,
            Err(e) => {
                tracing::debug!(error = %e, "no hard link to the source (another volume?): the shadow job reads it in place");
                p.source.to_path_buf()
            }
        };
        let span = tracing::info_span!(
            parent: None,
            "shadow",
            file = p.file,
            rollout = candidate.rollout,
            candidate.generation = candidate.generation,
            production.generation = p.generation,
            candidate_ok = tracing::field::Empty,
            ssim = tracing::field::Empty,
        );
        span.follows_from(tracing::Span::current());
        let job = Job {
            file: p.file.to_owned(),
            source,
            production: p.output.to_path_buf(),
            production_sidecars: p.sidecars.to_vec(),
            production_secs: p.encode_secs,
            production_cpu_secs: p.encode_cpu_secs,
            production_generation: p.generation,
            dir,
        };
        let waiting = self.waiting.clone();
        waiting.fetch_add(1, Ordering::SeqCst);
        let reports = self.reports.clone();
        let sampling = self.sampling;
        let task = async move {
            let permit = tokio::select! {
                p = candidate.permits.clone().acquire_owned() => p.ok(),
                _ = candidate.cancel.cancelled() => None,
            };
            waiting.fetch_sub(1, Ordering::SeqCst);
            if permit.is_some() {
                let outcome = priority::lowest(job.run(&candidate, sampling)).await;
                if let Some(c) = outcome {
                    let span = tracing::Span::current();
                    span.record("candidate_ok", c.candidate_ok);
                    span.record("ssim", c.candidate_ssim);
                    tracing::info!(
                        file = %c.file, candidate_ok = c.candidate_ok, ssim = c.candidate_ssim,
                        production_ssim = c.production_ssim, cues_identical = c.cues_identical,
                        "shadow comparison"
                    );
                    let message = super::report::addressed(
                        c,
                        candidate.rollout,
                        candidate.generation,
                        job.production_generation,
                    );
                    let _ = reports.send(message);
                }
            }
            if let Err(e) = std::fs::remove_dir_all(&job.dir) {
                tracing::warn!(path = %job.dir.display(), error = %e, "cannot remove a shadow folder");
            }
        };
        self.tracker.spawn(task.instrument(span));
    }
}

/// One shadow job.
#[derive(Debug)]
struct Job {
    file: String,
    source: PathBuf,
    production: PathBuf,
    production_sidecars: Vec<String>,
    production_secs: f64,
    production_cpu_secs: f64,
    production_generation: u64,
    /// Its folder in the shadow area (removed when it ends).
    dir: PathBuf,
}

impl Job {
    /// Converts with the candidate and compares; `None` when there is nothing to say about
    /// the candidate (cancelled, the source or production's output gone meanwhile). Run it in
    /// a [`priority::lowest`] scope.
    async fn run(&self, c: &Candidate, sampling: Sampling) -> Option<Comparison> {
        let cancel = &c.cancel;
        let cfg = &c.config.transcode;
        let tools = Tools {
            ffmpeg: cfg.ffmpeg.clone(),
            ffprobe: cfg.ffprobe.clone(),
            probe_timeout: Duration::from_secs(120),
        };
        if !self.source.exists() || !self.production.exists() {
            tracing::info!(file = %self.file, "not compared: the source or production's output is gone");
            return None;
        }
        let output = self.dir.join("candidate.mp4");
        let started = Instant::now();
        let (format_name, captions, cpu) = match self.convert(&tools, c, &output).await {
            Ok(converted) => converted,
            Err(_) if cancel.is_cancelled() => return None,
            Err(e) => return Some(Comparison::failed(&self.file, e)),
        };
        let secs = started.elapsed().as_secs_f64();
        let inputs = sidecars::Inputs {
            source: &self.source,
            format_name: &format_name,
            plan: &captions,
            mp4: &output,
        };
        let written = match sidecars::extract(&c.config, inputs, cancel).await {
            Ok(written) => written,
            Err(_) if cancel.is_cancelled() => return None,
            Err(e) => return Some(Comparison::failed(&self.file, e)),
        };
        let pair = Pair {
            source: &self.source,
            production: &self.production,
            candidate: &output,
            encode_secs: (self.production_secs, secs),
            cpu_secs: (
                self.production_cpu_secs,
                cpu.map_or(0.0, |d| d.as_secs_f64()),
            ),
        };
        match compare::compare(&tools, &pair, sampling, cancel).await {
            Ok(mut comparison) => {
                comparison.file.clone_from(&self.file);
                let s = sidecars::compare(&self.production, &self.production_sidecars, &written);
                comparison.production_sidecar_cues = s.production_cues;
                comparison.candidate_sidecar_cues = s.candidate_cues;
                comparison.sidecar_formats = s.formats;
                comparison.sidecar_difference = s.difference;
                Some(comparison)
            }
            Err(_) if cancel.is_cancelled() => None,
            Err(e) if blames(&e, &output) => Some(Comparison::failed(
                &self.file,
                format!("the candidate's output is not usable: {e}"),
            )),
            Err(e) => {
                tracing::warn!(file = %self.file, error = %e, "not compared: production's side could not be read");
                None
            }
        }
    }

    /// FFmpeg with the candidate's settings (as production would plan them, libx264's threads
    /// as [`THREADS`] says) into `output` in the shadow area; the source's container and
    /// caption tracks (for the caption stage), and the CPU time FFmpeg used.
    async fn convert(
        &self,
        tools: &Tools,
        c: &Candidate,
        output: &Path,
    ) -> Result<(String, crate::captions::Plan, Option<Duration>), String> {
        let cfg = &c.config.transcode;
        let cancel = &c.cancel;
        let info = crate::probe::probe(&tools.ffprobe, &self.source, tools.probe_timeout, cancel)
            .await
            .map_err(|e| format!("the candidate cannot probe the source: {e}"))?;
        let plan = crate::transcode::plan(&info, cfg);
        let captions =
            crate::captions::plan(&tools.ffprobe, &self.source, tools.probe_timeout, cancel)
                .await
                .unwrap_or_default();
        let args = crate::transcode::arguments(&self.source, output, plan, cfg);
        let encode = matches!(plan, crate::transcode::Plan::Encode { .. });
        let embed = c.config.captions.embed;
        let args = crate::captions::output_arguments(args, &captions, encode, embed);
        let args = THREADS.apply(args, encode);
        let ran = crate::transcode::run_counting(
            &cfg.ffmpeg,
            &args,
            cfg.stall_timeout.get(),
            cancel,
            |_| {},
        )
        .await
        .map_err(|e| format!("the candidate's FFmpeg failed: {e}"))?;
        Ok((info.format_name, captions, ran.cpu))
    }
}

/// Whether `e` is about the candidate's output.
fn blames(e: &CompareError, output: &Path) -> bool {
    match e {
        CompareError::Probe { path, .. } | CompareError::Captions { path, .. } => path == output,
        CompareError::Quality { output: o, .. } => o == output,
        _ => false,
    }
}
