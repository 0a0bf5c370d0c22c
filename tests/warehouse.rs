//! Warehouses end to end: a real control plane, a real `haul controller` process, the
//! distribution registry (anonymous and htpasswd), and moto's ECR reached through the IRSA
//! web-identity chain.

mod support;

use std::process::Command;

use support::services::services;
use support::{
    ControllerProcess, freight_list, get_json, kubectl, kubectl_stdin, namespace, wait_for,
    warehouse_condition,
};

const ROLE: &str = "arn:aws:iam::123456789012:role/haul-controller";

fn controller() -> &'static std::sync::Mutex<ControllerProcess> {
    static C: std::sync::OnceLock<std::sync::Mutex<ControllerProcess>> = std::sync::OnceLock::new();
    C.get_or_init(|| std::sync::Mutex::new(start_controller()))
}

/// The controller as it runs in EKS with IRSA: only environment variables point it at STS.
fn start_controller() -> ControllerProcess {
    let s = services();
    let token = support::cp().dir().join("web-identity-token");
    std::fs::write(
        &token,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6aGF1bDpoYXVsIn0.c2ln",
    )
    .expect("token");
    let token = token.display().to_string();
    ControllerProcess::start_with_env(
        &support::cp().dir().join("work"),
        &[
            ("AWS_ROLE_ARN", ROLE),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", &token),
            ("AWS_ROLE_SESSION_NAME", "haul"),
            ("AWS_REGION", "eu-central-1"),
            ("AWS_ENDPOINT_URL", s.var("HAUL_TEST_MOTO_URL")),
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
        ],
    )
}

fn push(registry: &str, repo: &str, tag: &str, auth: Option<&str>) -> String {
    let mut c = Command::new("bash");
    c.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/push-image.sh"))
        .args([registry, repo, tag]);
    if let Some(a) = auth {
        c.env("REGISTRY_AUTH", a);
    }
    let out = c.output().expect("push-image");
    assert!(
        out.status.success(),
        "push {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn warehouse(ns: &str, name: &str, subs: &str) -> String {
    format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  interval: 10m\n  subscriptions:\n{subs}"
    )
}

