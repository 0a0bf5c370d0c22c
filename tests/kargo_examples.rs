//! Acceptance: pipelines in the shape of Kargo's public examples run unchanged on haul, against
//! a real Gitea.
//!
//! - `tests/fixtures/kargo-example/`: a `kargo/` folder (Project, PromotionTask whose pull-request
//!   branch is guarded by `vars.openpr`, Stages dev → staging → prod, Warehouse on the local
//!   registry) applied with one `kubectl apply -f`, promoted to prod through a Gitea pull request
//!   that the test merges; a pull request closed unmerged fails the Promotion with the reason;
//!   a controller that dies after opening the pull request but before recording it adopts the
//!   pull request instead of opening a second one.
//! - `tests/fixtures/kargo-rendered/`: the rendered-branch pattern (a commit into ./src,
//!   `env/<stage>` created into ./out, git-clear, kustomize-build, push) for two Stages.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use support::fixtures::promotion_yaml;
use support::gitea::gitea;
use support::installed;
use support::services::services;
use support::{get_json, kubectl, kubectl_stdin, repo_root, wait_for};

/// The fixture folder `name` with the placeholders a user would edit filled in, written under
/// `into`; the path of its `kargo/` folder.
fn personalize(name: &str, into: &Path, project: &str, repo_url: &str, image: &str) -> PathBuf {
    let src = repo_root().join("tests/fixtures").join(name).join("kargo");
    let dst = into.join(name).join("kargo");
    std::fs::create_dir_all(&dst).expect("dir");
    for entry in std::fs::read_dir(&src).expect("fixture").flatten() {
        let text = std::fs::read_to_string(entry.path()).expect("read");
        std::fs::write(
            dst.join(entry.file_name()),
            fill(&text, project, repo_url, image),
        )
        .expect("write");
    }
    dst
}

fn fill(text: &str, project: &str, repo_url: &str, image: &str) -> String {
    text.replace("PROJECT", project)
        .replace("GITOPS_REPO_URL", repo_url)
        .replace("IMAGE_REPO", image)
}

/// The controller as the chart installs it, with its webhook receivers on a loopback port.
fn haul() -> &'static installed::Installed {
    static PORT: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    let port = *PORT.get_or_init(support::free_port);
    let addr = format!("127.0.0.1:{port}");
    let base = format!("http://{addr}");
    installed::controller(&[
        ("HAUL_RECEIVERS_ADDR", &addr),
        ("HAUL_RECEIVERS_BASE_URL", &base),
    ])
}

/// What a user adds so Gitea tells haul at once when a pull request is merged or closed: a
/// gitea receiver in the ProjectConfig and a repository webhook for pull request events.
fn gitea_tells_haul_about_pull_requests(ns: &str, repo: &str) {
    let yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: gitea-hook, namespace: {ns}}}\nstringData: {{secret: hook-secret}}\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: ProjectConfig\nmetadata: {{name: {ns}, namespace: {ns}}}\nspec:\n  webhookReceivers:\n  - {{name: gitea, gitea: {{secretRef: {{name: gitea-hook}}}}}}\n"
    );
    kubectl_stdin(&["apply", "-f", "-"], &yaml).success("apply the gitea receiver");
    let url = wait_for(60, "the gitea receiver's URL", || {
        get_json("projectconfig", ns, ns)?["status"]["webhookReceivers"][0]["url"]
            .as_str()
            .map(String::from)
    });
    let g = gitea();
    g.add_webhook(g.username(), repo, &url, "hook-secret", &["pull_request"])
        .unwrap_or_else(|e| panic!("{e}"));
}

fn refresh_token(ns: &str, promotion: &str) -> Option<String> {
    get_json("promotion", promotion, ns)?["metadata"]["annotations"]["kargo.akuity.io/refresh"]
        .as_str()
        .map(String::from)
}

/// The GitOps tree of the example, as (path, content) for Gitea's contents API.
fn gitops_tree(image: &str) -> Vec<(String, String)> {
    let root = repo_root().join("tests/fixtures/kargo-example/repo");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(&root).expect("under root");
                let text = std::fs::read_to_string(&p).expect("read");
                out.push((rel.display().to_string(), text.replace("IMAGE_REPO", image)));
            }
        }
    }
    out.sort();
    out
}

