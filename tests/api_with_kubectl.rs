//! The API as a user meets it: haul's CRDs on a real kube-apiserver, driven with real kubectl.

mod support;

use support::{
    kubectl, kubectl_stdin, merge_patch, merge_patch_status, must_get_json, namespace, repo_root,
};

const KINDS: [(&str, &str); 9] = [
    ("projects", "Project"),
    ("projectconfigs", "ProjectConfig"),
    ("warehouses", "Warehouse"),
    ("freights", "Freight"),
    ("stages", "Stage"),
    ("promotions", "Promotion"),
    ("promotiontasks", "PromotionTask"),
    ("clusterpromotiontasks", "ClusterPromotionTask"),
    ("clusterconfigs", "ClusterConfig"),
];

#[test]
fn api_server_serves_every_kind_with_kargo_names() {
    let out = kubectl(&["api-resources", "--api-group=kargo.akuity.io", "-o", "wide"])
        .success("kubectl api-resources");
    for (plural, kind) in KINDS {
        let line = out
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(plural))
            .unwrap_or_else(|| panic!("{plural} not served:\n{}", out.stdout));
        assert!(line.contains(kind), "{line}");
        assert!(line.contains("kargo.akuity.io/v1alpha1"), "{line}");
    }
    let cluster_scoped = kubectl(&[
        "api-resources",
        "--api-group=kargo.akuity.io",
        "--namespaced=false",
        "-o",
        "name",
    ])
    .success("api-resources --namespaced=false");
    let mut names: Vec<&str> = cluster_scoped.stdout.lines().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "clusterconfigs.kargo.akuity.io",
            "clusterpromotiontasks.kargo.akuity.io",
            "projects.kargo.akuity.io"
        ]
    );
    // Kargo's short names work.
    kubectl(&["get", "promos", "-A"]).success("get promos");
    kubectl(&["get", "promotasks", "-A"]).success("get promotasks");
    kubectl(&["get", "clusterpromotasks"]).success("get clusterpromotasks");
    // The Argo CD Application CRD is installed for the Argo CD integration.
    kubectl(&["get", "applications.argoproj.io", "-A"]).success("get applications");
}

#[test]
fn every_example_applies() {
    let examples = repo_root().join("examples");
    let mut dirs: Vec<_> = std::fs::read_dir(&examples)
        .expect("examples/ exists")
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.path())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "examples/ holds no example");
    for dir in dirs {
        let d = dir.display().to_string();
        kubectl(&["apply", "-R", "-f", &d]).success(&format!("kubectl apply -f {d}"));
        // Applying again changes nothing and still succeeds (what a GitOps loop does).
        let again = kubectl(&["apply", "-R", "-f", &d]).success("second apply");
        assert!(
            !again.stdout.contains(" created"),
            "second apply created objects:\n{}",
            again.stdout
        );
    }
}

/// The reference pipeline of SCENARIO.md, read back through the API with haul's own types.
#[test]
fn reference_pipeline_is_the_scenario() {
    use haul::api::{Stage, Warehouse};
    let d = repo_root().join("examples/reference-pipeline");
    kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=reference-test",
        "-f",
        &d.display().to_string(),
    ])
    .success("apply the reference pipeline");

    let get = |kind: &str, name: &str| must_get_json(kind, name, "my-app");

    let wh: Warehouse =
        serde_json::from_value(get("warehouse", "my-app")).expect("Warehouse decodes");
    let sub = serde_json::to_value(&wh.spec.subscriptions[0]).expect("encode");
    assert_eq!(
        sub["image"]["repoURL"],
        "123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app"
    );
    assert_eq!(sub["image"]["imageSelectionStrategy"], "SemVer");
    // Defaults from the CRD, as Kargo's: interval and discovery limit.
    let raw = get("warehouse", "my-app");
    assert_eq!(raw["spec"]["interval"], "5m0s");
    assert_eq!(raw["spec"]["freightCreationPolicy"], "Automatic");

    for (stage, upstream) in [("dev", None), ("uat", Some("dev")), ("prod", Some("uat"))] {
        let raw = get("stage", stage);
        let s: Stage = serde_json::from_value(raw.clone()).expect("Stage decodes");
        let req = &raw["spec"]["requestedFreight"][0];
        assert_eq!(req["origin"]["kind"], "Warehouse");
        assert_eq!(req["origin"]["name"], "my-app");
        match upstream {
            None => assert_eq!(req["sources"]["direct"], true, "{stage}"),
            Some(up) => {
                assert_eq!(req["sources"]["stages"], serde_json::json!([up]), "{stage}");
                assert!(req["sources"].get("direct").is_none_or(|d| d == false));
            }
        }
        let steps = &raw["spec"]["promotionTemplate"]["spec"]["steps"];
        let uses: Vec<&str> = steps
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| s["uses"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            uses,
            [
                "git-clone",
                "kustomize-set-image",
                "git-commit",
                "git-push",
                "argocd-update"
            ]
        );
        assert_eq!(
            steps[1]["config"]["path"],
            format!("./src/apps/my-app-service1/env/{stage}")
        );
        assert_eq!(steps[0]["config"]["checkout"][0]["branch"], "gitops");
        assert!(
            steps[0]["config"]["repoURL"]
                .as_str()
                .is_some_and(|s| s.contains("vars.gitopsRepo"))
        );
        drop(s);

        let app = must_get_json("application", &format!("my-app-{stage}"), "argocd");
        assert_eq!(
            app["metadata"]["annotations"]["kargo.akuity.io/authorized-stage"],
            format!("my-app:{stage}")
        );
    }

    let secret = get("secret", "codecommit-creds");
    assert_eq!(
        secret["metadata"]["labels"]["kargo.akuity.io/cred-type"],
        "git"
    );
    for k in ["repoURL", "username", "password"] {
        assert!(secret["data"][k].is_string(), "secret lacks {k}");
    }

    let pc = get("projectconfig", "my-app");
    assert_eq!(
        pc["spec"]["promotionPolicies"][0]["stageSelector"]["name"],
        "dev"
    );
    assert_eq!(
        pc["spec"]["promotionPolicies"][0]["autoPromotionEnabled"],
        true
    );
    kubectl(&["get", "project", "my-app"]).success("get project");
}

