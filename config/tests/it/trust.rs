//! The trust keys of `[controller]` (`ca`, `cert`, `key`, `trusted_keys`) and the agent id a
//! certificate must name: one table row per rule, with real PEM files made by the fleet PKI
//! helper in a temporary folder; the same keys in the legacy INI layout; and a fleet manifest
//! that tries to set them.

use crate::cases;

use std::path::{Path, PathBuf};

use cases::{run_cases, Change, Expect};
use h264_config::validate::{normalize, validate_with};
use h264_config::{parse_ini_config, AgentConfig, Checks, Severity};
use h264_trust::pki::{self, Subject};
use h264_trust::SecretKey;

use Severity::{Error, Warning};

/// A CA in `tmp/pki` with certificates for agent `studio-1` and server `127.0.0.1`.
fn make_pki(tmp: &Path) -> PathBuf {
    let dir = tmp.join("pki");
    pki::init(&dir, "test fleet").unwrap();
    pki::issue(&dir, &Subject::Agent("studio-1".into())).unwrap();
    pki::issue(&dir, &Subject::Server("127.0.0.1".into())).unwrap();
    dir
}

/// An agent `studio-1` with its source folder; no controller.
fn base(tmp: &Path) -> AgentConfig {
    let mut config = AgentConfig::embedded_default();
    std::fs::create_dir(tmp.join("in")).unwrap();
    config.watch[0].source = tmp.join("in");
    config.watch[0].output = tmp.join("out");
    config.agent.state_dir = tmp.join("state");
    config.agent.id = Some("studio-1".into());
    config
}

/// `https://127.0.0.1:7443` with the PKI's CA, and the agent's certificate and key.
fn tls(c: &mut AgentConfig, tmp: &Path) {
    let pki = tmp.join("pki");
    c.controller.endpoint = Some("https://127.0.0.1:7443".into());
    c.controller.ca = Some(pki.join("ca.crt"));
    c.controller.cert = Some(pki.join("studio-1.crt"));
    c.controller.key = Some(pki.join("studio-1.key"));
}

fn public_key() -> String {
    SecretKey::generate().public().to_string()
}

fn run(cases: &[(&str, Change, Expect)]) {
    run_cases(cases, |tmp| {
        make_pki(tmp);
        base(tmp)
    });
}

#[test]
fn tls_settings() {
    run(&[
        ("https with CA, certificate and key", tls, None),
        (
            "https with the CA only",
            |c, tmp| {
                tls(c, tmp);
                c.controller.cert = None;
                c.controller.key = None;
            },
            None,
        ),
        (
            "https without the CA",
            |c, tmp| {
                tls(c, tmp);
                c.controller.ca = None;
            },
            Some((
                Error,
                "controller.ca",
                "cannot check the controller's certificate",
            )),
        ),
        (
            "a certificate without its key",
            |c, tmp| {
                tls(c, tmp);
                c.controller.key = None;
            },
            Some((Error, "controller.cert", "without controller.key")),
        ),
        (
            "a key without its certificate",
            |c, tmp| {
                tls(c, tmp);
                c.controller.cert = None;
            },
            Some((Error, "controller.key", "without controller.cert")),
        ),
        (
            "an empty CA path",
            |c, tmp| {
                tls(c, tmp);
                c.controller.ca = Some(PathBuf::new());
            },
            Some((Error, "controller.ca", "is empty")),
        ),
        (
            "certificate and key over http",
            |c, tmp| {
                tls(c, tmp);
                c.controller.endpoint = Some("http://127.0.0.1:7443".into());
            },
            Some((Warning, "controller.endpoint", "ca, cert, key are not used")),
        ),
        (
            "http to another machine",
            |c, _| c.controller.endpoint = Some("http://10.1.2.3:7443".into()),
            Some((
                Warning,
                "controller.endpoint",
                "cleartext and unauthenticated",
            )),
        ),
        (
            "http on loopback",
            |c, _| c.controller.endpoint = Some("http://[::1]:7443".into()),
            None,
        ),
        (
            "https with no port",
            |c, tmp| {
                tls(c, tmp);
                c.controller.endpoint = Some("https://127.0.0.1".into());
            },
            Some((Warning, "controller.endpoint", "port 443 is used")),
        ),
    ]);
}

