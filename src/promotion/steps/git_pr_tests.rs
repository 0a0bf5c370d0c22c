//! The pull request steps run by the promotion engine (as `haul run-local` and the controller
//! run them), against a loopback server playing GitHub Enterprise's documented REST API
//! (<https://docs.github.com/en/enterprise-server@latest/rest/pulls/pulls>).

use serde_json::{Value, json};

use crate::api::{PromotionPhase, PromotionStatus, PromotionStep, StepStatus};
use crate::expressions::PromotionContext;
use crate::git::Credentials;
use crate::git::pull_requests::mock::{Exchange, MockApi, exchange};
use crate::promotion::engine::{Progress, step_once};
use crate::promotion::steps::env::TestEnv;

const HEAD: &str = "1111111111111111111111111111111111111111";
const MAIN: &str = "3333333333333333333333333333333333333333";
/// Hex with letters: a lone `${{ }}` of an all-digit text would become a number (Kargo).
const MERGED: &str = "c0ffee2222222222222222222222222222222222";
const API: &str = "/api/v3/repos/o/r";
const SOURCE: &str = "kargo/promotion/p1";

fn token() -> Credentials {
    Credentials::Basic {
        username: "kargo".into(),
        password: "tok".into(),
    }
}

async fn github(script: Vec<Exchange>) -> MockApi {
    MockApi::start(("authorization", "Bearer tok".into()), script).await
}

fn pr(state: &str, merged: bool) -> Value {
    json!({
        "number": 7,
        "state": state,
        "html_url": "https://ghe.example.com/o/r/pull/7",
        "head": {"ref": SOURCE, "sha": HEAD},
        "base": {"ref": "main"},
        "created_at": "2026-01-02T03:04:05Z",
        "merged_at": if merged { json!("2026-01-02T04:00:00Z") } else { Value::Null },
        "merge_commit_sha": MERGED,
        "mergeable": state == "open",
        "mergeable_state": if state == "open" { "clean" } else { "unknown" },
    })
}

fn branch(name: &str, sha: &str) -> Exchange {
    exchange(
        "GET",
        format!("{API}/branches/{}", name.replace('/', "%2F")),
        200,
        json!({"name": name, "commit": {"sha": sha, "commit": {"message": "Promote to uat\n\nimage 1.2.3"}}}),
    )
}

fn list(found: Value) -> Exchange {
    exchange(
        "GET",
        format!("{API}/pulls?state=all&head=o%3Akargo%2Fpromotion%2Fp1&base=main&per_page=100"),
        200,
        found,
    )
}

fn create() -> Exchange {
    exchange("POST", format!("{API}/pulls"), 201, pr("open", false)).body(json!({
        "title": "Promote to uat",
        "head": SOURCE,
        "base": "main",
        "body": "image 1.2.3",
        "maintainer_can_modify": false,
    }))
}

/// The steps run by the engine until they finish, calling a Running step again at once.
/// Returns the final status and how many times a step was Running.
async fn run(env: &TestEnv, steps: Value) -> (PromotionStatus, PromotionPhase, usize) {
    let env = env.env("test");
    let steps: Vec<PromotionStep> = serde_json::from_value(steps).expect("steps");
    let mut status = PromotionStatus::default();
    let ctx = PromotionContext::default();
    let mut running = 0;
    loop {
        match step_once(&steps, &[], &ctx, &mut status, &env).await {
            Progress::Continue => {}
            Progress::Wait(_) => running += 1,
            Progress::Done(phase, _) => return (status, phase, running),
            other => panic!("unexpected {other:?}"),
        }
        assert!(running < 10, "still running: {status:?}");
    }
}

fn open_step(repo: &str) -> Value {
    json!({"uses": "git-open-pr", "as": "open-pr", "config": {
        "repoURL": repo, "provider": "github", "sourceBranch": SOURCE, "targetBranch": "main"}})
}

fn message(status: &PromotionStatus, i: usize) -> String {
    status.step_execution_metadata[i]
        .message
        .clone()
        .unwrap_or_default()
}

