//! `spec.rollout`: the steps a new revision goes through (canary agents, growing percentages,
//! pauses) and the analysis that gates each step. Parsed by hand from the manifest's value tree
//! so that every bad step is reported with its index, then checked as a sequence (canaries
//! first, percentages rising to 100, pauses that mean something).

use std::time::Duration;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use toml::{Table, Value};

use super::shadow::{self, ShadowGates, ShadowStep, ShadowWork};
use crate::problem::Problem;
use crate::suggest::did_you_mean;
use crate::units::HumanDuration;

/// One step of a rollout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// `{canary: N}`: the revision goes to N agents first (labelled canaries, else the first by
    /// a stable hash of the agent id).
    Canary(u32),
    /// `{percent: N}`: the revision goes to N% of the fleet (rounded up).
    Percent(u8),
    /// `{pause: 30s}`: soak this long, gates checked at the end; `{pause: {}}`: wait for a human
    /// (`fleetctl rollout resume`).
    Pause(Option<HumanDuration>),
    /// `{shadow: 2h}` (optionally `percent: 25`): a cohort converts real recordings with the
    /// candidate beside production, never published, and the comparisons gate the rollout
    /// (module [`super::shadow`]).
    Shadow(ShadowStep),
}

impl Serialize for Step {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            Step::Canary(n) => map.serialize_entry("canary", n)?,
            Step::Percent(p) => map.serialize_entry("percent", p)?,
            Step::Pause(Some(d)) => map.serialize_entry("pause", d)?,
            Step::Pause(None) => map.serialize_entry("pause", &Table::new())?,
            Step::Shadow(s) => {
                map.serialize_entry("shadow", &s.duration)?;
                if let Some(p) = s.percent {
                    map.serialize_entry("percent", &p)?;
                }
            }
        }
        map.end()
    }
}

/// The gates between steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Analysis {
    /// The largest share (0-1) of failed attempts under the new revision that still passes
    /// (attempts that failed and will be retried count as they fail).
    pub max_failure_rate: f64,
    /// Attempts the cohort must have made before the failure rate counts; fewer is
    /// inconclusive and pauses the rollout for a human (it never passes silently).
    pub min_jobs: u32,
    /// Every online agent of the cohort must acknowledge the revision within this.
    pub ack_deadline: HumanDuration,
    /// A cohort agent that was connected during the rollout and then stays disconnected for
    /// longer than this fails the gate (rollback). Left out of the canonical form when it is
    /// the default, so revisions written before the key existed keep their hash.
    #[serde(skip_serializing_if = "is_default_max_lost")]
    pub max_lost: HumanDuration,
    /// The gates of shadow steps (left out of the canonical form at their defaults).
    #[serde(skip_serializing_if = "ShadowGates::is_default")]
    pub shadow: ShadowGates,
}

/// The default of `analysis.max_lost`: 5 minutes.
pub const DEFAULT_MAX_LOST: HumanDuration = HumanDuration(Duration::from_secs(300));

fn is_default_max_lost(d: &HumanDuration) -> bool {
    *d == DEFAULT_MAX_LOST
}

/// `rollout.max_unavailable`: how many offline cohort agents a step tolerates before it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxUnavailable {
    /// At most this many offline cohort agents; 0 means offline agents never block.
    Count(u32),
    /// At most this share (1-100 %) of the cohort, rounded down.
    Percent(u8),
}

impl Default for MaxUnavailable {
    fn default() -> Self {
        Self::Count(0)
    }
}

impl MaxUnavailable {
    /// The number of offline agents a cohort of `cohort` agents tolerates; `None`: no limit.
    pub fn limit(self, cohort: usize) -> Option<usize> {
        match self {
            Self::Count(0) => None,
            Self::Count(n) => Some(n as usize),
            Self::Percent(p) => Some(usize::from(p) * cohort / 100),
        }
    }
}