#[test]
fn tls_files_are_read_at_check_time() {
    run(&[
        (
            "a missing CA",
            |c, tmp| {
                tls(c, tmp);
                c.controller.ca = Some(tmp.join("nowhere.crt"));
            },
            Some((Error, "controller.ca", "cannot read")),
        ),
        (
            "a CA that is not PEM",
            |c, tmp| {
                tls(c, tmp);
                std::fs::write(tmp.join("ca.txt"), "not a certificate\n").unwrap();
                c.controller.ca = Some(tmp.join("ca.txt"));
            },
            Some((Error, "controller.ca", "CERTIFICATE")),
        ),
        (
            "a key file as the CA",
            |c, tmp| {
                tls(c, tmp);
                c.controller.ca = Some(tmp.join("pki/ca.key"));
            },
            Some((Error, "controller.ca", "CERTIFICATE")),
        ),
        (
            "a certificate file as the key",
            |c, tmp| {
                tls(c, tmp);
                c.controller.key = Some(tmp.join("pki/studio-1.crt"));
            },
            Some((Error, "controller.key", "cannot read a private key")),
        ),
        (
            "a certificate of another agent",
            |c, tmp| {
                tls(c, tmp);
                c.agent.id = Some("studio-2".into());
            },
            Some((
                Error,
                "controller.cert",
                "names agent `studio-1`, but agent.id is `studio-2`",
            )),
        ),
        (
            "a server certificate as the agent's",
            |c, tmp| {
                tls(c, tmp);
                c.controller.cert = Some(tmp.join("pki/127.0.0.1.crt"));
                c.controller.key = Some(tmp.join("pki/127.0.0.1.key"));
            },
            Some((Error, "controller.cert", "names no agent")),
        ),
        (
            "an operator certificate as the agent's",
            |c, tmp| {
                let dir = tmp.join("pki");
                pki::issue(
                    &dir,
                    &Subject::Operator("alice".into(), h264_trust::Role::Admin),
                )
                .unwrap();
                tls(c, tmp);
                c.controller.cert = Some(dir.join("alice.crt"));
                c.controller.key = Some(dir.join("alice.key"));
            },
            Some((
                Error,
                "controller.cert",
                "names operator alice (admin), not an agent",
            )),
        ),
        (
            "a key others can read",
            |c, tmp| {
                use std::os::unix::fs::PermissionsExt as _;
                tls(c, tmp);
                let key = tmp.join("pki/studio-1.key");
                std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
            },
            Some((Warning, "controller.key", "chmod 600")),
        ),
    ]);
    // Away from the agent's host, the files are not looked at.
    let tmp = tempfile::tempdir().unwrap();
    let mut config = base(tmp.path());
    config.controller.endpoint = Some("https://ctl.example:7443".into());
    config.controller.ca = Some(tmp.path().join("nowhere.crt"));
    assert!(validate_with(&config, None, Checks::Portable).is_empty());
}

