//! Hostile or broken input ends in a clear error, quickly, without a crash: deep nesting,
//! huge files, invalid UTF-8, YAML aliases expanding exponentially ("billion laughs").

use std::time::{Duration, Instant};

use h264_config::fleet::{load_fleet_manifest, parse_fleet_manifest};
use h264_config::{
    load_agent_config, load_config, parse_agent_config, parse_ini_config, Checks, ConfigError,
};

/// Far more than any machine running the tests needs, far less than a hang.
const BOUND: Duration = Duration::from_secs(20);

/// Runs `parse`, which must fail within [`BOUND`] with a problem mentioning `want`.
fn refused(name: &str, want: &str, parse: impl FnOnce() -> Result<(), ConfigError>) {
    let start = Instant::now();
    let err = match parse() {
        Ok(()) => panic!("{name}: accepted"),
        Err(e) => e.to_string(),
    };
    let took = start.elapsed();
    assert!(took < BOUND, "{name}: took {took:?}");
    assert!(
        err.contains(want),
        "{name}: {err} does not mention {want:?}"
    );
}

const N: usize = 100_000;

#[test]
fn deep_toml_nesting_is_refused() {
    let cases = [
        (
            "nested arrays",
            format!("a = {}{}", "[".repeat(N), "]".repeat(N)),
        ),
        (
            "nested inline tables",
            format!("a = {}1{}", "{b = ".repeat(N), "}".repeat(N)),
        ),
        (
            "a long dotted key",
            format!("{} = 1", vec!["a"; N].join(".")),
        ),
        (
            "a long table header",
            format!("[{}]\nx = 1", vec!["a"; N].join(".")),
        ),
        (
            "a long array-of-tables header",
            format!("[[{}]]\nx = 1", vec!["a"; N].join(".")),
        ),
    ];
    for (name, text) in cases {
        refused(name, "TOML syntax error", || {
            parse_agent_config(&text, None).map(|_| ())
        });
    }
}

#[test]
fn deep_yaml_nesting_is_refused() {
    let block: String = (0..2_000)
        .map(|i| format!("{}a:\n", " ".repeat(i)))
        .collect();
    let cases = [
        (
            "nested flow lists",
            format!("spec: {}{}", "[".repeat(N), "]".repeat(N)),
            "nests lists or maps more than 32 deep",
        ),
        (
            "nested flow maps",
            format!("spec: {}1{}", "{a: ".repeat(N), "}".repeat(N)),
            "nests lists or maps more than 32 deep",
        ),
        ("nested block maps", block, "YAML"),
        ("nested block lists", "- ".repeat(N), "YAML"),
        ("nested question marks", "? ".repeat(N), "YAML"),
    ];
    for (name, text, want) in cases {
        refused(name, want, || parse_fleet_manifest(&text, None).map(|_| ()));
    }
}

#[test]
fn exponential_yaml_aliases_are_refused() {
    let mut lol =
        String::from("apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata: {name: lol}\n");
    lol.push_str(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    for w in names.windows(2) {
        let refs = vec![format!("*{}", w[0]); 9].join(",");
        lol.push_str(&format!("{}: &{} [{refs}]\n", w[1], w[1]));
    }
    lol.push_str("spec: {transcode: {extra_args: *j}}\n");
    refused("billion laughs", "values", || {
        parse_fleet_manifest(&lol, None).map(|_| ())
    });

    // A few aliases that expand to little are plain YAML and fine.
    let small = "apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata: {name: ok}\nspec:\n  captions:\n    formats: &f [srt, vtt]\n";
    assert!(parse_fleet_manifest(small, None).is_ok());
}

#[test]
fn huge_files_are_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let big = vec![b'#'; (4 << 20) + 1];
    for name in ["agent.toml", "agent.ini", "fleet.yaml"] {
        let path = dir.path().join(name);
        std::fs::write(&path, &big).unwrap();
        let want = "larger than 4 MiB are refused unread";
        refused(name, want, || load_agent_config(&path).map(|_| ()));
        if name == "fleet.yaml" {
            refused(name, want, || load_fleet_manifest(&path).map(|_| ()));
        }
    }
    refused("via the dual loader", "larger than 4 MiB", || {
        load_config(&dir.path().join("agent.toml")).map(|_| ())
    });
    let text = "#".repeat((4 << 20) + 1);
    refused("TOML text", "larger than 4 MiB", || {
        parse_agent_config(&text, None).map(|_| ())
    });
    refused("INI text", "larger than 4 MiB", || {
        parse_ini_config(&text, None, Checks::Portable).map(|_| ())
    });
    refused("YAML text", "larger than 4 MiB", || {
        parse_fleet_manifest(&text, None).map(|_| ())
    });
}

#[test]
fn invalid_utf8_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = b"[agent]\nid = \"caf\xe9\"\n".to_vec();
    for name in ["agent.toml", "agent.ini", "fleet.yaml"] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let want = "is not valid UTF-8 text (first bad byte at line 2, column 10)";
        refused(name, want, || load_agent_config(&path).map(|_| ()));
        refused(name, want, || load_fleet_manifest(&path).map(|_| ()));
        let shown = load_agent_config(&path).unwrap_err().to_string();
        assert!(shown.contains(&format!("{name}:2: ")), "{shown}");
    }
}

#[test]
fn binary_garbage_is_an_error_not_a_crash() {
    let garbage: String = (0..50_000u32)
        .map(|i| char::from_u32((i * 7919) % 0x2000 + 1).unwrap_or('x'))
        .collect();
    assert!(parse_agent_config(&garbage, None).is_err());
    assert!(parse_ini_config(&garbage, None, Checks::Portable).is_err());
    assert!(parse_fleet_manifest(&garbage, None).is_err());
}
