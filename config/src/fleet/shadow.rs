//! Shadow mode in `spec.rollout`: the `{shadow: 2h}` step (a cohort converts real recordings
//! with the candidate revision beside production, never published), the gates of
//! `analysis.shadow` that judge the comparisons, and `rollout.shadow` (how much extra work an
//! agent takes on). Parsed by hand from the manifest's value tree, like the rest of the rollout,
//! so every bad key is reported with its path.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use crate::problem::Problem;
use crate::suggest::did_you_mean;
use crate::units::HumanDuration;

/// `{shadow: 2h}` or `{shadow: 2h, percent: 25}`: the step's length and its cohort (`None`:
/// the canary cohort, the agents the rollout's first canary step will pick).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShadowStep {
    /// How long the cohort shadows before the gates decide.
    pub duration: HumanDuration,
    /// The cohort as a share of the fleet (1-100 %, rounded up); `None`: the canary cohort.
    pub percent: Option<u8>,
}

/// What `analysis.shadow: {captions: ...}` asks of the candidate's captions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptionsGate {
    /// The candidate's cues are production's, cue by cue (text and order; times within 0.5 s).
    Identical,
    /// Wherever production has captions, the candidate has some.
    Present,
    /// Captions are not judged.
    Ignore,
}

impl CaptionsGate {
    /// Its name in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identical => "identical",
            Self::Present => "present",
            Self::Ignore => "ignore",
        }
    }
}

/// What `analysis.shadow: {layout: ...}` asks of the candidate's stream layout (the video's
/// codec, size and pixel format, the audio streams' codecs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayoutGate {
    /// The candidate's outputs have production's layout (a revision meant to change it, a new
    /// `max_height` say, sets `ignore` for its rollout).
    #[default]
    Identical,
    /// Layouts are reported, not judged.
    Ignore,
}

impl LayoutGate {
    /// Its name in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identical => "identical",
            Self::Ignore => "ignore",
        }
    }

    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// The default of [`ShadowGates::max_duration_difference`]: one second.
fn one_second() -> HumanDuration {
    HumanDuration::from_secs(1)
}

fn is_one_second(d: &HumanDuration) -> bool {
    *d == one_second()
}

/// `analysis.shadow`: the gates of a shadow step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShadowGates {
    /// Recordings compared before the step can pass; fewer at its end is inconclusive (the
    /// rollout pauses for a human).
    pub min_files: u32,
    /// Recordings production converted and the candidate did not, tolerated.
    pub max_failures: u32,
    /// The lowest SSIM (against the decoded source) any candidate output may have.
    pub min_ssim: f64,
    /// The largest candidate size / production size of any recording.
    pub max_size_ratio: f64,
    /// The largest candidate encode CPU time / production encode CPU time, summed over all
    /// recordings of the step (judged at its end). CPU time, not wall time: shadow work runs
    /// in the idle scheduling class and waits for whatever production leaves, so its wall time
    /// says how busy the host was, not what the candidate costs. (Agents that report no CPU
    /// times are judged on wall times, when no record of the step has CPU times.)
    pub max_speed_ratio: f64,
    /// What the candidate's captions must be (in the MP4 and in the sidecars).
    pub captions: CaptionsGate,
    /// What the candidate's stream layout must be. (Left out of the canonical form at its
    /// default, as is the next key, so revisions written before it keep their hash.)
    #[serde(skip_serializing_if = "LayoutGate::is_default")]
    pub layout: LayoutGate,
    /// The largest difference between the candidate's output duration and production's.
    #[serde(skip_serializing_if = "is_one_second")]
    pub max_duration_difference: HumanDuration,
}

impl Default for ShadowGates {
    fn default() -> Self {
        Self {
            min_files: 3,
            max_failures: 0,
            min_ssim: 0.95,
            max_size_ratio: 1.5,
            max_speed_ratio: 2.0,
            captions: CaptionsGate::Identical,
            layout: LayoutGate::Identical,
            max_duration_difference: one_second(),
        }
    }
}

