//! The story of SCENARIO.md, end to end, with the manifests a user copies from
//! `examples/reference-pipeline/`: CI pushes image 1006 to ECR → the Warehouse (ECR through
//! IRSA) records Freight → dev is auto-promoted (commit in the GitOps repo) → Argo CD syncs dev
//! to that commit and reports it healthy → the same Freight goes to uat → prod refuses Freight
//! not verified in uat → prod is promoted after uat verifies → one commit per promotion, each
//! with a clean message.
//!
//! Argo CD is the real one (`haul_testenv::ArgoCd`, as in `tests/argocd_real.rs`): nothing here
//! writes an Application's status. The GitOps repo is `seed_gitops_for_argocd`'s, whose overlays
//! deploy what syncs Healthy without nodes (a suspended CronJob, ConfigMaps) into `backend`.
//! As in the example, all three Applications deploy the same objects into that one namespace of
//! one cluster, so each Stage's sync takes them over: each is checked right after its sync.

mod support;

use std::process::Command;

use haul_testenv::argocd::repository_secret_yaml;
use support::argocd::{argocd, wait_argo};
use support::fixtures::promotion_yaml;
use support::gitops::seed_gitops_for_argocd;
use support::services::services;
use support::{ControllerProcess, get_json, git, kubectl, kubectl_stdin, wait_for};

const ECR: &str = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app";
const CODECOMMIT: &str =
    "https://git-codecommit.eu-central-1.amazonaws.com/v1/repos/my-gitops-repo";

/// CI pushing an image to ECR (moto), with a real manifest digest.
fn ci_pushes(tag: &str) -> String {
    let s = services();
    let py = support::tools_dir().join("venv/bin/python");
    let script = r#"
import boto3, hashlib, json, sys
ecr = boto3.client("ecr", endpoint_url=sys.argv[1], region_name="eu-central-1",
                   aws_access_key_id="x", aws_secret_access_key="x")
try:
    ecr.create_repository(repositoryName="my-app")
except ecr.exceptions.RepositoryAlreadyExistsException:
    pass
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + "c" * 64, "size": 2},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + hashlib.sha256(sys.argv[2].encode()).hexdigest(), "size": 1}]})
d = "sha256:" + hashlib.sha256(m.encode()).hexdigest()
ecr.put_image(repositoryName="my-app", imageManifest=m, imageTag=sys.argv[2], imageDigest=d)
print(d)
"#;
    let out = Command::new(py)
        .args(["-c", script, s.var("HAUL_TEST_MOTO_URL"), tag])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The example manifests, pointed at the test git server instead of CodeCommit.
fn example_manifests(gitops: &str) -> String {
    let s = services();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/reference-pipeline");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("examples")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("read"))
        .collect::<Vec<_>>()
        .join("\n---\n")
        .replace(CODECOMMIT, gitops)
        .replace("my-codecommit-https-username", s.var("HAUL_TEST_GIT_USER"))
        .replace(
            "password: my-codecommit-https-password",
            &format!("password: '{}'", s.var("HAUL_TEST_GIT_PASSWORD")),
        )
}

/// Argo CD has synced `app` to exactly `commit` for `promotion`, and its comparison since (the
/// branch head is that commit) finds the Application Synced and Healthy.
fn argocd_synced_to(app: &str, promotion: &str, commit: &str) {
    let a = wait_argo(&format!("Argo CD to sync {app} to {commit}"), || {
        let a = get_json("application", app, "argocd")?;
        let st = &a["status"];
        (st["operationState"]["phase"] == "Succeeded"
            && st["operationState"]["syncResult"]["revision"] == commit
            && st["sync"]["revision"] == commit
            && st["sync"]["status"] == "Synced"
            && st["health"]["status"] == "Healthy")
            .then_some(a)
    });
    let op = &a["status"]["operationState"]["operation"];
    assert!(
        op["info"].as_array().is_some_and(|i| i
            .iter()
            .any(|e| e["name"] == "kargo.akuity.io/promotion" && e["value"] == promotion)),
        "the sync was not the Promotion's: {op:#}"
    );
    // What Argo CD deployed into `backend` carries the image the Promotion set.
    let cj = get_json("cronjob", "my-app", "backend").expect("the CronJob Argo CD applied");
    assert_eq!(
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("{ECR}:1006").as_str()
    );
}

