//! The `haul` command line as a person uses it: `get`, `promote`, `approve`, `refresh` and
//! `abort` against a real control plane through a kubeconfig, and `run-local` against a local
//! git repository with no cluster at all.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use support::Outcome as Run;
use support::fixtures::Stage;
use support::{
    ControllerProcess, cp, get_json, git, kubectl, kubectl_stdin, merge_patch_status, namespace,
    wait_for,
};

const ECR: &str = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app";
const FREIGHT: &str = "0123456789abcdef0123456789abcdef01234567";
const ALIAS: &str = "wonky-wombat";

/// Runs the haul binary with `kubeconfig` (the admin's unless given).
fn haul_as(kubeconfig: Option<&Path>, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_haul"))
        .env("KUBECONFIG", kubeconfig.unwrap_or(cp().kubeconfig()))
        .env_remove("HAUL_GIT_USERNAME")
        .env_remove("HAUL_GIT_PASSWORD")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("haul runs");
    Run::from(out)
}

fn haul(args: &[&str]) -> Run {
    haul_as(None, args)
}

fn apply(yaml: &str) {
    kubectl_stdin(&["apply", "-f", "-"], yaml).success("kubectl apply");
}

fn patch_status(kind: &str, name: &str, ns: &str, status: Value) {
    let body = json!({ "status": status }).to_string();
    merge_patch_status(kind, name, ns, &body).success("kubectl patch status");
}

