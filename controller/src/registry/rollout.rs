//! What the rollout engine needs from the registry: a view of the fleet for one generation,
//! assignments to a list of agents, the fleet-wide target, and attempt counts per generation.

use super::Registry;
use crate::model::Desired;

/// One agent as the rollout engine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutAgent {
    /// Its id.
    pub id: String,
    /// Labelled `canary=true`.
    pub canary: bool,
    /// It has a live session.
    pub connected: bool,
    /// The generation it should run.
    pub desired: Option<u64>,
    /// The generation it runs.
    pub running: u64,
    /// It refused the generation asked about.
    pub refused: bool,
    /// What it said when it refused.
    pub refusal: String,
}

/// Attempts reported under one generation: `converted` and `failed` events end a job;
/// `retrying` events are attempts that failed and will be tried again. The rollout gates count
/// attempts, so a revision under which every attempt fails is seen at its first failure, not
/// only once jobs give up after their last retry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobCounts {
    /// Converted jobs.
    pub converted: u64,
    /// Failed jobs (their last attempt failed).
    pub failed: u64,
    /// Failed attempts that were retried (absent from states saved before it was counted).
    #[serde(default)]
    pub retried: u64,
}

impl JobCounts {
    /// Attempts that ended: converted, failed for good, or failed and retried.
    pub fn attempts(self) -> u64 {
        self.converted + self.failed + self.retried
    }

    /// Attempts that failed, whether or not they were retried.
    pub fn failed_attempts(self) -> u64 {
        self.failed + self.retried
    }

    /// The counts since `earlier` (never negative: a restart resets the counters).
    pub fn since(self, earlier: JobCounts) -> JobCounts {
        if self.converted < earlier.converted
            || self.failed < earlier.failed
            || self.retried < earlier.retried
        {
            return self;
        }
        JobCounts {
            converted: self.converted - earlier.converted,
            failed: self.failed - earlier.failed,
            retried: self.retried - earlier.retried,
        }
    }

    /// The share of failed attempts (0 without attempts).
    pub fn failure_rate(self) -> f64 {
        if self.attempts() == 0 {
            0.0
        } else {
            self.failed_attempts() as f64 / self.attempts() as f64
        }
    }
}

impl Registry {
    /// Every agent, with whether it refused `generation`.
    pub fn rollout_agents(&self, generation: u64) -> Vec<RolloutAgent> {
        let inner = self.lock();
        inner
            .agents
            .values()
            .map(|e| {
                let r = &e.record;
                let nack = r.nacked.get(&generation);
                RolloutAgent {
                    id: r.id.clone(),
                    canary: r.labels.get("canary").is_some_and(|v| v == "true"),
                    connected: e.session.is_some(),
                    desired: r.desired.map(|d| d.generation),
                    running: r.running_generation,
                    refused: nack.is_some(),
                    refusal: nack.map(crate::model::Nack::describe).unwrap_or_default(),
                }
            })
            .collect()
    }

    /// Makes `generation` the desired revision of the agents `ids` (unknown ids are skipped)
    /// and wakes their sessions; agents that already want it are left alone. Returns how many
    /// changed. The changed agents' assignments carry the trace context of the current span
    /// (the rollout's push or rollback).
    pub fn assign_agents(&self, generation: u64, ids: &[String], rollback: bool) -> usize {
        let trace = h264_telemetry::propagate::current_traceparent();
        let mut inner = self.lock();
        let desired = Desired {
            generation,
            rollback,
        };
        let mut changed = Vec::new();
        for id in ids {
            let Some(entry) = inner.agents.get_mut(id) else {
                continue;
            };
            if entry.record.desired == Some(desired) {
                continue;
            }
            entry.record.desired = Some(desired);
            entry.trace.clone_from(&trace);
            if let Some(live) = &entry.session {
                live.wake.notify_one();
            }
            changed.push(id.clone());
        }
        let n = changed.len();
        for id in changed {
            inner.touch(&id);
        }
        drop(inner);
        if n > 0 {
            self.changed();
        }
        n
    }

    /// Makes `generation` the desired revision of every agent at once, and the fleet-wide
    /// target (a rollback or the end of a rollout). Returns how many agents changed.
    pub fn assign_everyone(&self, generation: u64, rollback: bool) -> usize {
        let ids: Vec<String> = self.lock().agents.keys().cloned().collect();
        {
            let mut inner = self.lock();
            inner.fleet_target = Some(Desired {
                generation,
                rollback,
            });
            inner.fleet_trace = h264_telemetry::propagate::current_traceparent();
        }
        self.assign_agents(generation, &ids, rollback)
    }

    /// What agents that register get.
    pub fn fleet_target(&self) -> Option<Desired> {
        self.lock().fleet_target
    }

    /// Attempts reported under `generation` since the controller started.
    pub fn job_counts(&self, generation: u64) -> JobCounts {
        self.lock()
            .jobs
            .get(&generation)
            .copied()
            .unwrap_or_default()
    }
}

impl Registry {
    /// Forgets every agent's refusal of `generation` (a rollout that starts again sends it again).
    pub fn forget_refusals(&self, generation: u64) {
        let mut inner = self.lock();
        let mut touched = Vec::new();
        for (id, entry) in inner.agents.iter_mut() {
            if entry.record.nacked.remove(&generation).is_some() {
                if let Some(live) = entry.session.as_mut() {
                    live.pushed = None;
                }
                touched.push(id.clone());
            }
        }
        for id in touched {
            inner.touch(&id);
        }
    }
}
