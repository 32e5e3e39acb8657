//! Loading `agent.toml`: strict parsing, every problem at once, the example and the minimum file.

use std::path::{Path, PathBuf};

use h264_config::agent::{AgentConfig, EXAMPLE_AGENT_TOML};
use h264_config::{load_agent_config, parse_agent_config, ConfigError, HumanDuration, Problem};
use h264_config::{Loaded, Severity};

/// A temporary folder with an existing `incoming` sub-folder to use as a source.
fn source_dir() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("incoming")).unwrap();
    let source = dir
        .path()
        .join("incoming")
        .to_str()
        .unwrap()
        .replace('\\', "/");
    (dir, source)
}

/// `[[watch]]` with an existing source and an output beside it.
fn watch_block(source: &str) -> String {
    format!("[[watch]]\nsource = \"{source}\"\noutput = \"{source}-h264\"\n")
}

fn parse(text: &str) -> Result<Loaded, ConfigError> {
    parse_agent_config(text, Some(Path::new("agent.toml")))
}

fn problems(text: &str) -> Vec<Problem> {
    match parse(text) {
        Ok(loaded) => panic!(
            "expected errors, loaded with warnings {:?}",
            loaded.warnings
        ),
        Err(e) => e.problems().to_vec(),
    }
}

fn keys(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.key.as_str()).collect()
}

#[test]
fn minimum_config_is_accepted() {
    let (_dir, source) = source_dir();
    let text = format!(
        r#"
[agent]
id = "studio-a"
state_dir = "/var/lib/h264create"
workers = 2

[[watch]]
source = "{source}"
output = "/srv/recordings/h264"
extensions = ["ts", "wtv", "mp4"]

[readiness]
stable_for = "10s"

[transcode]
preset = "veryfast"
crf = 21
"#
    );
    let loaded = parse(&text).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert_eq!(c.agent.id.as_deref(), Some("studio-a"));
    assert_eq!(c.agent.state_dir, PathBuf::from("/var/lib/h264create"));
    assert_eq!(c.watch.len(), 1);
    assert_eq!(c.watch[0].output, PathBuf::from("/srv/recordings/h264"));
    assert_eq!(c.watch[0].extensions, ["ts", "wtv", "mp4"]);
    assert_eq!(c.readiness.stable_for, HumanDuration::from_secs(10));
    assert_eq!(
        (c.transcode.preset.as_str(), c.transcode.crf),
        ("veryfast", 21)
    );
}

#[test]
fn example_parses_without_warnings_and_equals_the_embedded_default() {
    let (_dir, source) = source_dir();
    let text = EXAMPLE_AGENT_TOML.replace(
        r#"source = "./var/incoming""#,
        &format!("source = \"{source}\""),
    );
    assert_ne!(
        text, EXAMPLE_AGENT_TOML,
        "the example's source line changed"
    );
    let mut loaded = parse(&text).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    loaded.config.watch[0].source = PathBuf::from("./var/incoming");
    let mut want = AgentConfig::embedded_default();
    h264_config::validate::normalize(&mut want);
    loaded.config.watch[0].source = want.watch[0].source.clone();
    assert_eq!(loaded.config, want);
}

/// `key = value` out of a commented-out setting `# key = value`.
fn uncomment_setting(line: &str) -> Option<&str> {
    let setting = line.strip_prefix("# ")?;
    let (key, _) = setting.split_once(" = ")?;
    key.bytes()
        .all(|b| b.is_ascii_lowercase() || b == b'_')
        .then_some(setting)
}

