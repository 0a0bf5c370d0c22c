//! `haul quickstart`: the reference pipeline on this machine, with nothing but the repository.
//!
//! It starts a real control plane (etcd + kube-apiserver, as the tests do), moto's ECR with
//! IRSA-style environment variables, a git server holding a sample GitOps monorepo, the haul
//! controller, a real Argo CD (application-controller, repo-server and Redis, built once from the
//! Go module proxy like the tests' one; [`haul_testenv::ArgoCd`]), and applies
//! `examples/reference-pipeline/`: Argo CD syncs what haul pushes into the same API server.
//! No nodes run, so the sample workloads are suspended CronJobs (Healthy to Argo CD) rather
//! than Deployments (which would stay Progressing). `--argocd-stand-in` replaces Argo CD with a
//! small, clearly-labelled stand-in that marks an Application synced and healthy once a
//! Promotion asks it to sync.
//!
//! With `--pull-requests` the GitOps repository lives on a local Gitea instead (built once from
//! the Go module proxy, like the tests' one), and prod promotes through a pull request that a
//! person merges: the example's prod steps are rewritten to push a generated branch, open a pull
//! request against `gitops` and wait for its merge ([`pull_request_prod`]).

pub mod command;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kube::api::{Api, ListParams, Patch, PatchParams};
use sha2::Digest;

use crate::api::argocd::Application;
use haul_testenv::{ArgoCd, ControlPlane, Gitea, Services};

const ECR: &str = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app";
const CODECOMMIT: &str =
    "https://git-codecommit.eu-central-1.amazonaws.com/v1/repos/my-gitops-repo";

