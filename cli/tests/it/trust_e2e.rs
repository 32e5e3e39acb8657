//! Fleet trust end to end with the real binaries over real TLS on loopback: `fleetctl pki` and
//! `fleetctl keys` make the material, `h264-controller` requires client certificates, real
//! `h264-agent`s connect with theirs and pin the signing key, and fleetctl logs in with tokens
//! and an operator certificate. Signed revisions are applied, unsigned ones NACKed; roles are
//! enforced with exit code 4; every call is in `fleetctl audit`.

use crate::bins;
use crate::controller;
use crate::fleet_agent;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use controller::ControllerProcess;
use fleet_agent::FleetAgent;
use h264_testkit::wait::wait_for;
use serde_json::Value;

/// fleetctl against the TLS controller at `url`, trusting the CA in `pki`, with `env` on top.
fn fleetctl(url: &str, pki: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .args(args)
        .env("FLEETCTL_CONTROLLER", url)
        .env("FLEETCTL_CA", pki.join("ca.crt"))
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn local(args: &[&str]) -> String {
    ok(Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .args(args)
        .output()
        .unwrap())
}

fn manifest(dir: &Path, name: &str, crf: u32) -> String {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata:\n  name: trust\nspec:\n  transcode: {{crf: {crf}}}\n"),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn a_secured_fleet_with_real_binaries() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let p = pki.display().to_string();
    local(&["pki", "init", "--dir", &p]);
    local(&["pki", "issue", "--dir", &p, "--server", "127.0.0.1"]);
    local(&["pki", "issue", "--dir", &p, "--agent", "trust-1"]);
    local(&[
        "pki",
        "issue",
        "--dir",
        &p,
        "--operator",
        "alice",
        "--role",
        "operator",
    ]);
    let key = pki.join("release.key");
    let public = local(&["keys", "generate", "--out", &key.display().to_string()])
        .trim()
        .to_owned();
    assert!(public.starts_with("ed25519:"), "{public}");

    let f = |n: &str| pki.join(n).display().to_string();
    let c = ControllerProcess::start_with_args(
        &bins::workspace_bin("h264-controller"),
        &dir.path().join("state"),
        &[
            "--tls-cert".into(),
            f("127.0.0.1.crt"),
            "--tls-key".into(),
            f("127.0.0.1.key"),
            "--client-ca".into(),
            f("ca.crt"),
        ],
    );
    let url = c.https_url();
    let token = c.token_file().display().to_string();
    let admin = [("FLEETCTL_TOKEN_FILE", token.as_str())];

    let tls = |id: &str, cert_of: &str| {
        format!(
            "ca = '{}'\ncert = '{}'\nkey = '{}'\ntrusted_keys = [\"{public}\"]\n",
            f("ca.crt"),
            f(&format!("{cert_of}.crt")),
            f(&format!("{cert_of}.key")),
        )
        .replace("{id}", id)
    };
    let agent = FleetAgent::start_with("trust-1", &url, false, &[], &tls("trust-1", "trust-1"));
    // An agent configured as trust-2 that presents trust-1's certificate (an impersonator).
    let impostor = FleetAgent::start_with("trust-2", &url, false, &[], &tls("trust-2", "trust-1"));

    let agents = |env: &[(&str, &str)]| -> Value {
        serde_json::from_str(&ok(fleetctl(
            &url,
            &pki,
            env,
            &["get", "agents", "-o", "json"],
        )))
        .unwrap()
    };
    // Waits until trust-1, as `get agents` lists it, passes `check`; returns it.
    let trust1 = |what: &str, check: &dyn Fn(&Value) -> bool| -> Value {
        wait_for(
            what,
            Duration::from_secs(30),
            Duration::from_millis(200),
            || {
                agents(&admin)
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|a| a["id"] == "trust-1" && check(a))
                    .cloned()
            },
        )
        .unwrap()
    };
    trust1("trust-1 connected", &|a| a["connected"] == true);

    // A signed revision is applied; describe shows the key and the certificate.
    let m1 = manifest(dir.path(), "m1.yaml", 24);
    let out = ok(fleetctl(
        &url,
        &pki,
        &admin,
        &["apply", "-f", &m1, "--sign-key", &key.display().to_string()],
    ));
    assert!(out.contains("signed by ed25519:"), "{out}");
    trust1("trust-1 synced on 1", &|a| {
        a["sync"] == "synced" && a["running_generation"] == 1
    });
    let d = ok(fleetctl(
        &url,
        &pki,
        &admin,
        &["describe", "agent", "trust-1"],
    ));
    assert!(
        d.contains(&public) && d.contains("h264create://agent/trust-1"),
        "{d}"
    );

    // An unsigned revision is refused by the agent, which keeps generation 1.
    let m2 = manifest(dir.path(), "m2.yaml", 30);
    ok(fleetctl(&url, &pki, &admin, &["apply", "-f", &m2]));
    let refused = trust1("trust-1 refuses 2", &|a| a["sync"] == "error");
    assert_eq!(refused["running_generation"], 1, "{refused}");
    assert!(
        refused["sync_error"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{refused}"
    );

    // The impersonator never got a session.
    let all = agents(&admin);
    assert!(
        all.as_array().unwrap().iter().all(|a| a["id"] != "trust-2"),
        "{all}"
    );
    drop(impostor);

    // Roles: a viewer token reads but cannot apply; an operator certificate steers but cannot
    // apply; no credential at all is not authenticated. Each refusal exits 4.
    let viewer = ok(fleetctl(
        &url,
        &pki,
        &admin,
        &["token", "create", "--name", "ro", "--role", "viewer"],
    ));
    let viewer = [("FLEETCTL_TOKEN", viewer.trim())];
    ok(fleetctl(&url, &pki, &viewer, &["get", "revisions"]));
    let out = fleetctl(&url, &pki, &viewer, &["apply", "-f", &m1]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs the admin role"));
    let alice = [
        ("FLEETCTL_CERT", f("alice.crt")),
        ("FLEETCTL_KEY", f("alice.key")),
    ];
    let alice: Vec<(&str, &str)> = alice.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let me = ok(fleetctl(&url, &pki, &alice, &["whoami"]));
    assert!(me.contains("cert:alice (operator, by certificate)"), "{me}");
    let out = fleetctl(&url, &pki, &alice, &["apply", "-f", &m1]);
    assert_eq!(out.status.code(), Some(4));
    let out = fleetctl(&url, &pki, &[], &["get", "agents"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not authenticated"));
    // Without the CA, https is refused before anything is sent.
    let out = Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .args(["--controller", &url, "get", "agents"])
        .env("FLEETCTL_TOKEN_FILE", &token)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // The audit trail has them all.
    let audit: Value =
        serde_json::from_str(&ok(fleetctl(&url, &pki, &viewer, &["audit", "-o", "json"]))).unwrap();
    let entries = audit.as_array().unwrap();
    let has = |verb: &str, who: &str, result: &str| {
        entries.iter().any(|e| {
            e["verb"] == verb && e["who"] == who && e["result"].as_str().unwrap().contains(result)
        })
    };
    assert!(has("apply", "token:admin", "ok"), "{audit:#}");
    assert!(has("apply", "token:ro", "PermissionDenied"), "{audit:#}");
    assert!(has("apply", "cert:alice", "PermissionDenied"), "{audit:#}");
    assert!(has("token.create", "token:admin", "ok"), "{audit:#}");
    let signed = entries
        .iter()
        .find(|e| e["verb"] == "apply" && e["generation"] == 1)
        .unwrap();
    assert_eq!(
        signed["arguments"]["signed_by"],
        public.as_str(),
        "{signed}"
    );
    drop(agent);
}
