//! The binary a cluster runs (built with `--no-default-features`, as the Dockerfile and
//! hack/build-static.sh do) links none of the test environment: no control plane, no
//! certificate authority, no side-service scripts.

use std::process::Command;

/// The crates a build of haul links, with or without its default features.
fn linked_crates(default_features: bool) -> Vec<String> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "tree",
        "--offline",
        "--locked",
        "-p",
        "haul",
        "-e",
        "normal,build",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ]);
    if !default_features {
        cmd.arg("--no-default-features");
    }
    let out = cmd.output().expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_operator_build_links_no_test_environment() {
    let operator = linked_crates(false);
    assert!(operator.iter().any(|c| c == "kube"), "{operator:?}");
    for test_only in ["haul-testenv", "rcgen"] {
        assert!(
            !operator.iter().any(|c| c == test_only),
            "the operator build links {test_only}"
        );
    }
    // The default (developer) build has the quickstart, which needs the test environment.
    assert!(
        linked_crates(true).iter().any(|c| c == "haul-testenv"),
        "the quickstart feature should bring haul-testenv"
    );
}
