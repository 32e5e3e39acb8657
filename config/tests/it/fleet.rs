//! Fleet manifests: strict parsing with lines, local-only keys rejected by name, the rollout
//! rules, the canonical form and hash, and the merge over an agent's local config.

use std::path::Path;

use h264_config::agent::{Deinterlace, LogFormat};
use h264_config::fleet::{merge, parse_fleet_manifest, FleetSpec, LoadedManifest, Step};
use h264_config::{AgentConfig, ConfigError, HumanDuration, Problem, Severity};

const FULL: &str = include_str!("../fixtures/fleet-v2-full.yaml");

fn parse(text: &str) -> Result<LoadedManifest, ConfigError> {
    parse_fleet_manifest(text, Some(Path::new("fleet.yaml")))
}

/// A manifest with `spec` indented under it.
fn manifest(spec: &str) -> String {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!("apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata:\n  name: studios\nspec:\n{spec}")
}

fn problems(text: &str) -> Vec<Problem> {
    match parse(text) {
        Ok(l) => l.warnings,
        Err(e) => e.problems().to_vec(),
    }
}

#[test]
fn the_full_manifest_reads_every_key() {
    let m = parse(FULL).unwrap().manifest;
    assert_eq!(m.metadata.name, "studios-2026");
    assert_eq!(m.metadata.labels["team"], "playout");
    let s = &m.spec;
    assert_eq!(s.readiness.stable_for, Some(HumanDuration::from_secs(30)));
    assert_eq!(s.transcode.crf, Some(22));
    assert_eq!(s.transcode.level, Some(Some("4.1".into())));
    assert_eq!(s.transcode.deinterlace, Some(Deinterlace::Auto));
    assert_eq!(
        s.captions.formats.as_deref(),
        Some(&["srt".to_owned(), "vtt".to_owned()][..])
    );
    assert_eq!(s.logging.format, Some(LogFormat::Json));
    assert_eq!(
        s.rollout.steps,
        [
            Step::Canary(2),
            Step::Pause(Some(HumanDuration::from_secs(1800))),
            Step::Percent(25),
            Step::Pause(None),
            Step::Percent(50),
            Step::Pause(Some(HumanDuration::from_secs(3600))),
            Step::Percent(100),
        ]
    );
    assert_eq!(s.rollout.analysis.min_jobs, 5);
}

#[test]
fn a_spec_merged_over_a_local_config_overrides_only_what_it_sets() {
    let mut local = AgentConfig::embedded_default();
    local.agent.id = Some("studio-a".into());
    local.agent.state_dir = "/var/lib/h264create".into();
    local.transcode.ffmpeg = "/opt/ffmpeg/bin/ffmpeg".into();
    local.transcode.crf = 18;
    local.transcode.pix_fmt = "yuv422p".into();
    local.captions.ccextractor = Some("/opt/ccx/ccextractor".into());
    local.logging.dir = Some("/var/log/h264create".into());
    let spec = parse(&manifest(
        "transcode:\n  crf: 23\n  preset: fast\ncaptions:\n  formats: [srt]\nlogging:\n  level: debug\n",
    ))
    .unwrap()
    .manifest
    .spec;

    let merged = merge(&spec, &local);

    let mut want = local.clone();
    want.transcode.crf = 23;
    want.transcode.preset = "fast".into();
    want.captions.formats = vec!["srt".into()];
    want.logging.level = "debug".into();
    assert_eq!(merged, want);
    // Local facts stay local, whatever the fleet says.
    assert_eq!(merged.agent, local.agent);
    assert_eq!(merged.watch, local.watch);
    assert_eq!(merged.transcode.ffmpeg, local.transcode.ffmpeg);
    assert_eq!(merged.transcode.pix_fmt, "yuv422p");
    assert_eq!(merged.logging.dir, local.logging.dir);
    // An empty spec changes nothing.
    assert_eq!(merge(&FleetSpec::default(), &local), local);
}

