//! The dual-format loader: TOML first, INI when there is no TOML, and a loud fallback from a
//! broken TOML to a valid INI beside it; a broken TOML with nothing to fall back on refuses,
//! listing every problem.

use std::path::PathBuf;

use h264_config::{load_config, ConfigError, Format, Loaded, Severity};

/// A folder with an existing source `in/`, and config texts pointing at it.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("in")).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn source(&self) -> String {
        self.path("in").display().to_string()
    }

    fn good_toml(&self, crf: u8) -> String {
        let s = self.source();
        format!("[agent]\nstate_dir = \"{s}-state\"\n[[watch]]\nsource = \"{s}\"\noutput = \"{s}-out\"\n[transcode]\ncrf = {crf}\n")
    }

    fn good_ini(&self, crf: u8) -> String {
        let s = self.source();
        format!("[agent]\nstate_dir = {s}-state\n[watch]\nsource = {s}\noutput = {s}-out\n[transcode]\ncrf = {crf}\n")
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// Three problems on three lines, none of which hides another.
const BROKEN_TOML: &str = "[agent]\nworkers = 0\nstate_dirr = \"x\"\n\n[transcode]\ncrf = 99\n";

fn loaded(result: Result<Loaded, ConfigError>) -> Loaded {
    result.unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_valid_toml_is_used_even_with_an_ini_beside_it() {
    let site = Site::new();
    let toml = site.write("agent.toml", &site.good_toml(20));
    site.write("agent.ini", &site.good_ini(30));
    for path in [toml.clone(), site.dir.path().to_path_buf()] {
        let l = loaded(load_config(&path));
        assert_eq!((l.format, l.config.transcode.crf), (Format::Toml, 20));
        assert_eq!(l.path.as_deref(), Some(toml.as_path()));
        assert!(
            l.fallback.is_none() && l.warnings.is_empty(),
            "{:?}",
            l.warnings
        );
    }
}

#[test]
fn without_a_toml_the_ini_is_loaded_with_a_deprecation_warning() {
    let site = Site::new();
    let ini = site.write("agent.ini", &site.good_ini(30));
    for path in [
        site.path("agent.toml"),
        site.dir.path().to_path_buf(),
        ini.clone(),
    ] {
        let l = loaded(load_config(&path));
        assert_eq!((l.format, l.config.transcode.crf), (Format::Ini, 30));
        assert_eq!(l.path.as_deref(), Some(ini.as_path()));
        assert!(l.fallback.is_none());
        assert!(
            l.warnings.iter().any(|w| w.message.contains("legacy INI")
                && w.hint
                    .as_deref()
                    .is_some_and(|h| h.contains("fleetctl config migrate"))),
            "{:?}",
            l.warnings
        );
    }
}

#[test]
fn a_broken_toml_falls_back_to_a_valid_ini_loudly() {
    let site = Site::new();
    let toml = site.write("agent.toml", BROKEN_TOML);
    let ini = site.write("agent.ini", &site.good_ini(30));
    for path in [toml.clone(), site.dir.path().to_path_buf()] {
        let l = loaded(load_config(&path));
        assert_eq!((l.format, l.config.transcode.crf), (Format::Ini, 30));
        let fallback = l.fallback.as_ref().expect("the fallback is recorded");
        assert_eq!((&fallback.toml, &fallback.ini), (&toml, &ini));
        let keys: Vec<_> = fallback.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "agent.state_dirr",
                "agent.workers",
                "transcode.crf",
                "watch"
            ]
        );
        // The first warning names both files and every error of the TOML, with its line.
        let first = &l.warnings[0];
        assert_eq!(first.severity, Severity::Warning);
        let shown = first.to_string();
        for part in [
            toml.display().to_string(),
            ini.display().to_string(),
            "4 errors".into(),
            "line 2: agent.workers: 0 is out of range".into(),
            "line 3: agent.state_dirr: unknown key".into(),
            "line 6: transcode.crf: 99 is out of range".into(),
        ] {
            assert!(shown.contains(&part), "{part:?} not in {shown}");
        }
    }
}

#[test]
fn a_toml_that_cannot_be_parsed_falls_back_too() {
    let site = Site::new();
    site.write("agent.toml", "[agent\nworkers = 2\n");
    site.write("agent.ini", &site.good_ini(25));
    let l = loaded(load_config(&site.path("agent.toml")));
    assert_eq!(l.config.transcode.crf, 25);
    assert!(
        l.warnings[0]
            .message
            .contains("TOML syntax error at line 1"),
        "{}",
        l.warnings[0]
    );
}

#[test]
fn a_broken_toml_without_an_ini_is_refused_with_every_problem() {
    let site = Site::new();
    let toml = site.write("agent.toml", BROKEN_TOML);
    let err = load_config(&toml).unwrap_err();
    let problems = err.problems();
    let located: Vec<_> = problems
        .iter()
        .map(|p| {
            (
                p.key.as_str(),
                p.line,
                p.file.as_deref() == Some(toml.as_path()),
            )
        })
        .collect();
    assert_eq!(
        located,
        [
            ("agent.state_dirr", Some(3), true),
            ("agent.workers", Some(2), true),
            ("transcode.crf", Some(6), true),
            ("watch", None, true),
        ]
    );
    assert!(
        problems[0]
            .to_string()
            .contains("did you mean `state_dir`?"),
        "{}",
        problems[0]
    );
}

#[test]
fn a_broken_toml_and_a_broken_ini_are_both_reported() {
    let site = Site::new();
    let toml = site.write("agent.toml", BROKEN_TOML);
    let ini = site.write("agent.ini", "[agent]\nworkers = many\n");
    let err = load_config(&toml).unwrap_err();
    let files: Vec<_> = err
        .problems()
        .iter()
        .filter(|p| p.is_error())
        .map(|p| p.file.clone().unwrap())
        .collect();
    assert!(files.contains(&toml) && files.contains(&ini), "{err}");
    assert!(
        err.to_string()
            .contains("agent.ini:2: agent.workers: `many` is not a whole number"),
        "{err}"
    );
}

#[test]
fn nothing_to_load_names_what_was_looked_for() {
    let site = Site::new();
    let err = load_config(site.dir.path()).unwrap_err();
    let shown = err.to_string();
    assert!(matches!(err, ConfigError::NotFound { .. }), "{err:?}");
    assert!(
        shown.contains("agent.toml") && shown.contains("agent.ini"),
        "{shown}"
    );
}

#[test]
fn an_explicit_ini_path_never_falls_back() {
    let site = Site::new();
    site.write("agent.toml", &site.good_toml(20));
    let ini = site.write("agent.ini", "[agent]\nworkers = 0\n");
    let err = load_config(&ini).unwrap_err();
    assert!(err
        .problems()
        .iter()
        .all(|p| p.file.as_deref() == Some(ini.as_path())));
}