/// A Warehouse `w`, Freight FREIGHT (alias wonky-wombat, image ECR:1006) and Stages dev
/// (direct), uat (from dev) and prod (from uat), each promoting with one `compose-output` step.
fn pipeline(ns: &str) -> String {
    let stage = |name: &str, sources: &str| {
        let template = format!(
            "      steps:\n      - uses: compose-output\n        as: note\n        config: {{stage: {name}}}\n"
        );
        let stage = Stage {
            ns,
            name,
            warehouse: "w",
            sources,
            template: &template,
        };
        format!("---\n{}", stage.yaml())
    };
    format!(
        r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {{name: w, namespace: {ns}}}
spec:
  interval: 1h
  freightCreationPolicy: Manual
  subscriptions:
  - image: {{repoURL: {ECR}}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Freight
metadata:
  name: {FREIGHT}
  namespace: {ns}
  labels: {{kargo.akuity.io/alias: {ALIAS}}}
alias: {ALIAS}
origin: {{kind: Warehouse, name: w}}
images:
- {{repoURL: {ECR}, tag: "1006", digest: "sha256:1006"}}
{}{}{}"#,
        stage("dev", "{direct: true}"),
        stage("uat", "{stages: [dev]}"),
        stage("prod", "{stages: [uat]}"),
    )
}

/// A namespace holding [`pipeline`].
fn project(prefix: &str) -> String {
    let ns = namespace(prefix);
    apply(&pipeline(&ns));
    ns
}

/// A kubectl-style table as one map per row, keyed by header; cells are cut at the header's
/// column offsets (columns are three spaces apart, headers may hold one space).
fn table(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = text.lines();
    let header = lines.next().expect("a header line");
    let mut starts = Vec::new();
    let bytes = header.as_bytes();
    for i in 0..bytes.len() {
        if bytes[i] != b' ' && (i == 0 || header[..i].ends_with("  ")) {
            starts.push(i);
        }
    }
    let names: Vec<String> = starts
        .iter()
        .enumerate()
        .map(|(k, &s)| {
            let end = starts.get(k + 1).copied().unwrap_or(header.len());
            header[s..end].trim().to_string()
        })
        .collect();
    lines
        .map(|line| {
            names
                .iter()
                .enumerate()
                .map(|(k, n)| {
                    let s = starts[k].min(line.len());
                    let e = starts
                        .get(k + 1)
                        .copied()
                        .unwrap_or(line.len())
                        .min(line.len());
                    (n.clone(), line[s..e].trim().to_string())
                })
                .collect()
        })
        .collect()
}

fn row<'a>(rows: &'a [BTreeMap<String, String>], name: &str) -> &'a BTreeMap<String, String> {
    rows.iter()
        .find(|r| r.get("NAME").map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in {rows:#?}"))
}

fn promotions(ns: &str) -> Vec<Value> {
    let out = kubectl(&["get", "promotions", "-n", ns, "-o", "json"]).success("list promotions");
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    v["items"].as_array().cloned().unwrap_or_default()
}

#[test]
fn get_prints_tables_and_the_objects_as_json_or_yaml() {
    let ns = project("cli-get");
    let ready = |message: &str| {
        json!([{"type": "Ready", "status": "True", "reason": "Ready", "message": message,
                "lastTransitionTime": "2026-01-01T00:00:00Z"}])
    };
    patch_status(
        "warehouse",
        "w",
        &ns,
        json!({"lastFreightID": FREIGHT, "conditions": ready("Discovered 1 image")}),
    );
    patch_status(
        "stage",
        "dev",
        &ns,
        json!({"freightSummary": FREIGHT, "health": {"status": "Healthy"},
               "conditions": ready("Stage is healthy")}),
    );
    patch_status(
        "freight",
        FREIGHT,
        &ns,
        json!({"verifiedIn": {"dev": {}}, "currentlyIn": {"dev": {}}}),
    );
    apply(&format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Promotion\nmetadata: {{name: dev.01aaaaaaaaaaaaaaaaaaaaaaaa.0123456, namespace: {ns}}}\nspec: {{stage: dev, freight: {FREIGHT}}}\n"
    ));
    patch_status(
        "promotion",
        "dev.01aaaaaaaaaaaaaaaaaaaaaaaa.0123456",
        &ns,
        json!({"phase": "Running", "currentStep": 1,
               "steps": [{"uses": "compose-output"}, {"uses": "compose-output"}]}),
    );

    let out = haul(&["get", "warehouses", "-n", &ns]).success("get warehouses");
    let rows = table(&out.stdout);
    let w = row(&rows, "w");
    assert_eq!(w["READY"], "True", "{}", out.stdout);
    assert_eq!(w["LAST FREIGHT"], FREIGHT);
    assert_eq!(w["MESSAGE"], "Discovered 1 image");

    let out = haul(&["get", "freight", "-n", &ns]).success("get freight");
    let rows = table(&out.stdout);
    let f = row(&rows, FREIGHT);
    assert_eq!(f["ALIAS"], ALIAS, "{}", out.stdout);
    assert_eq!(f["ORIGIN"], "Warehouse/w");
    assert_eq!(f["IMAGES"], format!("{ECR}:1006"));
    assert_eq!(f["VERIFIED IN"], "dev");
    assert!(f.contains_key("AGE"));

    let out = haul(&["get", "stages", "-n", &ns]).success("get stages");
    eprintln!("{}", out.stdout);
    let rows = table(&out.stdout);
    assert_eq!(rows.len(), 3, "{}", out.stdout);
    let dev = row(&rows, "dev");
    assert_eq!(dev["CURRENT FREIGHT"], FREIGHT, "{}", out.stdout);
    assert_eq!(dev["HEALTH"], "Healthy");
    assert_eq!(dev["READY"], "True");
    assert_eq!(dev["MESSAGE"], "Stage is healthy");
    assert_eq!(row(&rows, "prod")["CURRENT FREIGHT"], "");

    let out = haul(&["get", "promos", "-n", &ns]).success("get promotions");
    eprintln!("{}", out.stdout);
    let rows = table(&out.stdout);
    let p = row(&rows, "dev.01aaaaaaaaaaaaaaaaaaaaaaaa.0123456");
    assert_eq!(p["STAGE"], "dev", "{}", out.stdout);
    assert_eq!(p["FREIGHT"], FREIGHT);
    assert_eq!(p["PHASE"], "Running");
    assert_eq!(p["STEP"], "2/2");

    // Wide adds columns.
    let out = haul(&["get", "stages", "-n", &ns, "-o", "wide"]).success("get stages wide");
    let rows = table(&out.stdout);
    assert_eq!(row(&rows, "dev")["SOURCES"], "direct", "{}", out.stdout);
    assert_eq!(row(&rows, "prod")["SOURCES"], "uat");
    let out = haul(&["get", "freight", "-n", &ns, "-o", "wide"]).success("get freight wide");
    assert_eq!(row(&table(&out.stdout), FREIGHT)["CURRENTLY IN"], "dev");

    // JSON of every kind: a List of the objects as the API server has them.
    for (kind, k, n) in [
        ("warehouses", "Warehouse", 1),
        ("freight", "Freight", 1),
        ("stages", "Stage", 3),
        ("promotions", "Promotion", 1),
    ] {
        let out = haul(&["get", kind, "-n", &ns, "-o", "json"]).success("get -o json");
        let v: Value = serde_json::from_str(&out.stdout).expect("JSON");
        assert_eq!(v["kind"], "List", "{v:#}");
        let items = v["items"].as_array().expect("items");
        assert_eq!(items.len(), n, "{kind}: {v:#}");
        assert!(items.iter().all(|i| i["kind"] == k), "{v:#}");
        assert!(
            items
                .iter()
                .all(|i| i["apiVersion"] == "kargo.akuity.io/v1alpha1")
        );
    }
    let out = haul(&["get", "freight", FREIGHT, "-n", &ns, "-o", "json"]).success("one -o json");
    let v: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(v["kind"], "Freight");
    assert_eq!(v["status"]["verifiedIn"]["dev"], json!({}));
    let out = haul(&["get", "stage", "dev", "-n", &ns, "-o", "yaml"]).success("one -o yaml");
    assert!(out.stdout.contains("kind: Stage"), "{}", out.stdout);
    assert!(out.stdout.contains("freightSummary:"), "{}", out.stdout);
    let out = haul(&["get", "stage", "dev", "-n", &ns]).success("one table");
    assert_eq!(table(&out.stdout).len(), 1);

    // Errors say what to do next.
    let out = haul(&["get", "stage", "nope", "-n", &ns]).failure("missing stage");
    assert!(
        out.stderr.contains("Stage \"nope\" not found")
            && out.stderr.contains(&format!("haul get stages -n {ns}")),
        "{}",
        out.stderr
    );
    let out = haul(&["get", "stages"]).failure("no namespace");
    assert!(
        out.stderr.contains("-n/--namespace"),
        "the envtest context has no namespace: {}",
        out.stderr
    );
    let empty = namespace("cli-empty");
    let out = haul(&["get", "stages", "-n", &empty]).success("empty list");
    assert!(out.stderr.contains("No resources found"), "{}", out.stderr);
    // A user without RBAC sees the API server's refusal and a hint.
    let bob = cp().user_kubeconfig("bob", None).expect("kubeconfig");
    let out = haul_as(Some(&bob), &["get", "stages", "-n", &ns]).failure("forbidden");
    assert!(
        out.stderr.contains("forbidden") && out.stderr.contains("\"bob\""),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("ask a project admin"), "{}", out.stderr);
}

