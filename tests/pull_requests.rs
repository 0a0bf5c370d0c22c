//! git-open-pr, git-wait-for-pr and git-merge-pr against a real Gitea: the steps run by the
//! promotion engine (as the controller and `haul run-local` run them) with the Gitea admin's
//! token as the repository's git password; Gitea's own API merges or closes the pull requests
//! in between, as a reviewer would.

mod support;

use std::path::Path;
use std::time::Duration;

use haul::api::{FreightCollection, PromotionPhase, PromotionStatus, PromotionStep, StepStatus};
use haul::expressions::PromotionContext;
use haul::git::{Author, Credentials, RepoCache};
use haul::promotion::engine::{Progress, step_once};
use haul::promotion::steps::{FixedCredentials, StepEnv};
use serde_json::{Value, json};
use support::{git, gitea};

/// A temporary work directory and git cache, and the steps' environment over them with the
/// Gitea token as the git password.
struct Env {
    dir: tempfile::TempDir,
    cache: RepoCache,
    creds: FixedCredentials,
    freight: FreightCollection,
    author: Author,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = RepoCache::new(dir.path().join("cache")).expect("cache");
        let g = gitea();
        Self {
            dir,
            cache,
            creds: FixedCredentials(Credentials::Basic {
                username: g.username().to_string(),
                password: g.token().to_string(),
            }),
            freight: FreightCollection::default(),
            author: Author::default(),
        }
    }

    fn step_env(&self) -> StepEnv<'_> {
        StepEnv {
            client: None,
            argocd_namespace: None,
            credentials: &self.creds,
            push_allowed: true,
            runner: "test",
            git: &self.cache,
            work_dir: self.dir.path(),
            project: "p",
            shared_namespace: None,
            stage: "uat",
            promotion: "uat.01",
            actor: "a",
            freight: &self.freight,
            author: &self.author,
            signing_key: &haul::promotion::steps::env::NO_SIGNING_KEY,
            previous_output: None,
        }
    }
}

/// A Promotion's steps, run one engine call at a time.
struct Run {
    steps: Vec<PromotionStep>,
    status: PromotionStatus,
}

impl Run {
    fn new(steps: Value) -> Self {
        Self {
            steps: serde_json::from_value(steps).expect("steps"),
            status: PromotionStatus::default(),
        }
    }

    /// Calls the engine until it waits or finishes.
    async fn until_wait_or_done(&mut self, env: &Env) -> Progress {
        let env = env.step_env();
        loop {
            let p = step_once(
                &self.steps,
                &[],
                &PromotionContext::default(),
                &mut self.status,
                &env,
            )
            .await;
            if p != Progress::Continue {
                return p;
            }
        }
    }

    fn message(&self, i: usize) -> String {
        self.status.step_execution_metadata[i]
            .message
            .clone()
            .unwrap_or_default()
    }

    fn output(&self, alias: &str) -> Value {
        self.status
            .state
            .as_ref()
            .and_then(|s| s.get(alias))
            .cloned()
            .unwrap_or(Value::Null)
    }
}

/// A repository with `main`, and `branch` pushed one commit ahead of it.
fn repo_with_branch(name: &str, branch: &str) -> String {
    let g = gitea();
    let clone_url = g
        .create_repo_with_files(name, &[("apps/uat/values.yaml", "tag: v1\n")])
        .expect("create repo");
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = tmp.path().join("work");
    git(
        tmp.path(),
        &["clone", "-q", &g.authenticated_url(&clone_url), "work"],
    );
    push_change(&work, branch);
    clone_url
}

fn push_change(work: &Path, branch: &str) {
    std::fs::write(work.join("apps/uat/values.yaml"), "tag: v2\n").expect("write");
    git(
        work,
        &["commit", "-q", "-am", "Promote uat to v2\n\nimage app:v2"],
    );
    git(
        work,
        &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")],
    );
}

