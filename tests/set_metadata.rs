//! set-metadata and the expression functions that read it (freightMetadata, stageMetadata),
//! end to end: a real control plane and a real `haul controller` process; and `haul
//! run-local`, which has no cluster and so refuses the step.

mod support;

use std::process::{Command, Stdio};

use support::fixtures::{Stage, promotion_yaml};
use support::{ControllerProcess, Outcome, get_json, kubectl_stdin, namespace, wait_for};

fn controller() -> &'static std::sync::Mutex<ControllerProcess> {
    static C: std::sync::OnceLock<std::sync::Mutex<ControllerProcess>> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let dir = support::cp().dir().join("work-set-metadata");
        std::sync::Mutex::new(ControllerProcess::start(&dir))
    })
}

fn freight_yaml(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata:\n  name: {name}\n  namespace: {ns}\norigin:\n  kind: Warehouse\n  name: my-app\nimages:\n- repoURL: example.com/my-app\n  tag: \"1.0.0\"\n  digest: sha256:1000\n"
    )
}

fn stage_yaml(ns: &str, name: &str, steps: &str) -> String {
    Stage {
        ns,
        name,
        warehouse: "my-app",
        sources: "{direct: true}",
        template: &format!("      steps:\n{steps}"),
    }
    .yaml()
}

/// Creates Promotion `name` and waits until it is terminal; returns its status.
fn promote(ns: &str, name: &str, stage: &str, freight: &str) -> serde_json::Value {
    kubectl_stdin(
        &["apply", "-f", "-"],
        &promotion_yaml(ns, name, stage, freight),
    )
    .success("create promotion");
    wait_for(90, &format!("Promotion {name} to finish"), || {
        let p = get_json("promotion", name, ns)?;
        let phase = p["status"]["phase"].as_str()?;
        ["Succeeded", "Failed", "Errored", "Aborted"]
            .contains(&phase)
            .then(|| p["status"].clone())
    })
}

const STEPS: &str = r#"      - uses: set-metadata
        as: set
        config:
          updates:
          - kind: Stage
            name: ${{ ctx.stage }}
            values:
              owner: team-a
              settings: {replicas: 3, regions: [eu, us]}
          - kind: Freight
            name: ${{ ctx.targetFreight.name }}
            values:
              promotedBy: ${{ ctx.promotion }}
              build: 42
      - uses: compose-output
        as: read
        config:
          build: ${{ freightMetadata(ctx.targetFreight.name, "build") }}
          owner: ${{ stageMetadata(ctx.stage).owner }}
          replicas: ${{ stageMetadata(ctx.stage).settings.replicas }}
          missing: ${{ freightMetadata(ctx.targetFreight.name, "nope") ?? "none" }}
"#;

#[test]
fn set_metadata_writes_status_and_later_steps_read_it() {
    let _ = controller();
    let ns = namespace("set-metadata");
    kubectl_stdin(&["apply", "-f", "-"], &freight_yaml(&ns, "f1")).success("freight");
    kubectl_stdin(&["apply", "-f", "-"], &stage_yaml(&ns, "dev", STEPS)).success("stage");
    // A key set before the promotion is kept; a key the step names is replaced whole.
    support::merge_patch_status(
        "freight",
        "f1",
        &ns,
        r#"{"status":{"metadata":{"kept":"yes","build":{"old":true}}}}"#,
    )
    .success("seed freight metadata");

    let status = promote(&ns, "p1", "dev", "f1");
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    assert_eq!(
        status["state"]["read"],
        serde_json::json!({"build": 42, "owner": "team-a", "replicas": 3, "missing": "none"}),
        "{status:#}"
    );

    let stage = get_json("stage", "dev", &ns).expect("stage");
    assert_eq!(stage["status"]["metadata"]["owner"], "team-a", "{stage:#}");
    assert_eq!(
        stage["status"]["metadata"]["settings"],
        serde_json::json!({"replicas": 3, "regions": ["eu", "us"]}),
        "{stage:#}"
    );
    let freight = get_json("freight", "f1", &ns).expect("freight");
    let meta = &freight["status"]["metadata"];
    assert_eq!(meta["kept"], "yes", "{freight:#}");
    assert_eq!(meta["build"], 42, "{freight:#}");
    assert_eq!(meta["promotedBy"], "p1", "{freight:#}");
}

#[test]
fn unknown_kinds_and_missing_objects_fail_naming_the_update() {
    let _ = controller();
    let ns = namespace("set-metadata-bad");
    kubectl_stdin(&["apply", "-f", "-"], &freight_yaml(&ns, "f2")).success("freight");
    let cases = [
        (
            "missing",
            "          - {kind: Stage, name: \"${{ ctx.stage }}\", values: {a: 1}}\n          - {kind: Freight, name: no-such-freight, values: {a: 1}}\n",
            vec!["config.updates[1]", "\"no-such-freight\"", "not found"],
        ),
        (
            "kind",
            "          - {kind: Warehouse, name: my-app, values: {a: 1}}\n",
            vec!["config.updates[0].kind", "Warehouse"],
        ),
    ];
    for (name, updates, parts) in cases {
        let steps =
            format!("      - uses: set-metadata\n        config:\n          updates:\n{updates}");
        kubectl_stdin(&["apply", "-f", "-"], &stage_yaml(&ns, name, &steps)).success("stage");
        let status = promote(&ns, &format!("p-{name}"), name, "f2");
        assert_eq!(status["phase"], "Failed", "{name}: {status:#}");
        let message = status["message"].as_str().unwrap_or_default();
        for part in parts {
            assert!(message.contains(part), "{name}: {part:?} in {message}");
        }
    }
}

#[test]
fn run_local_refuses_set_metadata_for_want_of_a_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let steps = "      - uses: set-metadata\n        config:\n          updates:\n          - {kind: Stage, name: uat, values: {a: 1}}\n";
    let stage = dir.path().join("stage.yaml");
    std::fs::write(&stage, stage_yaml("my-app", "uat", steps)).expect("stage file");
    let freight = dir.path().join("freight.yaml");
    std::fs::write(&freight, freight_yaml("my-app", "f3")).expect("freight file");
    let out = Command::new(env!("CARGO_BIN_EXE_haul"))
        .arg("run-local")
        .arg("--stage-file")
        .arg(&stage)
        .arg("--freight-file")
        .arg(&freight)
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .env_remove("HAUL_GIT_USERNAME")
        .env_remove("HAUL_GIT_PASSWORD")
        .stdin(Stdio::null())
        .output()
        .expect("haul runs");
    let run = Outcome::from(out);
    let all = format!("{}\n{}", run.stdout, run.stderr);
    assert!(!run.ok, "{all}");
    assert!(all.contains("set-metadata needs a cluster"), "{all}");
}