#[test]
fn promote_refuses_unavailable_freight_and_creates_nothing() {
    let ns = project("cli-refuse");
    patch_status("freight", FREIGHT, &ns, json!({"verifiedIn": {"dev": {}}}));
    let out = haul(&[
        "promote",
        "-n",
        &ns,
        "--stage",
        "prod",
        "--freight",
        FREIGHT,
    ])
    .failure("promote to prod before uat");
    eprintln!("{}", out.stderr);
    assert!(
        out.stderr.contains("not available to Stage prod")
            && out.stderr.contains("not verified in uat"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "haul promote -n {ns} --stage uat --freight {FREIGHT}"
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "haul approve -n {ns} --freight {FREIGHT} --stage prod"
        )),
        "{}",
        out.stderr
    );
    // By alias too; and a missing Stage or Freight is named.
    haul(&["promote", "-n", &ns, "--stage", "prod", "--alias", ALIAS]).failure("by alias");
    let out = haul(&["promote", "-n", &ns, "--stage", "qa", "--freight", FREIGHT])
        .failure("missing stage");
    assert!(
        out.stderr.contains("Stage \"qa\" not found"),
        "{}",
        out.stderr
    );
    let out = haul(&["promote", "-n", &ns, "--stage", "dev", "--alias", "no-such"])
        .failure("missing alias");
    assert!(
        out.stderr.contains("no Freight has the alias"),
        "{}",
        out.stderr
    );
    assert!(promotions(&ns).is_empty(), "nothing may be created");
}

