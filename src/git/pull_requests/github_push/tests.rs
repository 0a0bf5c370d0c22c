use serde_json::json;

use super::*;

fn person(name: &str) -> Option<Person> {
    Some(Person {
        name: name.into(),
        email: format!("{name}@example.com"),
        date: Some("2026-12-05T07:00:00Z".into()),
    })
}

fn commit(sha: &str, parents: &[&str]) -> RangeCommit {
    RangeCommit {
        sha: sha.into(),
        tree: format!("tree-{sha}"),
        message: format!("msg {sha}"),
        author: person("alice"),
        committer: person("haul"),
        parents: parents.iter().map(|p| p.to_string()).collect(),
    }
}

fn api() -> GithubPushApi {
    GithubPushApi::new("https://github.com/acme/gitops.git").expect("api")
}

#[test]
fn comparison_status_decides_like_kargo() {
    assert_eq!(decide("identical", false), Decision::Identical);
    assert_eq!(decide("ahead", false), Decision::Replay);
    assert_eq!(decide("behind", true), Decision::Replay);
    assert_eq!(decide("diverged", true), Decision::Replay);
    assert!(matches!(decide("behind", false), Decision::Retry(m) if m.contains("behind")));
    assert!(matches!(decide("diverged", false), Decision::Retry(m) if m.contains("diverged")));
    assert!(matches!(decide("weird", true), Decision::Fail(m) if m.contains("\"weird\"")));
}

/// Two local commits on top of the remote branch: two commit creations chained on the merge
/// base, then the branch moved (not forced) to the last one.
#[test]
fn request_plan_for_two_unsigned_commits() {
    let cmp = Comparison {
        status: "ahead".into(),
        merge_base: "base".into(),
        commits: vec![commit("c1", &["base"]), commit("c2", &["c1"])],
    };
    let plan = plan_replay(&cmp, &[], false);
    let api = api();
    let mut created: Vec<String> = Vec::new();
    let mut requests = Vec::new();
    for (i, p) in plan.iter().enumerate() {
        let parents = resolve_parents(&p.parents, &cmp.merge_base, &created);
        requests.push(api.create_commit(p, &parents));
        created.push(format!("new{}", i + 1));
    }
    requests.push(api.update_branch("main", created.last().expect("one"), false));
    let calls: Vec<(String, String, Value)> = requests
        .into_iter()
        .map(|r| (r.method.to_string(), r.url, r.body.unwrap_or(Value::Null)))
        .collect();
    let repo = "https://api.github.com/repos/acme/gitops";
    assert_eq!(
        calls,
        vec![
            (
                "POST".into(),
                format!("{repo}/git/commits"),
                json!({"message": "msg c1", "tree": "tree-c1", "parents": ["base"],
                    "author": {"name": "alice", "email": "alice@example.com", "date": "2026-12-05T07:00:00Z"},
                    "committer": {"name": "haul", "email": "haul@example.com", "date": "2026-12-05T07:00:00Z"}})
            ),
            (
                "POST".into(),
                format!("{repo}/git/commits"),
                json!({"message": "msg c2", "tree": "tree-c2", "parents": ["new1"],
                    "author": {"name": "alice", "email": "alice@example.com", "date": "2026-12-05T07:00:00Z"},
                    "committer": {"name": "haul", "email": "haul@example.com", "date": "2026-12-05T07:00:00Z"}})
            ),
            (
                "PATCH".into(),
                format!("{repo}/git/refs/heads/main"),
                json!({"sha": "new2", "force": false})
            ),
        ]
    );
}