fn open_pr(repo: &str, source: &str) -> Value {
    json!({"uses": "git-open-pr", "as": "open-pr", "config": {
        "repoURL": repo, "provider": "gitea", "sourceBranch": source, "targetBranch": "main",
        "labels": []}})
}

fn wait_for_pr(repo: &str) -> Value {
    json!({"uses": "git-wait-for-pr", "as": "wait-for-pr", "config": {
        "repoURL": repo, "provider": "gitea",
        "prNumber": "${{ outputs['open-pr'].pr.id }}", "pollInterval": "1s"}})
}

#[tokio::test]
async fn open_wait_merged_by_a_reviewer_then_a_rerun_adopts_it() {
    let g = gitea();
    let owner = g.username();
    let source = "kargo/promotion/uat.01";
    let repo = repo_with_branch("pr-steps-merged", source);
    let env = Env::new();

    let mut run = Run::new(json!([open_pr(&repo, source), wait_for_pr(&repo)]));
    let p = run.until_wait_or_done(&env).await;
    assert!(matches!(p, Progress::Wait(_)), "{p:?}: {:?}", run.status);
    let n = run.output("open-pr")["pr"]["id"].as_u64().expect("pr.id");
    assert!(
        run.message(0)
            .starts_with(&format!("opened pull request {n}")),
        "{}",
        run.message(0)
    );
    assert_eq!(
        run.status.step_execution_metadata[1].status,
        Some(StepStatus::Running)
    );
    let pull = g.get_pull(owner, "pr-steps-merged", n).expect("pull");
    assert_eq!(pull["title"], "Promote uat to v2");
    assert_eq!(pull["body"], "image app:v2");
    assert_eq!(run.output("open-pr")["pr"]["url"], pull["html_url"]);

    // Still open: still waiting.
    assert!(matches!(
        run.until_wait_or_done(&env).await,
        Progress::Wait(_)
    ));
    merge_when_mergeable(owner, "pr-steps-merged", n);
    let p = run.until_wait_or_done(&env).await;
    assert!(
        matches!(p, Progress::Done(PromotionPhase::Succeeded, _)),
        "{p:?}: {:?}",
        run.status
    );
    let main = g
        .branch_head(owner, "pr-steps-merged", "main")
        .expect("main");
    assert_eq!(run.output("wait-for-pr")["commit"], json!(main));
    assert_eq!(run.output("wait-for-pr")["pr"]["merged"], json!(true));

    // The same Promotion run again from the start (its status lost) adopts the merged pull
    // request instead of opening another.
    let mut again = Run::new(json!([open_pr(&repo, source), wait_for_pr(&repo)]));
    let p = again.until_wait_or_done(&env).await;
    assert!(
        matches!(p, Progress::Done(PromotionPhase::Succeeded, _)),
        "{p:?}"
    );
    assert!(
        again
            .message(0)
            .starts_with(&format!("adopted merged pull request {n}")),
        "{}",
        again.message(0)
    );
    assert_eq!(again.output("wait-for-pr")["commit"], json!(main));
    let all = g.list_pulls(owner, "pr-steps-merged", "all").expect("list");
    assert_eq!(all.len(), 1, "{all:?}");
}