#[test]
fn local_only_keys_are_rejected_by_name() {
    let cases = [
        (
            "agent:\n  state_dir: /x\n  workers: 4\n",
            &["spec.agent.state_dir", "spec.agent.workers"][..],
        ),
        ("watch:\n  - source: /a\n    output: /b\n", &["spec.watch"]),
        (
            "transcode:\n  ffmpeg: /usr/bin/ffmpeg\n  crf: 20\n",
            &["spec.transcode.ffmpeg"],
        ),
        (
            "captions:\n  ccextractor: /usr/bin/ccextractor\n",
            &["spec.captions.ccextractor"],
        ),
        (
            "logging:\n  dir: /var/log\n  keep: 3\n",
            &["spec.logging.dir", "spec.logging.keep"],
        ),
        ("disk:\n  warn: 10%\n", &["spec.disk.warn"]),
        (
            "controller: {endpoint: \"https://c:7443\"}\n",
            &["spec.controller.endpoint"],
        ),
        (
            "telemetry:\n  otlp_endpoint: http://collector:4317\n",
            &["spec.telemetry.otlp_endpoint"],
        ),
    ];
    for (spec, keys) in cases {
        let problems = problems(&manifest(spec));
        let found: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(found, keys, "{spec}");
        for (p, key) in problems.iter().zip(keys) {
            let shown = p.to_string();
            assert!(p.is_error(), "{shown}");
            assert!(
                shown.contains(&format!("{key} is local to each agent")),
                "{shown}"
            );
            assert!(shown.contains("agent.toml"), "{shown}");
            assert!(p.line.is_some(), "{shown}");
        }
    }
}

/// (name, spec text, expected: severity, key, line within the whole manifest, text)
type Case = (
    &'static str,
    &'static str,
    Option<(Severity, &'static str, usize, &'static str)>,
);

