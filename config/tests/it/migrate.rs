//! INI → TOML migration at the library level: every realistic legacy file under
//! `deploy/examples/` migrates to a TOML that means the same (proven by hash), keeps its
//! comments, leaves the INI byte-identical, and drift is caught later.

use std::path::{Path, PathBuf};

use h264_config::migrate::{check_pair, manifest_path, migrate_file, MigrateError};
use h264_config::{load_agent_config_with, Checks};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ini"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    files
}

/// A copy of `ini` in a fresh folder.
fn staged(ini: &Path) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(ini.file_name().unwrap());
    std::fs::copy(ini, &copy).unwrap();
    let toml = copy.with_extension("toml");
    (dir, copy, toml)
}

fn sha(path: &Path) -> String {
    load_agent_config_with(path, Checks::Portable)
        .unwrap_or_else(|e| panic!("{e}"))
        .config
        .canonical_sha256()
}

#[test]
fn every_legacy_example_migrates_to_an_equivalent_toml() {
    for example in examples() {
        let (_dir, ini, toml) = staged(&example);
        let before = std::fs::read(&ini).unwrap();
        let done = migrate_file(&ini, &toml, false, "test")
            .unwrap_or_else(|e| panic!("{}: {e}", example.display()));
        assert_eq!(
            std::fs::read(&ini).unwrap(),
            before,
            "the INI must stay byte-identical"
        );
        assert_eq!(sha(&ini), sha(&toml), "{}", example.display());
        let m = &done.manifest;
        assert_eq!(
            (m.source_sha256.as_str(), m.output_sha256.as_str()),
            (sha(&ini).as_str(), sha(&toml).as_str())
        );
        assert_eq!(done.manifest_path, manifest_path(&toml));
        let written: h264_config::migrate::Manifest =
            serde_json::from_slice(&std::fs::read(&done.manifest_path).unwrap()).unwrap();
        assert_eq!(&written, m);
        assert!(
            m.migrated_at.ends_with('Z') && m.source.ends_with(".ini"),
            "{m:?}"
        );
        // The TOML loads without the INI's deprecation warnings.
        let loaded = load_agent_config_with(&toml, Checks::Portable).unwrap();
        assert!(
            loaded
                .warnings
                .iter()
                .all(|w| !w.message.contains("deprecated")),
            "{:?}",
            loaded.warnings
        );
        assert!(check_pair(&ini, &toml).unwrap().is_equivalent());
    }
}

#[test]
fn comments_and_current_names_are_carried_over() {
    let example = examples()
        .into_iter()
        .find(|p| p.ends_with("archive-legacy-names.ini"))
        .unwrap();
    let (_dir, ini, toml) = staged(&example);
    migrate_file(&ini, &toml, false, "test").unwrap();
    let text = std::fs::read_to_string(&toml).unwrap();
    for want in [
        "# tape captures pause between reels\n",
        "# (was `settle_time` in the INI file)\nstable_for = \"1m\"\n",
        "# (was [general] in the INI file)\n[agent]\n",
        "workers = 1\n",
        "# (was `extra_args` in the INI file)\nlocal_ffmpeg_args = [\"-vf\", \"yadif=1,scale=1920:-2\", \"-movflags\", \"+faststart\"]\n",
        "[[watch]]\n",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    assert!(!text.contains("threads ="), "{text}");
}

#[test]
fn an_existing_output_is_kept_unless_forced() {
    let (_dir, ini, toml) = staged(&examples()[0]);
    std::fs::write(&toml, "# mine\n").unwrap();
    let err = migrate_file(&ini, &toml, false, "test").unwrap_err();
    assert!(matches!(err, MigrateError::Exists { .. }), "{err}");
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(&toml).unwrap(), "# mine\n");
    migrate_file(&ini, &toml, true, "test").unwrap();
    assert_eq!(sha(&ini), sha(&toml));
}