fn tags_of(f: &serde_json::Value) -> Vec<String> {
    f["images"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| i["tag"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Requests a discovery now and waits until the controller handled it.
fn refresh(ns: &str, name: &str) {
    let token = format!("{:?}", std::time::SystemTime::now());
    kubectl(&[
        "annotate",
        "warehouse",
        name,
        "-n",
        ns,
        "--overwrite",
        &format!("kargo.akuity.io/refresh={token}"),
    ])
    .success("annotate");
    wait_for(30, "the refresh to be handled", || {
        let w = get_json("warehouse", name, ns)?;
        (w["status"]["lastHandledRefresh"] == token.as_str()).then_some(())
    });
}

#[test]
fn new_tags_become_freight_once_and_excluded_tags_never() {
    let _ = controller();
    let ns = namespace("wh-oci");
    let reg = services().var("HAUL_TEST_REGISTRY").to_string();
    let repo = format!("{ns}/app");
    push(&reg, &repo, "1.0.0", None);
    let d110 = push(&reg, &repo, "1.1.0", None);
    push(&reg, &repo, "1.3.0-rc.1", None);
    let subs = format!(
        "  - image:\n      repoURL: {reg}/{repo}\n      constraint: ^1.0.0\n      ignoreTagsRegexes: ['-rc']\n"
    );
    kubectl_stdin(&["apply", "-f", "-"], &warehouse(&ns, "app", &subs)).success("warehouse");

    let f = wait_for(30, "the first Freight", || {
        freight_list(&ns).into_iter().next()
    });
    assert_eq!(tags_of(&f), ["1.1.0"]);
    assert_eq!(f["images"][0]["digest"], d110.as_str());
    assert_eq!(f["origin"]["kind"], "Warehouse");
    assert_eq!(f["origin"]["name"], "app");
    let alias = f["alias"].as_str().expect("alias").to_string();
    assert_eq!(
        f["metadata"]["labels"]["kargo.akuity.io/alias"],
        alias.as_str()
    );
    // Named by Kargo's algorithm: 40 hex chars, the same for the same artifacts.
    let name = f["metadata"]["name"].as_str().expect("name");
    assert_eq!(name.len(), 40);
    let w = get_json("warehouse", "app", &ns).expect("warehouse");
    assert_eq!(w["status"]["lastFreightID"], name);
    assert_eq!(
        warehouse_condition(&ns, "app", "Ready").map(|c| c.0),
        Some("True".to_string())
    );
    let out = kubectl(&["get", "freight", "-n", &ns]).success("get freight");
    assert!(
        out.stdout.contains(&alias) && out.stdout.contains("Warehouse"),
        "{}",
        out.stdout
    );

    // A new matching tag gives new Freight after one refresh; an excluded one gives none.
    push(&reg, &repo, "1.2.0", None);
    refresh(&ns, "app");
    let all = freight_list(&ns);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all.iter().any(|f| tags_of(f) == ["1.2.0"]));
    push(&reg, &repo, "1.4.0-rc.1", None);
    refresh(&ns, "app");
    assert_eq!(
        freight_list(&ns).len(),
        2,
        "an excluded tag produced Freight"
    );
}

#[test]
fn two_subscriptions_make_one_freight_with_both_images() {
    let _ = controller();
    let ns = namespace("wh-two");
    let reg = services().var("HAUL_TEST_REGISTRY").to_string();
    push(&reg, &format!("{ns}/api"), "2.0.0", None);
    push(&reg, &format!("{ns}/web"), "v3.1.0", None);
    let subs = format!(
        "  - image:\n      repoURL: {reg}/{ns}/api\n  - image:\n      repoURL: {reg}/{ns}/web\n      imageSelectionStrategy: Lexical\n"
    );
    kubectl_stdin(&["apply", "-f", "-"], &warehouse(&ns, "both", &subs)).success("warehouse");
    let f = wait_for(30, "Freight", || freight_list(&ns).into_iter().next());
    let mut tags = tags_of(&f);
    tags.sort();
    assert_eq!(tags, ["2.0.0", "v3.1.0"]);
}

#[test]
fn registry_credentials_come_from_image_secrets() {
    let _ = controller();
    let ns = namespace("wh-auth");
    let s = services();
    let reg = s.var("HAUL_TEST_REGISTRY_AUTH").to_string();
    let auth = format!(
        "{}:{}",
        s.var("HAUL_TEST_REGISTRY_USER"),
        s.var("HAUL_TEST_REGISTRY_PASSWORD")
    );
    push(&reg, &format!("{ns}/private"), "1.0.0", Some(&auth));
    let subs = format!("  - image:\n      repoURL: {reg}/{ns}/private\n");
    kubectl_stdin(&["apply", "-f", "-"], &warehouse(&ns, "private", &subs)).success("warehouse");

    // Without a Secret: 401, said on the Warehouse, with no Freight.
    let (status, reason, message) = wait_for(30, "the auth failure", || {
        warehouse_condition(&ns, "private", "Healthy").filter(|c| c.1 == "DiscoveryFailed")
    });
    assert_eq!(status, "False");
    assert_eq!(reason, "DiscoveryFailed");
    assert!(
        message.contains(&format!("{reg}/{ns}/private")),
        "{message}"
    );
    assert!(freight_list(&ns).is_empty());
    let events = kubectl(&["get", "events", "-n", &ns, "-o", "json"]).success("events");
    assert!(events.stdout.contains("DiscoveryFailed"), "no event");

    // With the Secret, discovery works on the next refresh.
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: registry\n  namespace: {ns}\n  labels:\n    kargo.akuity.io/cred-type: image\nstringData:\n  repoURL: {reg}/{ns}/private\n  username: {}\n  password: {}\n",
        s.var("HAUL_TEST_REGISTRY_USER"),
        s.var("HAUL_TEST_REGISTRY_PASSWORD")
    );
    kubectl_stdin(&["apply", "-f", "-"], &secret).success("secret");
    refresh(&ns, "private");
    assert_eq!(freight_list(&ns).len(), 1);
    let (status, _, _) = warehouse_condition(&ns, "private", "Healthy").expect("healthy");
    assert_eq!(status, "True");
}

#[test]
fn failures_are_reported_per_warehouse_and_others_keep_working() {
    let _ = controller();
    let ns = namespace("wh-fail");
    let reg = services().var("HAUL_TEST_REGISTRY").to_string();
    push(&reg, &format!("{ns}/ok"), "1.0.0", None);
    let cases = [
        (
            "unreachable",
            "  - image:\n      repoURL: 127.0.0.1:9/nothing/here\n".to_string(),
            "DiscoveryFailed",
            "127.0.0.1:9/nothing/here",
        ),
        (
            "missing",
            format!("  - image:\n      repoURL: {reg}/{ns}/does-not-exist\n"),
            "DiscoveryFailed",
            "does-not-exist",
        ),
        (
            "bad-regex",
            format!("  - image:\n      repoURL: {reg}/{ns}/ok\n      allowTagsRegexes: ['(']\n"),
            "InvalidSpec",
            "allowTagsRegexes",
        ),
        (
            "bad-constraint",
            format!("  - image:\n      repoURL: {reg}/{ns}/ok\n      constraint: '>=> 1'\n"),
            "InvalidSpec",
            "constraint",
        ),
    ];
    for (name, subs, _, _) in &cases {
        kubectl_stdin(&["apply", "-f", "-"], &warehouse(&ns, name, subs)).success(name);
    }
    let ok = format!("  - image:\n      repoURL: {reg}/{ns}/ok\n");
    kubectl_stdin(&["apply", "-f", "-"], &warehouse(&ns, "healthy", &ok)).success("healthy");
    for (name, _, reason, needle) in &cases {
        let (status, r, message) = wait_for(45, &format!("{name} to report"), || {
            warehouse_condition(&ns, name, "Ready").filter(|c| c.1 == *reason)
        });
        assert_eq!(status, "False", "{name}");
        assert_eq!(r, *reason, "{name}");
        assert!(message.contains(needle), "{name}: {message}");
    }
    // The healthy Warehouse made its Freight regardless.
    wait_for(30, "Freight of the healthy Warehouse", || {
        freight_list(&ns)
            .into_iter()
            .find(|f| f["origin"]["name"] == "healthy")
    });
}

#[test]
fn a_restarted_controller_creates_no_duplicate_freight() {
    let ns = namespace("wh-restart");
    let reg = services().var("HAUL_TEST_REGISTRY").to_string();
    push(&reg, &format!("{ns}/app"), "5.0.0", None);
    let subs = format!("  - image:\n      repoURL: {reg}/{ns}/app\n");
    let _ = controller();
    kubectl_stdin(&["apply", "-f", "-"], &warehouse(&ns, "app", &subs)).success("warehouse");
    wait_for(30, "Freight", || freight_list(&ns).into_iter().next());
    {
        let mut c = controller().lock().unwrap_or_else(|e| e.into_inner());
        c.kill();
        *c = start_controller();
    }
    // The new process rediscovers (a refresh forces it) and finds the same artifacts.
    refresh(&ns, "app");
    assert_eq!(freight_list(&ns).len(), 1, "a restart duplicated Freight");
    let (_, reason, _) = warehouse_condition(&ns, "app", "FreightCreated").expect("condition");
    assert_eq!(reason, "AlreadyExists");
}

#[test]
fn ecr_through_irsa_web_identity() {
    let _ = controller();
    let ns = namespace("wh-ecr");
    let repo = format!("{ns}/svc");
    // Create the repository and push two images in moto, as CI would push to ECR.
    let d1006 = moto_push(&repo, MotoArtifact::Image, &["1005", "1006"])
        .remove("1006")
        .expect("digest of 1006");
    let url = format!("123456789012.dkr.ecr.eu-central-1.amazonaws.com/{repo}");
    let subs = format!("  - image:\n      repoURL: {url}\n      strictSemvers: false\n");
    kubectl_stdin(&["apply", "-f", "-"], &warehouse(&ns, "ecr", &subs)).success("warehouse");
    let f = wait_for(45, "Freight from ECR", || {
        freight_list(&ns).into_iter().next()
    });
    assert_eq!(tags_of(&f), ["1006"]);
    assert_eq!(f["images"][0]["repoURL"], url.as_str());
    assert_eq!(f["images"][0]["digest"], d1006.as_str());

    // NewestBuild reads imagePushedAt from DescribeImages.
    let subs =
        format!("  - image:\n      repoURL: {url}\n      imageSelectionStrategy: NewestBuild\n");
    kubectl_stdin(&["apply", "-f", "-"], &warehouse(&ns, "ecr-newest", &subs)).success("warehouse");
    wait_for(45, "NewestBuild Freight", || {
        freight_list(&ns)
            .into_iter()
            .find(|f| f["origin"]["name"] == "ecr-newest" && tags_of(f) == ["1006"])
    });

    // A repository that does not exist is reported, naming it.
    let subs =
        "  - image:\n      repoURL: 123456789012.dkr.ecr.eu-central-1.amazonaws.com/nope/none\n";
    kubectl_stdin(&["apply", "-f", "-"], &warehouse(&ns, "ecr-missing", subs)).success("warehouse");
    let (_, reason, message) = wait_for(45, "the missing repository", || {
        warehouse_condition(&ns, "ecr-missing", "Ready").filter(|c| c.1 == "DiscoveryFailed")
    });
    assert_eq!(reason, "DiscoveryFailed");
    assert!(message.contains("nope/none"), "{message}");
}

#[test]
fn git_commits_become_freight_alongside_images() {
    let _ = controller();
    let ns = namespace("wh-git");
    let s = services();
    let reg = s.var("HAUL_TEST_REGISTRY").to_string();
    push(&reg, &format!("{ns}/app"), "1.0.0", None);
    let url = s.new_repo(&format!("{ns}-config"));
    let work = support::cp().dir().join(format!("git-{ns}"));
    std::fs::create_dir_all(&work).expect("dir");
    let auth = support::gitops::encoded_auth_url(&url);
    support::git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("config.yaml"), "replicas: 1\n").expect("write");
    support::git(&work, &["add", "-A"]);
    support::git(&work, &["commit", "-q", "-m", "first config"]);
    support::git(&work, &["push", "-q", &auth, "main"]);
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: git\n  namespace: {ns}\n  labels: {{kargo.akuity.io/cred-type: git}}\nstringData:\n  repoURL: {url}\n  username: {}\n  password: '{}'\n",
        s.var("HAUL_TEST_GIT_USER"),
        s.var("HAUL_TEST_GIT_PASSWORD")
    );
    kubectl_stdin(&["apply", "-f", "-"], &secret).success("secret");
    let subs = format!(
        "  - image:\n      repoURL: {reg}/{ns}/app\n  - git:\n      repoURL: {url}\n      branch: main\n"
    );
    kubectl_stdin(&["apply", "-f", "-"], &warehouse(&ns, "mixed", &subs)).success("warehouse");
    let f = wait_for(30, "Freight with a commit", || {
        freight_list(&ns).into_iter().next()
    });
    assert_eq!(tags_of(&f), ["1.0.0"]);
    let head = support::git(&work, &["rev-parse", "HEAD"])
        .trim()
        .to_string();
    assert_eq!(f["commits"][0]["id"], head.as_str(), "{f:#}");
    assert_eq!(f["commits"][0]["message"], "first config");

    // A new commit on the branch gives new Freight on the next refresh.
    std::fs::write(work.join("config.yaml"), "replicas: 2\n").expect("write");
    support::git(&work, &["commit", "-q", "-am", "scale to 2"]);
    support::git(&work, &["push", "-q", &auth, "main"]);
    refresh(&ns, "mixed");
    let all = freight_list(&ns);
    assert_eq!(all.len(), 2);
    assert!(
        all.iter()
            .any(|f| f["commits"][0]["message"] == "scale to 2")
    );
}