#[derive(Debug, thiserror::Error)]
pub enum QuickstartError {
    #[error("{0}")]
    Step(String),
    #[error("control plane: {0}")]
    ControlPlane(#[from] haul_testenv::EnvtestError),
    #[error("side services: {0}")]
    Services(#[from] haul_testenv::ServicesError),
    #[error("gitea: {0}")]
    Gitea(#[from] haul_testenv::GiteaError),
}

fn step(msg: &str) {
    eprintln!("==> {msg}");
}

fn fail(what: &str, e: impl std::fmt::Display) -> QuickstartError {
    QuickstartError::Step(format!("{what}: {e}"))
}

fn repo_root() -> PathBuf {
    haul_testenv::repo_root()
}

fn run(cmd: &mut Command, what: &str) -> Result<String, QuickstartError> {
    let out = cmd.output().map_err(|e| fail(what, e))?;
    if !out.status.success() {
        return Err(fail(what, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Everything the quickstart started; dropping it stops the services (the control plane
/// stops itself when dropped).
pub struct Environment {
    pub control_plane: ControlPlane,
    pub services: Services,
    pub gitops_url: String,
    /// The Gitea hosting the GitOps repository (`--pull-requests`); stopped when dropped.
    pub gitea: Option<Gitea>,
    /// The real Argo CD, unless the stand-in was asked for; stopped when dropped.
    pub argocd: Option<ArgoCd>,
}

/// The Gitea repository of the GitOps monorepo (`--pull-requests`): owner and name.
pub const GITEA_REPO: &str = "my-gitops-repo";

impl Environment {
    /// A variable of the side services' env file (`HAUL_TEST_*`), empty when absent.
    pub fn var(&self, k: &str) -> String {
        self.services.get(k).map(str::to_string).unwrap_or_default()
    }

    /// The user and password of the GitOps repository: Gitea's admin and its access token
    /// (which also authorises the pull-request API), or the git server's user.
    pub fn git_credentials(&self) -> (String, String) {
        match &self.gitea {
            Some(g) => (g.username().to_string(), g.token().to_string()),
            None => (
                self.var("HAUL_TEST_GIT_USER"),
                self.var("HAUL_TEST_GIT_PASSWORD"),
            ),
        }
    }

    /// The bare repository on disk behind [`Environment::gitops_url`], for `git log`.
    pub fn gitops_bare_repo(&self) -> PathBuf {
        match &self.gitea {
            Some(g) => g
                .dir()
                .join("repos")
                .join(g.username())
                .join(format!("{GITEA_REPO}.git")),
            None => Path::new(&self.var("HAUL_TEST_GIT_ROOT")).join("my-gitops-repo.git"),
        }
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        drop(self.argocd.take());
        // Gitea may take its few seconds of graceful shutdown while the services stop.
        let gitea = self
            .gitea
            .take()
            .map(|g| std::thread::spawn(move || drop(g)));
        if let Err(e) = self.services.stop() {
            eprintln!("stopping the side services: {e}");
        }
        if let Some(g) = gitea {
            let _ = g.join();
        }
    }
}

/// Starts everything and prepares the sample repository, on a Gitea when `pull_requests`, with
/// a real Argo CD unless `argocd_stand_in`. Blocking; call before the runtime.
pub fn prepare(
    state: &Path,
    pull_requests: bool,
    argocd_stand_in: bool,
) -> Result<Environment, QuickstartError> {
    let t0 = Instant::now();
    std::fs::create_dir_all(state).map_err(|e| fail("creating the state directory", e))?;
    step("installing what the local environment needs (once; apt, a Python venv for moto)");
    haul_testenv::services::install()?;
    // The Argo CD build (first run only) is the longest step: it runs while the rest starts.
    let argocd_build = (!argocd_stand_in).then(|| {
        step("building Argo CD in the background (first run only; 10-25 min on 2 cores)");
        std::thread::spawn(haul_testenv::argocd::locate)
    });
    let gitea = if pull_requests {
        step("starting Gitea (the first run builds it from the Go module proxy, 4-9 min)");
        let gitea = Gitea::start(&state.join("gitea"))?;
        eprintln!(
            "    gitea at {} ({:.1}s)",
            gitea.url(),
            gitea.started_in().as_secs_f64()
        );
        Some(gitea)
    } else {
        None
    };
    step("starting the control plane (etcd + kube-apiserver; the first run builds them, ~3 min)");
    let cp = ControlPlane::start(&crate::crds::local_cluster_crds())?;
    eprintln!(
        "    kube-apiserver at {} ({:.1}s)",
        cp.server(),
        cp.started_in().as_secs_f64()
    );
    step("starting moto (ECR + STS), the git server and registries");
    // Short path: the git server's socket path must fit in sun_path.
    let services = Services::start(&PathBuf::from(format!(
        "/tmp/haul-qs-{}",
        std::process::id()
    )))?;
    step("creating the GitOps monorepo (apps/my-app-service1, apps/my-app-service2)");
    let url = match &gitea {
        Some(g) => g.create_repo(GITEA_REPO)?,
        None => services.new_repo("my-gitops-repo")?,
    };
    let mut env = Environment {
        control_plane: cp,
        services,
        gitops_url: url,
        gitea,
        argocd: None,
    };
    let (user, password) = env.git_credentials();
    seed_repo(&env.gitops_url, &user, &password, state)?;
    if let Some(build) = argocd_build {
        wait_for_build(build)?;
        step("starting Argo CD (application-controller, repo-server, Redis)");
        let argocd = ArgoCd::start(&env.control_plane, &state.join("argocd"))?;
        eprintln!(
            "    argo cd ready ({:.1}s); logs: {} and {}",
            argocd.started_in().as_secs_f64(),
            argocd.controller_log().display(),
            argocd.repo_server_log().display()
        );
        env.argocd = Some(argocd);
        argocd_setup(&env, &user, &password)?;
    }
    eprintln!("    ready in {:.1}s", t0.elapsed().as_secs_f64());
    Ok(env)
}

/// Waits for the background Argo CD build, saying every 30 s that it still runs.
fn wait_for_build(
    build: std::thread::JoinHandle<Result<PathBuf, haul_testenv::EnvtestError>>,
) -> Result<(), QuickstartError> {
    let t0 = Instant::now();
    let mut said = Instant::now();
    while !build.is_finished() {
        if said.elapsed() >= Duration::from_secs(30) {
            eprintln!(
                "    still building Argo CD ({}s so far; cached afterwards)",
                t0.elapsed().as_secs()
            );
            said = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    build
        .join()
        .map_err(|_| fail("building Argo CD", "the build thread panicked"))?
        .map_err(|e| fail("building Argo CD", e))?;
    Ok(())
}

/// What a user sets up for Argo CD: a repository Secret with the GitOps repository's
/// credentials, and the namespace the Applications deploy into.
fn argocd_setup(env: &Environment, user: &str, password: &str) -> Result<(), QuickstartError> {
    let manifests = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: backend}}\n---\n{}",
        haul_testenv::argocd::repository_secret_yaml(
            "my-gitops-repo",
            &env.gitops_url,
            user,
            password
        )
    );
    let mut apply = Command::new("kubectl")
        .env("KUBECONFIG", env.control_plane.kubeconfig())
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| fail("kubectl apply of Argo CD's repository Secret", e))?;
    if let Some(mut stdin) = apply.stdin.take() {
        use std::io::Write;
        stdin
            .write_all(manifests.as_bytes())
            .map_err(|e| fail("kubectl apply of Argo CD's repository Secret", e))?;
    }
    let out = apply
        .wait_with_output()
        .map_err(|e| fail("kubectl apply of Argo CD's repository Secret", e))?;
    if !out.status.success() {
        return Err(fail(
            "kubectl apply of Argo CD's repository Secret",
            String::from_utf8_lossy(&out.stderr).trim(),
        ));
    }
    Ok(())
}

fn seed_repo(url: &str, user: &str, password: &str, state: &Path) -> Result<(), QuickstartError> {
    let work = state.join("seed");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| fail("seed dir", e))?;
    let write = |p: &str, body: &str| -> Result<(), QuickstartError> {
        let path = work.join(p);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail("seed dir", e))?;
        }
        std::fs::write(&path, body).map_err(|e| fail("seed file", e))
    };
    for svc in ["my-app-service1", "my-app-service2"] {
        write(
            &format!("apps/{svc}/base/kustomization.yaml"),
            "resources:\n  - cronjob.yaml\n",
        )?;
        // Suspended: no nodes run here, and Argo CD counts a suspended CronJob Healthy (a
        // Deployment would stay Progressing and dev would never be verified).
        write(
            &format!("apps/{svc}/base/cronjob.yaml"),
            &format!(
                "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: {svc}\nspec:\n  schedule: \"0 3 * * *\"\n  suspend: true\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers:\n            - name: app\n              image: my-app-service\n"
            ),
        )?;
        for env in ["dev", "uat", "prod"] {
            write(
                &format!("apps/{svc}/env/{env}/kustomization.yaml"),
                &format!(
                    "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: backend\ncommonLabels:\n  env: {env}\nresources:\n  - ../../base\nimages:\n  - name: my-app-service\n    newName: {ECR}\n    newTag: \"1000\"\n"
                ),
            )?;
        }
    }
    let encoded = password
        .replace('%', "%25")
        .replace('@', "%40")
        .replace(' ', "%20");
    let auth_url = url.replacen("http://", &format!("http://{user}:{encoded}@"), 1);
    let git = |args: &[&str]| -> Result<String, QuickstartError> {
        run(
            Command::new("git")
                .current_dir(&work)
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .args([
                    "-c",
                    "user.name=platform-team",
                    "-c",
                    "user.email=platform@example.com",
                ])
                .args(args),
            "git",
        )
    };
    git(&["init", "-q", "-b", "gitops"])?;
    git(&["add", "-A"])?;
    git(&["commit", "-q", "-m", "Initial GitOps layout"])?;
    git(&["push", "-q", &auth_url, "gitops"])?;
    Ok(())
}

/// docs/authorization.md's recipe, for the quickstart's "who may promote where" example: the
/// group `developers` reads the project and promotes to dev and uat, not to prod.
pub const DEVELOPERS_ROLE: &str = r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: promote-dev-uat, namespace: my-app}
rules:
  - apiGroups: ["kargo.akuity.io"]
    resources: ["stages"]
    resourceNames: ["dev", "uat"]
    verbs: ["promote"]
  - apiGroups: ["kargo.akuity.io"]
    resources: ["promotions"]
    verbs: ["create"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: developers-promote, namespace: my-app}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: promote-dev-uat}
subjects:
  - {kind: Group, name: developers, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: developers-view, namespace: my-app}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: haul-viewer}