#[test]
fn drift_is_caught_and_edits_without_meaning_are_only_noted() {
    let studio = examples()
        .into_iter()
        .find(|p| p.ends_with("studio-a.ini"))
        .unwrap();
    let (_dir, ini, toml) = staged(&studio);
    migrate_file(&ini, &toml, false, "test").unwrap();
    let original = std::fs::read_to_string(&toml).unwrap();

    // A comment edited: same meaning, noted only.
    std::fs::write(&toml, format!("# reviewed\n{original}")).unwrap();
    let checked = check_pair(&ini, &toml).unwrap();
    assert!(checked.is_equivalent(), "{:?}", checked.drift);
    assert!(
        checked
            .notes
            .iter()
            .any(|n| n.contains("without changing its meaning")),
        "{:?}",
        checked.notes
    );

    // A value changed in the TOML: drift, twice over (the pair and the manifest).
    assert!(original.contains("crf = 22\n") && original.contains("workers = 3\n"));
    std::fs::write(&toml, original.replace("crf = 22", "crf = 30")).unwrap();
    let checked = check_pair(&ini, &toml).unwrap();
    assert!(!checked.is_equivalent());
    assert_eq!(checked.drift.len(), 2, "{:?}", checked.drift);
    assert!(
        checked.drift[0].contains("no longer mean the same"),
        "{:?}",
        checked.drift
    );

    // Both changed the same way: the pair agrees, but the manifest says both moved.
    std::fs::write(&toml, &original).unwrap();
    let ini_text = std::fs::read_to_string(&ini).unwrap();
    std::fs::write(&ini, ini_text.replace("workers = 3", "workers = 5")).unwrap();
    std::fs::write(&toml, original.replace("workers = 3", "workers = 5")).unwrap();
    let checked = check_pair(&ini, &toml).unwrap();
    assert_eq!(checked.drift.len(), 2, "{:?}", checked.drift);

    // No manifest: the pair alone is compared, and that is said.
    std::fs::remove_file(manifest_path(&toml)).unwrap();
    let checked = check_pair(&ini, &toml).unwrap();
    assert!(checked.is_equivalent());
    assert!(
        checked.notes.iter().any(|n| n.contains("is missing")),
        "{:?}",
        checked.notes
    );
}

#[test]
fn an_invalid_ini_is_not_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("bad.ini");
    std::fs::write(
        &ini,
        "[agent]\nworkers = lots\n[watch]\nsource = /a\noutput = /b\n",
    )
    .unwrap();
    let toml = dir.path().join("bad.toml");
    let err = migrate_file(&ini, &toml, false, "test").unwrap_err();
    assert!(
        err.to_string()
            .contains("bad.ini:2: agent.workers: `lots` is not a whole number"),
        "{err}"
    );
    assert!(!toml.exists() && !manifest_path(&toml).exists());
}

#[test]
fn a_controller_section_with_labels_migrates() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("agent.ini");
    std::fs::write(
        &ini,
        "[watch]\nsource = /srv/in\noutput = /srv/out\n\
         [controller]\nendpoint = http://controller:7443\nlabels = site=studio-a, canary=true\n\
         stats_interval = 10\n",
    )
    .unwrap();
    let toml = ini.with_extension("toml");
    migrate_file(&ini, &toml, false, "test").unwrap();
    let text = std::fs::read_to_string(&toml).unwrap();
    assert!(
        text.contains("labels = { canary = \"true\", site = \"studio-a\" }\n"),
        "{text}"
    );
    assert_eq!(sha(&ini), sha(&toml));
    let config = load_agent_config_with(&toml, Checks::Portable)
        .unwrap()
        .config;
    assert_eq!(
        config.controller.endpoint.as_deref(),
        Some("http://controller:7443")
    );
    assert_eq!(config.controller.labels["site"], "studio-a");
}

#[test]
fn a_telemetry_section_migrates_even_at_its_defaults() {
    let dir = tempfile::tempdir().unwrap();
    for (name, section, want) in [
        (
            "set",
            "otlp_endpoint = http://collector:4318\notlp_protocol = HTTP/Protobuf\n\
             metrics_listen = 127.0.0.1:9464\nmetrics_interval = 15\n",
            "otlp_protocol = \"http/protobuf\"\n",
        ),
        (
            "defaults",
            "otlp_protocol = grpc\nspan_queue = 2048\n",
            "span_queue = 2048\n",
        ),
    ] {
        let ini = dir.path().join(format!("{name}.ini"));
        let text = format!("[watch]\nsource = /srv/in\noutput = /srv/out\n[telemetry]\n{section}");
        std::fs::write(&ini, text).unwrap();
        let toml = ini.with_extension("toml");
        migrate_file(&ini, &toml, false, "test").unwrap();
        let text = std::fs::read_to_string(&toml).unwrap();
        assert!(text.contains(want), "{name}: {text}");
        assert!(!text.contains("not set"), "{name}: {text}");
        assert_eq!(sha(&ini), sha(&toml), "{name}");
    }
}
