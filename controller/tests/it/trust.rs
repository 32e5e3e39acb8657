//! Fleet trust with the real controller binary over real TLS on loopback: agents prove their
//! id with a certificate, operators need a token or an operator certificate and a role, every
//! mutating call lands in the audit trail, revisions can be signed, and the resource limits
//! hold. The security review's probes (C1, H3, H4, M1) are regression tests here.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use h264_proto::v1::controller_message::Body as Pushed;
use h264_proto::v1::fleet_admin_client::FleetAdminClient;
use h264_proto::v1::rollout_request::Verb;
use h264_proto::v1::{
    ApplyRequest, CreateTokenRequest, DeleteAgentRequest, LabelRequest, ListAgentsRequest,
    ListAuditRequest, ListRevisionsRequest, RolloutRequest, RolloutUndo, WhoAmIRequest,
};
use h264_trust::pki::{self, Subject};
use h264_trust::{PublicKey, Role, SecretKey};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use support::*;

const SOON: Duration = Duration::from_secs(5);

/// A fleet CA with the controller's certificate (for 127.0.0.1), agents a1 and a2, and an
/// operator; plus a second, unrelated CA.
struct Pki {
    dir: PathBuf,
    other: PathBuf,
}

impl Pki {
    fn new(root: &Path) -> Self {
        let dir = root.join("pki");
        pki::init(&dir, "test fleet").unwrap();
        pki::issue(&dir, &Subject::Server("127.0.0.1".into())).unwrap();
        for a in ["a1", "a2"] {
            pki::issue(&dir, &Subject::Agent(a.into())).unwrap();
        }
        pki::issue(&dir, &Subject::Operator("alice".into(), Role::Operator)).unwrap();
        let other = root.join("other-pki");
        pki::init(&other, "another fleet").unwrap();
        pki::issue(&other, &Subject::Agent("a1".into())).unwrap();
        Self { dir, other }
    }

    fn controller_args(&self) -> Vec<String> {
        let p = |n: &str| self.dir.join(n).display().to_string();
        vec![
            "--tls-cert".into(),
            p("127.0.0.1.crt"),
            "--tls-key".into(),
            p("127.0.0.1.key"),
            "--client-ca".into(),
            p("ca.crt"),
        ]
    }

    /// A TLS channel trusting the fleet CA, presenting `who`'s certificate from `dir`.
    async fn channel(&self, url: &str, dir: &Path, who: Option<&str>) -> Result<Channel, String> {
        let (crt, key) = who
            .map(|w| (dir.join(format!("{w}.crt")), dir.join(format!("{w}.key"))))
            .unzip();
        let tls = h264_trust::tls::client_config(
            &self.dir.join("ca.crt"),
            crt.as_deref().zip(key.as_deref()),
            "127.0.0.1",
        )
        .unwrap();
        Endpoint::from_shared(url.to_owned())
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .map_err(|e| format!("{e:?}"))
    }
}

fn tls_controller(root: &Path, pki: &Pki) -> ControllerProcess {
    ControllerProcess::start_with_args(
        Path::new(env!("CARGO_BIN_EXE_h264-controller")),
        &root.join("state"),
        &pki.controller_args(),
    )
}

fn with_token(channel: Channel, token: &str) -> Admin {
    FleetAdminClient::with_interceptor(channel, Bearer(token.to_owned()))
}

