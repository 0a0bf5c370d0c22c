//! The story of SCENARIO.md, end to end, with the manifests a user copies from
//! `examples/reference-pipeline/`: CI pushes image 1006 to ECR → the Warehouse (ECR through
//! IRSA) records Freight → dev is auto-promoted (commit in the GitOps repo) → Argo CD reports
//! dev healthy → the same Freight goes to uat → prod refuses Freight not verified in uat →
//! prod is promoted after uat verifies → one commit per promotion, each with a clean message.

mod support;

use std::process::Command;

use support::fixtures::{argocd_synced, promotion_yaml};
use support::gitops::seed_gitops;
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

/// What Argo CD does once it has synced `app` to the revision a Promotion asked for.
fn argocd_syncs(app: &str) {
    let a = get_json("application", app, "argocd").expect("application");
    let promotion = a["operation"]["info"]
        .as_array()
        .and_then(|i| i.iter().find(|e| e["name"] == "kargo.akuity.io/promotion"))
        .and_then(|e| e["value"].as_str())
        .expect("a sync requested by a Promotion");
    let revision = a["operation"]["sync"]["revision"]
        .as_str()
        .unwrap_or_default();
    argocd_synced("argocd", app, promotion, revision);
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

fn waiting_on_argocd(stage: &str) -> String {
    wait_for(
        60,
        &format!("the {stage} promotion to ask Argo CD to sync"),
        || {
            let p = promotion_of(stage)?;
            let steps = p["status"]["stepExecutionMetadata"].as_array()?;
            (steps.len() == 5 && steps[4]["status"] == "Running").then(|| {
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
        },
    )
}

fn verified_in(freight: &str, stage: &str) {
    wait_for(60, &format!("Freight to be verified in {stage}"), || {
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
    let (gitops, _) = seed_gitops("pipeline");
    let bare = s.bare_path(&gitops);
    let start = git(&bare, &["rev-parse", "gitops"]).trim().to_string();

    // 1. CI pushes build 1006 to ECR; the user applies the example manifests.
    let digest = ci_pushes("1006");
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

    // 4. Argo CD syncs dev and reports it healthy: the Freight is verified in dev.
    argocd_syncs("my-app-dev");
    wait_for(60, "dev promotion to succeed", || {
        (phase(&dev).as_deref() == Some("Succeeded")).then_some(())
    });
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
    argocd_syncs("my-app-uat");
    wait_for(60, "uat promotion", || {
        (phase("to-uat").as_deref() == Some("Succeeded")).then_some(())
    });
    verified_in(&name, "uat");
    promote("to-prod", "prod", &name);
    waiting_on_argocd("prod");
    argocd_syncs("my-app-prod");
    wait_for(60, "prod promotion", || {
        (phase("to-prod").as_deref() == Some("Succeeded")).then_some(())
    });
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
    wait_for(60, "prod to be ready", || {
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
