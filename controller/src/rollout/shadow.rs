//! Shadow steps: the cohort that shadows, the comparisons its agents report, and the gates of
//! `analysis.shadow` judged on them.
//!
//! During a `{shadow: 2h}` step no agent runs the candidate for real: the cohort's agents keep
//! the stable revision and also convert each recording with the candidate into their state
//! folder, compare the two outputs and report a comparison over their session. The engine
//! folds the comparisons (which the registry queues) into the rollout's state, so they are
//! saved with it and survive a restart, and judges them:
//! - gates whose verdict can only get worse as recordings come in (`max_failures`, the lowest
//!   SSIM, the largest size ratio, the captions) fail as soon as one recording breaks them;
//! - at the end of the step, fewer than `min_files` recordings is inconclusive (paused), and
//!   the speed ratio (total candidate encode time over total production encode time: single
//!   recordings are noisy, shadow work runs at a lower priority) is judged with the rest.

use std::collections::BTreeMap;

use h264_config::fleet::{CaptionsGate, ShadowGates};
use serde::{Deserialize, Serialize};

/// Comparisons kept per rollout at most (the oldest passing ones go first).
pub const MAX_RECORDS: usize = 2000;
/// The worst recordings shown by `fleetctl rollout status`.
pub const WORST_SHOWN: usize = 5;

/// One recording converted by production and by the candidate, as an agent reported it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShadowRecord {
    /// The agent that converted it.
    pub agent: String,
    /// The rollout step it was reported in.
    pub step: usize,
    /// When it was reported (controller's clock, ms).
    pub at_ms: i64,
    /// The source file (as the agent names it).
    pub file: String,
    /// The candidate converted it.
    pub candidate_ok: bool,
    /// Why the candidate failed (or the comparison could not be made).
    pub candidate_error: String,
    /// Output durations, seconds.
    pub production_secs: f64,
    /// See `production_secs`.
    pub candidate_secs: f64,
    /// Stream layouts (`h264 640x360 yuv420p; aac 2ch`).
    pub production_layout: String,
    /// See `production_layout`.
    pub candidate_layout: String,
    /// Caption cues in each output.
    pub production_cues: u32,
    /// See `production_cues`.
    pub candidate_cues: u32,
    /// The cues are the same, cue by cue.
    pub cues_identical: bool,
    /// The first difference, when they are not.
    pub caption_difference: String,
    /// Output sizes, bytes.
    pub production_bytes: u64,
    /// See `production_bytes`.
    pub candidate_bytes: u64,
    /// Encode wall times, seconds.
    pub production_encode_secs: f64,
    /// See `production_encode_secs`.
    pub candidate_encode_secs: f64,
    /// SSIM and PSNR (dB) of each output against the decoded source, on sampled segments.
    pub production_ssim: f64,
    /// See `production_ssim`.
    pub candidate_ssim: f64,
    /// See `production_ssim`.
    pub production_psnr: f64,
    /// See `production_ssim`.
    pub candidate_psnr: f64,
    /// The recording's duration, seconds.
    pub media_secs: f64,
}

impl ShadowRecord {
    /// Candidate size over production size (0 when unknown).
    pub fn size_ratio(&self) -> f64 {
        ratio(self.candidate_bytes as f64, self.production_bytes as f64)
    }

    /// Candidate encode time over production's (0 when unknown).
    pub fn speed_ratio(&self) -> f64 {
        ratio(self.candidate_encode_secs, self.production_encode_secs)
    }

    /// Production had captions.
    pub fn production_captioned(&self) -> bool {
        self.production_cues > 0
    }

    /// How bad it is, for sorting (higher is worse): a failure first, then lost captions,
    /// then the lowest SSIM.
    fn badness(&self) -> (u8, u8, i64) {
        let failed = u8::from(!self.candidate_ok);
        let captions = u8::from(self.production_captioned() && !self.cues_identical);
        (failed, captions, -((self.candidate_ssim * 1e6) as i64))
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 && a.is_finite() {
        a / b
    } else {
        0.0
    }
}

/// One agent's totals in a shadow step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentTotals {
    /// Recordings compared.
    pub files: u32,
    /// Recordings the candidate failed.
    pub failures: u32,
    /// The lowest candidate SSIM (1 without recordings).
    pub min_ssim: f64,
    /// The largest size ratio.
    pub max_size_ratio: f64,
    /// Total candidate encode time over total production encode time.
    pub speed_ratio: f64,
    /// Recordings whose captions differ.
    pub caption_mismatches: u32,
}

