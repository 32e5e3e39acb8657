//! The Debian package, built the way a release is (scripts/package.sh, cargo-deb) but from the
//! debug binaries that `cargo test --workspace` has just built (`--dev --no-build`), so the test
//! suite stays fast. It is unpacked into a scratch root with `dpkg-deb -x`, then:
//!
//! - its control data: name, dependencies (FFmpeg), conffiles, the postinst that makes the
//!   system user;
//! - its files: the three programs, the units, the configuration, man pages and completions;
//! - `systemd-analyze verify` on copies of its units whose ExecStart= points into the scratch
//!   root (the units name /usr/bin, empty on a build machine), with MANPATH on the packaged man
//!   pages so that Documentation=man:… is checked too, and `systemd-analyze security` holding
//!   their exposure score to 2.5 or less;
//! - the unpacked `h264-agent --check` on the packaged agent.toml, and the unpacked controller
//!   started on the packaged controller.toml, with their absolute folders moved into the
//!   scratch root (the folders the postinst would make are made there).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

const PROGRAMS: [&str; 3] = ["h264-agent", "h264-controller", "fleetctl"];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// target/debug: this test runs from target/debug/deps/.
fn debug_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `text` with the package's absolute folders moved under `root`.
fn rerooted(text: &str, root: &Path) -> String {
    let r = root.display();
    text.replace(
        "\"/var/lib/h264create",
        &format!("\"{r}/var/lib/h264create"),
    )
    .replace("\"/srv/h264create", &format!("\"{r}/srv/h264create"))
}