#[test]
fn example_documents_every_key() {
    let table: toml::Table = EXAMPLE_AGENT_TOML
        .lines()
        .map(|line| uncomment_setting(line).unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
        .parse()
        .unwrap();
    // Every key of the typed config, defaults included, must appear (commented out or not);
    // the optional telemetry and controller keys are set so that sections are written out whole.
    let mut every = AgentConfig::embedded_default();
    every.telemetry.otlp_endpoint = Some("http://127.0.0.1:4317".into());
    every.telemetry.metrics_listen = Some("127.0.0.1:9464".into());
    every.controller.ca = Some("ca.crt".into());
    every.controller.cert = Some("a.crt".into());
    every.controller.key = Some("a.key".into());
    every.controller.trusted_keys = vec!["ed25519:x".into()];
    let full = toml::Table::try_from(every).unwrap();
    for (section, value) in &full {
        let fields = match value {
            toml::Value::Array(roots) => roots[0].as_table().unwrap().clone(),
            other => other.as_table().unwrap().clone(),
        };
        let documented = match &table[section] {
            toml::Value::Array(roots) => roots[0].as_table().unwrap().clone(),
            other => other.as_table().unwrap().clone(),
        };
        for key in fields.keys() {
            assert!(
                documented.contains_key(key),
                "{section}.{key} is not in the example"
            );
        }
    }
    for (section, key) in [("agent", "id"), ("transcode", "level")] {
        assert!(
            table[section].get(key).is_some(),
            "{section}.{key} is not in the example"
        );
    }
    let watch = table["watch"][0].as_table().unwrap();
    assert!(watch.contains_key("done_dir") && watch.contains_key("quarantine_dir"));
}

#[test]
fn embedded_default_keeps_its_promises() {
    let c = AgentConfig::embedded_default();
    assert_eq!(c.watch.len(), 1);
    assert_eq!(c.watch[0].source, PathBuf::from("./var/incoming"));
    assert_eq!(c.watch[0].output, PathBuf::from("./var/h264"));
    assert_eq!(c.agent.state_dir, PathBuf::from("./var/state"));
    assert_eq!(c.readiness.stable_for, HumanDuration::from_secs(10));
}

#[test]
fn several_problems_in_different_sections_are_reported_at_once() {
    let (_dir, source) = source_dir();
    let text = format!(
        r#"
frobnicate = true

[agent]
workers = 0
idd = "studio-a"

{watch}extensionz = ["ts"]
mode = "pol"

[[watch]]
source = "{source}/missing"
output = "/srv/out"
recursive = "yes"

[readiness]
stable_for = "2 parsecs"
probe_timeout = "0s"

[transcode]
crf = "high"
preset = "veryfsat"
retry_backof = "1m"

[logging]
level = ""
"#,
        watch = watch_block(&source)
    );
    let problems = problems(&text);
    let want = [
        ("frobnicate", "unknown key `frobnicate`"),
        ("agent.idd", "did you mean `id`?"),
        ("agent.workers", "0 is out of range 1-64"),
        ("watch[0].extensionz", "did you mean `extensions`?"),
        ("watch[0].mode", "did you mean `poll`?"),
        (
            "watch[1].recursive",
            "invalid type: string \"yes\", expected a boolean",
        ),
        ("watch[1].source", "does not exist"),
        ("watch[1].source", "overlaps watch[0].source"),
        ("readiness.stable_for", "2 parsecs"),
        ("readiness.probe_timeout", "at least 1s"),
        ("transcode.crf", "expected a whole number from 0 to 255"),
        ("transcode.preset", "did you mean `veryfast`?"),
        ("transcode.retry_backof", "did you mean `retry_backoff`?"),
        ("logging.level", "is empty"),
    ];
    for (key, text) in want {
        assert!(
            problems
                .iter()
                .any(|p| p.key == key && p.to_string().contains(text)),
            "no problem at {key} mentioning {text:?} in:\n{problems:#?}"
        );
    }
    assert_eq!(
        problems.len(),
        want.len(),
        "unexpected extra problems: {:?}",
        keys(&problems)
    );
    assert!(problems
        .iter()
        .all(|p| p.file.as_deref() == Some(Path::new("agent.toml"))));
}

#[test]
fn strict_parsing_table() {
    let (_dir, source) = source_dir();
    let watch = watch_block(&source);
    // (name, file with `W` standing for a valid [[watch]] block, key path, text in the problem)
    let cases = [
        (
            "syntax error",
            "[agent\nworkers = 2\nW",
            "",
            "line 1, column 7",
        ),
        (
            "duplicate key",
            "[agent]\nworkers = 1\nworkers = 2\nW",
            "",
            "duplicate key",
        ),
        (
            "unknown top level",
            "W[trancode]\ncrf = 20",
            "trancode",
            "did you mean `transcode`?",
        ),
        (
            "unknown far off",
            "[agent]\ncolour = 1\nW",
            "agent.colour",
            "known keys here: id,",
        ),
        (
            "unknown in watch",
            "Wextensionz = []",
            "watch[0].extensionz",
            "did you mean `extensions`?",
        ),
        (
            "type error",
            "[transcode]\ncrf = \"high\"\nW",
            "transcode.crf",
            "expected a whole number from 0 to 255",
        ),
        (
            "negative integer",
            "[agent]\nworkers = -1\nW",
            "agent.workers",
            "expected a whole number, 0 or more",
        ),
        (
            "bad duration",
            "[readiness]\nstable_for = \"soon\"\nW",
            "readiness.stable_for",
            "\"1h 30m\"",
        ),
        (
            "bad enum",
            "[logging]\nformat = \"jsn\"\nW",
            "logging.format",
            "did you mean `json`?",
        ),
        (
            "section of wrong type",
            "agent = 3\nW",
            "agent",
            "invalid type: integer `3`",
        ),
        (
            "list of wrong type",
            "W[transcode]\nextra_args = \"-an\"",
            "transcode.extra_args",
            "expected a list",
        ),
        (
            "watch not tables",
            "watch = [1, 2]",
            "watch",
            "invalid type",
        ),
        ("watch not a list", "watch = \"x\"", "watch", "invalid type"),
        (
            "watch a table",
            "[watch]\nsource = \"x\"",
            "watch",
            "write [[watch]] before each entry",
        ),
        (
            "section a list",
            "[[agent]]\nworkers = 2\nid = \"a\"\nW",
            "agent",
            "write [agent], not [[agent]]",
        ),
    ];
    for (name, template, key, text) in cases {
        let file = template.replace('W', &watch);
        let problems = problems(&file);
        assert!(
            problems
                .iter()
                .any(|p| p.key == key && p.to_string().contains(text)),
            "{name}: no problem at {key:?} mentioning {text:?} in:\n{problems:#?}"
        );
        assert_eq!(problems.len(), 1, "{name}: {problems:#?}");
    }
}

#[test]
fn invalid_config_displays_every_problem_on_its_own_line() {
    let err = parse("[agent]\nworkers = 0\n").unwrap_err();
    let shown = err.to_string();
    let lines: Vec<_> = shown.lines().collect();
    assert_eq!(lines[0], "invalid configuration: 2 errors");
    assert_eq!(lines.len(), 3, "{shown}");
    assert!(lines.contains(&"agent.toml:2: agent.workers: 0 is out of range 1-64 (hint: how many files are converted at once; each FFmpeg uses several cores)"), "{shown}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("agent.toml: watch: no [[watch]] root")),
        "{shown}"
    );
}

#[test]
fn warnings_do_not_stop_loading_and_extensions_are_normalised() {
    let (_dir, source) = source_dir();
    let text = format!(
        "{}extensions = [\".TS\", \"wtv\", \"ts\"]\n",
        watch_block(&source)
    );
    let loaded = parse(&text).unwrap();
    assert_eq!(loaded.config.watch[0].extensions, ["ts", "wtv"]);
    let warned: Vec<_> = loaded
        .warnings
        .iter()
        .map(|p| (p.severity, p.key.as_str()))
        .collect();
    assert_eq!(
        warned,
        [
            (Severity::Warning, "watch[0].extensions[0]"),
            (Severity::Warning, "watch[0].extensions[2]")
        ]
    );
    assert!(
        loaded.warnings[0]
            .to_string()
            .starts_with("warning: agent.toml:4: watch[0].extensions[0]: "),
        "{}",
        loaded.warnings[0]
    );
}

#[test]
fn load_reads_files_and_reports_unreadable_ones() {
    let (dir, source) = source_dir();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, watch_block(&source)).unwrap();
    assert_eq!(load_agent_config(&path).unwrap().config.watch.len(), 1);

    let missing = dir.path().join("missing.toml");
    let err = load_agent_config(&missing).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Read { path, .. } if *path == missing),
        "{err:?}"
    );
    assert!(err.to_string().contains("missing.toml"), "{err}");

    std::fs::write(&path, "[agent]\nworkers = 0\n").unwrap();
    let err = load_agent_config(&path).unwrap_err();
    assert!(err
        .problems()
        .iter()
        .all(|p| p.file.as_deref() == Some(path.as_path())));
}