impl Serialize for MaxUnavailable {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Count(n) => serializer.serialize_u32(*n),
            Self::Percent(p) => serializer.serialize_str(&format!("{p}%")),
        }
    }
}

impl Default for Analysis {
    fn default() -> Self {
        Self {
            max_failure_rate: 0.05,
            min_jobs: 3,
            ack_deadline: HumanDuration::from_secs(120),
            max_lost: DEFAULT_MAX_LOST,
            shadow: ShadowGates::default(),
        }
    }
}

/// `spec.rollout`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollout {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// The gates.
    pub analysis: Analysis,
    /// Offline cohort agents get the revision when they return and do not block a step unless
    /// more than this many are offline (then the step waits). Left out of the canonical form
    /// when it is the default (0: offline agents never block).
    #[serde(skip_serializing_if = "is_default_max_unavailable")]
    pub max_unavailable: MaxUnavailable,
    /// The extra work shadow steps may cost an agent (left out of the canonical form at its
    /// default).
    #[serde(skip_serializing_if = "ShadowWork::is_default")]
    pub shadow: ShadowWork,
}

fn is_default_max_unavailable(m: &MaxUnavailable) -> bool {
    *m == MaxUnavailable::default()
}

impl Default for Rollout {
    /// One canary, then 25, 50, 75 and 100%, with a 10-minute soak after each but the last.
    fn default() -> Self {
        let soak = Step::Pause(Some(HumanDuration::from_secs(600)));
        Self {
            steps: vec![
                Step::Canary(1),
                soak,
                Step::Percent(25),
                soak,
                Step::Percent(50),
                soak,
                Step::Percent(75),
                soak,
                Step::Percent(100),
            ],
            analysis: Analysis::default(),
            max_unavailable: MaxUnavailable::default(),
            shadow: ShadowWork::default(),
        }
    }
}

const STEP_KEYS: [&str; 4] = ["canary", "percent", "pause", "shadow"];
const STEP_SHAPES: &str =
    "a step is one of {shadow: 2h}, {canary: 1}, {percent: 25}, {pause: 30s}, {pause: {}}";
const ROLLOUT_KEYS: [&str; 4] = ["steps", "analysis", "max_unavailable", "shadow"];
const ANALYSIS_KEYS: [&str; 5] = [
    "max_failure_rate",
    "min_jobs",
    "ack_deadline",
    "max_lost",
    "shadow",
];

/// Reads and checks `spec.rollout`; problems are keyed under `at` (`spec.rollout`).
pub(crate) fn parse(value: &Value, at: &str, out: &mut Vec<Problem>) -> Rollout {
    let mut rollout = Rollout::default();
    let Some(table) = value.as_table() else {
        out.push(
            Problem::error(at, "is not a map")
                .with_hint("rollout: {steps: [...], analysis: {...}}"),
        );
        return rollout;
    };
    for (key, value) in table {
        let key_at = format!("{at}.{key}");
        match key.as_str() {
            "steps" => match value.as_array() {
                Some(items) => {
                    rollout.steps = items
                        .iter()
                        .enumerate()
                        .filter_map(|(i, item)| step(item, &format!("{key_at}[{i}]"), out))
                        .collect();
                    // Rules over the sequence would only guess around a step that failed.
                    if rollout.steps.len() == items.len() {
                        sequence(&rollout.steps, &key_at, out);
                    }
                }
                None => out.push(Problem::error(key_at, "is not a list").with_hint(STEP_SHAPES)),
            },
            "analysis" => rollout.analysis = analysis(value, &key_at, out),
            "shadow" => rollout.shadow = shadow::work(value, &key_at, out),
            "max_unavailable" => match max_unavailable(value) {
                Some(m) => rollout.max_unavailable = m,
                None => {
                    let message = format!(
                        "{value} is not a number of agents (0 or more) or a percentage from 1% to 100%"
                    );
                    let hint = "max_unavailable: 2 (or \"10%\" of the cohort); 0: offline agents never block";
                    out.push(Problem::error(key_at, message).with_hint(hint));
                }
            },
            other => out.push(unknown(&key_at, other, &ROLLOUT_KEYS)),
        }
    }
    rollout
}