#[tokio::test]
async fn open_then_wait_running_until_merged_gives_the_merge_commit() {
    let mock = github(vec![
        branch(SOURCE, HEAD),
        list(json!([])),
        branch("main", MAIN),
        create(),
        exchange("GET", format!("{API}/pulls/7"), 200, pr("open", false)),
        exchange("GET", format!("{API}/pulls/7"), 200, pr("closed", true)),
    ])
    .await;
    let repo = format!("{}/o/r", mock.base);
    let env = TestEnv::pushing_with(token());
    let (status, phase, running) = run(
        &env,
        json!([
            open_step(&repo),
            {"uses": "git-wait-for-pr", "as": "wait-for-pr", "config": {
                "repoURL": repo, "provider": "github", "prNumber": "${{ outputs['open-pr'].pr.id }}"}},
            {"uses": "compose-output", "as": "out", "config": {
                "revision": "${{ outputs['wait-for-pr'].commit }}",
                "url": "${{ outputs['open-pr'].pr.url }}"}},
        ]),
    )
    .await;
    mock.finish();
    assert_eq!(phase, PromotionPhase::Succeeded, "{status:?}");
    assert_eq!(running, 1);
    let state = status.state.expect("state");
    assert_eq!(
        state["open-pr"]["pr"],
        json!({"id": 7, "url": "https://ghe.example.com/o/r/pull/7"})
    );
    assert_eq!(
        state["open-pr"]["prNumber"],
        json!(7),
        "Kargo <= v1.3's name"
    );
    assert_eq!(state["wait-for-pr"]["commit"], json!(MERGED));
    assert_eq!(state["wait-for-pr"]["pr"]["merged"], json!(true));
    assert_eq!(state["out"]["revision"], json!(MERGED));
}

#[tokio::test]
async fn closed_without_merge_fails_naming_the_pull_request_and_repository() {
    let mock = github(vec![exchange(
        "GET",
        format!("{API}/pulls/7"),
        200,
        pr("closed", false),
    )])
    .await;
    let repo = format!("{}/o/r", mock.base);
    let env = TestEnv::pushing_with(token());
    let (status, phase, _) = run(
        &env,
        json!([{"uses": "git-wait-for-pr", "config": {"repoURL": repo, "provider": "github", "prNumber": 7}}]),
    )
    .await;
    mock.finish();
    assert_eq!(phase, PromotionPhase::Failed);
    assert_eq!(
        message(&status, 0),
        format!("pull request 7 in {repo} was closed without being merged")
    );
}

#[tokio::test]
async fn a_resumed_promotion_adopts_the_pull_request_it_opened() {
    // The first run opens it; the second (the Promotion restarted from scratch, its status
    // lost) finds it by branch and head commit and opens nothing: a second POST would be an
    // unexpected request.
    let mock = github(vec![
        branch(SOURCE, HEAD),
        list(json!([])),
        branch("main", MAIN),
        create(),
        branch(SOURCE, HEAD),
        list(json!([pr("open", false)])),
    ])
    .await;
    let repo = format!("{}/o/r", mock.base);
    let env = TestEnv::pushing_with(token());
    for expected in ["opened pull request 7", "adopted open pull request 7"] {
        let (status, phase, _) = run(&env, json!([open_step(&repo)])).await;
        assert_eq!(phase, PromotionPhase::Succeeded, "{status:?}");
        assert!(
            message(&status, 0).starts_with(expected),
            "{}",
            message(&status, 0)
        );
        let state = status.state.expect("state");
        assert_eq!(state["open-pr"]["pr"]["id"], json!(7));
    }
    mock.finish();
}

#[tokio::test]
async fn merge_waits_until_mergeable_then_gives_the_merge_commit() {
    let mut not_yet = pr("open", false);
    not_yet["mergeable"] = Value::Null;
    not_yet["mergeable_state"] = json!("unknown");
    let mock = github(vec![
        exchange("GET", format!("{API}/pulls/7"), 200, not_yet),
        exchange("GET", format!("{API}/pulls/7"), 200, pr("open", false)),
        exchange(
            "PUT",
            format!("{API}/pulls/7/merge"),
            200,
            json!({"sha": MERGED, "merged": true}),
        )
        .body(json!({"sha": HEAD})),
        exchange("GET", format!("{API}/pulls/7"), 200, pr("closed", true)),
    ])
    .await;
    let repo = format!("{}/o/r", mock.base);
    let env = TestEnv::pushing_with(token());
    let (status, phase, running) = run(
        &env,
        json!([{"uses": "git-merge-pr", "as": "merge", "config": {
            "repoURL": repo, "provider": "github", "prNumber": 7, "wait": true, "pollInterval": "1s"}}]),
    )
    .await;
    mock.finish();
    assert_eq!(
        (phase, running),
        (PromotionPhase::Succeeded, 1),
        "{status:?}"
    );
    assert_eq!(
        status.state.expect("state")["merge"]["commit"],
        json!(MERGED)
    );
}