subjects:
  - {kind: Group, name: developers, apiGroup: rbac.authorization.k8s.io}
"#;

/// The identity the chart's admission policies expect the controller to run as: the
/// ServiceAccount of a release `haul` in namespace `haul`.
pub const CONTROLLER_USER: &str = "system:serviceaccount:haul:haul";

/// Installs, as the chart would, the controller's ClusterRole and binding, the user
/// ClusterRoles and haul's admission policies (rendered by the real helm from `charts/haul`), and returns a client for the
/// controller that authenticates as [`CONTROLLER_USER`] (a client certificate for that
/// username; RBAC binds a ServiceAccount subject by username). So the quickstart's controller
/// runs with exactly the chart's permissions and its auto-promotions pass the policies.
pub async fn controller_client(env: &Environment) -> Result<kube::Client, QuickstartError> {
    let helm = haul_testenv::services::tools_dir()?.join("bin/helm");
    let home = tempfile::tempdir().map_err(|e| fail("a temporary directory for helm", e))?;
    let h = home.path();
    let rendered = run(
        Command::new(&helm)
            .args(["template", "haul", "charts/haul", "--namespace", "haul"])
            .current_dir(repo_root())
            .env("HOME", h)
            .env("HELM_CACHE_HOME", h.join("cache"))
            .env("HELM_CONFIG_HOME", h.join("config"))
            .env("HELM_DATA_HOME", h.join("data"))
            .env("KUBECONFIG", h.join("no-kubeconfig")),
        "rendering charts/haul with helm",
    )?;
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&rendered).map_err(|e| fail("reading helm's output", e))?;
    let items: Vec<serde_json::Value> = docs
        .into_iter()
        .filter(|d| match d["kind"].as_str() {
            Some("ClusterRoleBinding") => d["metadata"]["name"] == "haul-controller",
            // The controller's own, and the user roles each project's kargo-admin,
            // kargo-promoter and kargo-viewer ServiceAccounts are bound to.
            Some("ClusterRole") => matches!(
                d["metadata"]["name"].as_str(),
                Some("haul-controller" | "haul-admin" | "haul-promoter" | "haul-viewer")
            ),
            Some("ValidatingAdmissionPolicy" | "ValidatingAdmissionPolicyBinding") => true,
            _ => false,
        })
        .collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    let mut apply = Command::new("kubectl")
        .env("KUBECONFIG", env.control_plane.kubeconfig())
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| fail("kubectl apply of the chart's RBAC and policies", e))?;
    if let Some(mut stdin) = apply.stdin.take() {
        use std::io::Write;
        stdin
            .write_all(list.to_string().as_bytes())
            .map_err(|e| fail("kubectl apply of the chart's RBAC and policies", e))?;
    }
    let out = apply
        .wait_with_output()
        .map_err(|e| fail("kubectl apply of the chart's RBAC and policies", e))?;
    if !out.status.success() {
        return Err(fail(
            "kubectl apply of the chart's RBAC and policies",
            String::from_utf8_lossy(&out.stderr).trim(),
        ));
    }
    let kubeconfig = env
        .control_plane
        .user_kubeconfig(CONTROLLER_USER, Some("system:serviceaccounts"))?;
    Ok(haul_testenv::client_from(&kubeconfig).await?)
}