/// Gitea computes mergeability in the background after a pull request opens.
fn merge_when_mergeable(owner: &str, repo: &str, n: u64) {
    let g = gitea();
    for _ in 0..50 {
        if g.get_pull(owner, repo, n).expect("pull")["mergeable"] == true {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    g.merge_pull(owner, repo, n).expect("merge");
}

#[tokio::test]
async fn closed_without_merging_fails_and_an_open_one_is_adopted_on_resume() {
    let g = gitea();
    let owner = g.username();
    let source = "kargo/promotion/uat.02";
    let repo = repo_with_branch("pr-steps-closed", source);
    let env = Env::new();

    let mut run = Run::new(json!([open_pr(&repo, source), wait_for_pr(&repo)]));
    assert!(matches!(
        run.until_wait_or_done(&env).await,
        Progress::Wait(_)
    ));
    let n = run.output("open-pr")["pr"]["id"].as_u64().expect("pr.id");

    // A crash before the status was saved: the rerun adopts the open pull request.
    let mut resumed = Run::new(json!([open_pr(&repo, source), wait_for_pr(&repo)]));
    assert!(matches!(
        resumed.until_wait_or_done(&env).await,
        Progress::Wait(_)
    ));
    assert!(
        resumed
            .message(0)
            .starts_with(&format!("adopted open pull request {n}")),
        "{}",
        resumed.message(0)
    );
    assert_eq!(
        g.list_pulls(owner, "pr-steps-closed", "all")
            .expect("list")
            .len(),
        1
    );

    g.close_pull(owner, "pr-steps-closed", n).expect("close");
    let p = run.until_wait_or_done(&env).await;
    assert!(
        matches!(p, Progress::Done(PromotionPhase::Failed, _)),
        "{p:?}"
    );
    assert_eq!(
        run.message(1),
        format!("pull request {n} in {repo} was closed without being merged")
    );
}

#[tokio::test]
async fn merge_pr_waits_for_gitea_then_merges() {
    let g = gitea();
    let owner = g.username();
    let source = "kargo/promotion/uat.03";
    let repo = repo_with_branch("pr-steps-merge-step", source);
    let env = Env::new();
    let mut run = Run::new(json!([
        open_pr(&repo, source),
        {"uses": "git-merge-pr", "as": "merge", "config": {
            "repoURL": repo, "provider": "gitea", "prNumber": "${{ outputs['open-pr'].pr.id }}",
            "wait": true, "pollInterval": "1s"}},
    ]));
    let mut waits = 0;
    loop {
        match run.until_wait_or_done(&env).await {
            Progress::Wait(_) if waits < 50 => {
                waits += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Progress::Done(PromotionPhase::Succeeded, _) => break,
            other => panic!("{other:?}: {:?}", run.status),
        }
    }
    let main = g
        .branch_head(owner, "pr-steps-merge-step", "main")
        .expect("main");
    assert_eq!(run.output("merge")["commit"], json!(main));
}

#[tokio::test]
async fn create_target_branch_pushes_an_empty_initial_commit() {
    let g = gitea();
    let owner = g.username();
    let source = "kargo/promotion/prod.01";
    let repo = repo_with_branch("pr-steps-new-target", source);
    let env = Env::new();
    let mut open = open_pr(&repo, source);
    open["config"]["targetBranch"] = json!("env/prod");

    // Without createTargetBranch: Failed, naming the field and the repository.
    let mut run = Run::new(json!([open.clone()]));
    let p = run.until_wait_or_done(&env).await;
    assert!(
        matches!(p, Progress::Done(PromotionPhase::Failed, _)),
        "{p:?}"
    );
    assert_eq!(
        run.message(0),
        format!(
            "config.targetBranch: branch \"env/prod\" does not exist in {repo} (set createTargetBranch to create it)"
        )
    );

    open["config"]["createTargetBranch"] = json!(true);
    let mut run = Run::new(json!([open]));
    let p = run.until_wait_or_done(&env).await;
    assert!(
        matches!(p, Progress::Done(PromotionPhase::Succeeded, _)),
        "{p:?}: {:?}",
        run.status
    );
    // Kargo's documented createTargetBranch: an empty orphan "Initial commit".
    let created = g
        .branch_head(owner, "pr-steps-new-target", "env/prod")
        .expect("env/prod created");
    let commit = g
        .api(
            "GET",
            &format!("/repos/{owner}/pr-steps-new-target/git/commits/{created}"),
            None,
        )
        .expect("commit");
    assert_eq!(
        commit["commit"]["message"].as_str().map(str::trim),
        Some("Initial commit")
    );
    assert_eq!(commit["parents"], json!([]));
    let n = run.output("open-pr")["pr"]["id"].as_u64().expect("pr.id");
    let pull = g.get_pull(owner, "pr-steps-new-target", n).expect("pull");
    assert_eq!(pull["base"]["ref"], "env/prod");
}