impl ShadowGates {
    /// Whether every gate has its default (then the key stays out of the canonical form, so
    /// revisions written before shadow mode keep their hash).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// `rollout.shadow`: the extra work shadowing may cost an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ShadowWork {
    /// Shadow conversions an agent runs at once (1-8), at a lower CPU priority than production.
    pub workers: u32,
}

impl Default for ShadowWork {
    fn default() -> Self {
        Self { workers: 1 }
    }
}

impl ShadowWork {
    /// Whether it is the default (then it stays out of the canonical form).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

const STEP_HINT: &str = "{shadow: 2h} (the canary cohort) or {shadow: 2h, percent: 25}";
const GATE_KEYS: [&str; 8] = [
    "min_files",
    "max_failures",
    "min_ssim",
    "max_size_ratio",
    "max_speed_ratio",
    "captions",
    "layout",
    "max_duration_difference",
];
const WORK_KEYS: [&str; 1] = ["workers"];

fn unknown(at: &str, key: &str, known: &[&str]) -> Problem {
    let hint = did_you_mean(key, known.iter().copied())
        .unwrap_or_else(|| format!("known keys here: {}", known.join(", ")));
    Problem::error(at, format!("unknown key `{key}`")).with_hint(hint)
}

/// Reads a `{shadow: ..., percent: ...}` step (the table holds `shadow`); problems at `at`.
pub(crate) fn step(table: &Table, at: &str, out: &mut Vec<Problem>) -> Option<ShadowStep> {
    let mut ok = true;
    let mut duration = None;
    let mut percent = None;
    for (key, value) in table {
        let key_at = format!("{at}.{key}");
        match key.as_str() {
            "shadow" => match super::rollout::duration(value) {
                Some(d) if d.get() >= Duration::from_secs(1) => duration = Some(d),
                _ => {
                    let message = format!("{value} is not a duration of 1s or more");
                    out.push(Problem::error(key_at, message).with_hint(STEP_HINT));
                    ok = false;
                }
            },
            "percent" => match super::rollout::percent(value) {
                Some(p) => percent = Some(p),
                None => {
                    let message = format!("{value} is not a percentage from 1 to 100");
                    out.push(Problem::error(key_at, message).with_hint(STEP_HINT));
                    ok = false;
                }
            },
            other => {
                out.push(unknown(&key_at, other, &["shadow", "percent"]));
                ok = false;
            }
        }
    }
    match (ok, duration) {
        (true, Some(duration)) => Some(ShadowStep { duration, percent }),
        _ => None,
    }
}

/// Reads `analysis.shadow`; problems at `at`.
pub(crate) fn gates(value: &Value, at: &str, out: &mut Vec<Problem>) -> ShadowGates {
    let mut gates = ShadowGates::default();
    let Some(table) = value.as_table() else {
        let hint = "shadow: {min_files: 3, min_ssim: 0.95, captions: identical}";
        out.push(Problem::error(at, "is not a map").with_hint(hint));
        return gates;
    };
    for (key, value) in table {
        let key_at = format!("{at}.{key}");
        let count = || value.as_integer().and_then(|n| u32::try_from(n).ok());
        let number = || match value {
            Value::Float(f) => Some(*f),
            Value::Integer(n) => Some(*n as f64),
            _ => None,
        };
        let bad = |message: String, hint: &str| Problem::error(&key_at, message).with_hint(hint);
        match key.as_str() {
            "min_files" => match count() {
                Some(n) if n >= 1 => gates.min_files = n,
                _ => out.push(bad(
                    format!("{value} is not a number of recordings (1 or more)"),
                    "a shadow step that compared nothing proves nothing: it pauses instead",
                )),
            },
            "max_failures" => match count() {
                Some(n) => gates.max_failures = n,
                _ => out.push(bad(
                    format!("{value} is not a number of recordings (0 or more)"),
                    "max_failures: 0 (any recording the candidate cannot convert fails)",
                )),
            },
            "min_ssim" => match number() {
                Some(s) if (0.0..=1.0).contains(&s) => gates.min_ssim = s,
                _ => out.push(bad(
                    format!("{value} is not an SSIM from 0 to 1"),
                    "min_ssim: 0.95",
                )),
            },
            "max_size_ratio" | "max_speed_ratio" => match number() {
                Some(r) if r > 0.0 && r.is_finite() => {
                    if key == "max_size_ratio" {
                        gates.max_size_ratio = r;
                    } else {
                        gates.max_speed_ratio = r;
                    }
                }
                _ => out.push(bad(
                    format!("{value} is not a ratio above 0"),
                    "1.5 lets the candidate be half as large (or slow) again as production",
                )),
            },
            "captions" => match value.as_str() {
                Some("identical") => gates.captions = CaptionsGate::Identical,
                Some("present") => gates.captions = CaptionsGate::Present,
                Some("ignore") => gates.captions = CaptionsGate::Ignore,
                _ => out.push(bad(
                    format!("{value} is not identical, present or ignore"),
                    "captions: identical (cue for cue), present, or ignore",
                )),
            },
            "layout" => match value.as_str() {
                Some("identical") => gates.layout = LayoutGate::Identical,
                Some("ignore") => gates.layout = LayoutGate::Ignore,
                _ => out.push(bad(
                    format!("{value} is not identical or ignore"),
                    "layout: identical (same streams, codecs and picture size as production), or ignore",
                )),
            },
            "max_duration_difference" => match super::rollout::duration(value) {
                Some(d) => gates.max_duration_difference = d,
                None => out.push(bad(
                    format!("{value} is not a duration"),
                    "max_duration_difference: 1s (a candidate's output as long as production's)",
                )),
            },
            other => out.push(unknown(&key_at, other, &GATE_KEYS)),
        }
    }
    gates
}

/// Reads `rollout.shadow`; problems at `at`.
pub(crate) fn work(value: &Value, at: &str, out: &mut Vec<Problem>) -> ShadowWork {
    let mut work = ShadowWork::default();
    let Some(table) = value.as_table() else {
        out.push(Problem::error(at, "is not a map").with_hint("shadow: {workers: 1}"));
        return work;
    };
    for (key, value) in table {
        let key_at = format!("{at}.{key}");
        match key.as_str() {
            "workers" => match value.as_integer().and_then(|n| u32::try_from(n).ok()) {
                Some(n) if (1..=8).contains(&n) => work.workers = n,
                _ => out.push(
                    Problem::error(key_at, format!("{value} is not from 1 to 8"))
                        .with_hint("shadow work runs beside production: keep it small"),
                ),
            },
            other => out.push(unknown(&key_at, other, &WORK_KEYS)),
        }
    }
    work
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::rollout::{check_steps, parse, Step};

    fn read(text: &str) -> (crate::fleet::Rollout, Vec<Problem>) {
        let value: Value = toml::from_str(text).unwrap();
        let mut out = Vec::new();
        let rollout = parse(&value, "spec.rollout", &mut out);
        (rollout, out)
    }

    #[test]
    fn shadow_steps_and_gates_parse_and_round_trip() {
        let text = "steps = [{shadow = \"2h\"}, {shadow = \"10m\", percent = 25}, {canary = 1}, {percent = 100}]\n\
                    shadow = {workers = 2}\n\
                    [analysis.shadow]\nmin_files = 5\nmax_failures = 1\nmin_ssim = 0.9\n\
                    max_size_ratio = 1.2\nmax_speed_ratio = 3\ncaptions = \"present\"\n\
                    layout = \"ignore\"\nmax_duration_difference = \"2s\"\n";
        let (r, out) = read(text);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(
            r.steps[0],
            Step::Shadow(ShadowStep {
                duration: HumanDuration::from_secs(7200),
                percent: None
            })
        );
        assert_eq!(
            r.steps[1],
            Step::Shadow(ShadowStep {
                duration: HumanDuration::from_secs(600),
                percent: Some(25)
            })
        );
        let g = r.analysis.shadow;
        assert_eq!((g.min_files, g.max_failures), (5, 1));
        assert_eq!(
            (g.min_ssim, g.max_size_ratio, g.max_speed_ratio),
            (0.9, 1.2, 3.0)
        );
        assert_eq!(g.captions, CaptionsGate::Present);
        assert_eq!(g.layout, LayoutGate::Ignore);
        assert_eq!(g.max_duration_difference, HumanDuration::from_secs(2));
        assert_eq!(r.shadow.workers, 2);
        // The canonical form parses back to the same rollout.
        let json = serde_json::to_string(&r).unwrap();
        let value: Value = serde_json::from_str(&json).unwrap();
        let mut out = Vec::new();
        let again = parse(&value, "spec.rollout", &mut out);
        assert!(out.is_empty(), "{json}: {out:?}");
        assert_eq!(again, r, "{json}");
    }

    #[test]
    fn defaults_stay_out_of_the_canonical_form() {
        let (r, out) = read("");
        assert!(out.is_empty(), "{out:?}");
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("shadow"), "{json}");
    }