/// Pushes an image tag to moto's ECR repository `my-app`, as CI would.
pub async fn push_ecr_image(moto: &str, tag: &str) -> Result<String, QuickstartError> {
    let creds =
        aws_sdk_ecr::config::Credentials::new("quickstart", "quickstart", None, None, "quickstart");
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto)
        .region(aws_config::Region::new("eu-central-1"))
        .credentials_provider(creds)
        .load()
        .await;
    let ecr = aws_sdk_ecr::Client::new(&conf);
    let _ = ecr
        .create_repository()
        .repository_name("my-app")
        .send()
        .await;
    let hex = |b: &[u8]| -> String {
        sha2::Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    let layer = format!("sha256:{}", hex(tag.as_bytes()));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{}", "c".repeat(64)), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 1}],
    })
    .to_string();
    let digest = format!("sha256:{}", hex(manifest.as_bytes()));
    ecr.put_image()
        .repository_name("my-app")
        .image_manifest(manifest)
        .image_tag(tag)
        .image_digest(&digest)
        .send()
        .await
        .map_err(|e| {
            fail(
                "pushing the image to ECR",
                aws_sdk_ecr::error::DisplayErrorContext(e),
            )
        })?;
    Ok(digest)
}

/// The example manifests, pointed at the local git server.
pub fn example_manifests(env: &Environment) -> Result<String, QuickstartError> {
    let dir = repo_root().join("examples/reference-pipeline");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| fail("reading examples", e))?
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut all = Vec::new();
    for f in files {
        all.push(std::fs::read_to_string(&f).map_err(|e| fail("reading examples", e))?);
    }
    let (user, password) = env.git_credentials();
    let manifests = all
        .join("\n---\n")
        .replace(CODECOMMIT, &env.gitops_url)
        .replace("my-codecommit-https-username", &user)
        .replace(
            "password: my-codecommit-https-password",
            &format!("password: '{password}'"),
        );
    if env.gitea.is_some() {
        pull_request_prod(&manifests)
    } else {
        Ok(manifests)
    }
}

