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
//!   the speed ratio is judged with the rest: total candidate encode CPU time over total
//!   production encode CPU time (single recordings are noisy; shadow work runs in the idle
//!   scheduling class, so its wall time says how busy the host was, not what the candidate
//!   costs). Records from agents that do not measure CPU times are judged on wall times, and
//!   only when no record of the step has CPU times.

use std::collections::BTreeMap;

use h264_config::fleet::{CaptionsGate, LayoutGate, ShadowGates};
use h264_proto::shadow::ratio;
use h264_proto::v1::ShadowComparison;
use serde::{Deserialize, Serialize};

/// Comparisons kept per rollout at most (the oldest passing ones go first).
pub const MAX_RECORDS: usize = 2000;
/// The worst recordings shown by `fleetctl rollout status`.
pub const WORST_SHOWN: usize = 5;

/// One recording converted by production and by the candidate, as an agent reported it: the
/// agent's [`ShadowComparison`] (its `at_ms` the controller's clock, its measures made finite)
/// with who reported it and in which step. Saved with the rollout's state, flat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShadowRecord {
    /// The agent that converted it.
    pub agent: String,
    /// The rollout step it was reported in.
    pub step: usize,
    /// What the agent measured.
    #[serde(flatten)]
    pub comparison: ShadowComparison,
}

impl std::ops::Deref for ShadowRecord {
    type Target = ShadowComparison;

    fn deref(&self) -> &ShadowComparison {
        &self.comparison
    }
}