    #[test]
    fn bad_shadow_settings_are_reported_by_key() {
        for (text, key) in [
            (
                "steps = [{shadow = \"0s\"}, {percent = 100}]\n",
                "spec.rollout.steps[0].shadow",
            ),
            (
                "steps = [{shadow = \"soon\"}, {percent = 100}]\n",
                "spec.rollout.steps[0].shadow",
            ),
            (
                "steps = [{shadow = \"1h\", percent = 0}, {percent = 100}]\n",
                "spec.rollout.steps[0].percent",
            ),
            (
                "steps = [{shadow = \"1h\", canary = 1}, {percent = 100}]\n",
                "spec.rollout.steps[0].canary",
            ),
            (
                "[analysis.shadow]\nmin_ssim = 1.5\n",
                "spec.rollout.analysis.shadow.min_ssim",
            ),
            (
                "[analysis.shadow]\nmin_files = 0\n",
                "spec.rollout.analysis.shadow.min_files",
            ),
            (
                "[analysis.shadow]\ncaptions = \"same\"\n",
                "spec.rollout.analysis.shadow.captions",
            ),
            (
                "[analysis.shadow]\nmax_size_ratio = 0\n",
                "spec.rollout.analysis.shadow.max_size_ratio",
            ),
            (
                "[analysis.shadow]\nlayout = \"same\"\n",
                "spec.rollout.analysis.shadow.layout",
            ),
            (
                "[analysis.shadow]\nmax_duration_difference = \"long\"\n",
                "spec.rollout.analysis.shadow.max_duration_difference",
            ),
            (
                "[analysis.shadow]\nmin_ssm = 0.9\n",
                "spec.rollout.analysis.shadow.min_ssm",
            ),
            ("shadow = {workers = 0}\n", "spec.rollout.shadow.workers"),
            ("shadow = {workers = 9}\n", "spec.rollout.shadow.workers"),
        ] {
            let (_, out) = read(text);
            assert_eq!(out.len(), 1, "{text}: {out:?}");
            assert!(out[0].is_error(), "{text}");
            assert_eq!(out[0].key, key, "{text}");
        }
    }

    #[test]
    fn a_shadow_step_comes_before_any_agent_runs_the_candidate() {
        let shadow = Step::Shadow(ShadowStep {
            duration: HumanDuration::from_secs(60),
            percent: None,
        });
        let ok = [shadow, Step::Canary(1), Step::Percent(100)];
        assert!(check_steps(&ok, "steps").is_empty());
        for bad in [
            vec![Step::Canary(1), shadow, Step::Percent(100)],
            vec![Step::Percent(50), shadow, Step::Percent(100)],
        ] {
            let out = check_steps(&bad, "steps");
            assert!(
                out.iter().any(|p| p.is_error() && p.key == "steps[1]"),
                "{bad:?}: {out:?}"
            );
        }
    }
}