#[test]
fn promote_creates_a_promotion_named_like_kargos() {
    let ns = project("cli-promote");
    let out =
        haul(&["promote", "-n", &ns, "--stage", "dev", "--alias", ALIAS]).success("promote to dev");
    let ps = promotions(&ns);
    assert_eq!(ps.len(), 1, "{ps:#?}");
    let p = &ps[0];
    let name = p["metadata"]["name"].as_str().expect("name");
    assert!(out.stdout.contains(name), "{}", out.stdout);
    let parts: Vec<&str> = name.split('.').collect();
    assert_eq!(parts.len(), 3, "{name}");
    assert_eq!(parts[0], "dev");
    assert_eq!(parts[1].len(), 26, "a ULID: {name}");
    assert!(
        parts[1]
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()),
        "{name}"
    );
    assert_eq!(parts[2], &FREIGHT[..7]);
    assert_eq!(p["spec"], json!({"stage": "dev", "freight": FREIGHT}));
    let actor = p["metadata"]["annotations"]["kargo.akuity.io/create-actor"]
        .as_str()
        .unwrap_or_default();
    // The CLI records the user a SelfSubjectReview names, in Kargo's format.
    assert!(
        actor.starts_with("kubernetes:") && actor.len() > "kubernetes:".len(),
        "{p:#}"
    );
    assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Stage");
    assert_eq!(p["metadata"]["ownerReferences"][0]["name"], "dev");

    // A second promotion sorts after the first.
    haul(&["promote", "-n", &ns, "--stage", "dev", "--freight", FREIGHT]).success("again");
    let mut names: Vec<String> = promotions(&ns)
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(names.len(), 2);
    let first = name.to_string();
    names.sort();
    assert_eq!(names[0], first, "ULID names sort by creation time");
}

#[test]
fn approve_patches_approved_for_and_makes_freight_available() {
    let ns = project("cli-approve");
    haul(&[
        "promote",
        "-n",
        &ns,
        "--stage",
        "prod",
        "--freight",
        FREIGHT,
    ])
    .failure("not yet");
    let out = haul(&["approve", "-n", &ns, "--alias", ALIAS, "--stage", "prod"]).success("approve");
    assert!(
        out.stdout.contains("approved for Stage prod"),
        "{}",
        out.stdout
    );
    let f = get_json("freight", FREIGHT, &ns).expect("freight");
    let at = f["status"]["approvedFor"]["prod"]["approvedAt"]
        .as_str()
        .unwrap_or_default();
    assert!(at.starts_with("20"), "{f:#}");
    let out = haul(&[
        "approve",
        "-n",
        &ns,
        "--freight",
        FREIGHT,
        "--stage",
        "prod",
    ])
    .success("approve twice");
    assert!(out.stdout.contains("already approved"), "{}", out.stdout);
    haul(&[
        "promote",
        "-n",
        &ns,
        "--stage",
        "prod",
        "--freight",
        FREIGHT,
    ])
    .success("the approval is the hotfix path");
    assert_eq!(promotions(&ns).len(), 1);
    haul(&[
        "approve",
        "-n",
        &ns,
        "--freight",
        FREIGHT,
        "--stage",
        "nope",
    ])
    .failure("no stage");
}

#[test]
fn refresh_sets_a_new_token_each_time() {
    let ns = project("cli-refresh");
    let token = |kind: &str, name: &str| {
        get_json(kind, name, &ns).expect("object")["metadata"]["annotations"]
            ["kargo.akuity.io/refresh"]
            .as_str()
            .map(str::to_string)
    };
    let out = haul(&["refresh", "warehouse", "w", "-n", &ns]).success("refresh warehouse");
    assert!(out.stdout.contains("refresh requested"), "{}", out.stdout);
    let first = token("warehouse", "w").expect("token set");
    haul(&["refresh", "warehouse", "w", "-n", &ns]).success("again");
    let second = token("warehouse", "w").expect("token set");
    assert_ne!(first, second, "every refresh is a new token");
    haul(&["refresh", "stage", "uat", "-n", &ns]).success("refresh stage");
    assert!(token("stage", "uat").is_some());
    let out = haul(&["refresh", "warehouse", "nope", "-n", &ns]).failure("missing");
    assert!(
        out.stderr.contains("Warehouse \"nope\" not found"),
        "{}",
        out.stderr
    );
}