fn warehouse_yaml(ns: &str, name: &str, image: &str) -> String {
    format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  subscriptions:\n  - image:\n{image}"
    )
}

#[test]
fn bad_image_selection_strategy_is_rejected_naming_the_field() {
    let ns = namespace("bad-strategy");
    let y = warehouse_yaml(
        &ns,
        "w",
        "      repoURL: example.com/app\n      imageSelectionStrategy: Newest\n",
    );
    let out = kubectl_stdin(&["apply", "-f", "-"], &y);
    assert!(!out.ok, "a bad imageSelectionStrategy was accepted");
    assert!(
        out.stderr
            .contains("spec.subscriptions[0].image.imageSelectionStrategy"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Unsupported value: \"Newest\""),
        "{}",
        out.stderr
    );
    // Nothing was created.
    assert!(!kubectl(&["get", "warehouse", "w", "-n", &ns]).ok);

    // Every strategy Kargo knows is accepted.
    for s in ["SemVer", "Lexical", "NewestBuild", "Digest"] {
        let constraint = if s == "Digest" {
            "      constraint: latest\n"
        } else {
            ""
        };
        let y = warehouse_yaml(
            &ns,
            &format!("w-{}", s.to_lowercase()),
            &format!(
                "      repoURL: example.com/app\n      imageSelectionStrategy: {s}\n{constraint}"
            ),
        );
        kubectl_stdin(&["apply", "-f", "-"], &y).success(s);
    }
}

#[test]
fn missing_required_fields_are_rejected_naming_the_field() {
    let ns = namespace("missing-field");
    // An image subscription without repoURL.
    let y = warehouse_yaml(&ns, "w", "      imageSelectionStrategy: SemVer\n");
    let out = kubectl_stdin(&["apply", "-f", "-"], &y);
    assert!(
        !out.ok,
        "an image subscription without repoURL was accepted"
    );
    assert!(
        out.stderr.contains("spec.subscriptions[0].image.repoURL"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Required value"), "{}", out.stderr);

    // A Stage with no requestedFreight.
    let y = format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata:\n  name: s\n  namespace: {ns}\nspec:\n  promotionTemplate:\n    spec:\n      steps:\n      - uses: git-clone\n"
    );
    let out = kubectl_stdin(&["apply", "-f", "-"], &y);
    assert!(!out.ok, "a Stage without requestedFreight was accepted");
    assert!(
        out.stderr.contains("spec.requestedFreight"),
        "{}",
        out.stderr
    );

    // A Promotion without a stage.
    let y = format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Promotion\nmetadata:\n  name: p\n  namespace: {ns}\nspec:\n  freight: abc\n"
    );
    let out = kubectl_stdin(&["apply", "-f", "-"], &y);
    assert!(!out.ok, "a Promotion without a stage was accepted");
    assert!(out.stderr.contains("spec.stage"), "{}", out.stderr);
}

fn freight_yaml(ns: &str, tag: &str) -> String {
    format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata:\n  name: f1\n  namespace: {ns}\n  labels:\n    kargo.akuity.io/alias: wonky-wombat\nalias: wonky-wombat\norigin:\n  kind: Warehouse\n  name: my-app\nimages:\n- repoURL: 123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app\n  tag: \"{tag}\"\n  digest: sha256:aaaa\n"
    )
}