/// What the records of one step say, over every agent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// Per agent.
    pub agents: BTreeMap<String, AgentTotals>,
    /// Over all agents.
    pub all: AgentTotals,
}

/// The totals of `records`.
pub fn totals<'a>(records: impl IntoIterator<Item = &'a ShadowRecord>) -> Totals {
    #[derive(Default)]
    struct Sums {
        t: AgentTotals,
        candidate_secs: f64,
        production_secs: f64,
    }
    fn add(s: &mut Sums, r: &ShadowRecord) {
        if s.t.files == 0 {
            s.t.min_ssim = 1.0;
        }
        s.t.files += 1;
        if !r.candidate_ok {
            s.t.failures += 1;
            return;
        }
        s.t.min_ssim = s.t.min_ssim.min(r.candidate_ssim);
        s.t.max_size_ratio = s.t.max_size_ratio.max(r.size_ratio());
        s.candidate_secs += r.candidate_encode_secs;
        s.production_secs += r.production_encode_secs;
        s.t.speed_ratio = ratio(s.candidate_secs, s.production_secs);
        if r.production_captioned() && !r.cues_identical {
            s.t.caption_mismatches += 1;
        }
    }
    let mut per: BTreeMap<String, Sums> = BTreeMap::new();
    let mut all = Sums::default();
    for r in records {
        add(per.entry(r.agent.clone()).or_default(), r);
        add(&mut all, r);
    }
    Totals {
        agents: per.into_iter().map(|(k, v)| (k, v.t)).collect(),
        all: all.t,
    }
}

/// The worst `n` of `records`, worst first.
pub fn worst<'a>(
    records: impl IntoIterator<Item = &'a ShadowRecord>,
    n: usize,
) -> Vec<&'a ShadowRecord> {
    let mut all: Vec<&ShadowRecord> = records.into_iter().collect();
    all.sort_by(|a, b| b.badness().cmp(&a.badness()).then(a.at_ms.cmp(&b.at_ms)));
    all.truncate(n);
    all
}

/// One gate's verdict on the records so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// `shadow.max_failures`, `shadow.min_ssim`, ...
    pub gate: &'static str,
    /// Whether it passes.
    pub passed: bool,
    /// Whether the verdict is final whatever comes next (a failure of a worst-case gate).
    pub final_failure: bool,
    /// What was measured.
    pub measured: String,
    /// The threshold.
    pub threshold: String,
}