#[test]
fn the_debian_package_builds_unpacks_verifies_and_checks_its_configuration() {
    let bin = debug_dir();
    for program in PROGRAMS {
        assert!(
            bin.join(program).is_file(),
            "{} is missing: this test packages the binaries `cargo test --workspace` builds",
            bin.join(program).display()
        );
    }
    let version = env!("CARGO_PKG_VERSION");
    // Into the scratch folder, not target/debian/, where it would replace a release package.
    let scratch = tempfile::tempdir().unwrap();
    let deb = scratch
        .path()
        .join(format!("h264create_{version}_amd64.deb"));
    let started = Instant::now();
    run(Command::new("bash")
        .arg(repo().join("scripts/package.sh"))
        .args(["--dev", "--no-build", "--fast", "--output"])
        .arg(&deb)
        .current_dir(repo()));
    eprintln!("packaged in {:?}", started.elapsed());
    assert!(deb.is_file(), "{} was not made", deb.display());

    // Control data.
    let control = scratch.path().join("DEBIAN");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let fields = std::fs::read_to_string(control.join("control")).unwrap();
    assert!(fields.contains("Package: h264create\n"), "{fields}");
    assert!(
        fields.contains(&format!("Version: {version}\n")),
        "{fields}"
    );
    assert!(fields.contains("Architecture: amd64\n"), "{fields}");
    let depends = fields
        .lines()
        .find_map(|l| l.strip_prefix("Depends: "))
        .unwrap_or_else(|| panic!("no Depends: {fields}"));
    for dep in ["ffmpeg", "adduser", "libc6"] {
        assert!(depends.contains(dep), "{dep} not in Depends: {depends}");
    }
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    for file in [
        "/etc/h264create/agent.toml",
        "/etc/h264create/controller.toml",
    ] {
        assert!(conffiles.lines().any(|l| l == file), "{file}: {conffiles}");
    }
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(postinst.contains("adduser --system"), "{postinst}");
    assert!(postinst.contains("h264-agent.service"), "{postinst}");
    assert!(!postinst.contains("#DEBHELPER#"), "{postinst}");
    for script in ["postinst", "prerm", "postrm"] {
        run(Command::new("sh").arg("-n").arg(control.join(script)));
    }

    // Files.
    let root = scratch.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let mut expected: Vec<String> = vec![
        "etc/h264create/agent.toml".into(),
        "etc/h264create/controller.toml".into(),
        "usr/lib/systemd/system/h264-agent.service".into(),
        "usr/lib/systemd/system/h264-controller.service".into(),
        "usr/share/doc/h264create/README.md".into(),
        "usr/share/doc/h264create/windows-recorders.md".into(),
        "usr/share/doc/h264create/agent.toml.example".into(),
        "usr/share/man/man1/fleetctl-rollout-start.1.gz".into(),
    ];
    for p in PROGRAMS {
        expected.push(format!("usr/bin/{p}"));
        expected.push(format!("usr/share/man/man1/{p}.1.gz"));
        expected.push(format!("usr/share/bash-completion/completions/{p}"));
        expected.push(format!("usr/share/zsh/vendor-completions/_{p}"));
        expected.push(format!("usr/share/fish/vendor_completions.d/{p}.fish"));
    }
    for file in &expected {
        assert!(root.join(file).is_file(), "{file} is not in the package");
    }
    for p in PROGRAMS {
        let bash = root.join(format!("usr/share/bash-completion/completions/{p}"));
        run(Command::new("bash").arg("-n").arg(&bash));
        let script = std::fs::read_to_string(&bash).unwrap();
        assert!(
            script.contains(&format!("complete -F _{}", p.replace('-', "__"))),
            "{script}"
        );
        let page = run(Command::new("gzip")
            .arg("-dc")
            .arg(root.join(format!("usr/share/man/man1/{p}.1.gz"))));
        let page = String::from_utf8_lossy(&page.stdout);
        assert!(page.contains(&format!(".TH {p} 1")), "{page}");
    }
    let agent_page = run(Command::new("gzip")
        .arg("-dc")
        .arg(root.join("usr/share/man/man1/h264-agent.1.gz")));
    assert!(String::from_utf8_lossy(&agent_page.stdout).contains("check"));
    let fleetctl = root.join("usr/bin/fleetctl");
    let zsh = run(Command::new(&fleetctl).args(["completion", "zsh"]));
    assert!(String::from_utf8_lossy(&zsh.stdout).starts_with("#compdef fleetctl"));

    // systemd-analyze verify, on copies whose programs are the unpacked ones.
    let units = scratch.path().join("units");
    std::fs::create_dir(&units).unwrap();
    for unit in ["h264-agent.service", "h264-controller.service"] {
        let text = std::fs::read_to_string(root.join("usr/lib/systemd/system").join(unit)).unwrap();
        assert!(text.contains("ExecStart=/usr/bin/"), "{unit}");
        for key in [
            "Type=notify",
            "WatchdogSec=",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "CapabilityBoundingSet=\n",
            "SystemCallFilter=@system-service",
            "LoadCredential=",
            "Restart=on-failure",
        ] {
            assert!(text.contains(key), "{unit} lacks {key}");
        }
        let text = text.replace(
            "ExecStart=/usr/bin/",
            &format!("ExecStart={}/usr/bin/", root.display()),
        );
        std::fs::write(units.join(unit), text).unwrap();
    }
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(units.join("h264-agent.service"))
        .arg(units.join("h264-controller.service"))
        .env("MANPATH", root.join("usr/share/man"))
        .output()
        .expect("systemd-analyze (Debian's systemd package; scripts/ensure-deps.sh installs it)");
    let said = text(&verify);
    assert!(verify.status.success(), "systemd-analyze verify: {said}");
    assert!(
        said.trim().is_empty(),
        "systemd-analyze verify complained: {said}"
    );
    // The hardening, measured: systemd's exposure score (0 to 10, "OK" up to about 4) must
    // stay at or below 2.5 (`--threshold` counts tenths).
    for unit in ["h264-agent.service", "h264-controller.service"] {
        let security = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=25", "--no-pager"])
            .arg(units.join(unit))
            .output()
            .unwrap();
        let said = text(&security);
        let score = said.lines().last().unwrap_or_default();
        assert!(
            security.status.success(),
            "{unit} is exposed: {score}\n{said}"
        );
        eprintln!("{score}");
    }

    // The packaged agent.toml, checked by the packaged agent, with its folders (as the
    // postinst makes them) under the scratch root.
    for dir in [
        "srv/h264create/incoming",
        "srv/h264create/h264",
        "var/lib/h264create/agent",
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    let config = std::fs::read_to_string(root.join("etc/h264create/agent.toml")).unwrap();
    assert!(
        config.contains("state_dir = \"/var/lib/h264create/agent\""),
        "{config}"
    );
    let agent_toml = scratch.path().join("agent.toml");
    std::fs::write(&agent_toml, rerooted(&config, &root)).unwrap();
    let check = run(Command::new(root.join("usr/bin/h264-agent"))
        .arg("--check")
        .arg("--config")
        .arg(&agent_toml));
    let said = text(&check);
    assert!(said.contains("configuration is valid"), "{said}");
    assert!(!said.to_lowercase().contains("warning"), "{said}");

    // The packaged controller.toml: the packaged controller starts on it.
    let config = std::fs::read_to_string(root.join("etc/h264create/controller.toml")).unwrap();
    let controller_toml = scratch.path().join("controller.toml");
    std::fs::write(
        &controller_toml,
        rerooted(&config, &root).replace("127.0.0.1:7443", "127.0.0.1:0"),
    )
    .unwrap();
    let mut controller = Command::new(root.join("usr/bin/h264-controller"))
        .arg("--config")
        .arg(&controller_toml)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(controller.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = controller.kill();
    let out = controller.wait_with_output().unwrap();
    assert!(
        line.starts_with("listening on 127.0.0.1:"),
        "{line}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(root
        .join("var/lib/h264create/controller/controller.db")
        .is_file());
}
