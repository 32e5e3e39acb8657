//! The legacy INI layout: value spellings, several roots, and every INI rule with a failing and
//! a passing case; problems name the file, the line, the key and a hint.

use std::path::Path;

use h264_config::{
    parse_ini_config, Checks, ConfigError, HumanDuration, Loaded, Problem, Severity,
};

/// A valid root; `@W` in a template stands for it.
const W: &str = "[watch]\nsource = /srv/in\noutput = /srv/out\n";

fn parse(text: &str) -> Result<Loaded, ConfigError> {
    parse_ini_config(
        &text.replace("@W", W),
        Some(Path::new("agent.ini")),
        Checks::Portable,
    )
}

/// Problems other than the format's deprecation notice.
fn problems(text: &str) -> Vec<Problem> {
    let all = match parse(text) {
        Ok(l) => l.warnings,
        Err(e) => e.problems().to_vec(),
    };
    all.into_iter()
        .filter(|p| !p.message.contains("legacy INI format"))
        .collect()
}

#[test]
fn value_spellings_are_read_like_the_toml_values() {
    let l = parse(
        "[agent]\nworkers = +4\nshutdown_grace = 1.5\n\
         [watch:a]\nsource = \"/srv/in; 1\"   ; quoted\noutput = '/srv/out'\nextensions = .TS WTV, mp4,\n\
         recursive = No\nmode = Events\n\
         [readiness]\nopen_file_check = OFF\nstable_for = 2m\n\
         [transcode]\nremux = 0\nlevel =\nextra_args = -vf, \"yadif,scale=1280:-2\"\n",
    )
    .unwrap();
    let c = l.config;
    assert_eq!(c.agent.workers, 4);
    assert_eq!(c.agent.shutdown_grace, HumanDuration::from_millis(1500));
    assert_eq!(c.watch[0].source, Path::new("/srv/in; 1"));
    assert_eq!(c.watch[0].output, Path::new("/srv/out"));
    assert_eq!(c.watch[0].extensions, ["ts", "wtv", "mp4"]);
    assert!(!c.watch[0].recursive);
    assert_eq!(c.watch[0].mode, h264_config::agent::WatchMode::Events);
    assert!(!c.readiness.open_file_check);
    assert_eq!(c.readiness.stable_for, HumanDuration::from_secs(120));
    assert!(!c.transcode.remux);
    assert_eq!(c.transcode.level, None);
    assert_eq!(
        c.transcode.local_ffmpeg_args,
        ["-vf", "yadif,scale=1280:-2"]
    );
}

#[test]
fn several_roots_in_three_spellings_keep_file_order() {
    for text in [
        "[watch]\nsource=/a\noutput=/a-out\n[watch]\nsource=/b\noutput=/b-out\n[watch]\nsource=/c\noutput=/c-out\n",
        "[watch:x]\nsource=/a\noutput=/a-out\n[watch.y]\nsource=/b\noutput=/b-out\n[watch]\nsource=/c\noutput=/c-out\n",
    ] {
        let c = parse(text).unwrap().config;
        let sources: Vec<_> = c.watch.iter().map(|r| r.source.display().to_string()).collect();
        assert_eq!(sources, ["/a", "/b", "/c"]);
    }
}

#[test]
fn alerts_email_is_a_section_of_its_own() {
    let c = parse("@W[alerts:email]\nsmtp = smtp://m:25\nfrom = a@b\nto = x@y, z@y\n[alerts]\nqueue_limit = 5\n")
        .unwrap()
        .config;
    let email = c.alerts.email.unwrap();
    assert_eq!(email.to, ["x@y", "z@y"]);
    assert_eq!(c.alerts.queue_limit, 5);
}