#[test]
fn freight_artifacts_and_origin_are_immutable() {
    let ns = namespace("immutable");
    kubectl_stdin(&["create", "-f", "-"], &freight_yaml(&ns, "1006")).success("create freight");

    // Changing an image is refused by the API server itself, with a readable message.
    let out = kubectl_stdin(&["replace", "-f", "-"], &freight_yaml(&ns, "1007"));
    assert!(!out.ok, "changing a Freight image was accepted");
    assert!(
        out.stderr.to_lowercase().contains("immutable"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("images"), "{}", out.stderr);

    // So is removing them, adding commits, or changing the origin.
    for (patch, field) in [
        (r#"[{"op":"remove","path":"/images"}]"#, "images"),
        (
            r#"[{"op":"add","path":"/commits","value":[{"repoURL":"https://git.example.com/r.git","id":"abc"}]}]"#,
            "commits",
        ),
        (
            r#"[{"op":"replace","path":"/origin/name","value":"other"}]"#,
            "origin",
        ),
    ] {
        let out = kubectl(&[
            "patch",
            "freight",
            "f1",
            "-n",
            &ns,
            "--type=json",
            "-p",
            patch,
        ]);
        assert!(!out.ok, "patch {patch} was accepted");
        assert!(out.stderr.contains(field), "{patch}: {}", out.stderr);
        assert!(
            out.stderr.to_lowercase().contains("immutable"),
            "{}",
            out.stderr
        );
    }

    // The alias and status stay mutable, as in Kargo.
    merge_patch("freight", "f1", &ns, r#"{"alias":"calm-crab"}"#).success("alias change");
    merge_patch_status(
        "freight",
        "f1",
        &ns,
        r#"{"status":{"approvedFor":{"prod":{}}}}"#,
    )
    .success("status approval");
    let out = kubectl(&[
        "get",
        "freight",
        "f1",
        "-n",
        &ns,
        "-o",
        "jsonpath={.images[0].tag}",
    ])
    .success("get");
    assert_eq!(out.stdout, "1006");
}

fn columns(header: &str) -> Vec<String> {
    header
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn kubectl_get_prints_what_a_person_needs() {
    let ns = namespace("columns");
    kubectl_stdin(&["create", "-f", "-"], &freight_yaml(&ns, "1006")).success("freight");
    let y = format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata:\n  name: my-app\n  namespace: {ns}\nspec:\n  shard: eu\n  subscriptions:\n  - image:\n      repoURL: example.com/app\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata:\n  name: dev\n  namespace: {ns}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: my-app}}\n    sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps:\n      - uses: git-clone\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Promotion\nmetadata:\n  name: dev.01abc.f1\n  namespace: {ns}\nspec:\n  stage: dev\n  freight: f1\n  steps:\n  - uses: git-clone\n"
    );
    kubectl_stdin(&["apply", "-f", "-"], &y).success("objects");
    merge_patch_status("stage", "dev", &ns, r#"{"status":{"freightSummary":"f1","health":{"status":"Healthy"},"conditions":[{"type":"Ready","status":"True","reason":"Ready","message":"Stage is ready","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#)
    .success("stage status");
    merge_patch_status(
        "promotion",
        "dev.01abc.f1",
        &ns,
        r#"{"status":{"phase":"Succeeded"}}"#,
    )
    .success("promotion status");

    let table = |kind: &str| {
        let out = kubectl(&["get", kind, "-n", &ns]).success(&format!("get {kind}"));
        let mut lines = out.stdout.lines();
        let header = columns(lines.next().unwrap_or(""));
        let row = columns(lines.next().unwrap_or(""));
        (header, row)
    };

    let (h, r) = table("freight");
    assert_eq!(
        h,
        ["NAME", "ALIAS", "ORIGIN (KIND)", "ORIGIN (NAME)", "AGE"]
    );
    assert_eq!(r[..4], ["f1", "wonky-wombat", "Warehouse", "my-app"]);

    let (h, r) = table("stages");
    assert_eq!(
        h,
        [
            "NAME",
            "SHARD",
            "CURRENT FREIGHT",
            "HEALTH",
            "READY",
            "STATUS",
            "AGE"
        ]
    );
    assert_eq!(r[..5], ["dev", "f1", "Healthy", "True", "Stage is ready"]);

    let (h, r) = table("promotions");
    assert_eq!(h, ["NAME", "SHARD", "STAGE", "FREIGHT", "PHASE", "AGE"]);
    assert_eq!(r[..4], ["dev.01abc.f1", "dev", "f1", "Succeeded"]);

    let (h, r) = table("warehouses");
    assert_eq!(h, ["NAME", "SHARD", "AGE"]);
    assert_eq!(r[..2], ["my-app", "eu"]);
}
