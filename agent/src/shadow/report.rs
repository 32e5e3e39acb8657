//! A comparison as the agent reports it to the controller (`ShadowComparison`).

use h264_proto::v1::ShadowComparison;

/// One recording converted by production and by the candidate, compared (see
/// [`super::compare::compare`]); a failed candidate has `candidate_ok: false` and its error.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    /// The source, as the agent names it (`root/relative path`).
    pub file: String,
    /// The candidate converted it.
    pub candidate_ok: bool,
    /// Why not.
    pub candidate_error: String,
    /// Output durations, seconds.
    pub production_secs: f64,
    /// See `production_secs`.
    pub candidate_secs: f64,
    /// Stream layouts.
    pub production_layout: String,
    /// See `production_layout`.
    pub candidate_layout: String,
    /// Caption cues (CC1 + CC3) in each output.
    pub production_cues: u32,
    /// See `production_cues`.
    pub candidate_cues: u32,
    /// The cues are the same, cue by cue.
    pub cues_identical: bool,
    /// The first difference, when not.
    pub caption_difference: String,
    /// Output sizes.
    pub production_bytes: u64,
    /// See `production_bytes`.
    pub candidate_bytes: u64,
    /// Encode wall times, seconds.
    pub production_encode_secs: f64,
    /// See `production_encode_secs`.
    pub candidate_encode_secs: f64,
    /// SSIM against the decoded source.
    pub production_ssim: f64,
    /// See `production_ssim`.
    pub candidate_ssim: f64,
    /// PSNR against the decoded source, dB.
    pub production_psnr: f64,
    /// See `production_psnr`.
    pub candidate_psnr: f64,
    /// The recording's length, seconds.
    pub media_secs: f64,
}

impl Comparison {
    /// A candidate that could not convert `file`.
    pub fn failed(file: &str, error: String) -> Self {
        Self {
            file: file.to_owned(),
            candidate_ok: false,
            candidate_error: error,
            ..Self::default()
        }
    }

    /// The message for rollout `rollout` of candidate `candidate` (production ran `production`).
    pub fn to_proto(&self, rollout: u64, candidate: u64, production: u64) -> ShadowComparison {
        ShadowComparison {
            rollout,
            candidate_generation: candidate,
            production_generation: production,
            file: self.file.clone(),
            at_ms: now_ms(),
            candidate_ok: self.candidate_ok,
            candidate_error: self.candidate_error.clone(),
            production_secs: self.production_secs,
            candidate_secs: self.candidate_secs,
            production_layout: self.production_layout.clone(),
            candidate_layout: self.candidate_layout.clone(),
            production_cues: self.production_cues,
            candidate_cues: self.candidate_cues,
            cues_identical: self.cues_identical,
            caption_difference: self.caption_difference.clone(),
            production_bytes: self.production_bytes,
            candidate_bytes: self.candidate_bytes,
            production_encode_secs: self.production_encode_secs,
            candidate_encode_secs: self.candidate_encode_secs,
            production_ssim: self.production_ssim,
            candidate_ssim: self.candidate_ssim,
            production_psnr: self.production_psnr,
            candidate_psnr: self.candidate_psnr,
            media_secs: self.media_secs,
        }
    }
}

/// Now, in Unix milliseconds.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
