//! Each provider against a loopback server playing its documented API: the requests haul sends
//! (method, path, query, auth header, JSON body) and the documented response bodies it reads.

use serde_json::{Value, json};

use super::mock::{Exchange, MockApi, exchange};
use super::{
    Client, MergeResult, NewPullRequest, PrError, ProviderApi, RepoUrl, azure, bitbucket, gitea,
    github, gitlab,
};

const TOKEN: &str = "tok";
const HEAD: &str = "1111111111111111111111111111111111111111";
const MERGED: &str = "2222222222222222222222222222222222222222";

fn new_pr(labels: &[&str]) -> NewPullRequest {
    NewPullRequest {
        title: "Promote".into(),
        description: "details".into(),
        head: "kargo/promotion/p1".into(),
        base: "main".into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
    }
}

/// Starts the mock for `script`, builds the API with `make` from the mock's base URL and runs
/// `check` against a client; then requires every scripted request to have been made.
async fn against<F, C, Fut>(auth: (&'static str, &str), script: Vec<Exchange>, make: F, check: C)
where
    F: FnOnce(&str) -> Box<dyn ProviderApi>,
    C: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mock = MockApi::start((auth.0, auth.1.to_string()), script).await;
    let api = make(&mock.base);
    assert_eq!(api.auth_header(TOKEN), (auth.0, auth.1.to_string()));
    let client = Client::new(api, TOKEN, false, "https://example/repo").expect("client");
    check(client).await;
    mock.finish();
}

fn url(s: &str) -> RepoUrl {
    RepoUrl::parse(s).expect("repo url")
}

// GitHub REST: https://docs.github.com/en/rest/pulls/pulls (list, create, get, merge),
// https://docs.github.com/en/rest/branches/branches#get-a-branch,
// https://docs.github.com/en/rest/issues/labels#add-labels-to-an-issue.
fn github_pr(state: &str, merged: bool) -> Value {
    json!({
        "url": "https://api.github.com/repos/o/r/pulls/7",
        "number": 7,
        "state": state,
        "html_url": "https://github.com/o/r/pull/7",
        "title": "Promote",
        "head": {"ref": "kargo/promotion/p1", "sha": HEAD},
        "base": {"ref": "main", "sha": "0000000000000000000000000000000000000000"},
        "created_at": "2026-01-02T03:04:05Z",
        "draft": false,
        "merged_at": if merged { json!("2026-01-02T04:00:00Z") } else { Value::Null },
        // GitHub sets this for open pull requests too (the test merge commit).
        "merge_commit_sha": MERGED,
        "mergeable": if state == "open" { json!(true) } else { Value::Null },
        "mergeable_state": if state == "open" { "clean" } else { "unknown" },
    })
}

#[tokio::test]
async fn github_enterprise_find_open_get_merge() {
    let repo = "/api/v3/repos/o/r";
    let script = vec![
        exchange(
            "GET",
            format!("{repo}/branches/kargo%2Fpromotion%2Fp1"),
            200,
            json!({"name": "kargo/promotion/p1", "commit": {"sha": HEAD, "commit": {"message": "Promote\n\nbody"}}}),
        ),
        exchange(
            "GET",
            format!(
                "{repo}/pulls?state=all&head=o%3Akargo%2Fpromotion%2Fp1&base=main&per_page=100"
            ),
            200,
            json!([github_pr("open", false)]),
        ),
        exchange(
            "POST",
            format!("{repo}/pulls"),
            201,
            github_pr("open", false),
        )
        .body(json!({
            "title": "Promote", "head": "kargo/promotion/p1", "base": "main", "body": "details",
            "maintainer_can_modify": false,
        })),
        exchange(
            "POST",
            format!("{repo}/issues/7/labels"),
            200,
            json!([{"id": 1, "name": "kargo"}]),
        )
        .body(json!({"labels": ["kargo"]})),
        // merge: read, merge with the head it was checked on, read the merge commit back
        exchange(
            "GET",
            format!("{repo}/pulls/7"),
            200,
            github_pr("open", false),
        ),
        exchange(
            "PUT",
            format!("{repo}/pulls/7/merge"),
            200,
            json!({"sha": MERGED, "merged": true, "message": "Pull Request successfully merged"}),
        )
        .body(json!({"merge_method": "squash", "sha": HEAD})),
        exchange(
            "GET",
            format!("{repo}/pulls/7"),
            200,
            github_pr("closed", true),
        ),
        exchange(
            "GET",
            format!("{repo}/pulls/8"),
            404,
            json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest/pulls/pulls#get-a-pull-request"}),
        ),
        exchange(
            "GET",
            format!("{repo}/pulls/9"),
            200,
            json!({"number": 9, "state": "closed", "merged_at": null, "html_url": "h"}),
        ),
        exchange(
            "GET",
            format!("{repo}/branches/nope"),
            404,
            json!({"message": "Branch not found"}),
        ),
        // 405: "Pull Request is not mergeable" is worth waiting for.
        exchange(
            "GET",
            format!("{repo}/pulls/7"),
            200,
            github_pr("open", false),
        ),
        exchange(
            "PUT",
            format!("{repo}/pulls/7/merge"),
            405,
            json!({"message": "Pull Request is not mergeable"}),
        )
        .body(json!({"sha": HEAD})),
    ];
    against(
        ("authorization", "Bearer tok"),
        script,
        |base| Box::new(github::Github::new(&url(&format!("{base}/o/r.git"))).expect("api")),
        |c| async move {
            let b = c
                .branch("kargo/promotion/p1")
                .await
                .expect("branch")
                .expect("exists");
            assert_eq!(
                (b.sha.as_str(), b.message.as_deref()),
                (HEAD, Some("Promote\n\nbody"))
            );
            let found = c
                .find("kargo/promotion/p1", "main", HEAD)
                .await
                .expect("find")
                .expect("found");
            assert_eq!(
                (found.number, found.open, found.merge_commit),
                (7, true, None)
            );
            let pr = c.open(&new_pr(&["kargo"])).await.expect("open");
            assert_eq!(
                (pr.number, pr.url.as_str()),
                (7, "https://github.com/o/r/pull/7")
            );
            match c.merge(7, Some("squash")).await.expect("merge") {
                Some(MergeResult::Merged(pr)) => {
                    assert_eq!(pr.merge_commit.as_deref(), Some(MERGED))
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(c.get(8).await.expect("get"), None);
            let closed = c.get(9).await.expect("get").expect("pr");
            assert_eq!((closed.open, closed.merged), (false, false));
            assert_eq!(c.branch("nope").await.expect("branch"), None);
            assert!(matches!(
                c.merge(7, None).await,
                Ok(Some(MergeResult::NotReady(_)))
            ));
        },
    )
    .await;
}

#[test]
fn github_com_uses_api_github_com() {
    let api = github::Github::new(&url("https://github.com/o/r")).expect("api");
    assert_eq!(api.get(1).url, "https://api.github.com/repos/o/r/pulls/1");
    let e = api
        .merge(&Default::default(), Some("ff"))
        .expect_err("method");
    assert!(matches!(e, PrError::UnsupportedMergeMethod { .. }));
}

// GitLab REST v4: https://docs.gitlab.com/api/merge_requests/ (list project MRs, create, get
// single MR, merge) and https://docs.gitlab.com/api/branches/#get-single-repository-branch.
fn gitlab_mr(state: &str, status: &str) -> Value {
    json!({
        "id": 1001,
        "iid": 3,
        "project_id": 42,
        "title": "Promote",
        "state": state,
        "source_branch": "kargo/promotion/p1",
        "target_branch": "main",
        "sha": HEAD,
        "merge_commit_sha": if state == "merged" { json!(MERGED) } else { Value::Null },
        "squash_commit_sha": null,
        "draft": false,
        "detailed_merge_status": status,
        "created_at": "2026-01-02T03:04:05.000Z",
        "web_url": "https://gitlab.example.com/group/sub/proj/-/merge_requests/3",
    })
}

#[tokio::test]
async fn gitlab_nested_groups_find_open_get_merge() {
    let project = "/api/v4/projects/group%2Fsub%2Fproj";
    let script = vec![
        exchange(
            "GET",
            format!("{project}/repository/branches/main"),
            200,
            json!({"name": "main", "commit": {"id": HEAD, "message": "m"}}),
        ),
        exchange(
            "GET",
            format!(
                "{project}/merge_requests?state=all&source_branch=kargo%2Fpromotion%2Fp1&target_branch=main&per_page=100"
            ),
            200,
            json!([gitlab_mr("closed", "not_open")]),
        ),
        exchange(
            "POST",
            format!("{project}/merge_requests"),
            201,
            gitlab_mr("opened", "checking"),
        )
        .body(json!({
            "source_branch": "kargo/promotion/p1", "target_branch": "main", "title": "Promote",
            "description": "details", "labels": "kargo,env",
        })),
        // Not mergeable yet: no merge call.
        exchange(
            "GET",
            format!("{project}/merge_requests/3"),
            200,
            gitlab_mr("opened", "ci_still_running"),
        ),
        exchange(
            "GET",
            format!("{project}/merge_requests/3"),
            200,
            gitlab_mr("opened", "mergeable"),
        ),
        exchange(
            "PUT",
            format!("{project}/merge_requests/3/merge"),
            200,
            gitlab_mr("merged", "not_open"),
        )
        .body(json!({"sha": HEAD})),
        exchange(
            "GET",
            format!("{project}/merge_requests/3"),
            200,
            gitlab_mr("merged", "not_open"),
        ),
        exchange(
            "GET",
            format!("{project}/merge_requests/4"),
            404,
            json!({"message": "404 Not found"}),
        ),
        exchange(
            "GET",
            format!("{project}/merge_requests/5"),
            200,
            json!({"iid": 5, "state": "closed"}),
        ),
    ];
    against(
        ("private-token", "tok"),
        script,
        |base| {
            Box::new(gitlab::Gitlab::new(&url(&format!("{base}/group/sub/proj.git"))).expect("api"))
        },
        |c| async move {
            assert_eq!(
                c.branch("main").await.expect("branch").map(|b| b.sha),
                Some(HEAD.to_string())
            );
            // A closed, unmerged one is not adopted.
            assert_eq!(
                c.find("kargo/promotion/p1", "main", HEAD)
                    .await
                    .expect("find"),
                None
            );
            let pr = c.open(&new_pr(&["kargo", "env"])).await.expect("open");
            assert_eq!((pr.number, pr.open), (3, true));
            assert!(matches!(
                c.merge(3, None).await,
                Ok(Some(MergeResult::NotReady(_)))
            ));
            match c.merge(3, Some("merge")).await.expect("merge") {
                Some(MergeResult::Merged(pr)) => {
                    assert_eq!(pr.merge_commit.as_deref(), Some(MERGED))
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(c.get(4).await.expect("get"), None);
            assert!(matches!(
                c.merge(5, None).await,
                Err(PrError::ClosedUnmerged { number: 5, .. })
            ));
        },
    )
    .await;
}

// Gitea API v1 (https://gitea.com/api/swagger): repoListPullRequests, repoCreatePullRequest,
// issueAddLabel, repoGetPullRequest, repoMergePullRequest, repoGetBranch.
fn gitea_pr(state: &str, merged: bool, head: &str) -> Value {
    json!({
        "id": 501,
        "number": 2,
        "state": state,
        "title": "Promote",
        "html_url": "https://gitea.example.com/o/r/pulls/2",
        "mergeable": state == "open",
        "merged": merged,
        "merge_commit_sha": if merged { json!(MERGED) } else { Value::Null },
        "head": {"ref": head, "sha": HEAD},
        "base": {"ref": "main", "sha": "0000000000000000000000000000000000000000"},
        "created_at": "2026-01-02T03:04:05Z",
    })
}

#[tokio::test]
async fn gitea_find_open_get_merge() {
    let repo = "/api/v1/repos/o/r";
    let script = vec![
        // The list cannot filter by branch: another branch's pull request is ignored.
        exchange(
            "GET",
            format!("{repo}/pulls?state=all&sort=recentupdate&limit=50"),
            200,
            json!([
                gitea_pr("open", false, "other"),
                gitea_pr("open", false, "kargo/promotion/p1")
            ]),
        ),
        exchange(
            "POST",
            format!("{repo}/pulls"),
            201,
            gitea_pr("open", false, "kargo/promotion/p1"),
        )
        .body(json!({
            "head": "kargo/promotion/p1", "base": "main", "title": "Promote", "body": "details",
        })),
        exchange(
            "POST",
            format!("{repo}/issues/2/labels"),
            200,
            json!([{"id": 1, "name": "kargo"}]),
        )
        .body(json!({"labels": ["kargo"]})),
        exchange(
            "GET",
            format!("{repo}/pulls/2"),
            200,
            gitea_pr("open", false, "kargo/promotion/p1"),
        ),
        // The merge answers 200 with an empty body.
        exchange("POST", format!("{repo}/pulls/2/merge"), 200, Value::Null)
            .body(json!({"Do": "merge", "head_commit_id": HEAD})),
        exchange(
            "GET",
            format!("{repo}/pulls/2"),
            200,
            gitea_pr("closed", true, "kargo/promotion/p1"),
        ),
        exchange(
            "GET",
            format!("{repo}/pulls/3"),
            404,
            json!({"message": "The target couldn't be found.", "errors": []}),
        ),
        exchange(
            "GET",
            format!("{repo}/branches/main"),
            200,
            json!({"name": "main", "commit": {"id": HEAD, "message": "Promote\n"}}),
        ),
    ];
    against(
        ("authorization", "token tok"),
        script,
        |base| Box::new(gitea::Gitea::new(&url(&format!("{base}/o/r"))).expect("api")),
        |c| async move {
            let found = c
                .find("kargo/promotion/p1", "main", HEAD)
                .await
                .expect("find")
                .expect("found");
            assert_eq!(found.source_branch.as_deref(), Some("kargo/promotion/p1"));
            let pr = c.open(&new_pr(&["kargo"])).await.expect("open");
            assert_eq!(pr.url, "https://gitea.example.com/o/r/pulls/2");
            match c.merge(2, None).await.expect("merge") {
                Some(MergeResult::Merged(pr)) => {
                    assert_eq!(pr.merge_commit.as_deref(), Some(MERGED))
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(c.get(3).await.expect("get"), None);
            assert_eq!(
                c.branch("main").await.expect("branch").map(|b| b.sha),
                Some(HEAD.to_string())
            );
        },
    )
    .await;
}

// Bitbucket Cloud REST 2.0:
// https://developer.atlassian.com/cloud/bitbucket/rest/api-group-pullrequests/ (list, create,
// get, merge), .../api-group-refs/#api-repositories-workspace-repo-slug-refs-branches-name-get,
// .../api-group-commits/#api-repositories-workspace-repo-slug-commit-commit-get.
fn bitbucket_pr(state: &str) -> Value {
    json!({
        "type": "pullrequest",
        "id": 12,
        "title": "Promote",
        "state": state,
        "source": {"branch": {"name": "kargo/promotion/p1"}, "commit": {"hash": HEAD}},
        "destination": {"branch": {"name": "main"}, "commit": {"hash": "000000000000"}},
        // Bitbucket abbreviates the merge commit.
        "merge_commit": if state == "MERGED" { json!({"hash": &MERGED[..12]}) } else { Value::Null },
        "created_on": "2026-01-02T03:04:05.000000+00:00",
        "links": {"html": {"href": "https://bitbucket.org/ws/r/pull-requests/12"}},
    })
}

#[tokio::test]
async fn bitbucket_cloud_find_open_get_merge() {
    let repo = "/2.0/repositories/ws/r";
    let script = vec![
        exchange(
            "GET",
            format!(
                "{repo}/pullrequests?state=OPEN&state=MERGED&state=DECLINED&state=SUPERSEDED&pagelen=50&q=source.branch.name%3D%22kargo%2Fpromotion%2Fp1%22%20AND%20destination.branch.name%3D%22main%22"
            ),
            200,
            json!({"pagelen": 50, "page": 1, "size": 1, "values": [bitbucket_pr("MERGED")]}),
        ),
        exchange(
            "POST",
            format!("{repo}/pullrequests"),
            201,
            bitbucket_pr("OPEN"),
        )
        .body(json!({
            "title": "Promote", "description": "details",
            "source": {"branch": {"name": "kargo/promotion/p1"}},
            "destination": {"branch": {"name": "main"}},
        })),
        exchange(
            "GET",
            format!("{repo}/pullrequests/12"),
            200,
            bitbucket_pr("OPEN"),
        ),
        exchange(
            "POST",
            format!("{repo}/pullrequests/12/merge"),
            200,
            bitbucket_pr("MERGED"),
        )
        .body(json!({"type": "pullrequest_merge_parameters", "merge_strategy": "squash"})),
        exchange(
            "GET",
            format!("{repo}/pullrequests/12"),
            200,
            bitbucket_pr("MERGED"),
        ),
        exchange(
            "GET",
            format!("{repo}/commit/{}", &MERGED[..12]),
            200,
            json!({"hash": MERGED}),
        ),
        exchange(
            "GET",
            format!("{repo}/pullrequests/13"),
            404,
            json!({"type": "error", "error": {"message": "Not found"}}),
        ),
        exchange(
            "GET",
            format!("{repo}/refs/branches/main"),
            200,
            json!({"type": "branch", "name": "main", "target": {"hash": HEAD, "message": "m"}}),
        ),
        exchange(
            "GET",
            format!("{repo}/pullrequests/14"),
            200,
            bitbucket_pr("DECLINED"),
        ),
    ];
    against(
        ("authorization", "Bearer tok"),
        script,
        |base| {
            Box::new(
                bitbucket::Bitbucket::at(
                    &format!("{base}/2.0"),
                    &url("https://bitbucket.org/ws/r.git"),
                )
                .expect("api"),
            )
        },
        |c| async move {
            let found = c
                .find("kargo/promotion/p1", "main", HEAD)
                .await
                .expect("find")
                .expect("found");
            assert_eq!((found.merged, found.number), (true, 12));
            let pr = c.open(&new_pr(&[])).await.expect("open");
            assert_eq!(pr.url, "https://bitbucket.org/ws/r/pull-requests/12");
            match c.merge(12, Some("squash")).await.expect("merge") {
                // The abbreviated hash is resolved to the full one.
                Some(MergeResult::Merged(pr)) => {
                    assert_eq!(pr.merge_commit.as_deref(), Some(MERGED))
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(c.get(13).await.expect("get"), None);
            assert_eq!(
                c.branch("main").await.expect("branch").map(|b| b.sha),
                Some(HEAD.to_string())
            );
            assert!(matches!(
                c.merge(14, None).await,
                Err(PrError::ClosedUnmerged { number: 14, .. })
            ));
        },
    )
    .await;
}

// Azure DevOps Git REST 7.1:
// https://learn.microsoft.com/en-us/rest/api/azure/devops/git/pull-requests/get-pull-requests,
// .../pull-requests/create, .../pull-requests/get-pull-request, .../pull-requests/update
// (completing), https://learn.microsoft.com/en-us/rest/api/azure/devops/git/refs/list.
fn azure_pr(status: &str, merge_status: &str) -> Value {
    json!({
        "pullRequestId": 21,
        "status": status,
        "mergeStatus": merge_status,
        "isDraft": false,
        "title": "Promote",
        "sourceRefName": "refs/heads/kargo/promotion/p1",
        "targetRefName": "refs/heads/main",
        "creationDate": "2026-01-02T03:04:05.000Z",
        "lastMergeSourceCommit": {"commitId": HEAD},
        "lastMergeCommit": {"commitId": MERGED},
        "repository": {"id": "r-id", "name": "site", "webUrl": "https://dev.azure.com/acme/web/_git/site"},
    })
}

#[tokio::test]
async fn azure_devops_find_open_get_merge() {
    let repo = "/acme/web/_apis/git/repositories/site";
    let script = vec![
        exchange(
            "GET",
            format!("{repo}/refs?filter=heads%2Fmain&api-version=7.1"),
            200,
            json!({"value": [
                {"name": "refs/heads/main-old", "objectId": MERGED},
                {"name": "refs/heads/main", "objectId": HEAD},
            ], "count": 2}),
        ),
        exchange(
            "GET",
            format!("{repo}/refs?filter=heads%2Fgone&api-version=7.1"),
            200,
            json!({"value": [], "count": 0}),
        ),
        exchange(
            "GET",
            format!(
                "{repo}/pullrequests?searchCriteria.sourceRefName=refs%2Fheads%2Fkargo%2Fpromotion%2Fp1&searchCriteria.targetRefName=refs%2Fheads%2Fmain&searchCriteria.status=all&$top=100&api-version=7.1"
            ),
            200,
            json!({"value": [azure_pr("abandoned", "succeeded")], "count": 1}),
        ),
        exchange(
            "POST",
            format!("{repo}/pullrequests?api-version=7.1"),
            201,
            azure_pr("active", "queued"),
        )
        .body(json!({
            "sourceRefName": "refs/heads/kargo/promotion/p1", "targetRefName": "refs/heads/main",
            "title": "Promote", "description": "details", "labels": [{"name": "kargo"}],
        })),
        exchange(
            "GET",
            format!("{repo}/pullrequests/21?api-version=7.1"),
            200,
            azure_pr("active", "succeeded"),
        ),
        exchange(
            "PATCH",
            format!("{repo}/pullrequests/21?api-version=7.1"),
            200,
            azure_pr("completed", "succeeded"),
        )
        .body(
            json!({"status": "completed", "lastMergeSourceCommit": {"commitId": HEAD},
                "completionOptions": {"mergeStrategy": "squash"}}),
        ),
        exchange(
            "GET",
            format!("{repo}/pullrequests/21?api-version=7.1"),
            200,
            azure_pr("completed", "succeeded"),
        ),
        exchange(
            "GET",
            format!("{repo}/pullrequests/22?api-version=7.1"),
            404,
            json!({"$id": "1", "message": "TF401180: The requested pull request was not found.", "typeKey": "GitPullRequestNotFoundException"}),
        ),
        exchange(
            "GET",
            format!("{repo}/pullrequests/21?api-version=7.1"),
            200,
            azure_pr("active", "conflicts"),
        ),
    ];
    against(
        ("authorization", "Basic OnRvaw=="),
        script,
        |base| Box::new(azure::Azure::at(&format!("{base}/acme"), "web", "site")),
        |c| async move {
            assert_eq!(
                c.branch("main").await.expect("branch").map(|b| b.sha),
                Some(HEAD.to_string())
            );
            assert_eq!(c.branch("gone").await.expect("branch"), None);
            assert_eq!(
                c.find("kargo/promotion/p1", "main", HEAD)
                    .await
                    .expect("find"),
                None
            );
            let pr = c.open(&new_pr(&["kargo"])).await.expect("open");
            assert_eq!(
                pr.url,
                "https://dev.azure.com/acme/web/_git/site/pullrequest/21"
            );
            match c.merge(21, Some("squash")).await.expect("merge") {
                Some(MergeResult::Merged(pr)) => {
                    assert_eq!(pr.merge_commit.as_deref(), Some(MERGED))
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(c.get(22).await.expect("get"), None);
            assert!(matches!(
                c.merge(21, None).await,
                Err(PrError::Unmergeable { number: 21, .. })
            ));
        },
    )
    .await;
}

#[test]
fn azure_address_is_dev_azure_com_for_legacy_urls_too() {
    let api = azure::Azure::new(&url("https://acme.visualstudio.com/web/_git/site")).expect("api");
    assert_eq!(
        api.get(1).url,
        "https://dev.azure.com/acme/web/_apis/git/repositories/site/pullrequests/1?api-version=7.1"
    );
}

/// The mock is only worth something if it refuses what the documentation does not say.
#[tokio::test]
async fn the_mock_refuses_a_wrong_auth_header_or_path() {
    let script = vec![exchange("GET", "/api/v1/repos/o/r/pulls/1", 200, json!({}))];
    let mock = MockApi::start(("authorization", "token right".into()), script).await;
    let api = gitea::Gitea::new(&url(&format!("{}/o/r", mock.base))).expect("api");
    let client = Client::new(Box::new(api), "wrong", false, "r").expect("client");
    assert!(client.get(1).await.is_err());
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| mock.finish()));
    assert!(refused.is_err());
}