#[test]
fn controller_labels_are_key_value_pairs() {
    let c = parse("@W[controller]\nendpoint = http://c:7443\nlabels = site=studio-a, canary = true\nreconnect_backoff = 0.5\n")
        .unwrap()
        .config;
    assert_eq!(c.controller.endpoint.as_deref(), Some("http://c:7443"));
    assert_eq!(c.controller.labels.len(), 2);
    assert_eq!(c.controller.labels["canary"], "true");
    assert_eq!(
        c.controller.reconnect_backoff,
        HumanDuration::from_millis(500)
    );
    let p = problems("@W[controller]\nlabels = studio-a\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "controller.labels");
    assert!(p[0].message.contains("key=value"), "{}", p[0]);
}

/// (name, INI text with `@W` for a valid root, expected problem or none: severity, key, line,
/// text in the displayed problem)
type Case = (
    &'static str,
    &'static str,
    Option<(Severity, &'static str, Option<usize>, &'static str)>,
);

#[test]
fn every_ini_rule_fails_and_passes() {
    use Severity::{Error, Warning};
    let cases: &[Case] = &[
        ("a valid file", "@W", None),
        (
            "key before any section",
            "workers = 2\n@W",
            Some((Error, "", Some(1), "comes before any [section]")),
        ),
        (
            "a line that is no entry",
            "@Wjust words\n",
            Some((Error, "", Some(4), "is not `key = value`")),
        ),
        (
            "a header without ]",
            "[agent\n@W",
            Some((Error, "", Some(1), "no closing `]`")),
        ),
        (
            "unknown section",
            "@W[trancode]\ncrf = 20\n",
            Some((Error, "trancode", Some(4), "did you mean `transcode`?")),
        ),
        (
            "unknown key",
            "@W[agent]\nworkerz = 2\n",
            Some((Error, "agent.workerz", Some(5), "did you mean `workers`?")),
        ),
        (
            "unknown key far off",
            "@W[agent]\ncolour = 2\n",
            Some((Error, "agent.colour", Some(5), "known keys in [agent]: id,")),
        ),
        (
            "keys are case-insensitive, - is _",
            "@W[agent]\nSTATE-DIR = /x\n",
            None,
        ),
        (
            "a key set twice",
            "@W[agent]\nworkers = 2\nworkers = 3\n",
            Some((
                Error,
                "agent.workers",
                Some(6),
                "set twice (first at line 5)",
            )),
        ),
        (
            "an old name and the new one",
            "@W[agent]\nthreads = 2\nworkers = 3\n",
            Some((Error, "agent.workers", Some(6), "set twice")),
        ),
        (
            "an old key name",
            "@W[agent]\nthreads = 2\n",
            Some((
                Warning,
                "agent.workers",
                Some(5),
                "`threads` is an old name of `workers`",
            )),
        ),
        (
            "an old section name",
            "@W[log]\nlevel = info\n",
            Some((Warning, "logging", Some(4), "rename it [logging]")),
        ),
        (
            "a section twice",
            "@W[agent]\nworkers=2\n[agent]\nid=a\n",
            Some((Error, "agent", Some(6), "appears twice (first at line 4)")),
        ),
        (
            "a watch name twice",
            "[watch:a]\nsource=/a\noutput=/a-out\n[watch:a]\nsource=/b\noutput=/b-out\n",
            Some((
                Error,
                "watch[1]",
                Some(4),
                "defined twice (first at line 1)",
            )),
        ),
        (
            "a name on another section",
            "@W[agent:x]\nworkers=2\n",
            Some((Error, "agent", Some(4), "only [watch] sections take a name")),
        ),
        (
            "email as a key",
            "@W[alerts]\nemail = a@b\n",
            Some((
                Error,
                "alerts.email",
                Some(5),
                "write its keys under [alerts.email]",
            )),
        ),
        (
            "a bad yes/no",
            "@W[readiness]\nopen_file_check = maybe\n",
            Some((Error, "readiness.open_file_check", Some(5), "yes or no")),
        ),
        (
            "yes/no spellings",
            "@W[readiness]\nopen_file_check = On\n",
            None,
        ),
        (
            "a bad number",
            "@W[agent]\nworkers = two\n",
            Some((Error, "agent.workers", Some(5), "not a whole number")),
        ),
        (
            "a negative number",
            "@W[agent]\nworkers = -2\n",
            Some((
                Error,
                "agent.workers",
                Some(5),
                "expected a whole number, 0 or more",
            )),
        ),
        (
            "a bad duration",
            "@W[readiness]\nstable_for = soon\n",
            Some((
                Error,
                "readiness.stable_for",
                Some(5),
                "invalid duration `soon`",
            )),
        ),
        (
            "seconds with decimals",
            "@W[readiness]\nstable_for = 1.5\n",
            None,
        ),
        (
            "a bad keyword",
            "@W[logging]\nformat = jsn\n",
            Some((Error, "logging.format", Some(5), "did you mean `json`?")),
        ),
        (
            "an open quote",
            "@W[agent]\nid = \"studio\n",
            Some((Error, "agent.id", Some(5), "never closed")),
        ),
        ("an empty optional value", "@W[agent]\nid =\n", None),
        (
            "no watch section",
            "[agent]\nworkers = 2\n",
            Some((Error, "watch", None, "no [watch] section")),
        ),
        (
            "validation keeps its line",
            "@W[transcode]\ncrf = 70\n",
            Some((Error, "transcode.crf", Some(5), "70 is out of range 0-51")),
        ),
        (
            "a risky value warns with its line",
            "@W[readiness]\nstable_for = 0\n",
            Some((
                Warning,
                "readiness.stable_for",
                Some(5),
                "still being written",
            )),
        ),
    ];
    for (name, text, expect) in cases {
        let problems = problems(text);
        match expect {
            None => assert!(problems.is_empty(), "{name}: {problems:#?}"),
            Some((severity, key, line, want)) => {
                // An expected error must be the only error (warnings may come with it).
                let problems: Vec<_> = problems
                    .iter()
                    .filter(|p| *severity == Warning || p.is_error())
                    .collect();
                assert_eq!(problems.len(), 1, "{name}: {problems:#?}");
                let p = &problems[0];
                assert_eq!(
                    (p.severity, p.key.as_str(), p.line),
                    (*severity, *key, *line),
                    "{name}: {p}"
                );
                let shown = p.to_string();
                assert!(
                    shown.contains(want),
                    "{name}: {shown} does not mention {want:?}"
                );
                assert!(
                    p.file.as_deref() == Some(Path::new("agent.ini")),
                    "{name}: {p}"
                );
                if let Some(line) = line {
                    assert!(
                        shown.contains(&format!("agent.ini:{line}: ")),
                        "{name}: {shown}"
                    );
                }
                if *severity == Error {
                    assert!(parse(text).is_err(), "{name}");
                }
            }
        }
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = parse(
        "[agent]\nworkers = 0\nthreds = 2\n[watch]\nsource=/a\n[transcode]\ncrf = x\n[bogus]\n",
    )
    .unwrap_err();
    let keys: Vec<_> = err
        .problems()
        .iter()
        .filter(|p| p.is_error())
        .map(|p| p.key.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "agent.threds",
            "agent.workers",
            "bogus",
            "transcode.crf",
            "watch[0].output"
        ]
    );
}
