//! The job history record of an attempt, from its trace's facts (`Report`), for the fleet
//! controller ([`crate::session::history`] keeps and delivers it).

use std::path::Path;

use h264_proto::v1::JobAttempt;

use super::trace::Report;

/// Now, in Unix milliseconds.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Report {
    /// The attempt's job history record; none when no attempt started (a job stopped while it
    /// waited for a worker).
    pub fn history(&self, source: &Path) -> Option<JobAttempt> {
        let (captions, captions_lost) = self.captions.clone().unwrap_or_default();
        Some(JobAttempt {
            ended_at_ms: now_ms(),
            file: source.display().to_string(),
            generation: self.generation?,
            outcome: self.outcome?.to_string(),
            failed_stage: self
                .failed_stage
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            message: self.error.clone().unwrap_or_default(),
            attempt: self.attempt?,
            rung: self
                .rung
                .map(|r| r.as_str().to_string())
                .unwrap_or_default(),
            mode: self.mode.unwrap_or_default().to_string(),
            bytes_in: self.source_size.unwrap_or_default(),
            bytes_out: self.output_size.unwrap_or_default(),
            media_secs: self.media_secs.unwrap_or_default(),
            wall_secs: self.wall_secs.unwrap_or_default(),
            queue_secs: self.queue_wait.map(|d| d.as_secs_f64()).unwrap_or_default(),
            stage_secs: self
                .stage_secs
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            captions,
            captions_lost,
            ..JobAttempt::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_attempt_no_record() {
        let paused = Report {
            outcome: Some("paused"),
            ..Report::default()
        };
        assert!(paused.history(Path::new("/r/a.ts")).is_none());
        let failed = Report {
            outcome: Some("failed"),
            generation: Some(3),
            attempt: Some(2),
            failed_stage: Some(super::super::Stage::Readiness),
            error: Some("not a video".into()),
            ..Report::default()
        };
        let r = failed.history(Path::new("/r/a.ts")).unwrap();
        assert_eq!(
            (r.outcome.as_str(), r.failed_stage.as_str()),
            ("failed", "validate")
        );
        assert_eq!(
            (r.generation, r.attempt, r.file.as_str()),
            (3, 2, "/r/a.ts")
        );
    }
}
