//! The Kargo objects the tests apply, as YAML (or, for what Argo CD writes, a status patch):
//! the parts every test writes the same way, with the few knobs tests vary.

use serde_json::{Value, json};

use super::merge_patch;
use super::services::services;

/// A Stage requesting Freight from one Warehouse.
pub struct Stage<'a> {
    pub ns: &'a str,
    pub name: &'a str,
    /// The Warehouse of `requestedFreight[0].origin`.
    pub warehouse: &'a str,
    /// The flow-style YAML map of `requestedFreight[0].sources`, e.g. `{direct: true}`.
    pub sources: &'a str,
    /// The body of `promotionTemplate.spec`, indented six spaces (`      steps:\n      - …`),
    /// e.g. a [`GitopsTemplate`].
    pub template: &'a str,
}

impl Stage<'_> {
    pub fn yaml(&self) -> String {
        let Self {
            ns,
            name,
            warehouse,
            sources,
            template,
        } = self;
        format!(
            r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: {name}
  namespace: {ns}
spec:
  requestedFreight:
  - origin: {{kind: Warehouse, name: {warehouse}}}
    sources: {sources}
  promotionTemplate:
    spec:
{template}"#
        )
    }
}

/// The reference promotion template: clone branch `gitops` of `repo_url` into ./src, set
/// `image` for the image named `image_name` in the kustomization at ./src/`overlay`, commit
/// (with the message kustomize-set-image proposes), push and, when `argocd_app` is set, ask
/// Argo CD to sync that Application to the commit.
pub struct GitopsTemplate<'a> {
    pub repo_url: &'a str,
    pub overlay: &'a str,
    pub image: &'a str,
    pub image_name: &'a str,
    /// (namespace, name) of the Application the last step, argocd-update, syncs.
    pub argocd_app: Option<(&'a str, &'a str)>,
}

impl GitopsTemplate<'_> {
    /// The template as the body of `promotionTemplate.spec` (see [`Stage::template`]).
    pub fn yaml(&self) -> String {
        let Self {
            repo_url,
            overlay,
            image,
            image_name,
            argocd_app,
        } = self;
        let argocd = argocd_app
            .map(|(app_ns, app)| {
                format!(
                    r#"      - uses: argocd-update
        config:
          apps:
          - name: {app}
            namespace: {app_ns}
            sources:
            - repoURL: {repo_url}
              desiredRevision: ${{{{ outputs.commit.commit }}}}
"#
                )
            })
            .unwrap_or_default();
        format!(
            r#"      steps:
      - uses: git-clone
        config:
          repoURL: "{repo_url}"
          checkout: [{{branch: gitops, path: ./src}}]
      - uses: kustomize-set-image
        as: set
        config:
          path: ./src/{overlay}
          images: [{{image: "{image}", name: {image_name}}}]
      - uses: git-commit
        as: commit
        config:
          path: ./src
          message: ${{{{ outputs.set.commitMessage }}}}
      - uses: git-push
        config: {{path: ./src}}
{argocd}"#
        )
    }
}

/// An Argo CD Application `name` deploying `path` of branch `gitops` of `repo_url`, which Stage
/// `stage` (of the same namespace) may update.
pub fn argocd_application_yaml(
    ns: &str,
    name: &str,
    stage: &str,
    repo_url: &str,
    path: &str,
) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {name}
  namespace: {ns}
  annotations:
    kargo.akuity.io/authorized-stage: {ns}:{stage}
spec:
  project: default
  source: {{repoURL: {repo_url}, targetRevision: gitops, path: {path}}}
  destination: {{server: https://kubernetes.default.svc, namespace: default}}
"#
    )
}

/// A git credentials Secret `name` for `repo_url` with the test git server's user and password.
pub fn git_credentials_secret(ns: &str, name: &str, repo_url: &str) -> String {
    git_credentials_secret_with_password(
        ns,
        name,
        repo_url,
        services().var("HAUL_TEST_GIT_PASSWORD"),
    )
}

/// As [`git_credentials_secret`], with another password.
pub fn git_credentials_secret_with_password(
    ns: &str,
    name: &str,
    repo_url: &str,
    password: &str,
) -> String {
    let user = services().var("HAUL_TEST_GIT_USER");
    format!(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: {name}
  namespace: {ns}
  labels:
    kargo.akuity.io/cred-type: git
stringData:
  repoURL: "{repo_url}"
  username: "{user}"
  password: '{password}'
"#
    )
}

/// A Promotion of Freight `freight` to Stage `stage`, as a person creates it.
pub fn promotion_yaml(ns: &str, name: &str, stage: &str, freight: &str) -> String {
    format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Promotion\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  stage: {stage}\n  freight: {freight}\n"
    )
}

/// What Argo CD writes to Application `app` once it has synced `revision` for Promotion
/// `promotion`: Synced and Healthy, assessed after the sync finished.
pub fn argocd_synced(ns: &str, app: &str, promotion: &str, revision: &str) {
    argocd_synced_with(
        ns,
        app,
        promotion,
        revision,
        json!({"status": "Healthy"}),
        "2030-01-01T00:00:10Z",
    );
}

/// What Argo CD writes to Application `app` once it has synced `revision` for Promotion
/// `promotion` (the operation's info as haul's sync request has it): the operation done (started :00, finished :05), the refresh done (annotation
/// removed), and `health` as assessed at `reconciled_at`.
pub fn argocd_synced_with(
    ns: &str,
    app: &str,
    promotion: &str,
    revision: &str,
    health: Value,
    reconciled_at: &str,
) {
    let patch = json!({
        "metadata": {"annotations": {"argocd.argoproj.io/refresh": null}},
        "operation": null,
        "status": {
            "health": health,
            "sync": {"status": "Synced", "revision": revision},
            "reconciledAt": reconciled_at,
            "operationState": {
                "phase": "Succeeded",
                "message": "successfully synced (all tasks run)",
                "startedAt": "2030-01-01T00:00:00Z",
                "finishedAt": "2030-01-01T00:00:05Z",
                "operation": {
                    "sync": {"revision": revision},
                    "initiatedBy": {"username": "haul-controller"},
                    "info": [
                        {"name": "Reason", "value": "Promotion triggered a sync of this Application resource."},
                        {"name": "kargo.akuity.io/promotion", "value": promotion}
                    ]
                },
                "syncResult": {"revision": revision}
            }
        }
    });
    merge_patch("application", app, ns, &patch.to_string()).success("argocd status");
}