/// The gates of `g` on `records` (one step's), in a fixed order. The speed gate is left out
/// until `end` (the step is over): a total can still improve.
pub fn judge(records: &[&ShadowRecord], g: &ShadowGates, end: bool) -> Vec<Verdict> {
    let t = totals(records.iter().copied()).all;
    let mut out = Vec::new();
    let mut push = |gate, passed: bool, worst_case: bool, measured: String, threshold: String| {
        out.push(Verdict {
            gate,
            passed,
            final_failure: !passed && worst_case,
            measured,
            threshold,
        })
    };
    let failed: Vec<&str> = records
        .iter()
        .filter(|r| !r.candidate_ok)
        .map(|r| r.file.as_str())
        .collect();
    push(
        "shadow.max_failures",
        failed.len() as u32 <= g.max_failures,
        true,
        format!(
            "{} of {} recording(s) failed with the candidate{}",
            failed.len(),
            t.files,
            first_of(
                &failed,
                records,
                |r| !r.candidate_ok,
                |r| r.candidate_error.clone()
            )
        ),
        format!("at most {}", g.max_failures),
    );
    let converted: Vec<&&ShadowRecord> = records.iter().filter(|r| r.candidate_ok).collect();
    if let Some(low) = converted
        .iter()
        .min_by(|a, b| a.candidate_ssim.total_cmp(&b.candidate_ssim))
    {
        push(
            "shadow.min_ssim",
            low.candidate_ssim >= g.min_ssim,
            true,
            format!(
                "lowest SSIM {:.4} ({} on {}; production {:.4})",
                low.candidate_ssim, low.file, low.agent, low.production_ssim
            ),
            format!(">= {:.4}", g.min_ssim),
        );
    }
    if let Some(big) = converted
        .iter()
        .max_by(|a, b| a.size_ratio().total_cmp(&b.size_ratio()))
    {
        push(
            "shadow.max_size_ratio",
            big.size_ratio() <= g.max_size_ratio,
            true,
            format!(
                "largest size ratio {:.3} ({} on {})",
                big.size_ratio(),
                big.file,
                big.agent
            ),
            format!("<= {:.3}", g.max_size_ratio),
        );
    }
    if g.captions != CaptionsGate::Ignore {
        let captioned: Vec<&&&ShadowRecord> = converted
            .iter()
            .filter(|r| r.production_captioned())
            .collect();
        let bad: Vec<&&&ShadowRecord> = captioned
            .iter()
            .copied()
            .filter(|r| match g.captions {
                CaptionsGate::Identical => !r.cues_identical,
                _ => r.candidate_cues == 0,
            })
            .collect();
        let measured = match bad.first() {
            None => format!("{} captioned recording(s), all {}", captioned.len(), g.captions.as_str()),
            Some(r) => format!(
                "{} of {} captioned recording(s) not {}: {} on {} ({} cue(s) in production, {} in the candidate{})",
                bad.len(),
                captioned.len(),
                g.captions.as_str(),
                r.file,
                r.agent,
                r.production_cues,
                r.candidate_cues,
                if r.caption_difference.is_empty() {
                    String::new()
                } else {
                    format!("; {}", r.caption_difference)
                }
            ),
        };
        push(
            "shadow.captions",
            bad.is_empty(),
            true,
            measured,
            format!("captions {}", g.captions.as_str()),
        );
    }
    if end && !converted.is_empty() {
        push(
            "shadow.max_speed_ratio",
            t.speed_ratio <= g.max_speed_ratio,
            false,
            format!(
                "candidate/production encode time {:.3} over {} recording(s)",
                t.speed_ratio,
                converted.len()
            ),
            format!("<= {:.3}", g.max_speed_ratio),
        );
    }
    out
}

fn first_of(
    listed: &[&str],
    records: &[&ShadowRecord],
    pick: impl Fn(&ShadowRecord) -> bool,
    say: impl Fn(&ShadowRecord) -> String,
) -> String {
    if listed.is_empty() {
        return String::new();
    }
    records
        .iter()
        .find(|r| pick(r))
        .map(|r| format!(": {} on {}: {}", r.file, r.agent, say(r)))
        .unwrap_or_default()
}

