//! kustomize itself must accept what `haul::yaml::set_images` writes: the golden kustomizations
//! are edited through the public API and rendered with `kubectl kustomize`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use haul::yaml::{ImageUpdate, set_images, set_values};
use serde_json::{Value, json};

const ECR: &str = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app";

fn fixture(name: &str) -> String {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "fixtures",
        "yaml",
        name,
    ]
    .iter()
    .collect();
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn write(dir: &Path, name: &str, content: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), content).unwrap();
}

/// `<root>/base` with a Deployment using image `my-app-service`, and the stub resources the
/// scenario overlay lists, in `<root>/overlays/<overlay>`.
fn layout(root: &Path, overlay: &str, kustomization: &str) -> PathBuf {
    let base = root.join("base");
    write(
        &base,
        "kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - deployment.yaml\n",
    );
    write(
        &base,
        "deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: my-app\nspec:\n  selector:\n    matchLabels: {app: my-app}\n  template:\n    metadata:\n      labels: {app: my-app}\n    spec:\n      containers:\n        - name: app\n          image: my-app-service\n",
    );
    let dir = root.join("overlays").join(overlay);
    let stub = |kind: &str, api: &str, name: &str| {
        format!("apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n")
    };
    write(
        &dir,
        "virtual-service.yml",
        &stub("VirtualService", "networking.istio.io/v1beta1", "my-app"),
    );
    write(
        &dir,
        "secret-store.yml",
        &stub("SecretStore", "external-secrets.io/v1beta1", "my-app"),
    );
    write(
        &dir,
        "external-secret.yml",
        &stub("ExternalSecret", "external-secrets.io/v1beta1", "my-app"),
    );
    write(
        &dir,
        "scaledobject.yaml",
        &stub("ScaledObject", "keda.sh/v1alpha1", "my-app"),
    );
    write(
        &dir,
        "vpa.yaml",
        &stub("VerticalPodAutoscaler", "autoscaling.k8s.io/v1", "my-app"),
    );
    write(
        &dir,
        "prod-env.yml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: my-app\nspec:\n  replicas: 3\n",
    );
    write(&dir, "kustomization.yaml", kustomization);
    dir
}

/// Renders `overlay` and returns the Deployment.
fn render_deployment(overlay: &Path) -> Value {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(overlay)
        .output()
        .expect("running kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&rendered).unwrap();
    docs.into_iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap_or_else(|| panic!("no Deployment in:\n{rendered}"))
}

fn promote_1006() -> ImageUpdate {
    ImageUpdate {
        name: "my-app-service".into(),
        new_name: Some(ECR.into()),
        new_tag: Some("1006".into()),
        digest: None,
    }
}

#[test]
fn kustomize_renders_the_promoted_image() {
    if !kubectl_available() {
        eprintln!("skipping: kubectl is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();

    // The scenario: existing images entry, plus the build-number annotation via yaml-update.
    let edited = set_images(
        &fixture("kustomization-scenario.before.yaml"),
        &[promote_1006()],
    )
    .unwrap();
    let edited = set_values(
        &edited,
        &[(
            "commonAnnotations.git-provider/build_number".into(),
            json!("1006"),
        )],
    )
    .unwrap();
    assert_eq!(edited, fixture("kustomization-scenario.after.yaml"));
    let deployment = render_deployment(&layout(tmp.path(), "prod", &edited));
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], json!(format!("{ECR}:1006")));
    assert_eq!(
        deployment["metadata"]["annotations"]["git-provider/build_number"],
        json!("1006")
    );
    assert_eq!(deployment["metadata"]["namespace"], json!("backend"));
    assert_eq!(deployment["spec"]["replicas"], json!(3));

    // A kustomization without `images`: the block haul appends must be valid too.
    let edited = set_images(
        &fixture("kustomization-no-images.before.yaml"),
        &[promote_1006()],
    )
    .unwrap();
    let deployment = render_deployment(&layout(tmp.path(), "staging", &edited));
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], json!(format!("{ECR}:1006")));

    // A digest next to the tag: kustomize 5 renders `repo:tag@digest`, which runtimes pull by
    // digest, so keeping newTag is harmless and keeps the tag readable.
    let digest = "sha256:0000000000000000000000000000000000000000000000000000000000001006";
    let pinned = set_images(
        &edited,
        &[ImageUpdate {
            name: "my-app-service".into(),
            digest: Some(digest.into()),
            ..Default::default()
        }],
    )
    .unwrap();
    let deployment = render_deployment(&layout(tmp.path(), "pinned", &pinned));
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], json!(format!("{ECR}:1006@{digest}")));
}
