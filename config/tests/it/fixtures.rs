//! Versioned fixtures (`fixtures/agent-v1-*.toml`, `*.ini`, `fleet-v1-*.yaml`): files written
//! for an older schema must keep loading as the schema grows, and an INI and a TOML fixture of
//! the same name must keep meaning the same.

use std::path::{Path, PathBuf};

use h264_config::fleet::load_fleet_manifest;
use h264_config::{load_agent_config_with, Checks, Format};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_fixture_still_loads() {
    let files = fixtures();
    let count = |ext: &str| {
        files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == ext))
            .count()
    };
    assert!(
        count("toml") >= 3 && count("ini") >= 2 && count("yaml") >= 3,
        "{files:?}"
    );
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy();
        assert!(
            name.starts_with("agent-v") || name.starts_with("fleet-v"),
            "{name}: fixtures are named <kind>-v<schema>-<what>"
        );
        match file.extension().and_then(|e| e.to_str()) {
            // The one deliberate break: free-form `extra_args` from a fleet could make every
            // agent read or write any file (security review C2), so a v1 manifest holding them
            // is refused, option by option, naming what replaces each; nothing else in it is.
            Some("yaml")
                if std::fs::read_to_string(file)
                    .unwrap()
                    .contains("extra_args") =>
            {
                let Err(h264_config::ConfigError::Invalid { problems }) = load_fleet_manifest(file)
                else {
                    panic!("{name}: extra_args from a fleet must be refused");
                };
                assert!(
                    problems
                        .iter()
                        .all(|p| p.key.starts_with("spec.transcode.extra_args[")
                            && p.message.contains("no longer accepted")
                            && p.hint.is_some()),
                    "{name}: {problems:?}"
                );
            }
            Some("yaml") => {
                let loaded = load_fleet_manifest(file).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(loaded.warnings.is_empty(), "{name}: {:?}", loaded.warnings);
            }
            _ => {
                let loaded = load_agent_config_with(file, Checks::Portable)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                let unexpected: Vec<_> = loaded
                    .warnings
                    .iter()
                    .filter(|w| {
                        // The advisory on polled shares came after v1; it is about the
                        // recorder, not the schema (docs/windows-recorders.md).
                        !w.message.contains("deprecated")
                            && !w.key.starts_with("transcode.extra_args")
                            && !w.message.contains("leading dot")
                            && !w.message.contains("a recorder's share")
                    })
                    .collect();
                assert!(unexpected.is_empty(), "{name}: {unexpected:?}");
            }
        }
    }
}

#[test]
fn ini_and_toml_fixtures_of_one_name_hash_the_same() {
    let mut pairs = 0;
    for ini in fixtures()
        .iter()
        .filter(|f| Format::of_path(f) == Format::Ini)
    {
        let toml = ini.with_extension("toml");
        let a = load_agent_config_with(ini, Checks::Portable).unwrap();
        let b = load_agent_config_with(&toml, Checks::Portable).unwrap();
        assert_eq!(a.config, b.config, "{}", ini.display());
        assert_eq!(
            a.config.canonical_json(),
            b.config.canonical_json(),
            "{}",
            ini.display()
        );
        assert_eq!(a.config.canonical_sha256(), b.config.canonical_sha256());
        pairs += 1;
    }
    assert!(pairs >= 2);
}