/// Keeps at most [`MAX_RECORDS`]: drops the oldest passing records first.
pub fn bound(records: &mut Vec<ShadowRecord>) {
    while records.len() > MAX_RECORDS {
        let at = records
            .iter()
            .position(|r| r.candidate_ok && (!r.production_captioned() || r.cues_identical))
            .unwrap_or(0);
        records.remove(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(agent: &str, ssim: f64, bytes: u64, secs: f64) -> ShadowRecord {
        ShadowRecord {
            agent: agent.into(),
            file: format!("{agent}-{ssim}.ts"),
            candidate_ok: true,
            production_bytes: 1000,
            candidate_bytes: bytes,
            production_encode_secs: 1.0,
            candidate_encode_secs: secs,
            production_ssim: 0.98,
            candidate_ssim: ssim,
            production_cues: 2,
            candidate_cues: 2,
            cues_identical: true,
            ..ShadowRecord::default()
        }
    }

    fn failing(verdicts: &[Verdict]) -> Vec<&'static str> {
        verdicts
            .iter()
            .filter(|v| !v.passed)
            .map(|v| v.gate)
            .collect()
    }

    #[test]
    fn gates_judge_the_worst_recording_and_the_total_speed() {
        let g = ShadowGates::default();
        let good = [rec("a", 0.97, 1100, 1.2), rec("b", 0.99, 900, 0.8)];
        let refs: Vec<&ShadowRecord> = good.iter().collect();
        assert!(failing(&judge(&refs, &g, true)).is_empty());
        assert_eq!(
            judge(&refs, &g, false).len(),
            4,
            "no speed verdict before the end"
        );

        let cases: Vec<(ShadowRecord, &str, bool)> = vec![
            (rec("c", 0.70, 500, 1.0), "shadow.min_ssim", true),
            (rec("c", 0.99, 2000, 1.0), "shadow.max_size_ratio", true),
            (rec("c", 0.99, 1000, 9.0), "shadow.max_speed_ratio", false),
            (
                ShadowRecord {
                    candidate_ok: false,
                    candidate_error: "FFmpeg failed".into(),
                    ..rec("c", 0.0, 0, 0.0)
                },
                "shadow.max_failures",
                true,
            ),
            (
                ShadowRecord {
                    candidate_cues: 0,
                    cues_identical: false,
                    ..rec("c", 0.99, 1000, 1.0)
                },
                "shadow.captions",
                true,
            ),
        ];
        for (bad, gate, final_failure) in cases {
            let mut all: Vec<&ShadowRecord> = refs.clone();
            all.push(&bad);
            let verdicts = judge(&all, &g, true);
            assert_eq!(failing(&verdicts), [gate], "{bad:?}");
            let v = verdicts.iter().find(|v| v.gate == gate).unwrap();
            assert_eq!(v.final_failure, final_failure, "{gate}");
            assert!(
                v.measured.contains("c") || gate == "shadow.max_speed_ratio",
                "{v:?}"
            );
        }
    }

    #[test]
    fn captions_present_accepts_different_cues_and_ignore_accepts_none() {
        let changed = ShadowRecord {
            candidate_cues: 1,
            cues_identical: false,
            caption_difference: "cue 2 differs".into(),
            ..rec("a", 0.99, 1000, 1.0)
        };
        let refs = [&changed];
        let mut g = ShadowGates::default();
        assert_eq!(failing(&judge(&refs, &g, true)), ["shadow.captions"]);
        g.captions = CaptionsGate::Present;
        assert!(failing(&judge(&refs, &g, true)).is_empty());
        let none = ShadowRecord {
            candidate_cues: 0,
            ..changed.clone()
        };
        assert_eq!(failing(&judge(&[&none], &g, true)), ["shadow.captions"]);
        g.captions = CaptionsGate::Ignore;
        assert!(failing(&judge(&[&none], &g, true)).is_empty());
    }

    #[test]
    fn totals_per_agent_and_worst_first() {
        let records = [
            rec("a", 0.97, 1100, 2.0),
            rec("a", 0.99, 900, 1.0),
            rec("b", 0.90, 1000, 1.0),
        ];
        let t = totals(&records);
        let a = &t.agents["a"];
        assert_eq!((a.files, a.failures), (2, 0));
        assert_eq!(a.min_ssim, 0.97);
        assert!((a.max_size_ratio - 1.1).abs() < 1e-9);
        assert!((a.speed_ratio - 1.5).abs() < 1e-9);
        assert_eq!(t.all.files, 3);
        assert_eq!(worst(&records, 1)[0].agent, "b");
    }

    #[test]
    fn bound_drops_passing_records_first() {
        let mut records: Vec<ShadowRecord> = (0..MAX_RECORDS)
            .map(|_| rec("a", 0.99, 1000, 1.0))
            .collect();
        records.insert(
            0,
            ShadowRecord {
                candidate_ok: false,
                ..rec("bad", 0.0, 0, 0.0)
            },
        );
        bound(&mut records);
        assert_eq!(records.len(), MAX_RECORDS);
        assert_eq!(records[0].agent, "bad");
    }
}