/// Rewrites the prod Stage of `manifests` (YAML documents) so that prod promotes through a pull
/// request: its git-push pushes a generated branch, git-open-pr opens a pull request from it to
/// the branch the Stage clones (`gitops`), git-wait-for-pr waits (every 5 s) for someone to merge
/// it, and argocd-update syncs to the merge commit. The other documents are unchanged (re-emitted
/// as YAML, without their comments).
pub fn pull_request_prod(manifests: &str) -> Result<String, QuickstartError> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(manifests)
        .map_err(|e| fail("reading the example manifests", e))?;
    let mut out = Vec::new();
    let mut rewritten = false;
    for mut doc in docs.into_iter().filter(|d| !d.is_null()) {
        if doc["kind"] == "Stage" && doc["metadata"]["name"] == "prod" {
            let steps = &mut doc["spec"]["promotionTemplate"]["spec"]["steps"];
            *steps = serde_json::Value::Array(pull_request_steps(steps)?);
            rewritten = true;
        }
        out.push(serde_saphyr::to_string(&doc).map_err(|e| fail("writing the manifests", e))?);
    }
    if !rewritten {
        return Err(fail(
            "rewriting the prod Stage for pull requests",
            "the examples hold no Stage prod",
        ));
    }
    Ok(out.join("---\n"))
}

fn pull_request_steps(
    steps: &serde_json::Value,
) -> Result<Vec<serde_json::Value>, QuickstartError> {
    use serde_json::json;
    let what = "rewriting the prod Stage for pull requests";
    let steps = steps
        .as_array()
        .ok_or_else(|| fail(what, "prod has no promotion steps"))?;
    let uses = |s: &serde_json::Value, u: &str| s["uses"] == u;
    // The branch prod clones and, without pull requests, pushes to.
    let target = steps
        .iter()
        .find(|s| uses(s, "git-clone"))
        .and_then(|s| s["config"]["checkout"][0]["branch"].as_str())
        .ok_or_else(|| fail(what, "prod's git-clone names no branch"))?
        .to_string();
    let mut new = Vec::new();
    let mut pushed = false;
    for s in steps {
        if uses(s, "git-push") {
            let mut push = s.clone();
            push["as"] = json!("push");
            push["config"]["generateTargetBranch"] = json!(true);
            new.push(push);
            new.push(json!({
                "uses": "git-open-pr",
                "as": "open-pr",
                "config": {
                    "repoURL": "${{ vars.gitopsRepo }}",
                    "sourceBranch": "${{ outputs.push.branch }}",
                    "targetBranch": target,
                },
            }));
            new.push(json!({
                "uses": "git-wait-for-pr",
                "as": "wait-for-pr",
                "config": {
                    "repoURL": "${{ vars.gitopsRepo }}",
                    "prNumber": "${{ outputs['open-pr'].pr.id }}",
                    // Every 5 s rather than the default 30 s: someone is watching.
                    "pollInterval": "5s",
                },
            }));
            pushed = true;
        } else if uses(s, "argocd-update") {
            let mut update = s.clone();
            if let Some(apps) = update["config"]["apps"].as_array_mut() {
                for app in apps {
                    if let Some(sources) = app["sources"].as_array_mut() {
                        for src in sources {
                            src["desiredRevision"] = json!("${{ outputs['wait-for-pr'].commit }}");
                        }
                    }
                }
            }
            new.push(update);
        } else {
            new.push(s.clone());
        }
    }
    if !pushed {
        return Err(fail(what, "prod has no git-push step"));
    }
    Ok(new)
}