#[test]
fn problems_are_errors_first() {
    let (_dir, source) = source_dir();
    let text = format!(
        "{}extensions = [\".ts\"]\n[agent]\nworkers = 0\n",
        watch_block(&source)
    );
    let problems = problems(&text);
    let severities: Vec<_> = problems.iter().map(|p| p.severity).collect();
    assert_eq!(severities, [Severity::Error, Severity::Warning]);
}

#[test]
fn toml_problems_point_at_their_lines() {
    let (_dir, source) = source_dir();
    let text = format!(
        "[agent]\nworkers = 0\nidd = \"a\"\n\n[[watch]]\nsource = \"{source}\"\noutput = \"{source}-out\"\nextensions = [\n  \"ts\",\n  \"*.wtv\",\n]\n\n[[watch]]\nsource = \"{source}-other\"\n\n[transcode]\ncrf = \"high\"\n"
    );
    let problems = problems(&text);
    let located: Vec<_> = problems.iter().map(|p| (p.key.as_str(), p.line)).collect();
    assert_eq!(
        located,
        [
            ("agent.idd", Some(3)),
            ("agent.workers", Some(2)),
            ("transcode.crf", Some(17)),
            ("watch[0].extensions[1]", Some(8)),
            ("watch[1].output", Some(13)),
            ("watch[1].source", Some(14)),
        ],
        "{problems:#?}"
    );
    assert!(
        problems[0]
            .to_string()
            .starts_with("agent.toml:3: agent.idd: unknown key `idd` (hint: did you mean `id`?)"),
        "{}",
        problems[0]
    );
}