/// The Stage's health is Argo CD's: Healthy, its Healthy condition naming the Application.
fn stage_healthy_from_argocd(stage: &str, app: &str) {
    let healthy = wait_argo(&format!("{stage} to be Healthy"), || {
        let st = get_json("stage", stage, "my-app")?;
        if st["status"]["health"]["status"] != "Healthy" {
            return None;
        }
        st["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Healthy")
            .cloned()
    });
    assert_eq!(healthy["status"], "True", "{healthy:#}");
    let message = healthy["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("argocd/{app}")), "{healthy:#}");
}

fn promotion_of(stage: &str) -> Option<serde_json::Value> {
    let out = kubectl(&["get", "promotions", "-n", "my-app", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
    v["items"]
        .as_array()?
        .iter()
        .filter(|p| p["spec"]["stage"] == stage)
        .max_by_key(|p| {
            p["metadata"]["creationTimestamp"]
                .as_str()
                .map(str::to_string)
        })
        .cloned()
}

/// The name of `stage`'s Promotion once it reached argocd-update (Argo CD may finish the sync
/// before this looks, so the step may already have succeeded).
fn waiting_on_argocd(stage: &str) -> String {
    wait_argo(
        &format!("the {stage} promotion to ask Argo CD to sync"),
        || {
            let p = promotion_of(stage)?;
            let steps = p["status"]["stepExecutionMetadata"].as_array()?;
            let asked = steps.len() == 5
                && matches!(steps[4]["status"].as_str(), Some("Running" | "Succeeded"));
            asked.then(|| {
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
        },
    )
}

fn verified_in(freight: &str, stage: &str) {
    wait_argo(&format!("Freight to be verified in {stage}"), || {
        let f = get_json("freight", freight, "my-app")?;
        f["status"]["verifiedIn"][stage].is_object().then_some(())
    });
}

fn promote(name: &str, stage: &str, freight: &str) {
    kubectl_stdin(
        &["apply", "-f", "-"],
        &promotion_yaml("my-app", name, stage, freight),
    )
    .success("promote");
}

fn phase(name: &str) -> Option<String> {
    get_json("promotion", name, "my-app")?["status"]["phase"]
        .as_str()
        .map(str::to_string)
}

#[test]
fn ecr_to_dev_uat_prod() {
    let s = services();
    let _ = argocd();
    let token = support::cp().dir().join("irsa-token");
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln").expect("token");
    let token = token.display().to_string();
    let _controller = ControllerProcess::start_with_env(
        &support::cp().dir().join("work"),
        &[
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/haul"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", &token),
            ("AWS_REGION", "eu-central-1"),
            ("AWS_ENDPOINT_URL", s.var("HAUL_TEST_MOTO_URL")),
        ],
    );
    let (gitops, _) = seed_gitops_for_argocd("pipeline");
    let bare = s.bare_path(&gitops);
    let start = git(&bare, &["rev-parse", "gitops"]).trim().to_string();

    // 1. CI pushes build 1006 to ECR; the user applies the example manifests, with the
    // namespace the Applications deploy into and Argo CD's credentials for the GitOps repo.
    let digest = ci_pushes("1006");
    kubectl(&["create", "namespace", "backend"]).success("create namespace backend");
    kubectl_stdin(
        &["apply", "-f", "-"],
        &repository_secret_yaml(
            "my-gitops-repo",
            &gitops,
            s.var("HAUL_TEST_GIT_USER"),
            s.var("HAUL_TEST_GIT_PASSWORD"),
        ),
    )
    .success("apply the repository Secret");
    kubectl_stdin(&["apply", "-f", "-"], &example_manifests(&gitops)).success("apply examples");

    // 2. The Warehouse records Freight for it.
    let freight = wait_for(60, "Freight for build 1006", || {
        let out = kubectl(&["get", "freight", "-n", "my-app", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
        v["items"]
            .as_array()?
            .iter()
            .find(|f| f["images"][0]["tag"] == "1006")
            .cloned()
    });
    let name = freight["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    assert_eq!(freight["images"][0]["digest"], digest.as_str());
    let out = kubectl(&["get", "freight", "-n", "my-app"]).success("get freight");
    assert!(
        out.stdout
            .contains(freight["alias"].as_str().unwrap_or("?")),
        "{}",
        out.stdout
    );

    // 3. dev is auto-promoted, by the controller, and asks Argo CD to sync.
    let dev = waiting_on_argocd("dev");
    let p = get_json("promotion", &dev, "my-app").expect("dev promotion");
    assert_eq!(
        p["metadata"]["annotations"]["kargo.akuity.io/create-actor"],
        "controller:haul-controller"
    );
    let after_dev = git(&bare, &["rev-parse", "gitops"]).trim().to_string();
    let files = git(&bare, &["diff", "--name-only", &start, &after_dev]);
    assert_eq!(
        files.trim(),
        "apps/my-app-service1/env/dev/kustomization.yaml"
    );
    let k = git(
        &bare,
        &[
            "show",
            &format!("{after_dev}:apps/my-app-service1/env/dev/kustomization.yaml"),
        ],
    );
    assert!(
        k.contains(&format!(
            "images:\n  - name: my-app-service\n    newName: {ECR}\n    newTag: \"1006\"\n"
        )),
        "{k}"
    );

    // 4. Argo CD syncs dev to that commit and reports it healthy: the Freight is verified in
    // dev.
    argocd_synced_to("my-app-dev", &dev, &after_dev);
    wait_argo("dev promotion to succeed", || {
        (phase(&dev).as_deref() == Some("Succeeded")).then_some(())
    });
    stage_healthy_from_argocd("dev", "my-app-dev");
    verified_in(&name, "dev");

    // 5. prod refuses Freight that has not passed uat, and nothing is pushed.
    promote("prod-too-early", "prod", &name);
    wait_for(30, "prod to refuse", || {
        (phase("prod-too-early").as_deref() == Some("Failed")).then_some(())
    });
    let p = get_json("promotion", "prod-too-early", "my-app").expect("p");
    let message = p["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("not verified in uat"), "{message}");
    assert_eq!(git(&bare, &["rev-parse", "gitops"]).trim(), after_dev);

    // 6. The release manager promotes the same Freight (same digest) to uat, then prod.
    promote("to-uat", "uat", &name);
    waiting_on_argocd("uat");
    let after_uat = git(&bare, &["rev-parse", "gitops"]).trim().to_string();
    argocd_synced_to("my-app-uat", "to-uat", &after_uat);
    wait_argo("uat promotion", || {
        (phase("to-uat").as_deref() == Some("Succeeded")).then_some(())
    });
    stage_healthy_from_argocd("uat", "my-app-uat");
    verified_in(&name, "uat");
    promote("to-prod", "prod", &name);
    waiting_on_argocd("prod");
    let after_prod = git(&bare, &["rev-parse", "gitops"]).trim().to_string();
    argocd_synced_to("my-app-prod", "to-prod", &after_prod);
    wait_argo("prod promotion", || {
        (phase("to-prod").as_deref() == Some("Succeeded")).then_some(())
    });
    verified_in(&name, "prod");
    for p in [dev.as_str(), "to-uat", "to-prod"] {
        let p = get_json("promotion", p, "my-app").expect("promotion");
        assert_eq!(
            p["status"]["freight"]["images"][0]["digest"],
            digest.as_str()
        );
    }

    // 7. git log: one commit per promotion, each with a clean message.
    let end = git(&bare, &["rev-parse", "gitops"]).trim().to_string();
    let subjects = git(
        &bare,
        &[
            "log",
            "--reverse",
            "--format=%s",
            &format!("{start}..{end}"),
        ],
    );
    let subjects: Vec<&str> = subjects.lines().collect();
    assert_eq!(
        subjects,
        [
            "Updated ./src/apps/my-app-service1/env/dev to use new image",
            "Updated ./src/apps/my-app-service1/env/uat to use new image",
            "Updated ./src/apps/my-app-service1/env/prod to use new image",
        ]
    );
    wait_argo("prod to be ready", || {
        let st = get_json("stage", "prod", "my-app")?;
        (st["status"]["freightSummary"] == name.as_str()
            && st["status"]["health"]["status"] == "Healthy")
            .then_some(())
    });
    let out = kubectl(&["get", "stages", "-n", "my-app"]).success("get stages");
    assert!(
        out.stdout.lines().filter(|l| l.contains(&name)).count() == 3,
        "{}",
        out.stdout
    );
}
