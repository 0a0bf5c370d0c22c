//! `haul quickstart --pull-requests`, as a newcomer runs it: the binary starts everything, dev is
//! promoted automatically, uat and prod are promoted with kubectl, prod opens a pull request on
//! the quickstart's Gitea, `haul quickstart --merge-prs` merges it (as the printed text says),
//! prod's Promotion succeeds with the merge commit on `gitops`, and Ctrl-C (SIGINT) stops
//! everything, Gitea included. Gitea comes from `hack/gitea-binary.sh` (built once, cached).
#![cfg(feature = "quickstart")]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::quickstart::{Quickstart, after, dev_freight};

const STEP_TIMEOUT: Duration = Duration::from_secs(90);

fn kubectl(kubeconfig: &str, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    if let Some(mut i) = child.stdin.take() {
        i.write_all(stdin.unwrap_or_default().as_bytes())
            .expect("kubectl stdin");
    }
    let out = child.wait_with_output().expect("kubectl finishes");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn eventually(what: &str, qs: &Quickstart, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        match check() {
            Ok(()) => return,
            Err(last) if Instant::now() > deadline => {
                panic!(
                    "{what}: not within {STEP_TIMEOUT:?}; last: {last}\nquickstart stderr:\n{}",
                    qs.log()
                )
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

fn promotion(name: &str, stage: &str, freight: &str) -> String {
    format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Promotion\nmetadata: {{name: {name}, namespace: my-app}}\nspec: {{stage: {stage}, freight: {freight}}}\n"
    )
}

fn phase(kubeconfig: &str, name: &str) -> Result<(), String> {
    let (_, out) = kubectl(
        kubeconfig,
        &[
            "get",
            "promotion",
            name,
            "-n",
            "my-app",
            "-o",
            "jsonpath={.status.phase} {.status.message}",
        ],
        None,
    );
    if out.starts_with("Succeeded") {
        Ok(())
    } else {
        Err(out)
    }
}

#[test]
fn prod_promotes_through_a_pull_request_merged_as_the_quickstart_says() {
    let state = tempfile::tempdir().expect("a state directory");
    let mut qs = Quickstart::start(&["--pull-requests"], state.path());
    let lines = qs.read_instructions();
    let kubeconfig = after(&lines, "export KUBECONFIG=").to_string();
    let freight = dev_freight(&lines);
    let bare = after(&lines, "git --git-dir ")
        .split_whitespace()
        .next()
        .expect("the repository's path")
        .to_string();
    // The curl line spans two printed lines (a trailing backslash).
    let i = lines
        .iter()
        .position(|l| l.trim_start().starts_with("curl "))
        .expect("a curl line to merge the pull request");
    let curl = format!("{}\n{}", lines[i], lines[i + 1]);
    assert!(curl.contains("/pulls/1/merge"), "{curl}");
    let pulls = after(&lines, "# see the pull request at ")
        .split_whitespace()
        .next()
        .expect("the pull requests' page")
        .to_string();

    let (ok, out) = kubectl(
        &kubeconfig,
        &["create", "-f", "-"],
        Some(&promotion("to-uat", "uat", &freight)),
    );
    assert!(ok, "{out}");
    eventually("uat verifies the Freight", &qs, || {
        let (_, out) = kubectl(
            &kubeconfig,
            &[
                "get",
                "freight",
                &freight,
                "-n",
                "my-app",
                "-o",
                "jsonpath={.status.verifiedIn.uat}",
            ],
            None,
        );
        if out.trim().is_empty() {
            Err(format!("not verified in uat yet: {out}"))
        } else {
            Ok(())
        }
    });
    let (ok, out) = kubectl(
        &kubeconfig,
        &["create", "-f", "-"],
        Some(&promotion("to-prod", "prod", &freight)),
    );
    assert!(ok, "{out}");

    assert!(
        lines
            .iter()
            .any(|l| l.contains("cargo run -- quickstart --merge-prs")),
        "the quickstart says how to merge"
    );
    // Until prod has opened its pull request, there is nothing to merge.
    eventually(
        "`quickstart --merge-prs` merges prod's pull request",
        &qs,
        || {
            let out = Command::new(env!("CARGO_BIN_EXE_haul"))
                .args(["quickstart", "--merge-prs", "--state-dir"])
                .arg(state.path().join("state"))
                .output()
                .map_err(|e| e.to_string())?;
            let said = String::from_utf8_lossy(&out.stdout);
            if out.status.success() && said.contains("merged pull request #1") {
                Ok(())
            } else {
                Err(format!("{said}{}", String::from_utf8_lossy(&out.stderr)))
            }
        },
    );
    eventually("prod's Promotion succeeds", &qs, || {
        phase(&kubeconfig, "to-prod")
    });
    let head = Command::new("git")
        .args(["--git-dir", &bare, "log", "-1", "--format=%s", "gitops"])
        .output()
        .expect("git log");
    let subject = String::from_utf8_lossy(&head.stdout);
    assert!(
        subject.starts_with("Merge pull request") && subject.contains("(#1)"),
        "gitops is at {subject:?}"
    );
    let page = Command::new("curl")
        .args(["-fsS", &pulls])
        .output()
        .expect("curl runs");
    assert!(page.status.success(), "{pulls} does not answer");

    let gitea_dir = state.path().join("state/gitea");
    assert!(gitea_dir.join("app.ini").is_file());
    let status = qs
        .interrupt()
        .expect("Ctrl-C stops the quickstart within a minute");
    assert!(status.success(), "{status}\n{}", qs.log());
    let left = Command::new("pgrep")
        .args(["-f", &gitea_dir.display().to_string()])
        .output()
        .expect("pgrep runs");
    assert!(
        left.stdout.is_empty(),
        "still running after Ctrl-C: {}",
        String::from_utf8_lossy(&left.stdout)
    );
    assert!(!gitea_dir.exists(), "Gitea's directory is removed");
}