#[test]
fn the_controller_section_is_strict_and_local() {
    let (_dir, source) = source_dir();
    let text = format!(
        "{}\n[controller]\nendpoint = \"http://127.0.0.1:7443\"\nlabels = {{ site = \"studio-a\" }}\nstats_intervall = \"5s\"\n",
        watch_block(&source)
    );
    let p = problems(&text);
    assert_eq!(keys(&p), ["controller.stats_intervall"], "{p:?}");
    assert!(p[0].to_string().contains("stats_interval"), "{}", p[0]);

    let text = format!(
        "{}\n[controller]\nendpoint = \"http://127.0.0.1:7443\"\nlabels = {{ site = \"studio-a\", canary = \"true\" }}\n",
        watch_block(&source)
    );
    let c = parse(&text).unwrap().config;
    assert_eq!(
        c.controller.endpoint.as_deref(),
        Some("http://127.0.0.1:7443")
    );
    assert_eq!(c.controller.labels["canary"], "true");
    assert_eq!(c.controller.stats_interval, HumanDuration::from_secs(5));

    let text = format!(
        "{}\n[controller]\nlabels = {{ canary = true }}\n",
        watch_block(&source)
    );
    let p = problems(&text);
    assert!(
        keys(&p).iter().all(|k| k.starts_with("controller.labels")),
        "{p:?}"
    );
}

#[test]
fn the_telemetry_section_is_strict_and_checked() {
    let (_dir, source) = source_dir();
    let text = format!(
        "{}\n[telemetry]\notlp_endpoint = \"http://127.0.0.1:4317\"\notlp_protocol = \"http/protobuff\"\nmetrics_listn = \"127.0.0.1:9464\"\n",
        watch_block(&source)
    );
    let p = problems(&text);
    assert_eq!(
        keys(&p),
        ["telemetry.metrics_listn", "telemetry.otlp_protocol"],
        "{p:?}"
    );
    assert!(
        p[0].to_string()
            .starts_with("agent.toml:8: telemetry.metrics_listn: unknown key `metrics_listn` (hint: did you mean `metrics_listen`?)"),
        "{}",
        p[0]
    );
    assert!(
        p[1].to_string().contains("did you mean `http/protobuf`?"),
        "{}",
        p[1]
    );

    let text = format!(
        "{}\n[telemetry]\notlp_endpoint = \"https://collector:4317\"\nmetrics_listen = \"localhost\"\nspan_queue = 0\n",
        watch_block(&source)
    );
    let p = problems(&text);
    let located: Vec<_> = p.iter().map(|p| (p.key.as_str(), p.line)).collect();
    assert_eq!(
        located,
        [
            ("telemetry.metrics_listen", Some(7)),
            ("telemetry.otlp_endpoint", Some(6)),
            ("telemetry.span_queue", Some(8)),
        ],
        "{p:#?}"
    );

    let text = format!(
        "{}\n[telemetry]\notlp_endpoint = \"http://collector:4318\"\notlp_protocol = \"http/protobuf\"\nmetrics_listen = \"0.0.0.0:9464\"\nmetrics_interval = \"10s\"\n",
        watch_block(&source)
    );
    let loaded = parse(&text).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let t = loaded.config.telemetry;
    assert_eq!(t.otlp_endpoint.as_deref(), Some("http://collector:4318"));
    assert_eq!(
        t.otlp_protocol,
        h264_config::agent::OtlpProtocol::HttpProtobuf
    );
    assert_eq!(t.metrics_listen.as_deref(), Some("0.0.0.0:9464"));
    assert_eq!(t.metrics_interval, HumanDuration::from_secs(10));
    assert_eq!(t.span_queue, 2048);

    // The gRPC port with the HTTP protocol (or no port at all) is a warning, not an error.
    let text = format!(
        "{}\n[telemetry]\notlp_endpoint = \"http://collector:4317\"\notlp_protocol = \"http/protobuf\"\n",
        watch_block(&source)
    );
    let loaded = parse(&text).unwrap();
    assert_eq!(keys(&loaded.warnings), ["telemetry.otlp_endpoint"]);
    assert!(loaded.warnings[0].message.contains("port 4317"));
}