/// A Gitea repository holding the example's GitOps tree; (clone URL, repository name).
fn gitops_repo(name: &str, image: &str) -> (String, String) {
    let tree = gitops_tree(image);
    let files: Vec<(&str, &str)> = tree.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    let url = gitea()
        .create_repo_with_files(name, &files)
        .unwrap_or_else(|e| panic!("{e}"));
    (url, name.to_string())
}

/// CI pushing `repo:tag` to the local registry.
fn push_image(repo: &str, tag: &str) {
    let out = Command::new(repo_root().join("hack/push-image.sh"))
        .args([services().var("HAUL_TEST_REGISTRY"), repo, tag])
        .output()
        .expect("push-image.sh");
    assert!(
        out.status.success(),
        "push-image: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What `kargo create repo-credentials` writes: a git credentials Secret for the Gitea
/// repository, the token as the password (it also authorises the pull-request API).
fn gitea_credentials(ns: &str, repo_url: &str) {
    let g = gitea();
    let yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: gitea-creds\n  namespace: {ns}\n  labels:\n    kargo.akuity.io/cred-type: git\nstringData:\n  repoURL: \"{repo_url}\"\n  username: \"{}\"\n  password: \"{}\"\n",
        g.username(),
        g.token()
    );
    kubectl_stdin(&["apply", "-f", "-"], &yaml).success("apply the git credentials");
}

/// The name of the Freight carrying `image:tag`.
fn freight_with(ns: &str, tag: &str) -> String {
    wait_for(90, &format!("Freight for tag {tag}"), || {
        support::freight_list(ns).into_iter().find_map(|f| {
            let has = f["images"]
                .as_array()?
                .iter()
                .any(|i| i["tag"].as_str() == Some(tag));
            has.then(|| f["metadata"]["name"].as_str().map(str::to_string))?
        })
    })
}

fn promote(ns: &str, stage: &str, freight: &str, n: &str) -> String {
    let name = format!("{stage}-{n}");
    kubectl_stdin(
        &["apply", "-f", "-"],
        &promotion_yaml(ns, &name, stage, freight),
    )
    .success(&format!("promote {stage}"));
    name
}

fn promotion(ns: &str, name: &str) -> Value {
    get_json("promotion", name, ns).unwrap_or(Value::Null)
}

fn phase_of(ns: &str, name: &str) -> Option<String> {
    promotion(ns, name)["status"]["phase"]
        .as_str()
        .map(str::to_string)
}

/// Waits until Promotion `name` ends in `phase`; the Promotion.
fn ends(ns: &str, name: &str, phase: &str, secs: u64) -> Value {
    wait_for(secs, &format!("Promotion {name} {phase}"), || {
        let p = promotion(ns, name);
        match p["status"]["phase"].as_str() {
            Some(ph) if ph == phase => Some(p),
            Some(ph @ ("Succeeded" | "Failed" | "Errored" | "Aborted")) => {
                panic!("Promotion {name} ended {ph}, not {phase}: {}", p["status"])
            }
            _ => None,
        }
    })
}

/// Waits until the Freight is verified in `stage` (no health checks: once promoted).
fn verified_in(ns: &str, freight: &str, stage: &str) {
    wait_for(60, &format!("{freight} verified in {stage}"), || {
        let f = get_json("freight", freight, ns)?;
        f["status"]["verifiedIn"].get(stage).map(|_| ())
    });
}

/// The file at `path` on `branch` of a Gitea repository, through git (what Argo CD would read).
fn file_on(repo_url: &str, branch: &str, path: &str, work: &Path) -> String {
    let dir = work.join(format!("read-{}", Instant::now().elapsed().as_nanos()));
    let auth = gitea().authenticated_url(repo_url);
    let st = Command::new("git")
        .args(["clone", "-q", "--depth", "1", "-b", branch, &auth])
        .arg(&dir)
        .status()
        .expect("git");
    assert!(st.success(), "clone {branch}");
    let text = std::fs::read_to_string(dir.join(path)).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    text
}

fn open_pulls(repo: &str) -> Vec<Value> {
    let g = gitea();
    g.list_pulls(g.username(), repo, "open")
        .unwrap_or_else(|e| panic!("{e}"))
}

fn all_pulls(repo: &str) -> Vec<Value> {
    let g = gitea();
    g.list_pulls(g.username(), repo, "all")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Waits until the prod Promotion has opened its pull request and waits on it; its number.
fn pr_opened(ns: &str, promo: &str, repo: &str) -> u64 {
    wait_for(90, "the prod Promotion to open a pull request", || {
        if let Some(ph @ ("Succeeded" | "Failed" | "Errored")) = phase_of(ns, promo).as_deref() {
            panic!("{promo} ended {ph}: {}", promotion(ns, promo)["status"]);
        }
        // Waiting on it: the wait step has run and published the pull request's page.
        let waiting = promotion(ns, promo)["status"]["state"]["task-1::wait-for-pr"]["pr"]["url"]
            .as_str()
            .is_some();
        let n = open_pulls(repo).first()?["number"].as_u64()?;
        waiting.then_some(n)
    })
}

#[test]
fn kargo_simple_example_promotes_prod_through_a_gitea_pull_request() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let project = "kargo-simple";
    let image = format!("{}/guestbook", services().var("HAUL_TEST_REGISTRY"));
    let image_ref = image.clone();
    let (repo_url, repo) = gitops_repo("kargo-simple", &image);
    push_image("guestbook", "1.0.0");
    let haul = haul();

    // One apply of the folder, Project first and everything in its namespace after it.
    let kargo = personalize("kargo-example", tmp.path(), project, &repo_url, &image_ref);
    kubectl(&["apply", "-f", &kargo.display().to_string()]).success("kubectl apply -f kargo/");
    gitea_credentials(project, &repo_url);
    gitea_tells_haul_about_pull_requests(project, &repo);

    let first = freight_with(project, "1.0.0");
    let dev = promote(project, "dev", &first, "1");
    ends(project, &dev, "Succeeded", 120);
    assert!(
        file_on(&repo_url, "main", "env/dev/kustomization.yaml", tmp.path())
            .contains("newTag: 1.0.0  # the version this environment runs"),
        "dev's tag edited in place, comment kept"
    );
    verified_in(project, &first, "dev");
    let staging = promote(project, "staging", &first, "1");
    ends(project, &staging, "Succeeded", 120);
    verified_in(project, &first, "staging");

    // prod: a pull request, not a push to main.
    let before = gitea()
        .branch_head(gitea().username(), &repo, "main")
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let prod = promote(project, "prod", &first, "1");
    let pr = pr_opened(project, &prod, &repo);
    let to_open = started.elapsed();
    assert_eq!(
        phase_of(project, &prod).as_deref(),
        Some("Running"),
        "waits for the pull request"
    );
    assert_eq!(
        gitea()
            .branch_head(gitea().username(), &repo, "main")
            .unwrap_or_else(|e| panic!("{e}")),
        before,
        "nothing reaches main before review"
    );
    assert!(
        file_on(&repo_url, "main", "env/prod/kustomization.yaml", tmp.path())
            .contains("newTag: 0.0.1")
    );

    // A controller that died after opening the pull request but before recording it: the
    // open-pr step runs again on the next controller and adopts the pull request.
    // (Simulated by rewinding the Promotion's status to before that step.)
    haul.crash_and_restart(|| rewind_to_step(project, &prod, "task-1::open-pr"));
    wait_for(
        60,
        "the rewound Promotion to wait on the pull request again",
        || {
            let p = promotion(project, &prod);
            let metas = p["status"]["stepExecutionMetadata"].as_array()?;
            let open = metas.iter().find(|m| m["alias"] == "task-1::open-pr")?;
            (open["status"] == "Succeeded").then_some(())
        },
    );
    assert_eq!(all_pulls(&repo).len(), 1, "no second pull request");

    let merged_at = Instant::now();
    gitea()
        .merge_pull(gitea().username(), &repo, pr)
        .unwrap_or_else(|e| panic!("{e}"));
    let done = ends(project, &prod, "Succeeded", 120);
    assert!(
        refresh_token(project, &prod).is_some(),
        "Gitea's pull_request webhook refreshed the waiting Promotion (instead of its 30 s poll)"
    );
    eprintln!(
        "timing: prod Promotion to pull request open {:?}; merge to Promotion Succeeded {:?}",
        to_open,
        merged_at.elapsed()
    );
    let merge_commit = gitea()
        .get_pull(gitea().username(), &repo, pr)
        .unwrap_or_else(|e| panic!("{e}"))["merge_commit_sha"]
        .as_str()
        .map(str::to_string)
        .expect("merge commit");
    assert_eq!(
        done["status"]["state"]["task-1::wait-for-pr"]["commit"], merge_commit,
        "wait-for-pr outputs the merge commit: {}",
        done["status"]
    );
    assert!(
        file_on(&repo_url, "main", "env/prod/kustomization.yaml", tmp.path())
            .contains("newTag: 1.0.0")
    );
    wait_for(60, "prod's Freight to move", || {
        let s = get_json("stage", "prod", project)?;
        (s["status"]["freightHistory"][0]["items"]["Warehouse/guestbook"]["name"] == first.as_str())
            .then_some(())
    });

    // A pull request closed without merge fails the Promotion, naming it.
    push_image("guestbook", "1.1.0");
    kubectl(&[
        "annotate",
        "warehouse",
        "guestbook",
        "-n",
        project,
        "--overwrite",
        "kargo.akuity.io/refresh=1.1.0",
    ])
    .success("refresh the Warehouse");
    let second = freight_with(project, "1.1.0");
    ends(
        project,
        &promote(project, "dev", &second, "2"),
        "Succeeded",
        120,
    );
    verified_in(project, &second, "dev");
    ends(
        project,
        &promote(project, "staging", &second, "2"),
        "Succeeded",
        120,
    );
    verified_in(project, &second, "staging");
    let prod2 = promote(project, "prod", &second, "2");
    let pr2 = pr_opened(project, &prod2, &repo);
    gitea()
        .close_pull(gitea().username(), &repo, pr2)
        .unwrap_or_else(|e| panic!("{e}"));
    let failed = ends(project, &prod2, "Failed", 120);
    assert!(
        refresh_token(project, &prod2).is_some(),
        "refreshed by the webhook"
    );
    let message = failed["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("{pr2}")) && message.contains("closed"),
        "the failure names the pull request: {message}"
    );
    assert!(
        file_on(&repo_url, "main", "env/prod/kustomization.yaml", tmp.path())
            .contains("newTag: 1.0.0"),
        "prod still runs what was merged"
    );
}

/// Rewinds Promotion `name` so that the step `alias` has not started, with the controller
/// stopped meanwhile: what the status looks like when a controller died after the step's
/// effect but before writing its result.
fn rewind_to_step(ns: &str, name: &str, alias: &str) {
    let p = promotion(ns, name);
    let mut status = p["status"].clone();
    let metas = status["stepExecutionMetadata"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let index = metas
        .iter()
        .position(|m| m["alias"] == alias)
        .unwrap_or_else(|| panic!("no step {alias} in {status}"));
    status["stepExecutionMetadata"] = Value::Array(metas[..index].to_vec());
    status["currentStep"] = Value::from(index as u64);
    if let Some(state) = status["state"].as_object_mut() {
        state.remove(alias);
    }
    let patch = serde_json::json!({ "status": status }).to_string();
    support::merge_patch_status("promotion", name, ns, &patch).success("rewind the Promotion");
}

#[test]
fn rendered_branches_promote_two_stages() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let project = "kargo-rendered";
    let image = format!("{}/rendered", services().var("HAUL_TEST_REGISTRY"));
    let (repo_url, _) = gitops_repo("kargo-rendered", &image);
    push_image("rendered", "2.0.0");
    haul();
    let kargo = personalize("kargo-rendered", tmp.path(), project, &repo_url, &image);
    kubectl(&["apply", "-f", &kargo.display().to_string()]).success("kubectl apply -f kargo/");
    gitea_credentials(project, &repo_url);

    let freight = freight_with(project, "2.0.0");
    for stage in ["dev", "staging"] {
        ends(
            project,
            &promote(project, stage, &freight, "1"),
            "Succeeded",
            120,
        );
        verified_in(project, &freight, stage);
        let rendered = file_on(
            &repo_url,
            &format!("env/{stage}"),
            "manifests.yaml",
            tmp.path(),
        );
        assert!(
            rendered.contains(&format!("image: {image}:2.0.0"))
                && rendered.contains(&format!("namespace: guestbook-{stage}")),
            "env/{stage} holds the rendered manifests:\n{rendered}"
        );
    }
    // Rendering never touches the source branch.
    assert!(
        file_on(&repo_url, "main", "env/dev/kustomization.yaml", tmp.path())
            .contains("newTag: 0.0.1")
    );
}