#[test]
fn every_spec_rule_fails_and_passes() {
    use Severity::{Error, Warning};
    // The spec starts at line 6 of the manifest.
    let cases: &[Case] = &[
        ("an empty spec", "{}", None),
        (
            "an unknown section",
            "trancode:\n  crf: 20\n",
            Some((Error, "spec.trancode", 6, "did you mean `transcode`?")),
        ),
        (
            "an unknown key",
            "transcode:\n  crff: 20\n",
            Some((Error, "spec.transcode.crff", 7, "did you mean `crf`?")),
        ),
        (
            "a type error",
            "transcode:\n  crf: high\n",
            Some((
                Error,
                "spec.transcode.crf",
                7,
                "expected a whole number from 0 to 255",
            )),
        ),
        (
            "a bad keyword",
            "transcode:\n  deinterlace: allways\n",
            Some((
                Error,
                "spec.transcode.deinterlace",
                7,
                "did you mean `always`?",
            )),
        ),
        (
            "an agent rule: range",
            "transcode:\n  crf: 70\n",
            Some((Error, "spec.transcode.crf", 7, "70 is out of range 0-51")),
        ),
        (
            "an agent rule: a preset",
            "transcode:\n  preset: veryfsat\n",
            Some((
                Error,
                "spec.transcode.preset",
                7,
                "did you mean `veryfast`?",
            )),
        ),
        (
            "an agent rule: a warning",
            "readiness:\n  stable_for: 0s\n",
            Some((
                Warning,
                "spec.readiness.stable_for",
                7,
                "still being written",
            )),
        ),
        (
            "readiness out of range: the probe timeout",
            "readiness:\n  probe_timeout: 5h\n",
            Some((Error, "spec.readiness.probe_timeout", 7, "longer than 1h")),
        ),
        (
            "readiness out of range: decode errors",
            "readiness:\n  max_decode_errors: 99999999\n",
            Some((
                Error,
                "spec.readiness.max_decode_errors",
                7,
                "out of range 0-10000",
            )),
        ),
        (
            "free-form FFmpeg arguments from a fleet (security review C2)",
            "transcode:\n  extra_args: [-vf, yadif]\n",
            Some((
                Error,
                "spec.transcode.extra_args[0]",
                7,
                "no longer accepted",
            )),
        ),
        (
            "the -f deny-list bypass of the review (-f:x)",
            "transcode:\n  extra_args: [\"-f:x\", ffmetadata, /srv/victim]\n",
            Some((Error, "spec.transcode.extra_args[0]", 7, "no longer accepted")),
        ),
        (
            "free-form arguments under their local name",
            "transcode:\n  local_ffmpeg_args: [-an]\n",
            Some((Error, "spec.transcode.local_ffmpeg_args", 7, "local to each agent")),
        ),
        (
            "an x264 option that writes a file",
            "transcode:\n  x264_params: \"ref=4:stats=/srv/x\"\n",
            Some((Error, "spec.transcode.x264_params", 7, "`stats`")),
        ),
        (
            "a tolerance that lets 0.2s outputs pass (review H1)",
            "transcode:\n  duration_tolerance: 1000h\n",
            Some((Error, "spec.transcode.duration_tolerance", 7, "largest allowed")),
        ),
        (
            "maxrate without bufsize",
            "transcode:\n  maxrate: 4M\n",
            Some((Error, "spec.transcode.maxrate", 7, "bufsize")),
        ),
        (
            "an unknown tune",
            "transcode:\n  tune: movie\n",
            Some((Error, "spec.transcode.tune", 7, "unknown value")),
        ),
        (
            "typed settings in range",
            "transcode:\n  tune: film\n  max_height: 720\n  frame_rate: 30000/1001\n  audio_channels: 2\n  audio_sample_rate: 48000\n",
            None,
        ),
        (
            "an agent rule: bin without CCExtractor",
            "captions:\n  tool: ffmpeg\n  formats: [bin]\n",
            Some((Error, "spec.captions.formats", 8, "needs CCExtractor")),
        ),
        (
            "a null",
            "transcode:\n  crf:\n",
            Some((Error, "spec.transcode.crf", 7, "has no value")),
        ),
        (
            "a key twice",
            "transcode:\n  crf: 20\n  crf: 21\n",
            Some((Error, "spec.transcode.crf", 7, "set twice")),
        ),
        (
            "a rollout key typo",
            "rollout:\n  stepz: []\n",
            Some((Error, "spec.rollout.stepz", 7, "did you mean `steps`?")),
        ),
        (
            "no steps",
            "rollout:\n  steps: []\n",
            Some((Error, "spec.rollout.steps", 7, "has no steps")),
        ),
        (
            "a step typo",
            "rollout:\n  steps:\n  - canery: 1\n  - percent: 100\n",
            Some((
                Error,
                "spec.rollout.steps[0].canery",
                8,
                "did you mean `canary`?",
            )),
        ),
        (
            "a step of two keys",
            "rollout:\n  steps:\n  - {canary: 1, percent: 10}\n  - percent: 100\n",
            Some((Error, "spec.rollout.steps[0]", 8, "is not a step")),
        ),
        (
            "canary zero",
            "rollout:\n  steps:\n  - canary: 0\n  - percent: 100\n",
            Some((Error, "spec.rollout.steps[0].canary", 8, "1 or more")),
        ),
        (
            "percent 150",
            "rollout:\n  steps:\n  - percent: 150\n",
            Some((Error, "spec.rollout.steps[0].percent", 8, "from 1 to 100")),
        ),
        (
            "percent as text",
            "rollout:\n  steps:\n  - percent: 50%\n  - percent: 100\n",
            None,
        ),
        (
            "percent going down",
            "rollout:\n  steps:\n  - percent: 50\n  - percent: 25\n  - percent: 100\n",
            Some((
                Error,
                "spec.rollout.steps[1]",
                9,
                "not above the previous step's 50%",
            )),
        ),
        (
            "canary after percent",
            "rollout:\n  steps:\n  - percent: 10\n  - canary: 1\n  - percent: 100\n",
            Some((Error, "spec.rollout.steps[1]", 9, "canary step comes after")),
        ),
        (
            "never reaching 100",
            "rollout:\n  steps:\n  - canary: 1\n  - percent: 50\n",
            Some((Error, "spec.rollout.steps", 7, "stop at 50%")),
        ),
        (
            "a pause of 0s",
            "rollout:\n  steps:\n  - pause: 0s\n  - percent: 100\n",
            Some((Error, "spec.rollout.steps[0].pause", 8, "{pause: {}}")),
        ),
        (
            "a pause that is no duration",
            "rollout:\n  steps:\n  - pause: later\n  - percent: 100\n",
            Some((Error, "spec.rollout.steps[0].pause", 8, "not a duration")),
        ),
        (
            "a pause for a human",
            "rollout:\n  steps:\n  - canary: 1\n  - pause: {}\n  - percent: 100\n",
            None,
        ),
        (
            "two pauses in a row",
            "rollout:\n  steps:\n  - pause: 1m\n  - pause: 2m\n  - percent: 100\n",
            Some((Warning, "spec.rollout.steps[1]", 9, "follows another pause")),
        ),
        (
            "a pause at the end",
            "rollout:\n  steps:\n  - percent: 100\n  - pause: 1m\n",
            Some((Warning, "spec.rollout.steps", 7, "end with a pause")),
        ),
        (
            "a failure rate above 1",
            "rollout:\n  analysis:\n    max_failure_rate: 1.5\n",
            Some((
                Error,
                "spec.rollout.analysis.max_failure_rate",
                8,
                "from 0 to 1",
            )),
        ),
        (
            "a failure rate in percent",
            "rollout:\n  analysis:\n    max_failure_rate: 10%\n",
            None,
        ),
        (
            "no jobs required",
            "rollout:\n  analysis:\n    min_jobs: 0\n",
            Some((
                Error,
                "spec.rollout.analysis.min_jobs",
                8,
                "pauses for a human",
            )),
        ),
        (
            "an ack deadline of 0s",
            "rollout:\n  analysis:\n    ack_deadline: 0s\n",
            Some((
                Error,
                "spec.rollout.analysis.ack_deadline",
                8,
                "from 1s to 24h",
            )),
        ),
        (
            "an analysis typo",
            "rollout:\n  analysis:\n    min_job: 3\n",
            Some((
                Error,
                "spec.rollout.analysis.min_job",
                8,
                "did you mean `min_jobs`?",
            )),
        ),
    ];
    for (name, spec, expect) in cases {
        let problems = problems(&manifest(spec));
        match expect {
            None => assert!(problems.is_empty(), "{name}: {problems:#?}"),
            Some((severity, key, line, want)) => {
                assert_eq!(problems.len(), 1, "{name}: {problems:#?}");
                let p = &problems[0];
                assert_eq!(
                    (p.severity, p.key.as_str(), p.line),
                    (*severity, *key, Some(*line)),
                    "{name}: {p}"
                );
                let shown = p.to_string();
                assert!(
                    shown.contains(want),
                    "{name}: {shown} does not mention {want:?}"
                );
                assert!(
                    shown.starts_with(&format!(
                        "{}fleet.yaml:{line}: ",
                        if *severity == Warning {
                            "warning: "
                        } else {
                            ""
                        }
                    )),
                    "{name}: {shown}"
                );
            }
        }
    }
}