#[test]
fn abort_sets_the_abort_annotation() {
    let ns = project("cli-abort");
    haul(&["promote", "-n", &ns, "--stage", "dev", "--freight", FREIGHT]).success("promote");
    let name = promotions(&ns)[0]["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let out = haul(&["abort", "promotion", &name, "-n", &ns]).success("abort");
    assert!(out.stdout.contains("abort requested"), "{}", out.stdout);
    let p = get_json("promotion", &name, &ns).expect("promotion");
    let raw = p["metadata"]["annotations"]["kargo.akuity.io/abort"]
        .as_str()
        .expect("abort annotation");
    let request: Value = serde_json::from_str(raw).expect("JSON");
    assert_eq!(request["action"], "terminate", "{raw}");

    patch_status("promotion", &name, &ns, json!({"phase": "Succeeded"}));
    let out = haul(&["abort", "promotion", &name, "-n", &ns]).failure("finished");
    assert!(out.stderr.contains("already finished"), "{}", out.stderr);
    haul(&["abort", "promotion", "nope", "-n", &ns]).failure("missing");
}

#[test]
fn promote_wait_follows_the_steps_with_a_controller() {
    let dir = cp().dir().join("work-cli");
    let _controller = ControllerProcess::start(&dir);
    let ns = project("cli-wait");
    let out = haul(&[
        "promote",
        "-n",
        &ns,
        "--stage",
        "dev",
        "--freight",
        FREIGHT,
        "--wait",
        "--timeout",
        "90s",
    ])
    .success("promote --wait");
    eprintln!("{}", out.stdout);
    assert!(
        out.stdout
            .contains("step 1/1 note (compose-output): Succeeded"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Succeeded (1/1)"), "{}", out.stdout);

    // A Promotion that fails makes --wait fail with its message.
    let broken = Stage {
        ns: &ns,
        name: "broken",
        warehouse: "w",
        sources: "{direct: true}",
        template: "      steps:\n      - uses: compose-output\n        as: bad\n        config: not-a-map\n",
    };
    apply(&broken.yaml());
    let out = haul(&[
        "promote",
        "-n",
        &ns,
        "--stage",
        "broken",
        "--freight",
        FREIGHT,
        "--wait",
        "--timeout",
        "90s",
    ])
    .failure("a failing promotion");
    assert!(
        out.stdout.contains("step 1/1 bad (compose-output): Failed"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("Failed") && out.stderr.contains("config must be a map"),
        "{}",
        out.stderr
    );
    wait_for(5, "both promotions listed", || {
        (promotions(&ns).len() == 2).then_some(())
    });
}

/// A repository with `apps/svc/env/dev/kustomization.yaml` on `main`.
fn gitops_repo(dir: &Path) {
    std::fs::create_dir_all(dir.join("apps/svc/env/dev")).expect("dirs");
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(
        dir.join("apps/svc/env/dev/kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n# the dev overlay\nresources:\n  - ../../base\nimages:\n  - name: my-app\n    newName: {ECR}\n    newTag: \"1005\"   # set by haul\ncommonLabels:\n  env: dev\n"
        ),
    )
    .expect("write");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "init"]);
}

const GITOPS_URL: &str = "https://git.example.com/org/gitops.git";

/// The Stage and Freight files `run-local` reads, in `dir`: the reference template as a user
/// writes it, with vars and expressions, and Freight FREIGHT.
fn local_files(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let stage = dir.join("stage.yaml");
    let template = format!(
        r#"      vars:
      - name: gitopsRepo
        value: {GITOPS_URL}
      steps:
      - uses: git-clone
        config:
          repoURL: ${{{{ vars.gitopsRepo }}}}
          checkout: [{{branch: main, path: ./src}}]
      - uses: kustomize-set-image
        as: update-image
        config:
          path: ./src/apps/svc/env/dev
          images:
          - image: {ECR}
            name: my-app
            tag: ${{{{ imageFrom("{ECR}").Tag }}}}
      - uses: git-commit
        as: commit
        config:
          path: ./src
          message: ${{{{ outputs['update-image'].commitMessage }}}}
      - uses: git-push
        config: {{path: ./src}}
      - uses: argocd-update
        config:
          apps:
          - name: my-app-dev
            sources:
            - repoURL: ${{{{ vars.gitopsRepo }}}}
              desiredRevision: ${{{{ outputs.commit.commit }}}}
"#
    );
    let yaml = Stage {
        ns: "my-app",
        name: "dev",
        warehouse: "w",
        sources: "{direct: true}",
        template: &template,
    }
    .yaml();
    std::fs::write(&stage, yaml).expect("stage file");
    let freight = dir.join("freight.yaml");
    std::fs::write(
        &freight,
        format!(
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {{name: {FREIGHT}, namespace: my-app}}\nalias: {ALIAS}\norigin: {{kind: Warehouse, name: w}}\nimages:\n- {{repoURL: {ECR}, tag: \"1006\", digest: \"sha256:1006\"}}\n"
        ),
    )
    .expect("freight file");
    (stage, freight)
}

/// `haul run-local` of the `stage` and `freight` files into `work`, with the repository `repo`
/// standing in for GITOPS_URL, plus `extra` arguments.
fn run_local(stage: &Path, freight: &Path, work: &Path, repo: &Path, extra: &[&str]) -> Run {
    let override_arg = format!("{GITOPS_URL}={}", repo.display());
    let mut args = vec![
        "run-local",
        "--stage-file",
        stage.to_str().expect("utf-8"),
        "--freight-file",
        freight.to_str().expect("utf-8"),
        "--work-dir",
        work.to_str().expect("utf-8"),
        "--repo-override",
        &override_arg,
    ];
    args.extend_from_slice(extra);
    haul(&args)
}

/// The changed lines of a unified diff.
fn changed_lines(diff: &str) -> Vec<&str> {
    diff.lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect()
}

#[test]
fn run_local_prints_the_diff_and_pushes_nothing_without_push() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("gitops");
    gitops_repo(&repo);
    let head = git(&repo, &["rev-parse", "HEAD"]);
    let file = repo.join("apps/svc/env/dev/kustomization.yaml");
    let before = std::fs::read_to_string(&file).expect("read");
    let (stage, freight) = local_files(tmp.path());
    let work = tmp.path().join("work");
    let out = run_local(&stage, &freight, &work, &repo, &[]).success("run-local");
    assert_eq!(
        changed_lines(&out.stdout),
        [
            "-    newTag: \"1005\"   # set by haul",
            "+    newTag: \"1006\"   # set by haul"
        ],
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout
            .contains("+++ b/apps/svc/env/dev/kustomization.yaml"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("git-push): not run; pass --push"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("(git-commit): Succeeded"),
        "{}",
        out.stderr
    );
    // The source repository is untouched: same HEAD, same file, nothing staged.
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), head);
    assert_eq!(std::fs::read_to_string(&file).expect("read"), before);
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    assert_eq!(git(&repo, &["branch", "--list"]).trim(), "* main");

    // The work dir must be new: a second run into it is refused.
    let again = run_local(&stage, &freight, &work, &repo, &[]).failure("reused work dir");
    assert!(again.stderr.contains("not empty"), "{}", again.stderr);
}

#[test]
fn run_local_with_push_pushes_and_skips_argocd_update() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let seed = tmp.path().join("seed");
    gitops_repo(&seed);
    let bare = tmp.path().join("gitops.git");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            seed.to_str().expect("utf-8"),
            "gitops.git",
        ],
    );
    let before = git(&bare, &["rev-parse", "main"]);
    let (stage, freight) = local_files(tmp.path());
    let work = tmp.path().join("work");
    let out = run_local(&stage, &freight, &work, &bare, &["--push"]).success("run-local --push");
    assert!(
        out.stderr.contains("(argocd-update): Skipped") && out.stderr.contains("needs a cluster"),
        "{}",
        out.stderr
    );
    let after = git(&bare, &["rev-parse", "main"]);
    assert_ne!(before, after, "the commit was pushed");
    let shown = git(&bare, &["show", "main"]);
    assert_eq!(
        changed_lines(&shown),
        [
            "-    newTag: \"1005\"   # set by haul",
            "+    newTag: \"1006\"   # set by haul"
        ],
        "{shown}"
    );
    assert!(shown.contains("Haul-Promotion: dev."), "{shown}");
}

