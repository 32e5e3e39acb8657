//! The canonical form: INI and TOML files with the same meaning give the same bytes and SHA256,
//! whatever their spelling; one value of difference changes the hash.

use std::path::Path;

use h264_config::{parse_agent_config_with, parse_ini_config, AgentConfig, Checks};

fn toml(text: &str) -> AgentConfig {
    parse_agent_config_with(text, Some(Path::new("agent.toml")), Checks::Portable)
        .unwrap_or_else(|e| panic!("{e}"))
        .config
}

fn ini(text: &str) -> AgentConfig {
    parse_ini_config(text, Some(Path::new("agent.ini")), Checks::Portable)
        .unwrap_or_else(|e| panic!("{e}"))
        .config
}

const STUDIO_INI: &str = include_str!("fixtures/agent-v1-studio.ini");
const STUDIO_TOML: &str = include_str!("fixtures/agent-v1-studio.toml");

#[test]
fn same_meaning_same_bytes() {
    let cases = [
        ("the studio fixtures", ini(STUDIO_INI), toml(STUDIO_TOML)),
        (
            "spellings of one root",
            ini("[watch]\nsource = ./in/\noutput = out\nrecursive = 1\npoll_interval = 10\n"),
            toml("[[watch]]\nsource = \"in\"\noutput = \"./out//\"\nrecursive = true\npoll_interval = \"10s\"\n"),
        ),
        (
            "durations",
            ini("[watch]\nsource=/a\noutput=/b\n[readiness]\nstable_for = 90\nmin_duration = 0.5\n"),
            toml("[[watch]]\nsource=\"/a\"\noutput=\"/b\"\n[readiness]\nstable_for = \"1m 30s\"\nmin_duration = \"500ms\"\n"),
        ),
        (
            "defaults written out or left out",
            ini("[watch]\nsource=/a\noutput=/b\nextensions = ts, wtv, mp4\n[transcode]\ncrf = 21\n"),
            toml("[[watch]]\nsource=\"/a\"\noutput=\"/b\"\n"),
        ),
        (
            "key order and comments",
            ini("; c\n[transcode]\ncrf=20 ; x\npreset=fast\n[watch]\noutput=/b\nsource=/a\n"),
            toml("[[watch]]\nsource=\"/a\"\noutput=\"/b\" # y\n[transcode]\npreset=\"fast\"\ncrf=20\n"),
        ),
    ];
    for (name, a, b) in cases {
        assert_eq!(a.canonical_json(), b.canonical_json(), "{name}");
        assert_eq!(a.canonical_sha256(), b.canonical_sha256(), "{name}");
    }
}

#[test]
fn one_value_of_difference_changes_the_hash() {
    let base = ini(STUDIO_INI).canonical_sha256();
    assert_eq!(base, toml(STUDIO_TOML).canonical_sha256());
    let changes = [
        ("crf = 22", "crf = 23"),
        ("workers = 3", "workers = 4"),
        ("stable_for = 20", "stable_for = 21"),
        ("recursive = off", "recursive = on"),
        ("extensions = ts\n", "extensions = ts, mp4\n"),
        ("/srv/h264/sport", "/srv/h264/sports"),
        ("format = JSON", "format = text"),
    ];
    for (from, to) in changes {
        assert!(STUDIO_INI.contains(from), "{from}");
        let changed = ini(&STUDIO_INI.replacen(from, to, 1)).canonical_sha256();
        assert_ne!(changed, base, "{from} -> {to}");
    }
    let changed = toml(&STUDIO_TOML.replace("crf = 22", "crf = 23")).canonical_sha256();
    assert_ne!(changed, base);
}

#[test]
fn canonical_json_is_sorted_by_struct_and_stable() {
    let a = ini(STUDIO_INI).canonical_json();
    assert!(
        a.starts_with(r#"{"agent":{"id":"studio-b","state_dir":"/var/lib/h264create","#),
        "{a}"
    );
    assert!(a.contains(r#""min_duration":"2s 500ms""#), "{a}");
    assert!(a.contains(r#""extensions":["ts","wtv"]"#), "{a}");
    assert_eq!(a, ini(STUDIO_INI).canonical_json());
}