/// A repository that does not exist yet (the Warehouse was applied before CI's first push) is
/// retried after a backoff, without waiting for the interval or a refresh.
#[test]
fn a_failed_discovery_is_retried_after_a_backoff() {
    let _ = controller();
    let ns = namespace("wh-retry");
    let reg = services().var("HAUL_TEST_REGISTRY").to_string();
    let subs = format!("  - image:\n      repoURL: {reg}/{ns}/later\n");
    kubectl_stdin(&["apply", "-f", "-"], &warehouse(&ns, "later", &subs)).success("warehouse");
    wait_for(30, "the first discovery to fail", || {
        warehouse_condition(&ns, "later", "Healthy").filter(|c| c.1 == "DiscoveryFailed")
    });
    push(&reg, &format!("{ns}/later"), "1.0.0", None);
    // The backoff starts at 10 s (±20%); the interval is 10 minutes.
    let f = wait_for(45, "Freight after the retry", || {
        freight_list(&ns).into_iter().next()
    });
    assert_eq!(tags_of(&f), ["1.0.0"]);
}

fn warehouse_with(ns: &str, name: &str, extra_spec: &str, subs: &str) -> String {
    format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  interval: 10m\n{extra_spec}  subscriptions:\n{subs}"
    )
}

/// Kargo's classic use of `freightCreationCriteria`: only images built together (same tag)
/// become Freight. A discovery the expression rejects creates nothing and says why.
#[test]
fn freight_creation_criteria_gate_automatic_freight() {
    let _ = controller();
    let ns = namespace("wh-criteria");
    let reg = services().var("HAUL_TEST_REGISTRY").to_string();
    let (api, web) = (format!("{reg}/{ns}/api"), format!("{reg}/{ns}/web"));
    push(&reg, &format!("{ns}/api"), "1.0.0", None);
    push(&reg, &format!("{ns}/web"), "1.0.0", None);
    let criteria = format!(
        "  freightCreationCriteria:\n    expression: imageFrom('{api}').Tag == imageFrom('{web}').Tag\n"
    );
    let subs = format!("  - image:\n      repoURL: {api}\n  - image:\n      repoURL: {web}\n");
    kubectl_stdin(
        &["apply", "-f", "-"],
        &warehouse_with(&ns, "pair", &criteria, &subs),
    )
    .success("warehouse");

    // Accepted: Freight with both images at 1.0.0.
    let f = wait_for(30, "the first Freight", || {
        freight_list(&ns).into_iter().next()
    });
    assert_eq!(tags_of(&f), ["1.0.0", "1.0.0"]);
    let (status, reason, _) = warehouse_condition(&ns, "pair", "FreightCreationCriteriaSatisfied")
        .expect("criteria condition");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "CriteriaSatisfied")
    );

    // Rejected: api moved on alone; no Freight, and the Warehouse says why.
    push(&reg, &format!("{ns}/api"), "1.1.0", None);
    refresh(&ns, "pair");
    assert_eq!(
        freight_list(&ns).len(),
        1,
        "a rejected discovery made Freight"
    );
    let (status, reason, message) =
        warehouse_condition(&ns, "pair", "FreightCreationCriteriaSatisfied")
            .expect("criteria condition");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "CriteriaNotSatisfied")
    );
    assert!(message.contains(&format!("{api}:1.1.0")), "{message}");
    assert!(message.contains(&format!("{web}:1.0.0")), "{message}");
    let (status, reason, _) = warehouse_condition(&ns, "pair", "FreightCreated").expect("created");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "CriteriaNotSatisfied")
    );
    // Not an error: the Warehouse is healthy and ready, it just has nothing to ship.
    assert_eq!(
        warehouse_condition(&ns, "pair", "Ready")
            .map(|c| c.0)
            .as_deref(),
        Some("True")
    );

    // Accepted again once web catches up.
    push(&reg, &format!("{ns}/web"), "1.1.0", None);
    refresh(&ns, "pair");
    let all = freight_list(&ns);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all.iter().any(|f| tags_of(f) == ["1.1.0", "1.1.0"]));
    let (status, _, _) = warehouse_condition(&ns, "pair", "FreightCreationCriteriaSatisfied")
        .expect("criteria condition");
    assert_eq!(status, "True");

    // Under the Manual policy the criteria are not evaluated and no Freight is created.
    let manual =
        "  freightCreationPolicy: Manual\n  freightCreationCriteria:\n    expression: 'true'\n";
    kubectl_stdin(
        &["apply", "-f", "-"],
        &warehouse_with(&ns, "manual", manual, &subs),
    )
    .success("manual warehouse");
    let (_, reason, _) = wait_for(30, "the manual Warehouse to discover", || {
        warehouse_condition(&ns, "manual", "FreightCreated")
    });
    assert_eq!(reason, "ManualPolicy");
    assert!(warehouse_condition(&ns, "manual", "FreightCreationCriteriaSatisfied").is_none());
    assert!(
        freight_list(&ns)
            .iter()
            .all(|f| f["origin"]["name"] != "manual")
    );
}