fn unknown(at: &str, key: &str, known: &[&str]) -> Problem {
    let hint = did_you_mean(key, known.iter().copied())
        .unwrap_or_else(|| format!("known keys here: {}", known.join(", ")));
    Problem::error(at, format!("unknown key `{key}`")).with_hint(hint)
}

fn step(item: &Value, at: &str, out: &mut Vec<Problem>) -> Option<Step> {
    if let Some(t) = item.as_table().filter(|t| t.contains_key("shadow")) {
        return shadow::step(t, at, out).map(Step::Shadow);
    }
    let table = match item.as_table() {
        Some(t) if t.len() == 1 => t,
        _ => {
            out.push(Problem::error(at, "is not a step").with_hint(STEP_SHAPES));
            return None;
        }
    };
    let (key, value) = table.iter().next()?;
    let key_at = format!("{at}.{key}");
    let step =
        match key.as_str() {
            "canary" => match value.as_integer().and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n >= 1 => Step::Canary(n),
                _ => {
                    let message = format!("{value} is not a number of agents (1 or more)");
                    out.push(Problem::error(key_at, message).with_hint("{canary: 1}"));
                    return None;
                }
            },
            "percent" => match percent(value) {
                Some(p) => Step::Percent(p),
                _ => {
                    let message = format!("{value} is not a percentage from 1 to 100");
                    out.push(Problem::error(key_at, message).with_hint("{percent: 25}"));
                    return None;
                }
            },
            "pause" => match value {
                Value::Table(t) if t.is_empty() => Step::Pause(None),
                other => match duration(other) {
                    Some(d) if d.get().is_zero() => {
                        let hint = "remove the step, or write {pause: {}} to wait for a human";
                        out.push(Problem::error(key_at, "is 0s").with_hint(hint));
                        return None;
                    }
                    Some(d) => Step::Pause(Some(d)),
                    None => {
                        let message = format!("{other} is not a duration");
                        let hint = "{pause: 30s} soaks 30 seconds, {pause: {}} waits for a human";
                        out.push(Problem::error(key_at, message).with_hint(hint));
                        return None;
                    }
                },
            },
            other => {
                out.push(unknown(&key_at, other, &STEP_KEYS).with_hint(
                    did_you_mean(other, STEP_KEYS).unwrap_or_else(|| STEP_SHAPES.into()),
                ));
                return None;
            }
        };
    Some(step)
}

fn max_unavailable(value: &Value) -> Option<MaxUnavailable> {
    match value {
        Value::Integer(n) => u32::try_from(*n).ok().map(MaxUnavailable::Count),
        Value::String(s) => MaxUnavailable::parse(s),
        _ => None,
    }
}

impl MaxUnavailable {
    /// `"2"` (a count) or `"10%"` (1-100 % of the cohort), as the manifest and
    /// `fleetctl rollout start --max-unavailable` write it.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().strip_suffix('%') {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| (1..=100).contains(p))
                .map(MaxUnavailable::Percent),
            None => text.trim().parse::<u32>().ok().map(MaxUnavailable::Count),
        }
    }
}

/// A percentage from 1 to 100 (`25` or `"25%"`).
pub(super) fn percent(value: &Value) -> Option<u8> {
    let number = match value {
        Value::Integer(n) => Some(*n),
        Value::String(s) => s.trim().trim_end_matches('%').trim().parse().ok(),
        _ => None,
    };
    number
        .and_then(|n| u8::try_from(n).ok())
        .filter(|p| (1..=100).contains(p))
}

/// A duration (`"30s"` or a number of seconds).
pub(super) fn duration(value: &Value) -> Option<HumanDuration> {
    match value {
        Value::String(s) => s.parse().ok(),
        Value::Integer(n) => u64::try_from(*n).ok().map(HumanDuration::from_secs),
        _ => None,
    }
}

