//! Shadow comparisons ([`ShadowComparison`]): one recording converted by production and by a
//! candidate revision, measured by the agent, kept and judged by the controller, printed by
//! fleetctl. The one definition of what a comparison holds is the message itself; this module
//! is what all three read from it (ratios, whether captions were kept) and how a received one
//! is made safe to keep.

use crate::v1::ShadowComparison;

/// `a / b`, or 0 when `b` is not above 0 or `a` is not finite (a ratio nobody can judge).
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        a / b
    } else {
        0.0
    }
}

/// A measure as it is kept: NaN, infinities (which JSON cannot hold, and no honest measure
/// gives) and negatives become 0.
pub fn finite(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 {
        v
    } else {
        0.0
    }
}

impl ShadowComparison {
    /// A candidate that could not convert `file`, and why.
    pub fn failed(file: &str, error: String) -> Self {
        Self {
            file: file.to_owned(),
            candidate_ok: false,
            candidate_error: error,
            ..Self::default()
        }
    }

    /// Candidate size over production size (0 when unknown).
    pub fn size_ratio(&self) -> f64 {
        ratio(self.candidate_bytes as f64, self.production_bytes as f64)
    }

    /// Candidate encode wall time over production's (0 when unknown). Shadow work runs at
    /// the lowest priority: this says how busy the host was more than what the candidate
    /// costs; [`Self::cpu_ratio`] is the fair measure.
    pub fn speed_ratio(&self) -> f64 {
        ratio(self.candidate_encode_secs, self.production_encode_secs)
    }

    /// Whether both encodes' CPU times were measured.
    pub fn has_cpu_times(&self) -> bool {
        self.candidate_cpu_secs > 0.0 && self.production_cpu_secs > 0.0
    }

    /// Candidate encode CPU time over production's (0 when either is unknown): what the
    /// candidate costs, whatever the priority it ran at.
    pub fn cpu_ratio(&self) -> f64 {
        if self.has_cpu_times() {
            ratio(self.candidate_cpu_secs, self.production_cpu_secs)
        } else {
            0.0
        }
    }

    /// Production's outputs had captions: cues in the MP4 or in its sidecars.
    pub fn production_captioned(&self) -> bool {
        self.production_cues > 0 || self.production_sidecar_cues > 0
    }

    /// The candidate's captions are production's, cue by cue: in the MP4 and in every sidecar.
    pub fn captions_identical(&self) -> bool {
        self.cues_identical && self.sidecar_difference.is_empty()
    }

    /// Wherever production had captions (the MP4, the sidecars), the candidate has some.
    pub fn captions_present(&self) -> bool {
        (self.production_cues == 0 || self.candidate_cues > 0)
            && (self.production_sidecar_cues == 0 || self.candidate_sidecar_cues > 0)
    }

    /// The first caption difference (the MP4's, else the sidecars'), for messages.
    pub fn caption_difference_text(&self) -> &str {
        if self.caption_difference.is_empty() {
            &self.sidecar_difference
        } else {
            &self.caption_difference
        }
    }

    /// With every measure made [`finite`] (a comparison from the network is hostile).
    pub fn with_finite_measures(mut self) -> Self {
        for v in [
            &mut self.production_secs,
            &mut self.candidate_secs,
            &mut self.production_encode_secs,
            &mut self.candidate_encode_secs,
            &mut self.production_cpu_secs,
            &mut self.candidate_cpu_secs,
            &mut self.production_ssim,
            &mut self.candidate_ssim,
            &mut self.production_psnr,
            &mut self.candidate_psnr,
            &mut self.media_secs,
        ] {
            *v = finite(*v);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_captions() {
        let c = ShadowComparison {
            production_bytes: 1000,
            candidate_bytes: 1500,
            production_encode_secs: 2.0,
            candidate_encode_secs: f64::NAN,
            production_cues: 3,
            candidate_cues: 3,
            cues_identical: true,
            production_sidecar_cues: 3,
            ..Default::default()
        };
        assert_eq!(c.size_ratio(), 1.5);
        assert_eq!(c.speed_ratio(), 0.0);
        assert_eq!(c.cpu_ratio(), 0.0, "not measured");
        let timed = ShadowComparison {
            production_cpu_secs: 4.0,
            candidate_cpu_secs: 5.0,
            ..c.clone()
        };
        assert_eq!(timed.cpu_ratio(), 1.25);
        let half = ShadowComparison {
            production_cpu_secs: 0.0,
            ..timed
        };
        assert_eq!(half.cpu_ratio(), 0.0, "one side unknown: no ratio");
        assert!(c.production_captioned());
        assert!(!c.captions_present(), "the candidate wrote no sidecar cue");
        let c = ShadowComparison {
            candidate_sidecar_cues: 2,
            sidecar_difference: ".srt: cue 3 missing".into(),
            ..c
        };
        assert!(c.captions_present());
        assert!(!c.captions_identical());
        assert_eq!(c.caption_difference_text(), ".srt: cue 3 missing");
        assert_eq!(c.with_finite_measures().candidate_encode_secs, 0.0);
    }
}