#[test]
fn trusted_keys_and_the_agent_id() {
    run(&[
        (
            "two trusted keys",
            |c, _| {
                c.controller.endpoint = Some("http://127.0.0.1:7443".into());
                c.controller.trusted_keys = vec![public_key(), public_key()];
            },
            None,
        ),
        (
            "a key that is not one",
            |c, _| c.controller.trusted_keys = vec![public_key(), "ed25519:AAAA".into()],
            Some((
                Error,
                "controller.trusted_keys[1]",
                "`ed25519:AAAA` is not a public key",
            )),
        ),
        (
            "another algorithm",
            |c, _| c.controller.trusted_keys = vec!["ssh-rsa AAAAB3Nza".into()],
            Some((Error, "controller.trusted_keys[0]", "`ssh-rsa AAAAB3Nza`")),
        ),
        (
            "a key listed twice",
            |c, _| {
                let key = public_key();
                c.controller.trusted_keys = vec![key.clone(), format!(" {key} ")];
            },
            Some((Warning, "controller.trusted_keys[1]", "listed twice")),
        ),
        (
            "an id that cannot be an identity, with a controller",
            |c, _| {
                c.controller.endpoint = Some("http://127.0.0.1:7443".into());
                c.agent.id = Some(".studio".into());
            },
            Some((
                Error,
                "agent.id",
                "cannot be an agent's identity with a controller",
            )),
        ),
        (
            "the same id without a controller",
            |c, _| c.agent.id = Some(".studio".into()),
            None,
        ),
        (
            "an id bad anyway is reported once",
            |c, _| {
                c.controller.endpoint = Some("http://127.0.0.1:7443".into());
                c.agent.id = Some("studio a".into());
            },
            Some((Error, "agent.id", "contains ' '")),
        ),
    ]);
}

#[test]
fn normalized_keys_hash_the_same_and_unset_keys_are_not_hashed() {
    let plain = AgentConfig::embedded_default();
    let json = plain.canonical_json();
    for key in ["\"ca\"", "\"cert\"", "\"trusted_keys\""] {
        assert!(!json.contains(key), "{key} in {json}");
    }
    let key = public_key();
    let mut a = plain.clone();
    a.controller.trusted_keys = vec![format!("  {key}\n")];
    a.controller.ca = Some("./pki//ca.crt".into());
    let mut b = plain.clone();
    b.controller.trusted_keys = vec![key.clone()];
    b.controller.ca = Some("./pki/ca.crt".into());
    normalize(&mut a);
    normalize(&mut b);
    assert_eq!(a.canonical_sha256(), b.canonical_sha256());
    assert_ne!(a.canonical_sha256(), plain.canonical_sha256());
}

#[test]
fn the_legacy_ini_layout_takes_the_same_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = make_pki(tmp.path());
    std::fs::create_dir(tmp.path().join("in")).unwrap();
    let (k1, k2) = (public_key(), public_key());
    let ini = format!(
        "[agent]\nid = studio-1\nstate_dir = {state}\n\n[watch]\nsource = {src}\noutput = {out}\n\n\
         [controller]\nendpoint = https://127.0.0.1:7443\nca = {ca}\ncert = {crt}\nkey = {key}\n\
         trusted_keys = {k1}, {k2}\n",
        state = tmp.path().join("state").display(),
        src = tmp.path().join("in").display(),
        out = tmp.path().join("out").display(),
        ca = pki.join("ca.crt").display(),
        crt = pki.join("studio-1.crt").display(),
        key = pki.join("studio-1.key").display(),
    );
    let loaded = parse_ini_config(&ini, None, Checks::Full).unwrap_or_else(|e| panic!("{e}"));
    let c = &loaded.config.controller;
    assert_eq!(c.ca.as_deref(), Some(pki.join("ca.crt").as_path()));
    assert_eq!(c.key.as_deref(), Some(pki.join("studio-1.key").as_path()));
    assert_eq!(c.trusted_keys, [k1, k2]);

    let bad = ini.replace("trusted_keys = ", "trusted_keys = ed25519:nope, ");
    let err = parse_ini_config(&bad, None, Checks::Full).unwrap_err();
    assert!(
        err.to_string().contains("controller.trusted_keys[0]"),
        "{err}"
    );
}

#[test]
fn a_fleet_manifest_cannot_set_them() {
    for key in ["trusted_keys: [\"ed25519:AAAA\"]", "ca: /tmp/evil.crt"] {
        let manifest = format!(
            "apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata: {{name: x}}\n\
             spec:\n  controller:\n    {key}\n"
        );
        let err = h264_config::fleet::parse_fleet_manifest(&manifest, None).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("spec.controller"), "{text}");
        assert!(text.contains("local"), "{text}");
    }
}