#[test]
fn the_envelope_is_checked_and_every_problem_reported() {
    let text = "apiVersion: h264create.dev/v2\nkind: FleetConfg\nmetadata:\n  name: Studios!\n  lables: {}\nspecs: {}\n";
    let problems = problems(text);
    let found: Vec<_> = problems.iter().map(|p| (p.key.as_str(), p.line)).collect();
    assert_eq!(
        found,
        [
            ("apiVersion", Some(1)),
            ("kind", Some(2)),
            ("metadata.lables", Some(5)),
            ("metadata.name", Some(4)),
            ("spec", None),
            ("specs", Some(6)),
        ],
        "{problems:#?}"
    );
    let shown: Vec<_> = problems.iter().map(ToString::to_string).collect();
    assert!(shown[0].contains("upgrade fleetctl"), "{}", shown[0]);
    assert!(shown[2].contains("did you mean `labels`?"), "{}", shown[2]);
    assert!(shown[5].contains("did you mean `spec`?"), "{}", shown[5]);
}

#[test]
fn the_canonical_form_ignores_layout_and_metadata() {
    let block = parse(&manifest("transcode:\n  preset: fast\n  crf: 22\nrollout:\n  steps:\n  - canary: 1\n  - percent: 100\n"))
        .unwrap()
        .manifest;
    let flow = parse(
        "{kind: FleetConfig, apiVersion: h264create.dev/v1, metadata: {name: other},\n spec: {rollout: {steps: [{canary: 1}, {percent: \"100%\"}]}, transcode: {crf: 22, preset: fast}}}\n",
    )
    .unwrap()
    .manifest;
    assert_eq!(block.spec.canonical_json(), flow.spec.canonical_json());
    assert_eq!(block.spec.canonical_sha256(), flow.spec.canonical_sha256());
    let json = block.spec.canonical_json();
    assert!(json.starts_with(r#"{"apiVersion":"h264create.dev/v1","spec":{"transcode":{"preset":"fast","crf":22},"rollout":{"steps":[{"canary":1},{"percent":100}]"#), "{json}");

    // Durations are normalised, defaults filled in: "30" seconds and "30s" are the same spec.
    let a = parse(&manifest("readiness: {stable_for: 30}\n"))
        .unwrap()
        .manifest
        .spec;
    let b = parse(&manifest("readiness: {stable_for: 30s}\nrollout: {}\n"))
        .unwrap()
        .manifest
        .spec;
    assert_eq!(a.canonical_sha256(), b.canonical_sha256());

    // One value of difference is another revision.
    let c = parse(&manifest("readiness: {stable_for: 31s}\n"))
        .unwrap()
        .manifest
        .spec;
    assert_ne!(a.canonical_sha256(), c.canonical_sha256());
}

#[test]
fn canonical_bytes_read_back_to_the_same_spec() {
    let spec = parse(FULL).unwrap().manifest.spec;
    let json = spec.canonical_json();
    let back = FleetSpec::from_canonical_json(&json).unwrap();
    assert_eq!(back, spec);
    assert_eq!(back.canonical_json(), json);
    assert!(FleetSpec::from_canonical_json(
        r#"{"apiVersion":"h264create.dev/v1","spec":{"agent":{"id":"x"}}}"#
    )
    .is_err());
}