/// A stand-in for Argo CD: when a Promotion asks an Application to sync, report it synced at
/// that revision and healthy, as Argo CD would after applying it to a cluster.
pub async fn argocd_stand_in(client: kube::Client) {
    let apps: Api<Application> = Api::namespaced(client, "argocd");
    loop {
        if let Ok(list) = apps.list(&ListParams::default()).await {
            for app in list.items {
                let Some(op) = app.operation.as_ref() else {
                    continue;
                };
                let op = serde_json::to_value(op).unwrap_or_default();
                let revision = op["sync"]["revision"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let now = k8s_openapi::jiff::Timestamp::now();
                let later = now + k8s_openapi::jiff::SignedDuration::from_secs(1);
                let patch = serde_json::json!({
                    "operation": null,
                    "status": {
                        "health": {"status": "Healthy"},
                        "sync": {"status": "Synced", "revision": revision},
                        "reconciledAt": later.to_string(),
                        "operationState": {
                            "phase": "Succeeded",
                            "message": "synced by the quickstart's Argo CD stand-in",
                            "startedAt": now.to_string(),
                            "finishedAt": now.to_string(),
                            "operation": op,
                            "syncResult": {"revision": revision}
                        }
                    }
                });
                let name = app.metadata.name.clone().unwrap_or_default();
                if apps
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .is_ok()
                {
                    eprintln!(
                        "    [argo cd stand-in] {name} synced to {}",
                        &revision.get(..7).unwrap_or(&revision)
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Serves haul's admission webhook (as every controller replica does in a cluster) on a free
/// loopback port with a certificate from the control plane's CA, and registers it, so every
/// Promotion records who created it — `kubectl create` included.
pub async fn start_webhook(env: &Environment, state: &Path) -> Result<(), QuickstartError> {
    let dir = state.join("webhook-tls");
    std::fs::create_dir_all(&dir).map_err(|e| fail("creating the webhook cert directory", e))?;
    let cert = env.control_plane.loopback_serving_cert()?;
    std::fs::write(dir.join("tls.crt"), &cert.cert_pem)
        .and_then(|_| std::fs::write(dir.join("tls.key"), &cert.key_pem))
        .map_err(|e| fail("writing the webhook certificate", e))?;
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| fail("finding a free port for the webhook", e))?;
    let client = env.control_plane.client().await?;
    let webhook_client = client.clone();
    tokio::spawn(async move {
        if let Err(e) = crate::admission::server::serve(addr, &dir, Some(webhook_client)).await {
            eprintln!("haul quickstart: the admission webhook stopped: {e}");
        }
    });
    let ca = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        env.control_plane.ca_cert_pem(),
    );
    // The chart's MutatingWebhookConfiguration, with a loopback URL instead of its Service.
    let config: k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration =
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "haul"},
            "webhooks": [{
                "name": "create-actor.promotions.haul.kargo.akuity.io",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
                "rules": [{"apiGroups": ["kargo.akuity.io"], "apiVersions": ["*"],
                           "operations": ["CREATE"], "resources": ["promotions"]}],
                "clientConfig": {
                    "url": format!("https://{addr}{}", crate::admission::server::MUTATE_PROMOTION_PATH),
                    "caBundle": ca,
                },
            }]
        }))
        .map_err(|e| fail("building the webhook configuration", e))?;
    let api: Api<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration> =
        Api::all(client.clone());
    api.patch(
        "haul",
        &PatchParams::apply("haul-quickstart").force(),
        &Patch::Apply(&config),
    )
    .await
    .map_err(|e| fail("registering the admission webhook", e))?;
    // The chart's ValidatingWebhookConfiguration: a Project's namespace is created while the
    // Project is admitted, so one `kubectl apply` of the examples succeeds.
    let projects: k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration =
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "haul"},
            "webhooks": [{
                "name": "namespace.projects.haul.kargo.akuity.io",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "NoneOnDryRun",
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
                "rules": [{"apiGroups": ["kargo.akuity.io"], "apiVersions": ["*"],
                           "operations": ["CREATE"], "resources": ["projects"],
                           "scope": "Cluster"}],
                "clientConfig": {
                    "url": format!("https://{addr}{}", crate::admission::server::VALIDATE_PROJECT_PATH),
                    "caBundle": ca,
                },
            }]
        }))
        .map_err(|e| fail("building the Project webhook configuration", e))?;
    let api: Api<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration> =
        Api::all(client);
    api.patch(
        "haul",
        &PatchParams::apply("haul-quickstart").force(),
        &Patch::Apply(&projects),
    )
    .await
    .map_err(|e| fail("registering the Project admission webhook", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples() -> String {
        let dir = repo_root().join("examples/reference-pipeline");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("examples")
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| std::fs::read_to_string(f).expect("example"))
            .collect::<Vec<_>>()
            .join("\n---\n")
    }

    fn stage(docs: &[serde_json::Value], name: &str) -> serde_json::Value {
        docs.iter()
            .find(|d| d["kind"] == "Stage" && d["metadata"]["name"] == name)
            .cloned()
            .expect("stage")
    }

    #[test]
    fn prod_promotes_through_a_pull_request_and_dev_and_uat_stay_direct() {
        let before: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(&examples()).expect("examples parse");
        let rewritten = pull_request_prod(&examples()).expect("rewrite");
        let after: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(&rewritten).expect("rewritten manifests parse");
        let before: Vec<_> = before.into_iter().filter(|d| !d.is_null()).collect();
        assert_eq!(before.len(), after.len());
        for name in ["dev", "uat"] {
            assert_eq!(stage(&before, name), stage(&after, name));
        }
        let prod = stage(&after, "prod");
        let steps = prod["spec"]["promotionTemplate"]["spec"]["steps"]
            .as_array()
            .expect("steps")
            .clone();
        let uses: Vec<&str> = steps.iter().filter_map(|s| s["uses"].as_str()).collect();
        assert_eq!(
            uses,
            [
                "git-clone",
                "kustomize-set-image",
                "git-commit",
                "git-push",
                "git-open-pr",
                "git-wait-for-pr",
                "argocd-update"
            ]
        );
        assert_eq!(steps[3]["as"], "push");
        assert_eq!(steps[3]["config"]["generateTargetBranch"], true);
        assert_eq!(
            steps[4]["config"]["sourceBranch"],
            "${{ outputs.push.branch }}"
        );
        assert_eq!(steps[4]["config"]["targetBranch"], "gitops");
        assert_eq!(steps[4]["as"], "open-pr");
        assert_eq!(
            steps[5]["config"]["prNumber"],
            "${{ outputs['open-pr'].pr.id }}"
        );
        assert_eq!(steps[5]["config"]["pollInterval"], "5s");
        assert_eq!(
            steps[6]["config"]["apps"][0]["sources"][0]["desiredRevision"],
            "${{ outputs['wait-for-pr'].commit }}"
        );
        // Every step still parses as its kind's configuration.
        for s in &steps {
            assert!(s["config"].is_object(), "{s}");
        }
    }
}
