//! The Kubernetes recipe validates against the Kubernetes 1.30 schemas (strict: unknown fields
//! fail), names the image of this release, and sets only settings the binary reads.

use std::path::{Path, PathBuf};
use std::process::Command;

fn recipe() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(recipe())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_manifests_validate_against_the_kubernetes_schemas() {
    let validator = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/kubernetes-validate/bin/kubernetes-validate");
    assert!(validator.exists(), "{} is missing: run `scripts/bootstrap.sh --tests`", validator.display());
    let files = manifests();
    assert!(files.len() >= 6, "{files:?}");
    let output = Command::new(validator).args(["--strict", "-k", "1.30.0"]).args(&files).output().unwrap();
    let report = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}");
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy();
        assert!(report.contains(&format!("{name} passed")), "{name} was not checked: {report}");
    }
    assert!(!report.contains("ERROR"), "{report}");
}

#[test]
fn the_recipe_names_this_release_and_every_file_it_applies() {
    let version = env!("CARGO_PKG_VERSION");
    let kustomization = std::fs::read_to_string(recipe().join("kustomization.yaml")).unwrap();
    assert!(kustomization.contains(&format!("newTag: \"{version}\"")), "{kustomization}");
    // Kustomize's image transformer matches by name: the one the manifests use.
    assert!(kustomization.contains("- name: registry.example.com/modelgate\n"), "{kustomization}");
    for applied in ["config.yaml", "deployment.yaml", "service.yaml", "disruption-budget.yaml"] {
        assert!(kustomization.contains(&format!("- {applied}")), "{applied} is not applied");
    }
    for file in manifests() {
        let text = std::fs::read_to_string(&file).unwrap();
        for image in text.lines().filter_map(|l| l.trim().strip_prefix("image: registry.example.com/modelgate")) {
            assert_eq!(image, format!(":{version}"), "{} names another image or release", file.display());
        }
    }
}

/// Every `MODELGATE_*`, `DATABASE_URL` or `LEPTOS_*` setting in the manifests is one the binary
/// documents in `--help` for the command that reads it (a misspelt name would be ignored).
#[test]
fn the_recipe_sets_only_settings_the_binary_reads() {
    let help = |command: &str| {
        let output = modelgate_tests::modelgate().args([command, "--help"]).output().unwrap();
        String::from_utf8(output.stdout).unwrap()
    };
    let known = help("serve") + &help("agent");
    for file in manifests() {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
            let name = line.trim_start_matches("- name: ").split(':').next().unwrap_or_default();
            if name.starts_with("MODELGATE_") || name == "DATABASE_URL" || name.starts_with("LEPTOS_") {
                let documented = [format!("[env: {name}="), format!("[env: {name}]")];
                assert!(documented.iter().any(|d| known.contains(d)), "{}: {name} is not a setting", file.display());
            }
        }
    }
}
