//! Serde views of the protocol's messages: the stable shape of `-o json|yaml`, and the cells
//! of the tables.

use std::collections::BTreeMap;

use h264_proto::v1 as pb;
use serde::Serialize;

use super::output::time;

/// One agent as the controller sees it.
#[derive(Debug, Serialize)]
pub struct AgentView {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub version: String,
    pub connected: bool,
    pub last_seen: String,
    pub last_seen_ms: i64,
    pub desired_generation: u64,
    pub acknowledged_generation: u64,
    pub running_generation: u64,
    /// "not_sent", "pending", "synced" or "error".
    pub sync: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sync_error: String,
    pub stats: Option<StatsView>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recent_events: Vec<EventView>,
    /// The labels the agent reported (shown, never selected on).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub reported_labels: BTreeMap<String, String>,
    /// The key that signed the revision it runs.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub running_signed_by: String,
    /// The identity its certificate proved.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub certificate: String,
}

impl From<&pb::AgentStatus> for AgentView {
    fn from(a: &pb::AgentStatus) -> Self {
        Self {
            id: a.agent_id.clone(),
            labels: a
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            version: a.agent_version.clone(),
            connected: a.connected,
            last_seen: time(a.last_seen_ms),
            last_seen_ms: a.last_seen_ms,
            desired_generation: a.desired_generation,
            acknowledged_generation: a.acknowledged_generation,
            running_generation: a.running_generation,
            sync: a.sync_state().name().to_owned(),
            sync_error: a.sync_error.clone(),
            stats: a.stats.as_ref().map(StatsView::from),
            recent_events: a.recent_events.iter().map(EventView::from).collect(),
            reported_labels: a
                .reported_labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            running_signed_by: a.running_signer_key.clone(),
            certificate: a.certificate_identity.clone(),
        }
    }
}

impl AgentView {
    /// `site=paris,tier=canary`.
    pub fn labels_text(&self) -> String {
        let text: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if text.is_empty() {
            "-".into()
        } else {
            text.join(",")
        }
    }

    /// `yes` / `no`.
    pub fn connected_text(&self) -> String {
        if self.connected { "yes" } else { "no" }.into()
    }

    /// `running (desired)` when they differ, else the generation.
    pub fn generation_text(&self) -> String {
        if self.desired_generation == 0 || self.desired_generation == self.running_generation {
            self.running_generation.to_string()
        } else {
            format!(
                "{} (-> {})",
                self.running_generation, self.desired_generation
            )
        }
    }
}

/// Counters of jobs.
#[derive(Debug, Serialize, Default)]
pub struct CountersView {
    pub seen: u64,
    pub started: u64,
    pub converted: u64,
    pub failed: u64,
    pub retried: u64,
    pub cancelled: u64,
    pub conflicts: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub mean_speed: f64,
    pub captions_extracted: u64,
    pub no_captions: u64,
    pub captions_lost: u64,
}

impl From<&pb::Counters> for CountersView {
    fn from(c: &pb::Counters) -> Self {
        Self {
            seen: c.seen,
            started: c.started,
            converted: c.converted,
            failed: c.failed,
            retried: c.retried,
            cancelled: c.cancelled,
            conflicts: c.conflicts,
            bytes_in: c.bytes_in,
            bytes_out: c.bytes_out,
            mean_speed: c.mean_speed,
            captions_extracted: c.captions_extracted,
            no_captions: c.no_captions,
            captions_lost: c.captions_lost,
        }
    }
}

/// A running job.
#[derive(Debug, Serialize)]
pub struct JobView {
    pub source: String,
    pub stage: String,
    pub percent: f64,
    pub speed: f64,
    pub attempt: u32,
}

/// A watched volume.
#[derive(Debug, Serialize)]
pub struct VolumeView {
    pub path: String,
    pub free_bytes: u64,
    pub total_bytes: u64,
    pub level: String,
}

/// A watch or output root the agent holds because it is missing or unreachable.
#[derive(Debug, Serialize)]
pub struct HeldRootView {
    pub path: String,
    pub kind: String,
    pub reason: String,
    pub since: String,
}

/// An agent's stats.
#[derive(Debug, Serialize)]
pub struct StatsView {
    pub queue_depth: u64,
    pub workers: u64,
    pub paused: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub paused_by: String,
    pub alert_queue_depth: u64,
    pub since_start: CountersView,
    pub journal: CountersView,
    pub running: Vec<JobView>,
    pub volumes: Vec<VolumeView>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held_roots: Vec<HeldRootView>,
}