/// `--repo-override` changes where the repository is fetched from, not what expressions see:
/// `commitFrom(vars.repoURL)` still finds the Freight's commit from the URL as written.
#[test]
fn run_local_repo_override_keeps_urls_expressions_see() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("gitops");
    gitops_repo(&repo);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    std::fs::write(repo.join("later.txt"), "later\n").expect("write");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "later"]);
    let template = format!(
        r#"      vars:
      - name: repoURL
        value: {GITOPS_URL}
      steps:
      - uses: git-clone
        config:
          repoURL: ${{{{ vars.repoURL }}}}
          checkout: [{{commit: "${{{{ commitFrom(vars.repoURL).ID }}}}", path: ./src}}]
      - uses: compose-output
        as: seen
        config:
          repoURL: ${{{{ vars.repoURL }}}}
          commit: ${{{{ commitFrom(vars.repoURL).ID }}}}
"#
    );
    let stage = tmp.path().join("stage.yaml");
    let yaml = Stage {
        ns: "my-app",
        name: "dev",
        warehouse: "w",
        sources: "{direct: true}",
        template: &template,
    }
    .yaml();
    std::fs::write(&stage, yaml).expect("stage file");
    let freight = tmp.path().join("freight.yaml");
    std::fs::write(
        &freight,
        format!(
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {{name: {FREIGHT}, namespace: my-app}}\nalias: {ALIAS}\norigin: {{kind: Warehouse, name: w}}\ncommits:\n- {{repoURL: {GITOPS_URL}, id: {first}, branch: main}}\n",
            first = first.trim()
        ),
    )
    .expect("freight file");
    let work = tmp.path().join("work");
    let out = run_local(&stage, &freight, &work, &repo, &[]).success("run-local");
    assert!(
        out.stderr.contains("(git-clone): Succeeded") && out.stderr.contains("Done:"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("repo override: {GITOPS_URL} -> file://")),
        "{}",
        out.stderr
    );
    // The Freight's commit, not the branch's newest, is checked out.
    assert_eq!(git(&work.join("src"), &["rev-parse", "HEAD"]), first);
}