/// A criteria expression that cannot work is reported on the Warehouse, naming the field, and
/// creates no Freight: a syntax error before any registry is asked, an evaluation error after
/// discovery.
#[test]
fn an_invalid_criteria_expression_is_reported() {
    let _ = controller();
    let ns = namespace("wh-criteria-bad");
    let reg = services().var("HAUL_TEST_REGISTRY").to_string();
    let app = format!("{reg}/{ns}/app");
    push(&reg, &format!("{ns}/app"), "1.0.0", None);
    let subs = format!("  - image:\n      repoURL: {app}\n");
    let cases = [
        (
            "syntax",
            format!("imageFrom('{app}').Tag =="),
            "InvalidSpec",
            "spec.freightCreationCriteria.expression: ",
        ),
        (
            "missing-repo",
            "imageFrom('ghcr.io/acme/not-subscribed').Tag == '1.0.0'".to_string(),
            "CriteriaEvaluationFailed",
            "imageFrom found no image from repository \"ghcr.io/acme/not-subscribed\"",
        ),
        (
            "not-bool",
            format!("imageFrom('{app}').Tag"),
            "CriteriaEvaluationFailed",
            "must evaluate to a boolean, got string \"1.0.0\"",
        ),
    ];
    for (name, expr, _, _) in &cases {
        let extra = format!(
            "  freightCreationCriteria:\n    expression: \"{}\"\n",
            expr.replace('"', "\\\"")
        );
        kubectl_stdin(
            &["apply", "-f", "-"],
            &warehouse_with(&ns, name, &extra, &subs),
        )
        .success(name);
    }
    for (name, _, reason, needle) in &cases {
        let (status, _, message) = wait_for(30, &format!("{name} to report"), || {
            warehouse_condition(&ns, name, "Ready").filter(|c| c.1 == *reason)
        });
        assert_eq!(status, "False", "{name}");
        assert!(message.contains(needle), "{name}: {message}");
        assert!(
            message.contains("spec.freightCreationCriteria.expression"),
            "{name}: {message}"
        );
    }
    let (_, reason, _) = warehouse_condition(&ns, "missing-repo", "Healthy").expect("healthy");
    assert_eq!(reason, "CriteriaEvaluationFailed");
    assert!(
        freight_list(&ns).is_empty(),
        "an invalid expression made Freight"
    );
    let events = kubectl(&["get", "events", "-n", &ns, "-o", "json"]).success("events");
    assert!(
        events.stdout.contains("CriteriaEvaluationFailed"),
        "no event"
    );

    // Fixing the expression takes effect without a refresh: the spec changed.
    let fixed =
        format!("  freightCreationCriteria:\n    expression: imageFrom('{app}').Tag == '1.0.0'\n");
    kubectl_stdin(
        &["apply", "-f", "-"],
        &warehouse_with(&ns, "missing-repo", &fixed, &subs),
    )
    .success("fixed");
    wait_for(30, "Freight after the fix", || {
        freight_list(&ns)
            .into_iter()
            .find(|f| f["origin"]["name"] == "missing-repo")
    });
}