/// The rules a manifest's list of steps must follow (canaries first, growing percentages, an
/// end at 100 %, ...), for steps given another way (`fleetctl rollout start --steps`); problems
/// are reported at `at`.
pub fn check_steps(steps: &[Step], at: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    sequence(steps, at, &mut out);
    out
}

/// Rules over the whole list of steps.
fn sequence(steps: &[Step], at: &str, out: &mut Vec<Problem>) {
    if steps.is_empty() {
        let hint = "e.g. [{canary: 1}, {pause: 10m}, {percent: 50}, {percent: 100}]";
        out.push(Problem::error(at, "has no steps").with_hint(hint));
        return;
    }
    let mut last_percent: Option<u8> = None;
    let mut previous: Option<Step> = None;
    let mut candidate_runs = false;
    for (i, step) in steps.iter().enumerate() {
        let step_at = format!("{at}[{i}]");
        if matches!(step, Step::Shadow(_)) && candidate_runs {
            out.push(
                Problem::error(step_at.clone(), "a shadow step comes after agents run the revision")
                    .with_hint("put shadow steps first: they judge the revision before any agent depends on it"),
            );
        }
        candidate_runs |= matches!(step, Step::Canary(_) | Step::Percent(_));
        match step {
            Step::Canary(_) if last_percent.is_some() => out.push(
                Problem::error(step_at, "a canary step comes after a percentage")
                    .with_hint("put canary steps first: they pick agents before the cohorts grow"),
            ),
            Step::Percent(p) => {
                if let Some(before) = last_percent.filter(|before| p <= before) {
                    let message = format!("{p}% is not above the previous step's {before}%");
                    let hint =
                        "cohorts only grow: each percentage must be larger than the one before";
                    out.push(Problem::error(step_at, message).with_hint(hint));
                }
                last_percent = Some(*p);
            }
            Step::Pause(_) if matches!(previous, Some(Step::Pause(_))) => {
                out.push(
                    Problem::warning(step_at, "follows another pause; the two add up")
                        .with_hint("merge them into one"),
                );
            }
            _ => {}
        }
        previous = Some(*step);
    }
    if last_percent != Some(100) {
        let ends = last_percent.map_or("canaries only".to_owned(), |p| format!("{p}%"));
        let message = format!("stop at {ends}: the revision would never reach the whole fleet");
        out.push(Problem::error(at, message).with_hint("end with {percent: 100}"));
    }
    if matches!(steps.last(), Some(Step::Pause(_))) {
        let message =
            "end with a pause: it only delays Succeeded after every agent has the revision";
        out.push(Problem::warning(at, message).with_hint("remove the last pause"));
    }
}

