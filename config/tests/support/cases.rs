//! Table-driven validation cases shared by the config tests: each case changes a valid base
//! config and says what it must cause.

use std::path::Path;

use h264_config::validate::validate;
use h264_config::{AgentConfig, Severity};

/// A change to the valid base config, given the case's temporary folder.
pub type Change = fn(&mut AgentConfig, &Path);

/// What a change must cause: nothing, or exactly one problem (severity, key, text it contains).
pub type Expect = Option<(Severity, &'static str, &'static str)>;

/// Runs every case on a fresh temporary folder: `prepare` fills it and returns the valid base
/// config, the case's change is applied, and the problems must be what it expects.
pub fn run_cases(cases: &[(&str, Change, Expect)], prepare: impl Fn(&Path) -> AgentConfig) {
    for (name, change, expect) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let mut config = prepare(tmp.path());
        assert!(
            validate(&config, None).is_empty(),
            "base config is not valid"
        );
        change(&mut config, tmp.path());
        let problems = validate(&config, None);
        match expect {
            None => assert!(problems.is_empty(), "{name}: unexpected {problems:#?}"),
            Some((severity, key, text)) => {
                assert_eq!(problems.len(), 1, "{name}: {problems:#?}");
                let p = &problems[0];
                assert_eq!(
                    (p.severity, p.key.as_str()),
                    (*severity, *key),
                    "{name}: {p}"
                );
                assert!(
                    p.to_string().contains(text),
                    "{name}: {p} does not mention {text:?}"
                );
            }
        }
    }
}