/// A registry answering 429 with `Retry-After: 120` is not asked again before then: without it
/// the first retry would come after the 10 s backoff.
#[test]
fn a_registry_429_retry_after_delays_the_retry() {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    // Held for the whole test: a_restarted_controller_creates_no_duplicate_freight restarts the
    // shared controller, and a new process knows no Retry-After (it retries a failed Warehouse
    // once at start), which would count as a request before the Retry-After here.
    let _controller = controller()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let ns = namespace("wh-429");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            // Read the request head; the body (none for GET) does not matter.
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            seen.fetch_add(1, Ordering::SeqCst);
            let body = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#;
            let _ = write!(
                s,
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 120\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let subs = format!("  - image:\n      repoURL: 127.0.0.1:{port}/busy/app\n");
    kubectl_stdin(&["apply", "-f", "-"], &warehouse(&ns, "busy", &subs)).success("warehouse");
    let (status, _, message) = wait_for(30, "the throttled discovery", || {
        warehouse_condition(&ns, "busy", "Healthy").filter(|c| c.1 == "DiscoveryFailed")
    });
    assert_eq!(status, "False");
    assert!(message.contains("throttled"), "{message}");
    assert!(
        message.contains("retrying in 120s at the earliest, as the registry's Retry-After asks"),
        "{message}"
    );
    let after_first = requests.load(Ordering::SeqCst);
    assert!(after_first >= 1);
    // Longer than the largest first backoff (10 s + 20% jitter) plus a discovery.
    std::thread::sleep(std::time::Duration::from_secs(16));
    assert_eq!(
        requests.load(Ordering::SeqCst),
        after_first,
        "the registry was asked again before its Retry-After"
    );
    assert!(freight_list(&ns).is_empty());
}

/// A Helm chart stored in ECR (an OCI artifact whose tags are its versions) is discovered with
/// the same IRSA credentials as images, through `DescribeImages`; no helm Secret is needed.
#[test]
fn ecr_chart_through_irsa() {
    let _ = controller();
    let ns = namespace("wh-ecr-chart");
    let repo = format!("{ns}/charts/my-app");
    // What `helm push oci://…` leaves in ECR: one manifest per version, tagged with it.
    moto_push(&repo, MotoArtifact::Chart, &["0.1.0", "0.2.0", "1.0.0"]);
    let url = format!("oci://123456789012.dkr.ecr.eu-central-1.amazonaws.com/{repo}");
    let subs = format!("  - chart:\n      repoURL: {url}\n      semverConstraint: <1.0.0\n");
    kubectl_stdin(&["apply", "-f", "-"], &warehouse(&ns, "charts", &subs)).success("warehouse");
    let f = wait_for(45, "Freight with the chart from ECR", || {
        let f = freight_list(&ns).into_iter().next();
        if f.is_none()
            && let Some((_, reason, message)) = warehouse_condition(&ns, "charts", "Healthy")
            && reason != "Healthy"
        {
            eprintln!("Healthy: {reason}: {message}");
        }
        f
    });
    assert_eq!(f["charts"][0]["repoURL"], url.as_str(), "{f:#}");
    assert_eq!(f["charts"][0]["version"], "0.2.0", "{f:#}");
    let w = support::get_json("warehouse", "charts", &ns).expect("warehouse");
    let versions: Vec<&str> = w["status"]["discoveredArtifacts"]["charts"][0]["versions"]
        .as_array()
        .map(|v| v.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(versions, ["0.2.0", "0.1.0"], "{w:#}");
}

#[derive(Clone, Copy)]
enum MotoArtifact {
    Image,
    Chart,
}

/// Creates ECR repository `repo` in moto and pushes one manifest per tag (an image, or a Helm
/// chart as `helm push oci://` stores it), a second apart so that `imagePushedAt` orders them.
/// Returns each tag's digest.
fn moto_push(
    repo: &str,
    artifact: MotoArtifact,
    tags: &[&str],
) -> std::collections::BTreeMap<String, String> {
    let py = support::tools_dir().join("venv/bin/python");
    let script = r#"
import boto3, hashlib, json, sys, time
ecr = boto3.client("ecr", endpoint_url=sys.argv[1], region_name="eu-central-1",
                   aws_access_key_id="x", aws_secret_access_key="x")
ecr.create_repository(repositoryName=sys.argv[2])
config, layer = {
    "image": ("application/vnd.oci.image.config.v1+json", "application/vnd.oci.image.layer.v1.tar+gzip"),
    "chart": ("application/vnd.cncf.helm.config.v1+json", "application/vnd.cncf.helm.chart.content.v1.tar+gzip"),
}[sys.argv[3]]
for tag in sys.argv[4:]:
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": config, "digest": "sha256:" + "a" * 64, "size": 2},
                    "layers": [{"mediaType": layer, "digest": "sha256:" + hashlib.sha256(tag.encode()).hexdigest(), "size": 1}]})
    d = "sha256:" + hashlib.sha256(m.encode()).hexdigest()
    ecr.put_image(repositoryName=sys.argv[2], imageManifest=m, imageTag=tag, imageDigest=d)
    print(tag, d)
    time.sleep(1.1)
"#;
    let kind = match artifact {
        MotoArtifact::Image => "image",
        MotoArtifact::Chart => "chart",
    };
    let out = Command::new(&py)
        .args([
            "-c",
            script,
            services().var("HAUL_TEST_MOTO_URL"),
            repo,
            kind,
        ])
        .args(tags)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", py.display()));
    assert!(
        out.status.success(),
        "pushing to moto: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(t, d)| (t.to_string(), d.to_string()))
        .collect()
}