fn analysis(value: &Value, at: &str, out: &mut Vec<Problem>) -> Analysis {
    let mut analysis = Analysis::default();
    let Some(table) = value.as_table() else {
        out.push(
            Problem::error(at, "is not a map")
                .with_hint("analysis: {max_failure_rate: 0.05, min_jobs: 3, ack_deadline: 2m}"),
        );
        return analysis;
    };
    for (key, value) in table {
        let key_at = format!("{at}.{key}");
        match key.as_str() {
            "max_failure_rate" => {
                let rate = match value {
                    Value::Float(f) => Some(*f),
                    Value::Integer(n) => Some(*n as f64),
                    Value::String(s) => s
                        .trim()
                        .strip_suffix('%')
                        .and_then(|p| p.trim().parse::<f64>().ok())
                        .map(|p| p / 100.0),
                    _ => None,
                };
                match rate {
                    Some(r) if (0.0..=1.0).contains(&r) => analysis.max_failure_rate = r,
                    _ => {
                        let message = format!("{value} is not a share from 0 to 1");
                        out.push(
                            Problem::error(key_at, message)
                                .with_hint("0.05 (or \"5%\") lets one job in twenty fail"),
                        );
                    }
                }
            }
            "min_jobs" => match value.as_integer().and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n >= 1 => analysis.min_jobs = n,
                _ => {
                    let message = format!("{value} is not a number of jobs (1 or more)");
                    let hint = "a gate without jobs proves nothing: it pauses for a human instead";
                    out.push(Problem::error(key_at, message).with_hint(hint));
                }
            },
            "ack_deadline" => match duration(value) {
                Some(d)
                    if d.get() >= Duration::from_secs(1)
                        && d.get() <= Duration::from_secs(86_400) =>
                {
                    analysis.ack_deadline = d;
                }
                _ => {
                    let message = format!("{value} is not a duration from 1s to 24h");
                    out.push(Problem::error(key_at, message).with_hint("ack_deadline: 2m"));
                }
            },
            "max_lost" => match duration(value) {
                Some(d)
                    if d.get() >= Duration::from_secs(1)
                        && d.get() <= Duration::from_secs(86_400) =>
                {
                    analysis.max_lost = d;
                }
                _ => {
                    let message = format!("{value} is not a duration from 1s to 24h");
                    out.push(Problem::error(key_at, message).with_hint("max_lost: 5m"));
                }
            },
            "shadow" => analysis.shadow = shadow::gates(value, &key_at, out),
            other => out.push(unknown(&key_at, other, &ANALYSIS_KEYS)),
        }
    }
    analysis
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> (Rollout, Vec<Problem>) {
        let value: Value = toml::from_str(text).unwrap();
        let mut out = Vec::new();
        let rollout = parse(&value, "spec.rollout", &mut out);
        (rollout, out)
    }

    #[test]
    fn max_lost_and_max_unavailable_default_and_stay_out_of_the_canonical_form() {
        let (r, out) = read("");
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(r.analysis.max_lost, HumanDuration::from_secs(300));
        assert_eq!(r.max_unavailable, MaxUnavailable::Count(0));
        assert_eq!(r.max_unavailable.limit(10), None);
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("max_lost"), "{json}");
        assert!(!json.contains("max_unavailable"), "{json}");
    }

    #[test]
    fn max_lost_and_max_unavailable_parse() {
        let (r, out) = read("max_unavailable = 2\n[analysis]\nmax_lost = \"90s\"\n");
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(r.analysis.max_lost, HumanDuration::from_secs(90));
        assert_eq!(r.max_unavailable, MaxUnavailable::Count(2));
        assert_eq!(r.max_unavailable.limit(10), Some(2));
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"max_unavailable\":2"), "{json}");
        assert!(json.contains("\"max_lost\""), "{json}");

        let (r, out) = read("max_unavailable = \"10%\"\n");
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(r.max_unavailable, MaxUnavailable::Percent(10));
        assert_eq!(r.max_unavailable.limit(25), Some(2), "rounded down");
        assert_eq!(r.max_unavailable.limit(5), Some(0));
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"max_unavailable\":\"10%\""), "{json}");
    }

    #[test]
    fn bad_max_lost_and_max_unavailable_are_reported_by_key() {
        for (text, key) in [
            ("max_unavailable = -1\n", "spec.rollout.max_unavailable"),
            ("max_unavailable = \"0%\"\n", "spec.rollout.max_unavailable"),
            (
                "max_unavailable = \"150%\"\n",
                "spec.rollout.max_unavailable",
            ),
            ("max_unavailable = 1.5\n", "spec.rollout.max_unavailable"),
            (
                "[analysis]\nmax_lost = \"0s\"\n",
                "spec.rollout.analysis.max_lost",
            ),
            (
                "[analysis]\nmax_lost = \"soon\"\n",
                "spec.rollout.analysis.max_lost",
            ),
            (
                "[analysis]\nmax_los = \"5m\"\n",
                "spec.rollout.analysis.max_los",
            ),
        ] {
            let (_, out) = read(text);
            assert_eq!(out.len(), 1, "{text}: {out:?}");
            assert!(out[0].is_error(), "{text}");
            assert_eq!(out[0].key, key, "{text}");
        }
    }
}
