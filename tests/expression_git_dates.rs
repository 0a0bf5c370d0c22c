//! Commit dates are times in a Warehouse's expressions, as in Kargo: a git subscription's
//! `expressionFilter` calls `commitDate.After(date(…))` and the `freightCreationCriteria` reads
//! `commitFrom(…).CreatorDate.Year()`. A real control plane, a real `haul controller` process
//! and the git server over HTTP; commit dates are set with `GIT_COMMITTER_DATE`.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::services::services;
use support::{ControllerProcess, freight_list, get_json, kubectl_stdin, namespace};

/// Commits a change dated `date` (ISO 8601) and pushes main; returns the commit's SHA.
fn commit_at(work: &Path, auth: &str, n: u32, date: &str) -> String {
    std::fs::write(work.join("config.yaml"), format!("n: {n}\n")).expect("write");
    support::git(work, &["add", "-A"]);
    let out = Command::new("git")
        .current_dir(work)
        .args(["commit", "-q", "-m", &format!("change {n} at {date}")])
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date)
        .output()
        .expect("git commit");
    assert!(
        out.status.success(),
        "commit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    support::git(work, &["push", "-q", auth, "main"]);
    support::git(work, &["rev-parse", "HEAD"])
        .trim()
        .to_string()
}

#[test]
fn commit_dates_are_times_in_expression_filter_and_criteria() {
    let work_dir = support::cp().dir().join("work-expression-git-dates");
    let controller = ControllerProcess::start(&work_dir);
    let ns = namespace("expr-dates");
    let s = services();
    let url = s.new_repo(&format!("{ns}-config"));
    let work = support::cp().dir().join(format!("git-{ns}"));
    std::fs::create_dir_all(&work).expect("dir");
    let auth = support::gitops::encoded_auth_url(&url);
    support::git(&work, &["init", "-q", "-b", "main"]);
    commit_at(&work, &auth, 1, "2020-03-01T10:00:00Z");
    let wanted = commit_at(&work, &auth, 2, "2025-06-01T10:00:00Z");
    // The branch head is older than 2025, so only the filter can skip it.
    commit_at(&work, &auth, 3, "2021-03-01T10:00:00Z");
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: git\n  namespace: {ns}\n  labels: {{kargo.akuity.io/cred-type: git}}\nstringData:\n  repoURL: {url}\n  username: {}\n  password: '{}'\n",
        s.var("HAUL_TEST_GIT_USER"),
        s.var("HAUL_TEST_GIT_PASSWORD")
    );
    kubectl_stdin(&["apply", "-f", "-"], &secret).success("secret");
    let warehouse = format!(
        r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata:
  name: dated
  namespace: {ns}
spec:
  interval: 10m
  freightCreationCriteria:
    expression: commitFrom('{url}').CreatorDate.Year() >= 2025
  subscriptions:
  - git:
      repoURL: {url}
      branch: main
      expressionFilter: commitDate.After(date('2025-01-01')) && string(commitDate.Month()) == 'June'
"#
    );
    kubectl_stdin(&["apply", "-f", "-"], &warehouse).success("warehouse");
    let deadline = Instant::now() + Duration::from_secs(90);
    let f = loop {
        if let Some(f) = freight_list(&ns).into_iter().next() {
            break f;
        }
        if Instant::now() > deadline {
            panic!(
                "no Freight after 90s; Warehouse: {:#}\ncontroller log:\n{}",
                get_json("warehouse", "dated", &ns).unwrap_or_default(),
                controller.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(f["commits"][0]["id"], wanted.as_str(), "{f:#}");
    assert_eq!(
        f["commits"][0]["message"],
        "change 2 at 2025-06-01T10:00:00Z"
    );
}
