//! `fleetctl config validate|hash|migrate` through the real binary: output, exit codes, and the
//! migration round trip on every realistic legacy file under `deploy/examples/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fleetctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .args(args)
        .output()
        .expect("fleetctl runs")
}

/// Runs fleetctl, checks its exit code, returns stdout and stderr together.
fn expect(code: i32, args: &[&str]) -> String {
    let out = fleetctl(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(code), "fleetctl {args:?}:\n{text}");
    text
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ini"))
        .collect();
    files.sort();
    assert!(files.len() >= 4);
    files
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/tests/fixtures")
        .join(name)
}

#[test]
fn migrate_round_trip_on_every_legacy_example() {
    for example in examples() {
        let dir = tempfile::tempdir().unwrap();
        let ini = dir.path().join(example.file_name().unwrap());
        std::fs::copy(&example, &ini).unwrap();
        let before = std::fs::read(&ini).unwrap();
        let toml = dir.path().join("agent.toml");

        let out = expect(0, &["config", "migrate", s(&ini), "-o", s(&toml)]);
        assert!(out.contains("both mean the same"), "{out}");
        assert_eq!(
            std::fs::read(&ini).unwrap(),
            before,
            "{}: INI changed",
            example.display()
        );
        assert!(dir.path().join("agent.toml.sha256.json").is_file());

        // Both hash the same through `config hash`, and the manifest recorded that hash.
        let a = expect(0, &["config", "hash", s(&ini)]);
        let b = expect(0, &["config", "hash", s(&toml)]);
        assert_eq!(a, b, "{}", example.display());
        assert_eq!(a.trim().len(), 64);
        let manifest = std::fs::read_to_string(dir.path().join("agent.toml.sha256.json")).unwrap();
        assert!(manifest.contains(a.trim()), "{manifest}");

        let out = expect(
            0,
            &["config", "migrate", "--check", s(&ini), "-o", s(&toml)],
        );
        assert!(out.contains("mean the same"), "{out}");
        expect(0, &["config", "validate", "--portable", s(&toml)]);

        // A tampered output is caught.
        let text = std::fs::read_to_string(&toml).unwrap();
        let tampered = if text.contains("[transcode]\n") {
            text.replacen("[transcode]\n", "[transcode]\nmax_attempts = 9\n", 1)
        } else {
            format!("{text}\n[transcode]\nmax_attempts = 9\n")
        };
        std::fs::write(&toml, tampered).unwrap();
        let out = expect(
            1,
            &["config", "migrate", "--check", s(&ini), "-o", s(&toml)],
        );
        assert!(
            out.contains("drift:") && out.contains("no longer mean the same"),
            "{out}"
        );
        assert_eq!(std::fs::read(&ini).unwrap(), before);
    }
}

#[test]
fn migrate_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("agent.ini");
    std::fs::copy(&examples()[0], &ini).unwrap();
    expect(0, &["config", "migrate", s(&ini)]);
    let toml = dir.path().join("agent.toml");
    let first = std::fs::read(&toml).unwrap();
    let out = expect(3, &["config", "migrate", s(&ini)]);
    assert!(out.contains("already exists; pass --force"), "{out}");
    assert_eq!(std::fs::read(&toml).unwrap(), first);
    expect(0, &["config", "migrate", "--force", s(&ini)]);
    expect(2, &["config", "migrate", s(&toml)]);
}