/// Kargo's example PromotionTask pattern: the task defaults `openpr` to "false", the prod Stage
/// sets it to "true", and `if:` picks the pull-request path or the direct push. `if` must see
/// the step's vars exactly as `config` does, or a review gate silently disappears.
#[test]
fn run_local_if_sees_the_task_vars_the_stage_sets() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("gitops");
    gitops_repo(&repo);
    let (_, freight) = local_files(tmp.path());
    let stage = tmp.path().join("prod.yaml");
    let stage_yaml = |openpr: &str, cond: &str| {
        format!(
            r#"apiVersion: kargo.akuity.io/v1alpha1
kind: PromotionTask
metadata: {{name: promote, namespace: my-app}}
spec:
  vars:
  - name: openpr
    value: "false"
  steps:
  - uses: compose-output
    as: direct-push
    if: ${{{{ {cond} }}}}
    config:
      path: direct
  - uses: compose-output
    as: open-pr
    if: ${{{{ vars.openpr == 'true' }}}}
    config:
      path: pr
      openpr: ${{{{ vars.openpr }}}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {{name: prod, namespace: my-app}}
spec:
  requestedFreight:
  - origin: {{kind: Warehouse, name: w}}
    sources: {{direct: true}}
  promotionTemplate:
    spec:
      steps:
      - task: {{name: promote}}
        as: promote
        vars:
        - name: openpr
          value: "{openpr}"
"#
        )
    };
    let run = |openpr: &str, cond: &str, n: usize| {
        std::fs::write(&stage, stage_yaml(openpr, cond)).expect("stage file");
        let work = tmp.path().join(format!("work-{n}"));
        run_local(&stage, &freight, &work, &repo, &[])
    };

    let pr = run("true", "vars.openpr != 'true'", 1).success("run-local, openpr true");
    assert!(
        pr.stderr.contains("(compose-output): Skipped")
            && pr
                .stderr
                .contains("promote::open-pr (compose-output): Succeeded"),
        "the Stage's openpr=true must skip the direct push and open the PR:\n{}",
        pr.stderr
    );
    assert!(
        !pr.stderr
            .contains("promote::direct-push (compose-output): Succeeded"),
        "{}",
        pr.stderr
    );

    let direct = run("false", "vars.openpr != 'true'", 2).success("run-local, openpr false");
    assert!(
        direct
            .stderr
            .contains("promote::direct-push (compose-output): Succeeded"),
        "{}",
        direct.stderr
    );

    // An `if` that is not a boolean is an error, as in Kargo, not a silent skip or run.
    // (A string that reads as JSON, such as "true", becomes that value first, as in Kargo.)
    let bad = run("true", "vars.openpr + '!'", 3);
    let text = format!("{}{}", bad.stdout, bad.stderr);
    assert!(
        text.contains("direct-push")
            && text.contains("Errored")
            && text.contains("string \"true!\""),
        "{text}"
    );
}
