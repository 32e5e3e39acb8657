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

const STUDIO_INI: &str = include_str!("../fixtures/agent-v1-studio.ini");
const STUDIO_TOML: &str = include_str!("../fixtures/agent-v1-studio.toml");

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

#[test]
fn a_programme_and_the_partial_packet_rule_read_alike_from_toml_and_ini_and_hash_only_when_set() {
    use h264_config::agent::{PartialPacket, Program};
    let plain = toml("[[watch]]\nsource = \"in\"\noutput = \"out\"\n");
    let json = plain.canonical_json();
    assert!(!json.contains("program"), "{json}");
    assert!(!json.contains("partial_packet"), "{json}");
    let explicit = toml(
        "[[watch]]\nsource = \"in\"\noutput = \"out\"\n[readiness]\npartial_packet = \"trim\"\n",
    );
    assert_eq!(explicit.canonical_sha256(), plain.canonical_sha256());

    let named = toml("[[watch]]\nsource = \"in\"\noutput = \"out\"\nprogram = \"Sport Two\"\n");
    assert_eq!(
        named.watch[0].program,
        Some(Program::Name("Sport Two".into()))
    );
    let numbered = toml("[[watch]]\nsource = \"in\"\noutput = \"out\"\nprogram = 202\n");
    assert_eq!(numbered.watch[0].program, Some(Program::Number(202)));
    assert_ne!(named.canonical_sha256(), plain.canonical_sha256());
    assert_ne!(named.canonical_sha256(), numbered.canonical_sha256());
    assert_eq!(
        ini("[watch]\nsource = in\noutput = out\nprogram = 202\n").canonical_sha256(),
        numbered.canonical_sha256()
    );
    assert_eq!(
        ini("[watch]\nsource = in\noutput = out\nprogram = \"Sport Two\"\n").canonical_sha256(),
        named.canonical_sha256()
    );
    let failing = toml(
        "[[watch]]\nsource = \"in\"\noutput = \"out\"\n[readiness]\npartial_packet = \"fail\"\n",
    );
    assert_eq!(failing.readiness.partial_packet, PartialPacket::Fail);
    assert_ne!(failing.canonical_sha256(), plain.canonical_sha256());
    assert_eq!(
        ini("[watch]\nsource = in\noutput = out\n[readiness]\npartial_packet = FAIL\n")
            .canonical_sha256(),
        failing.canonical_sha256()
    );
}

#[test]
fn a_bad_programme_is_named_with_its_key() {
    for (value, says) in [
        ("program = true", "a service name"),
        ("program = 0", "out of range 1-65535"),
        ("program = 70000", "out of range 1-65535"),
        ("program = \" \"", "empty service name"),
    ] {
        let text = format!("[[watch]]\nsource = \"in\"\noutput = \"out\"\n{value}\n");
        let err = parse_agent_config_with(&text, Some(Path::new("agent.toml")), Checks::Portable)
            .err()
            .unwrap_or_else(|| panic!("{value} should be refused"))
            .to_string();
        assert!(err.contains("watch[0].program"), "{value}: {err}");
        assert!(err.contains(says), "{value}: {err}");
    }
}