#[test]
fn trusted_commits_are_left_to_github_with_a_co_author_trailer() {
    let cmp = Comparison {
        status: "ahead".into(),
        merge_base: "base".into(),
        commits: vec![commit("c1", &["base"])],
    };
    let signed_by_alice = CommitSignature {
        trusted: true,
        signer_name: "alice".into(),
        signer_email: "alice@example.com".into(),
    };
    let plan = plan_replay(&cmp, std::slice::from_ref(&signed_by_alice), false);
    assert_eq!(
        (plan[0].author.clone(), plan[0].committer.clone()),
        (None, None)
    );
    assert_eq!(plan[0].message, "msg c1");
    let signed_by_bot = CommitSignature {
        signer_name: "bot".into(),
        ..signed_by_alice
    };
    let plan = plan_replay(&cmp, &[signed_by_bot], false);
    assert_eq!(
        plan[0].message,
        "msg c1\n\nCo-authored-by: alice <alice@example.com>"
    );
    // verify_untrusted: unsigned commits are treated the same way.
    let plan = plan_replay(&cmp, &[], true);
    assert_eq!(plan[0].author, None);
    let body = api()
        .create_commit(&plan[0], &["base".into()])
        .body
        .expect("body");
    assert!(body.get("author").is_none() && body.get("committer").is_none());
}

#[test]
fn merge_commits_keep_both_parents_mapped() {
    let cmp = Comparison {
        status: "diverged".into(),
        merge_base: "base".into(),
        commits: vec![
            commit("c1", &["base"]),
            commit("m", &["c1", "outside"]),
            commit("c3", &["m"]),
        ],
    };
    let plan = plan_replay(&cmp, &[], false);
    assert_eq!(plan[0].parents, vec![Parent::MergeBase]);
    assert_eq!(
        plan[1].parents,
        vec![Parent::Replayed(0), Parent::Original("outside".into())]
    );
    assert_eq!(plan[2].parents, vec![Parent::Replayed(1)]);
    assert_eq!(
        resolve_parents(&plan[1].parents, "base", &["n1".into()]),
        vec!["n1".to_string(), "outside".to_string()]
    );
}

#[test]
fn ref_requests() {
    let api = api();
    let r = api.get_branch("kargo/promotion/p1");
    assert_eq!(
        r.url,
        "https://api.github.com/repos/acme/gitops/git/ref/heads/kargo/promotion/p1"
    );
    let r = api.create_branch("kargo/promotion/p1", "s");
    assert_eq!(
        r.body,
        Some(json!({"ref": "refs/heads/kargo/promotion/p1", "sha": "s"}))
    );
    let r = api.delete_ref("refs/kargo/staging/p1");
    assert_eq!(
        (r.method, r.url.as_str()),
        (
            Method::DELETE,
            "https://api.github.com/repos/acme/gitops/git/refs/kargo/staging/p1"
        )
    );
    let r = api.compare("a", "b");
    assert!(r.url.ends_with("/compare/a...b?per_page=250"), "{}", r.url);
    let enterprise = GithubPushApi::new("https://ghe.example.com/acme/gitops.git").expect("ghe");
    assert!(
        enterprise
            .get_branch("main")
            .url
            .starts_with("https://ghe.example.com/api/v3/repos/acme/gitops/")
    );
}

#[test]
fn comparison_is_read_from_the_api_answer() {
    let body = json!({
        "status": "ahead",
        "merge_base_commit": {"sha": "base"},
        "commits": [{
            "sha": "c1",
            "commit": {"message": "m", "tree": {"sha": "t"},
                "author": {"name": "a", "email": "a@x", "date": "d"},
                "committer": {"name": "c", "email": "c@x", "date": "d"}},
            "parents": [{"sha": "base"}]
        }]
    });
    let c = parse_comparison(&body).expect("comparison");
    assert_eq!(
        (c.status.as_str(), c.merge_base.as_str()),
        ("ahead", "base")
    );
    assert_eq!(c.commits[0].tree, "t");
    assert_eq!(c.commits[0].parents, vec!["base".to_string()]);
    let bad = json!({"status": "ahead", "commits": [{"sha": "c1", "commit": {}}]});
    assert_eq!(
        parse_comparison(&bad).expect_err("no tree"),
        "commit 0 in range has missing tree information"
    );
    assert_eq!(
        parse_ref_sha(&json!({"object": {"sha": "x"}})),
        Ok("x".into())
    );
    assert_eq!(parse_created_sha(&json!({"sha": "y"})), Ok("y".into()));
}