impl ShadowRecord {
    /// How bad it is, for sorting (higher is worse): a failure first, then lost or changed
    /// captions, then a changed layout or duration, then the lowest SSIM.
    fn badness(&self) -> (u8, u8, i64) {
        let failed = u8::from(!self.candidate_ok);
        let captions = u8::from(self.production_captioned() && !self.captions_identical());
        (failed, captions, -((self.candidate_ssim * 1e6) as i64))
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
    /// Total candidate encode wall time over total production encode wall time.
    pub speed_ratio: f64,
    /// Recordings whose captions differ.
    pub caption_mismatches: u32,
    /// Total candidate encode CPU time over total production encode CPU time, over the
    /// recordings with both measured (0: none).
    pub cpu_ratio: f64,
    /// Recordings with both encodes' CPU times measured.
    pub cpu_files: u32,
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
        candidate_cpu: f64,
        production_cpu: f64,
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
        if r.has_cpu_times() {
            s.t.cpu_files += 1;
            s.candidate_cpu += r.candidate_cpu_secs;
            s.production_cpu += r.production_cpu_secs;
            s.t.cpu_ratio = ratio(s.candidate_cpu, s.production_cpu);
        }
        if r.production_captioned() && !r.captions_identical() {
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
                CaptionsGate::Identical => !r.captions_identical(),
                _ => !r.captions_present(),
            })
            .collect();
        let measured = match bad.first() {
            None => format!("{} captioned recording(s), all {}", captioned.len(), g.captions.as_str()),
            Some(r) => format!(
                "{} of {} captioned recording(s) not {}: {} on {} ({} cue(s) in production's MP4, {} in the candidate's; {} in production's sidecars, {} in the candidate's{})",
                bad.len(),
                captioned.len(),
                g.captions.as_str(),
                r.file,
                r.agent,
                r.production_cues,
                r.candidate_cues,
                r.production_sidecar_cues,
                r.candidate_sidecar_cues,
                match r.caption_difference_text() {
                    "" => String::new(),
                    d => format!("; {d}"),
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
    if g.layout == LayoutGate::Identical && !converted.is_empty() {
        let other: Vec<&&&ShadowRecord> = converted
            .iter()
            .filter(|r| r.candidate_layout != r.production_layout)
            .collect();
        let measured = match other.first() {
            None => format!(
                "{} recording(s), every stream layout production's",
                converted.len()
            ),
            Some(r) => format!(
                "{} of {} recording(s) with another stream layout: {} on {} (production `{}`, the candidate `{}`)",
                other.len(),
                converted.len(),
                r.file,
                r.agent,
                r.production_layout,
                r.candidate_layout
            ),
        };
        push(
            "shadow.layout",
            other.is_empty(),
            true,
            measured,
            "layout identical".into(),
        );
    }
    let difference = |r: &ShadowRecord| (r.candidate_secs - r.production_secs).abs();
    if let Some(far) = converted
        .iter()
        .max_by(|a, b| difference(a).total_cmp(&difference(b)))
    {
        let limit = g.max_duration_difference.get().as_secs_f64();
        push(
            "shadow.max_duration_difference",
            difference(far) <= limit,
            true,
            format!(
                "largest duration difference {:.3}s ({} on {}: production {:.3}s, the candidate {:.3}s)",
                difference(far),
                far.file,
                far.agent,
                far.production_secs,
                far.candidate_secs
            ),
            format!("<= {limit:.3}s"),
        );
    }
    if end && !converted.is_empty() {
        let (measured, what) = if t.cpu_files > 0 {
            let what = format!(
                "candidate/production encode CPU time {:.3} over {} recording(s)",
                t.cpu_ratio, t.cpu_files
            );
            (t.cpu_ratio, what)
        } else {
            let what = format!(
                "candidate/production encode wall time {:.3} over {} recording(s) (no CPU times reported)",
                t.speed_ratio,
                converted.len()
            );
            (t.speed_ratio, what)
        };
        push(
            "shadow.max_speed_ratio",
            measured <= g.max_speed_ratio,
            false,
            what,
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
            .position(|r| r.candidate_ok && (!r.production_captioned() || r.captions_identical()))
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
            step: 0,
            comparison: ShadowComparison {
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
                ..ShadowComparison::default()
            },
        }
    }

    /// `r` changed by `change`.
    fn with(mut r: ShadowRecord, change: impl FnOnce(&mut ShadowComparison)) -> ShadowRecord {
        change(&mut r.comparison);
        r
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
            6,
            "no speed verdict before the end"
        );

        let cases: Vec<(ShadowRecord, &str, bool)> = vec![
            (rec("c", 0.70, 500, 1.0), "shadow.min_ssim", true),
            (rec("c", 0.99, 2000, 1.0), "shadow.max_size_ratio", true),
            (rec("c", 0.99, 1000, 9.0), "shadow.max_speed_ratio", false),
            (
                with(rec("c", 0.0, 0, 0.0), |c| {
                    c.candidate_ok = false;
                    c.candidate_error = "FFmpeg failed".into();
                }),
                "shadow.max_failures",
                true,
            ),
            (
                with(rec("c", 0.99, 1000, 1.0), |c| {
                    c.candidate_cues = 0;
                    c.cues_identical = false;
                }),
                "shadow.captions",
                true,
            ),
            (
                with(rec("c", 0.99, 1000, 1.0), |c| {
                    c.sidecar_difference = ".srt: cue 2 differs".into();
                }),
                "shadow.captions",
                true,
            ),
            (
                with(rec("c", 0.99, 1000, 1.0), |c| {
                    c.candidate_layout = "h264 320x180 yuv420p; aac".into();
                }),
                "shadow.layout",
                true,
            ),
            (
                with(rec("c", 0.99, 1000, 1.0), |c| c.candidate_secs = 2.5),
                "shadow.max_duration_difference",
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
    fn the_speed_gate_judges_cpu_times_and_wall_times_only_without_them() {
        let g = ShadowGates::default();
        let timed = |r: ShadowRecord, production: f64, candidate: f64| {
            with(r, |c| {
                c.production_cpu_secs = production;
                c.candidate_cpu_secs = candidate;
            })
        };
        // Idle-class shadow work waited 9x production's wall time but cost 1.2x its CPU time.
        let waited = timed(rec("a", 0.99, 1000, 9.0), 10.0, 12.0);
        let verdicts = judge(&[&waited], &g, true);
        assert!(failing(&verdicts).is_empty(), "{verdicts:?}");
        let speed = verdicts.last().unwrap();
        assert_eq!(speed.gate, "shadow.max_speed_ratio");
        assert!(speed.measured.contains("CPU time 1.200"), "{speed:?}");
        // A candidate that costs 3x the CPU fails however fast it ran.
        let costly = timed(rec("b", 0.99, 1000, 1.0), 10.0, 30.0);
        let verdicts = judge(&[&waited, &costly], &g, true);
        assert_eq!(failing(&verdicts), ["shadow.max_speed_ratio"]);
        assert!(
            verdicts
                .last()
                .unwrap()
                .measured
                .contains("CPU time 2.100 over 2"),
            "{verdicts:?}"
        );
        // A record without CPU times (an older agent) does not count in the CPU total...
        let old = rec("c", 0.99, 1000, 9.0);
        let t = totals([&waited, &old]).all;
        assert_eq!((t.cpu_files, t.cpu_ratio), (1, 1.2));
        assert!(failing(&judge(&[&waited, &old], &g, true)).is_empty());
        // ... and wall times are judged only when no record has CPU times.
        let verdicts = judge(&[&old], &g, true);
        assert_eq!(failing(&verdicts), ["shadow.max_speed_ratio"]);
        assert!(
            verdicts
                .last()
                .unwrap()
                .measured
                .contains("wall time 9.000"),
            "{verdicts:?}"
        );
    }

    #[test]
    fn captions_present_accepts_different_cues_and_ignore_accepts_none() {
        let changed = with(rec("a", 0.99, 1000, 1.0), |c| {
            c.candidate_cues = 1;
            c.cues_identical = false;
            c.caption_difference = "cue 2 differs".into();
        });
        let refs = [&changed];
        let mut g = ShadowGates::default();
        assert_eq!(failing(&judge(&refs, &g, true)), ["shadow.captions"]);
        g.captions = CaptionsGate::Present;
        assert!(failing(&judge(&refs, &g, true)).is_empty());
        let none = with(changed.clone(), |c| c.candidate_cues = 0);
        assert_eq!(failing(&judge(&[&none], &g, true)), ["shadow.captions"]);
        g.captions = CaptionsGate::Ignore;
        assert!(failing(&judge(&[&none], &g, true)).is_empty());
    }

    #[test]
    fn layout_ignore_and_a_wider_duration_tolerance_let_an_intended_change_pass() {
        let r = with(rec("a", 0.99, 1000, 1.0), |c| {
            c.production_layout = "h264 640x360 yuv420p; aac".into();
            c.candidate_layout = "h264 1280x720 yuv420p; aac".into();
            c.production_secs = 10.0;
            c.candidate_secs = 11.5;
        });
        let mut g = ShadowGates::default();
        assert_eq!(
            failing(&judge(&[&r], &g, true)),
            ["shadow.layout", "shadow.max_duration_difference"]
        );
        g.layout = LayoutGate::Ignore;
        g.max_duration_difference = h264_config::units::HumanDuration::from_secs(2);
        assert!(failing(&judge(&[&r], &g, true)).is_empty());
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
        records.insert(0, with(rec("bad", 0.0, 0, 0.0), |c| c.candidate_ok = false));
        bound(&mut records);
        assert_eq!(records.len(), MAX_RECORDS);
        assert_eq!(records[0].agent, "bad");
    }
}