impl From<&pb::StatsReply> for StatsView {
    fn from(s: &pb::StatsReply) -> Self {
        Self {
            queue_depth: s.queue_depth,
            workers: s.workers,
            paused: s.paused,
            paused_by: s.paused_by.clone(),
            alert_queue_depth: s.alert_queue_depth,
            since_start: s.since_start.as_ref().map(Into::into).unwrap_or_default(),
            journal: s.journal.as_ref().map(Into::into).unwrap_or_default(),
            running: s
                .running
                .iter()
                .map(|j| JobView {
                    source: j.source.clone(),
                    stage: j.stage().name().to_owned(),
                    percent: j.percent,
                    speed: j.speed,
                    attempt: j.attempt,
                })
                .collect(),
            volumes: s
                .volumes
                .iter()
                .map(|v| VolumeView {
                    path: v.path.clone(),
                    free_bytes: v.free_bytes,
                    total_bytes: v.total_bytes,
                    level: v.level.clone(),
                })
                .collect(),
            held_roots: s
                .held_roots
                .iter()
                .map(|h| HeldRootView {
                    path: h.path.clone(),
                    kind: h.kind.clone(),
                    reason: h.reason.clone(),
                    since: time(h.since_ms),
                })
                .collect(),
        }
    }
}

impl StatsView {
    /// The fullest volume as `level free%`, e.g. `ok 62%`; `-` without volumes. Roots held
    /// because they are missing come first: `1 root missing, ok 62%`.
    pub fn disk_text(&self) -> String {
        let volumes = self.volumes_text();
        match self.held_roots.len() {
            0 => volumes,
            1 => format!("1 root missing, {volumes}"),
            n => format!("{n} roots missing, {volumes}"),
        }
    }

    /// The fullest volume as `level free%`.
    fn volumes_text(&self) -> String {
        let fullest = self
            .volumes
            .iter()
            .filter(|v| v.total_bytes > 0)
            .min_by(|a, b| {
                let fa = a.free_bytes as f64 / a.total_bytes as f64;
                let fb = b.free_bytes as f64 / b.total_bytes as f64;
                fa.total_cmp(&fb)
            });
        match fullest {
            Some(v) => format!(
                "{} {:.0}%",
                if v.level.is_empty() { "ok" } else { &v.level },
                100.0 * v.free_bytes as f64 / v.total_bytes as f64
            ),
            None => "-".into(),
        }
    }

    /// Running jobs with their progress: `2 (41%, 7%)`.
    pub fn running_text(&self) -> String {
        if self.running.is_empty() {
            return "0".into();
        }
        let each: Vec<String> = self
            .running
            .iter()
            .map(|j| format!("{:.0}%", j.percent))
            .collect();
        format!("{} ({})", self.running.len(), each.join(", "))
    }
}

/// An event an agent reported.
#[derive(Debug, Serialize)]
pub struct EventView {
    pub at: String,
    pub at_ms: i64,
    pub kind: String,
    pub file: String,
    pub stage: String,
    pub message: String,
    pub generation: u64,
}

impl From<&pb::AgentEvent> for EventView {
    fn from(e: &pb::AgentEvent) -> Self {
        Self {
            at: time(e.at_ms),
            at_ms: e.at_ms,
            kind: e.kind().name().to_owned(),
            file: e.file.clone(),
            // A NACK says where the revision was refused; a job's event, its stage.
            stage: match e.kind() {
                pb::EventKind::Nack => e.nack_stage().name().to_owned(),
                _ => e.stage().name().to_owned(),
            },
            message: e.message.clone(),
            generation: e.generation,
        }
    }
}

/// An error an agent recorded.
#[derive(Debug, Serialize)]
pub struct ErrorView {
    pub at: String,
    pub at_ms: i64,
    pub kind: String,
    pub file: String,
    pub stage: String,
    pub message: String,
}

impl From<&pb::ErrorEntry> for ErrorView {
    fn from(e: &pb::ErrorEntry) -> Self {
        Self {
            at: time(e.at_ms),
            at_ms: e.at_ms,
            kind: e.kind.clone(),
            file: e.file.clone(),
            stage: e.stage().name().to_owned(),
            message: e.message.clone(),
        }
    }
}

/// A revision.
#[derive(Debug, Serialize)]
pub struct RevisionView {
    pub generation: u64,
    pub sha256: String,
    pub name: String,
    pub created_at: String,
    pub assigned: u32,
    pub acked: u32,
}

impl From<&pb::Revision> for RevisionView {
    fn from(r: &pb::Revision) -> Self {
        Self {
            generation: r.generation,
            sha256: r.sha256.clone(),
            name: r.name.clone(),
            created_at: time(r.created_at_ms),
            assigned: r.assigned,
            acked: r.acked,
        }
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