#[tokio::test]
async fn bad_inputs_fail_naming_the_field_and_the_repository() {
    let mock = github(vec![
        // open-pr: the target branch does not exist
        branch(SOURCE, HEAD),
        list(json!([])),
        exchange(
            "GET",
            format!("{API}/branches/main"),
            404,
            json!({"message": "Branch not found"}),
        ),
        // wait-for-pr and merge-pr: no pull request 8
        exchange(
            "GET",
            format!("{API}/pulls/8"),
            404,
            json!({"message": "Not Found"}),
        ),
        exchange(
            "GET",
            format!("{API}/pulls/8"),
            404,
            json!({"message": "Not Found"}),
        ),
    ])
    .await;
    let repo = format!("{}/o/r", mock.base);
    let env = TestEnv::pushing_with(token());
    let one = |step: Value| run(&env, json!([step]));

    let (status, phase, _) = one(open_step(&repo)).await;
    assert_eq!(phase, PromotionPhase::Failed);
    assert_eq!(
        message(&status, 0),
        format!(
            "config.targetBranch: branch \"main\" does not exist in {repo} (set createTargetBranch to create it)"
        )
    );
    for uses in ["git-wait-for-pr", "git-merge-pr"] {
        let (status, phase, _) = one(json!({"uses": uses, "config": {
            "repoURL": repo, "provider": "github", "prNumber": 8}}))
        .await;
        assert_eq!(phase, PromotionPhase::Failed, "{uses}");
        assert_eq!(
            message(&status, 0),
            format!("config.prNumber: pull request 8 does not exist in {repo}")
        );
    }
    mock.finish();

    // No provider request is made for these. A host that names no provider is asked whether
    // it is a Gitea (port 1 on loopback: nothing answers).
    let (status, _, _) = one(json!({"uses": "git-wait-for-pr", "config": {
        "repoURL": "http://127.0.0.1:1/o/r", "prNumber": 1}}))
    .await;
    assert_eq!(
        message(&status, 0),
        "config.repoURL: cannot tell which git provider hosts http://127.0.0.1:1/o/r (neither its host name nor the server says); set config.provider (azure, bitbucket, gitea, github or gitlab)"
    );
    let (status, _, _) = one(json!({"uses": "git-wait-for-pr", "config": {
        "repoURL": "https://git.example.com/o/r", "provider": "gogs", "prNumber": 1}}))
    .await;
    assert!(
        message(&status, 0).starts_with("config.provider: unknown provider \"gogs\"")
            && message(&status, 0).ends_with("(repoURL https://git.example.com/o/r)"),
        "{}",
        message(&status, 0)
    );
    let (status, _, _) = one(json!({"uses": "git-wait-for-pr", "config": {
        "repoURL": "https://github.com/o/r", "prNumber": 0}}))
    .await;
    assert!(
        message(&status, 0).starts_with("invalid config: config.prNumber"),
        "{}",
        message(&status, 0)
    );

    let no_token = TestEnv::pushing_with(Credentials::None);
    let (status, phase, _) = run(
        &no_token,
        json!([{"uses": "git-open-pr", "config": {
        "repoURL": "https://github.com/o/r", "sourceBranch": "a", "targetBranch": "b"}}]),
    )
    .await;
    assert_eq!(phase, PromotionPhase::Failed);
    assert_eq!(
        message(&status, 0),
        "config.repoURL: no git credentials with a password for https://github.com/o/r: git-open-pr uses the password (a token) of the repository's git credentials to call the github API"
    );
}

#[tokio::test]
async fn run_local_without_push_stops_before_opening() {
    let env = TestEnv::new();
    let env = env.env("run-local");
    let steps: Vec<PromotionStep> =
        serde_json::from_value(json!([open_step("https://github.com/o/r")])).expect("steps");
    let mut status = PromotionStatus::default();
    let p = step_once(&steps, &[], &PromotionContext::default(), &mut status, &env).await;
    assert_eq!(
        p,
        Progress::Stopped("git-open-pr pushes, and run-local may not push".into())
    );
    assert_eq!(status.step_execution_metadata[0].status, None::<StepStatus>);
}