#[tokio::test]
async fn agents_prove_their_id_with_a_certificate() {
    let root = tempfile::tempdir().unwrap();
    let pki = Pki::new(root.path());
    let c = tls_controller(root.path(), &pki);
    let url = c.https_url();
    let mut admin = with_token(pki.channel(&url, &pki.dir, None).await.unwrap(), &c.token());
    apply(&mut admin, &manifest(22)).await;

    // a1 with a1's certificate: in, and gets the revision.
    let ch = pki.channel(&url, &pki.dir, Some("a1")).await.unwrap();
    let mut a1 = FakeAgent::connect_over(ch, hello("a1", &[], 0, "local"))
        .await
        .unwrap();
    assert_eq!(a1.assignment(SOON).await.generation, 1);
    let s = describe(&mut admin, "a1").await;
    assert_eq!(s.certificate_identity, "h264create://agent/a1");

    // No certificate: refused.
    let ch = pki.channel(&url, &pki.dir, None).await.unwrap();
    let e = FakeAgent::connect_over(ch, hello("a1", &[], 0, "local"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e}");
    assert!(e.message().contains("requires agent certificates"), "{e}");

    // a1's certificate, configured as a2: refused, and a1 is not displaced.
    let ch = pki.channel(&url, &pki.dir, Some("a1")).await.unwrap();
    let e = FakeAgent::connect_over(ch, hello("a2", &[], 0, "local"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    assert!(e.message().contains("names agent `a1`"), "{e}");

    // A certificate from another CA: the handshake fails, no session.
    let ch = pki.channel(&url, &pki.other, Some("a1")).await;
    let refused = match ch {
        Err(_) => true,
        Ok(ch) => FakeAgent::connect_over(ch, hello("a1", &[], 0, "local"))
            .await
            .is_err(),
    };
    assert!(
        refused,
        "a certificate from another CA must not open a session"
    );

    // Plaintext to the TLS port: nothing.
    assert!(FakeAgent::connect(&c.url(), hello("a1", &[], 0, "local"))
        .await
        .is_err());
    assert!(describe(&mut admin, "a1").await.connected);

    // The same agent with its own certificate (a reconnect) takes over its session.
    let ch = pki.channel(&url, &pki.dir, Some("a1")).await.unwrap();
    let mut again = FakeAgent::connect_over(ch, hello("a1", &[], 0, "local"))
        .await
        .unwrap();
    assert_eq!(again.assignment(SOON).await.generation, 1);
    assert!(a1.try_next(SOON).await.map_or(true, |m| m.is_none()));
}

#[tokio::test]
async fn operators_need_an_identity_and_a_role_and_everything_is_audited() {
    let root = tempfile::tempdir().unwrap();
    let pki = Pki::new(root.path());
    let c = tls_controller(root.path(), &pki);
    let url = c.https_url();
    let admin_token = c.token();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(c.token_file()).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "admin.token is private");
    let anonymous_ch = pki.channel(&url, &pki.dir, None).await.unwrap();
    let mut admin = with_token(anonymous_ch.clone(), &admin_token);
    let mut tokens = Vec::new();
    for (name, role) in [("viewer-1", "viewer"), ("operator-1", "operator")] {
        let r = admin
            .create_token(CreateTokenRequest {
                name: name.into(),
                role: role.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.token.starts_with("h264ct_"));
        tokens.push(r.token);
    }
    let mut viewer = with_token(anonymous_ch.clone(), &tokens[0]);
    let mut operator = with_token(anonymous_ch.clone(), &tokens[1]);

    // No credential at all (the review's C1 probe): UNAUTHENTICATED, nothing applied.
    let mut nobody = FleetAdminClient::new(anonymous_ch.clone());
    let e = nobody
        .apply(ApplyRequest {
            manifest: manifest(22),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e}");
    let e = nobody
        .list_agents(ListAgentsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e}");
    // An unknown token: the same.
    let e = with_token(anonymous_ch.clone(), "h264ct_forged")
        .list_agents(ListAgentsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e}");

    // A viewer reads but cannot apply.
    viewer
        .list_revisions(ListRevisionsRequest {})
        .await
        .unwrap();
    let e = viewer
        .apply(ApplyRequest {
            manifest: manifest(22),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    assert!(e.message().contains("needs the admin role"), "{e}");
    assert!(admin
        .list_revisions(ListRevisionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .revisions
        .is_empty());

    // The admin applies; a rollout starts; the operator undoes it but cannot apply.
    apply(&mut admin, &manifest(22)).await;
    let ch = pki.channel(&url, &pki.dir, Some("a1")).await.unwrap();
    let mut a1 = FakeAgent::connect_over(ch, hello("a1", &[], 0, "local"))
        .await
        .unwrap();
    let a = a1.assignment(SOON).await;
    a1.ack(&a).await;
    wait_for_agent(&mut admin, "a1", "synced", |s| {
        s.sync_state().name() == "synced"
    })
    .await;
    let rollout = "apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata:\n  name: studios\nspec:\n  transcode:\n    crf: 21\n  rollout:\n    steps: [{percent: 100}]\n";
    let r2 = apply(&mut admin, rollout).await;
    assert!(r2.created);
    let b = a1.assignment(SOON).await;
    a1.ack(&b).await;
    wait_for_agent(&mut admin, "a1", "on 2", |s| s.running_generation == 2).await;
    let deadline = std::time::Instant::now() + SOON;
    loop {
        let s = viewer
            .rollout(RolloutRequest {
                verb: Some(Verb::Status(Default::default())),
            })
            .await
            .unwrap()
            .into_inner();
        if s.phase().name() == "Succeeded" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e = operator
        .apply(ApplyRequest {
            manifest: manifest(30),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    let undone = operator
        .rollout(RolloutRequest {
            verb: Some(Verb::Undo(RolloutUndo { to_generation: 0 })),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(undone.stable_generation, 1, "{undone:?}");
    assert_eq!(a1.assignment(SOON).await.generation, 1);

    // An operator certificate logs in without a token, with the role it names.
    let ch = pki.channel(&url, &pki.dir, Some("alice")).await.unwrap();
    let mut alice = FleetAdminClient::new(ch);
    let me = alice.who_am_i(WhoAmIRequest {}).await.unwrap().into_inner();
    assert_eq!(
        (me.identity.as_str(), me.role.as_str()),
        ("cert:alice", "operator")
    );
    let e = alice
        .label(LabelRequest {
            agent_id: "a1".into(),
            changes: vec!["canary=true".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    // An agent's certificate is not an operator's.
    let ch = pki.channel(&url, &pki.dir, Some("a2")).await.unwrap();
    let e = FleetAdminClient::new(ch)
        .list_agents(ListAgentsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e}");

    // The audit trail: who, role, verb, revision, result; refusals too.
    let audit = viewer
        .list_audit(ListAuditRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries;
    let find = |verb: &str, who: &str| {
        audit
            .iter()
            .find(|e| e.verb == verb && e.who == who)
            .unwrap_or_else(|| panic!("no {verb} by {who} in {audit:#?}"))
    };
    let applied = find("apply", "token:admin");
    assert_eq!(
        (applied.role.as_str(), applied.result.as_str()),
        ("admin", "ok")
    );
    assert_eq!(applied.generation, 1);
    assert_eq!(applied.sha256.len(), 64);
    assert!(find("apply", "token:viewer-1")
        .result
        .contains("PermissionDenied"));
    assert!(find("apply", "anonymous")
        .result
        .contains("Unauthenticated"));
    assert_eq!(find("rollout.undo", "token:operator-1").result, "ok");
    assert!(find("label_agent", "cert:alice")
        .result
        .contains("PermissionDenied"));
    assert!(find("token.create", "token:admin")
        .arguments
        .contains("viewer-1"));
    assert!(
        audit.iter().all(|e| !e.arguments.contains(&tokens[0])),
        "a token never lands in the audit"
    );

    // A token made on the controller's machine while it runs works at once.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_h264-controller"))
        .args([
            "token",
            "create",
            "--role",
            "viewer",
            "--name",
            "grafana",
            "--state-dir",
        ])
        .arg(&c.state_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made = String::from_utf8(out.stdout).unwrap();
    let me = with_token(anonymous_ch.clone(), made.trim())
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (me.identity.as_str(), me.role.as_str()),
        ("token:grafana", "viewer")
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_h264-controller"))
        .args([
            "token",
            "create",
            "--role",
            "root",
            "--name",
            "x",
            "--state-dir",
        ])
        .arg(&c.state_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The agents `selector` matches.
async fn selected(admin: &mut Admin, selector: &str) -> Vec<h264_proto::v1::AgentStatus> {
    admin
        .list_agents(ListAgentsRequest {
            selector: selector.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .agents
}

#[tokio::test]
async fn hello_labels_are_not_trusted_and_agents_can_be_forgotten_and_capped() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("controller.toml");
    std::fs::write(&config, "max_agents = 2\nrevisions_kept = 2\n").unwrap();
    let c = controller_with_config(&root.path().join("state"), &config);
    let mut admin = admin(&c).await;
    // A ghost claims to be the canary (the review's H4 probe): selected nowhere.
    let _ghost = FakeAgent::connect(&c.url(), hello("ghost-1", &[("canary", "true")], 0, "l"))
        .await
        .unwrap();
    let _real = FakeAgent::connect(&c.url(), hello("studio-1", &[], 0, "l"))
        .await
        .unwrap();
    let canaries = selected(&mut admin, "canary=true").await;
    assert!(canaries.is_empty(), "{canaries:?}");
    admin
        .label(LabelRequest {
            agent_id: "studio-1".into(),
            changes: vec!["canary=true".into()],
        })
        .await
        .unwrap();
    let canaries = selected(&mut admin, "canary=true").await;
    assert_eq!(canaries.len(), 1);
    assert_eq!(canaries[0].agent_id, "studio-1");
    // A live agent's id cannot be taken over without its certificate.
    let e = FakeAgent::connect(&c.url(), hello("studio-1", &[], 0, "l"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists, "{e}");

    // The third agent is past max_agents; deleting the ghost makes room.
    let e = FakeAgent::connect(&c.url(), hello("studio-2", &[], 0, "l"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e}");
    assert!(e.message().contains("max_agents"), "{e}");
    let gone = admin
        .delete_agent(DeleteAgentRequest {
            agent_id: "ghost-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(gone.was_connected);
    let _second = FakeAgent::connect(&c.url(), hello("studio-2", &[], 0, "l"))
        .await
        .unwrap();

    // Revisions beyond revisions_kept are pruned, never one an agent runs.
    for crf in [20, 21, 22, 23] {
        apply(&mut admin, &manifest(crf)).await;
    }
    let kept: Vec<u64> = admin
        .list_revisions(ListRevisionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .revisions
        .iter()
        .map(|r| r.generation)
        .collect();
    assert_eq!(kept, [4, 3], "{kept:?}");
}

#[tokio::test]
async fn an_oversized_hello_is_refused_and_the_fleet_view_survives() {
    let root = tempfile::tempdir().unwrap();
    let c = controller(&root.path().join("state"));
    let mut admin = admin(&c).await;
    // The review's M1 probe: a 2.5 MB Hello.
    let labels: Vec<(String, String)> = (0..1000)
        .map(|i| (format!("k{i}"), "x".repeat(2500)))
        .collect();
    let refs: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let e = FakeAgent::connect(&c.url(), hello("big-1", &refs, 0, "l")).await;
    let refused = match e {
        Err(_) => true,
        Ok(mut a) => a.try_next(SOON).await.is_err(),
    };
    assert!(refused, "a 2.5 MB Hello must be refused");
    // A Hello just under the limit has its labels bounded.
    let many: Vec<(String, String)> = (0..100)
        .map(|i| (format!("k{i}"), "v".repeat(300 * (i % 2))))
        .collect();
    let refs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let _a = FakeAgent::connect(&c.url(), hello("many-1", &refs, 0, "l"))
        .await
        .unwrap();
    let s = describe(&mut admin, "many-1").await;
    assert!(s.reported_labels.len() <= 32, "{}", s.reported_labels.len());
    assert!(s.reported_labels.values().all(|v| v.len() <= 256));
    admin
        .list_agents(ListAgentsRequest::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn signed_applies_are_checked_and_their_signature_travels_with_the_assignment() {
    let root = tempfile::tempdir().unwrap();
    let c = controller(&root.path().join("state"));
    let mut admin = admin(&c).await;
    let mut agent = FakeAgent::connect(&c.url(), hello("s-1", &[], 0, "l"))
        .await
        .unwrap();
    let key = SecretKey::generate();
    let public = key.public().to_string();
    let plan = admin
        .apply(ApplyRequest {
            manifest: manifest(22),
            dry_run: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plan.would_be_generation, 1);
    // Wrong generation named: refused as a race; a signature over other bytes: refused.
    let request = |generation: u64, signature: String| ApplyRequest {
        manifest: manifest(22),
        expected_generation: generation,
        signature,
        signer_key: public.clone(),
        ..Default::default()
    };
    let e = admin
        .apply(request(2, key.sign(2, &plan.sha256)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Aborted, "{e}");
    let e = admin
        .apply(request(1, key.sign(1, "0000")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    assert!(e.message().contains("signature"), "{e}");
    let reply = admin
        .apply(request(1, key.sign(1, &plan.sha256)))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.created);
    let a = agent.assignment(SOON).await;
    let signer = PublicKey::parse(&a.signer_key).unwrap();
    signer
        .verify(a.generation, &a.sha256, &a.signature)
        .unwrap();
    assert_eq!(a.signer_key, public);
    agent.ack(&a).await;
    let s = wait_for_agent(&mut admin, "s-1", "synced", |s| {
        s.sync_state().name() == "synced"
    })
    .await;
    assert_eq!(s.running_signer_key, public);
    let revs = admin
        .list_revisions(ListRevisionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .revisions;
    assert_eq!(revs[0].signer_key, public);

    // An ACK naming other bytes (the review's H3: edited in transit) is never "synced".
    apply(&mut admin, &manifest(23)).await;
    let b = agent.assignment(SOON).await;
    agent.ack_as(&b, &"f".repeat(64)).await;
    let s = wait_for_agent(&mut admin, "s-1", "error", |s| {
        s.sync_state().name() == "error"
    })
    .await;
    assert!(
        s.sync_error.contains("changed in transit"),
        "{}",
        s.sync_error
    );
}

/// Relays bytes between a client and `target`, flipping one byte of the server's stream at
/// offset `after` (a man in the middle editing the stream); `seen` counts the server's bytes.
async fn flipping_proxy(
    target: std::net::SocketAddr,
    after: usize,
    seen_total: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let seen_total = seen_total.clone();
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = async {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                let down = async {
                    let (mut buf, mut seen) = ([0u8; 16384], 0usize);
                    while let Ok(n) = sr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if seen <= after && after < seen + n {
                            buf[after - seen] ^= 0x20;
                        }
                        seen += n;
                        seen_total.store(seen, std::sync::atomic::Ordering::SeqCst);
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                tokio::join!(up, down);
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_byte_flipping_proxy_cannot_deliver_an_assignment_over_tls() {
    let root = tempfile::tempdir().unwrap();
    let pki = Pki::new(root.path());
    let c = tls_controller(root.path(), &pki);
    let mut admin = with_token(
        pki.channel(&c.https_url(), &pki.dir, None).await.unwrap(),
        &c.token(),
    );
    apply(&mut admin, &manifest(22)).await;
    // First through an honest relay, to learn where the assignment ends in the stream.
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let honest = flipping_proxy(c.addr, usize::MAX, seen.clone()).await;
    let ch = pki
        .channel(&format!("https://{honest}"), &pki.dir, Some("a1"))
        .await
        .unwrap();
    let mut a = FakeAgent::connect_over(ch, hello("a1", &[], 0, "l"))
        .await
        .unwrap();
    a.assignment(SOON).await;
    let end = seen.load(std::sync::atomic::Ordering::SeqCst);
    drop(a);
    // Then a byte inside the assignment's record (its last 100 bytes) is flipped.
    let proxy = flipping_proxy(c.addr, end - 100, Default::default()).await;
    let url = format!("https://{proxy}");
    let delivered = match pki.channel(&url, &pki.dir, Some("a1")).await {
        Err(_) => false,
        Ok(ch) => match FakeAgent::connect_over(ch, hello("a1", &[], 0, "l")).await {
            Err(_) => false,
            Ok(mut a) => matches!(a.try_next(SOON).await, Ok(Some(Pushed::Assignment(_)))),
        },
    };
    assert!(
        !delivered,
        "an edited stream must never yield an assignment"
    );
}

#[test]
fn plaintext_on_a_non_loopback_address_is_refused_unless_insecure() {
    let root = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_h264-controller");
    let out = std::process::Command::new(bin)
        .args(["--listen", "0.0.0.0:0", "--state-dir"])
        .arg(root.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--tls-cert") && err.contains("--insecure-plaintext"),
        "{err}"
    );

    let mut child = std::process::Command::new(bin)
        .args([
            "--listen",
            "0.0.0.0:0",
            "--insecure-plaintext",
            "--state-dir",
        ])
        .arg(root.path().join("state"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.starts_with("listening on 0.0.0.0:"), "{line}");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("INSECURE"), "{log}");
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_handshake_timeout() {
    let root = tempfile::tempdir().unwrap();
    let c = controller(&root.path().join("state"));
    let mut idle = tokio::net::TcpStream::connect(c.addr).await.unwrap();
    let mut buf = [0u8; 1];
    // Closed by the controller within its handshake timeout (10 s), never held for good.
    let n = tokio::time::timeout(Duration::from_secs(20), idle.read(&mut buf))
        .await
        .expect("the controller closed the idle connection")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

/// One HTTP/1.1 exchange over TLS trusting `ca` (the connection closes after it): the whole
/// answer, or why the handshake failed.
async fn https_exchange(
    addr: std::net::SocketAddr,
    ca: &Path,
    request: &str,
) -> Result<String, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in h264_trust::tls::read_certs(ca).unwrap() {
        roots.add(cert).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(h264_trust::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio::time::timeout(SOON, connector.connect(name, tcp))
        .await
        .map_err(|_| "no handshake in time".to_owned())?
        .map_err(|e| e.to_string())?;
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // The server may close without close_notify: what arrived before counts.
    let _ = tokio::time::timeout(SOON, tls.read_to_end(&mut answer)).await;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

fn login_request(token: &str) -> String {
    let body = format!("token={token}");
    format!(
        "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The console served with the controller's certificate answers over https to a client that
/// trusts the fleet CA, completes no handshake with one that does not, and answers nothing to
/// plain http. Failed logins from one peer are refused after a burst (429, `Retry-After`), a
/// correct token still logs in before that, and no tried token reaches the log.
#[tokio::test]
async fn the_console_speaks_only_tls_and_throttles_failed_logins() {
    let root = tempfile::tempdir().unwrap();
    let pki = Pki::new(root.path());
    let config = root.path().join("controller.toml");
    std::fs::write(&config, "[web]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let c = ControllerProcess::start_with_config_and_args(
        Path::new(env!("CARGO_BIN_EXE_h264-controller")),
        &root.path().join("state"),
        &config,
        &pki.controller_args(),
    );
    let web = c.web_addr();
    let ca = pki.dir.join("ca.crt");

    let page = https_exchange(
        web,
        &ca,
        "GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("id=\"token\""), "{page}");
    assert!(page.contains("content-security-policy"), "{page}");

    // A client that does not trust the fleet CA: no handshake.
    let other = https_exchange(web, &pki.other.join("ca.crt"), "GET / HTTP/1.1\r\n\r\n").await;
    assert!(other.is_err(), "{other:?}");

    // Plain http on the TLS port: no HTTP answer, the connection is closed.
    let mut plain = tokio::net::TcpStream::connect(web).await.unwrap();
    plain
        .write_all(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(SOON, plain.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "plain http must be closed, not left hanging");
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/"),
        "plain http got an HTTP answer: {:?}",
        String::from_utf8_lossy(&answer)
    );

    // Failed logins: a burst, then refused unchecked.
    let secret_guess = "guess-0123456789abcdef";
    let burst = h264_controller::web::throttle::PEER_BURST as usize;
    for i in 0..burst - 1 {
        let a = https_exchange(web, &ca, &login_request(&format!("{secret_guess}{i}")))
            .await
            .unwrap();
        assert!(a.starts_with("HTTP/1.1 401"), "attempt {i}: {a}");
    }
    // The right token still logs in while the peer has attempts left (and gives its one back).
    let ok = https_exchange(web, &ca, &login_request(&c.token()))
        .await
        .unwrap();
    assert!(ok.starts_with("HTTP/1.1 303"), "{ok}");
    assert!(ok.contains("HttpOnly") && ok.contains("Secure"), "{ok}");
    let last = https_exchange(web, &ca, &login_request(&format!("{secret_guess}last")))
        .await
        .unwrap();
    assert!(last.starts_with("HTTP/1.1 401"), "{last}");
    let refused = https_exchange(web, &ca, &login_request(&format!("{secret_guess}more")))
        .await
        .unwrap();
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    assert!(
        refused.to_ascii_lowercase().contains("retry-after:"),
        "{refused}"
    );
    assert!(refused.contains("Too many failed logins"), "{refused}");

    let log = c.log_text();
    assert!(log.contains("console login refused"), "{log}");
    assert!(
        log.contains("127.0.0.1"),
        "failed logins are logged with the peer"
    );
    assert!(!log.contains(secret_guess), "a tried token reached the log");
    assert!(!log.contains(&c.token()), "the admin token reached the log");
}
