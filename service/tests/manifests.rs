//! The Kubernetes manifests (deploy/kubernetes/): every kustomization rendered and every object
//! validated offline against the Kubernetes schemas, by scripts/check-manifests.sh
//! (`kubernetes-validate`, installed by scripts/ensure-deps.sh).

use std::path::Path;
use std::process::Command;

#[test]
fn the_kubernetes_manifests_validate_against_the_schemas() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = Command::new("bash")
        .arg(repo.join("scripts/check-manifests.sh"))
        .current_dir(repo)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("every object is valid"),
        "{stdout}\n{stderr}"
    );
}