#[test]
fn validate_exit_codes_and_output() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    let src = dir.path().join("in");
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        format!("[[watch]]\nsource = \"{}\"\noutput = \"{}-out\"\nextensions = [\".ts\"]\n[agent]\nstate_dir = \"{}-state\"\n", s(&src), s(&src), s(&src)),
    )
    .unwrap();
    let out = expect(0, &["config", "validate", s(&good)]);
    assert!(out.contains("valid TOML agent config, 1 warning"), "{out}");
    assert!(out.contains("good.toml:4: watch[0].extensions[0]"), "{out}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[agent]\nworkers = 0\nidd = 1\n[transcode]\ncrf = 99\n",
    )
    .unwrap();
    let out = expect(2, &["config", "validate", s(&bad)]);
    for want in [
        "error: ",
        "bad.toml:2: agent.workers: 0 is out of range 1-64",
        "bad.toml:3: agent.idd: unknown key `idd` (hint: did you mean `id`?)",
        "bad.toml:5: transcode.crf: 99 is out of range",
        "4 errors",
    ] {
        assert!(out.contains(want), "{want:?} not in {out}");
    }

    let ini = dir.path().join("legacy.ini");
    std::fs::write(
        &ini,
        format!(
            "[watch]\nsource = {}\noutput = {}-out\n[agent]\nthreads = 2\nstate_dir = {}-state\n",
            s(&src),
            s(&src),
            s(&src)
        ),
    )
    .unwrap();
    let out = expect(0, &["config", "validate", s(&ini)]);
    assert!(out.contains("valid legacy INI agent config"), "{out}");
    assert!(
        out.contains("legacy.ini:5: agent.workers: `threads` is an old name"),
        "{out}"
    );

    expect(
        0,
        &["config", "validate", s(&fixture("fleet-v2-full.yaml"))],
    );
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/fleet-studios.yaml");
    expect(0, &["config", "validate", s(&shipped)]);
    let manifest = dir.path().join("fleet.yaml");
    std::fs::write(&manifest, "apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata: {name: x}\nspec:\n  agent:\n    state_dir: /x\n").unwrap();
    let out = expect(2, &["config", "validate", s(&manifest)]);
    assert!(
        out.contains(
            "fleet.yaml:6: spec.agent.state_dir: spec.agent.state_dir is local to each agent"
        ),
        "{out}"
    );

    // Recognised by content when the extension says nothing.
    let unnamed = dir.path().join("fleet-manifest");
    std::fs::copy(fixture("fleet-v2-full.yaml"), &unnamed).unwrap();
    let out = expect(0, &["config", "validate", s(&unnamed)]);
    assert!(out.contains("valid fleet manifest"), "{out}");

    let out = expect(
        2,
        &["config", "validate", s(&dir.path().join("missing.toml"))],
    );
    assert!(out.contains("cannot read config file"), "{out}");
}

#[test]
fn validate_a_directory_shows_the_fallback() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    let src = dir.path().join("in");
    std::fs::write(
        dir.path().join("agent.ini"),
        format!(
            "[watch]\nsource = {}\noutput = {}-out\n[agent]\nstate_dir = {}-state\n",
            s(&src),
            s(&src),
            s(&src)
        ),
    )
    .unwrap();
    let out = expect(0, &["config", "validate", s(dir.path())]);
    assert!(
        out.contains("the agent would run on") && out.contains("agent.ini (legacy INI)"),
        "{out}"
    );

    std::fs::write(dir.path().join("agent.toml"), "[agent]\nworkers = 0\n").unwrap();
    let out = expect(2, &["config", "validate", s(dir.path())]);
    for want in [
        "agent.toml: is invalid, so the agent runs on the legacy",
        "line 2: agent.workers: 0 is out of range",
        "the agent would start on",
    ] {
        assert!(out.contains(want), "{want:?} not in {out}");
    }
}

#[test]
fn hash_is_the_same_for_the_same_meaning_and_differs_otherwise() {
    let ini = expect(0, &["config", "hash", s(&fixture("agent-v1-studio.ini"))]);
    let toml = expect(0, &["config", "hash", s(&fixture("agent-v1-studio.toml"))]);
    assert_eq!(ini, toml);

    let dir = tempfile::tempdir().unwrap();
    let changed = dir.path().join("changed.ini");
    let text = std::fs::read_to_string(fixture("agent-v1-studio.ini")).unwrap();
    std::fs::write(&changed, text.replace("crf = 22", "crf = 23")).unwrap();
    assert_ne!(expect(0, &["config", "hash", s(&changed)]), ini);

    let a = expect(0, &["config", "hash", s(&fixture("fleet-v2-full.yaml"))]);
    assert_eq!(a.trim().len(), 64);
    expect(2, &["config", "hash", s(&dir.path().join("nope.yaml"))]);
}
