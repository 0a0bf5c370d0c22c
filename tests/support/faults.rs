//! Fault injection on a control plane of the test's own (the shared one of `cp()` must keep
//! working for the other tests of a binary): a project with a Warehouse, an auto-promoted dev
//! Stage and a manually promoted uat Stage writing to the test git server, `haul controller`
//! replicas restarted when they exit (as a Deployment's pods are), and the checks every fault
//! test makes once the fault is over.
//!
//! Every wait is bounded in time; every kubectl call carries a request timeout, so a stalled
//! API server makes a poll fail, not hang.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use haul_testenv::ControlPlane;
use serde_json::Value;

use super::fixtures::git_credentials_secret;
use super::gitops::encoded_auth_url;
use super::services::services;
use super::{ControllerProcess, Outcome, git, run};

/// No kubectl call waits longer than this on a stalled API server.
const REQUEST_TIMEOUT: &str = "--request-timeout=5s";
/// How often the waits poll (each poll is one or two kubectl calls).
const POLL: Duration = Duration::from_millis(500);
/// The Warehouse's discovery interval: short, so a pushed image is found without a refresh.
pub const WAREHOUSE_INTERVAL: &str = "5s";
/// The account and region of the ECR repositories in moto.
const ECR_HOST: &str = "123456789012.dkr.ecr.eu-central-1.amazonaws.com";

/// A control plane of this test's own, which it may pause, kill and restart.
pub struct Cluster {
    pub cp: ControlPlane,
}

impl Cluster {
    pub fn start() -> Self {
        let cp = ControlPlane::start(&haul::crds::local_cluster_crds())
            .unwrap_or_else(|e| panic!("cannot start the fault test's control plane: {e}"));
        Self { cp }
    }

    /// kubectl as the admin user, with a request timeout.
    pub fn kubectl(&self, args: &[&str]) -> Outcome {
        run(self.cp.kubectl().arg(REQUEST_TIMEOUT).args(args), None)
    }

    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Outcome {
        run(
            self.cp.kubectl().arg(REQUEST_TIMEOUT).args(args),
            Some(input),
        )
    }

    pub fn apply(&self, yaml: &str) {
        self.kubectl_stdin(&["apply", "-f", "-"], yaml)
            .success("kubectl apply");
    }

    /// An object as JSON; `None` when it does not exist or the API server does not answer.
    pub fn get(&self, kind: &str, name: &str, ns: &str) -> Option<Value> {
        let out = self.kubectl(&["get", kind, name, "-n", ns, "-o", "json"]);
        out.ok
            .then(|| serde_json::from_str(&out.stdout).ok())
            .flatten()
    }

    /// Every object of a kind in `ns`; `None` while the API server does not answer.
    pub fn list(&self, kind: &str, ns: &str) -> Option<Vec<Value>> {
        let out = self.kubectl(&["get", kind, "-n", ns, "-o", "json"]);
        if !out.ok {
            return None;
        }
        let v: Value = serde_json::from_str(&out.stdout).ok()?;
        v["items"].as_array().cloned()
    }
}

/// Where the Warehouse's images come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Images {
    /// The distribution registry, anonymous.
    Registry,
    /// moto's ECR, reached through IRSA (moto's STS).
    Ecr,
}

/// `haul controller` replicas, restarted when they exit, as a Deployment's pods are (a leader
/// that loses its Lease exits on purpose).
pub struct Replicas {
    procs: Vec<ControllerProcess>,
    dirs: Vec<PathBuf>,
    env: Vec<(String, String)>,
    /// Each restart: (replica, the last lines of the log of the process that exited).
    pub restarts: Vec<(usize, String)>,
    /// The logs of the processes that exited.
    exited_logs: Vec<PathBuf>,
}

impl Replicas {
    fn start(cp: &ControlPlane, n: usize, env: Vec<(String, String)>) -> Self {
        let dirs: Vec<PathBuf> = (0..n)
            .map(|i| cp.dir().join(format!("replica-{i}")))
            .collect();
        let procs = dirs
            .iter()
            .map(|d| ControllerProcess::start_on(cp, d, &pairs(&env)))
            .collect();
        Self {
            procs,
            dirs,
            env,
            restarts: Vec::new(),
            exited_logs: Vec::new(),
        }
    }

    /// Restarts every replica that exited, keeping the old log's tail.
    pub fn supervise(&mut self, cp: &ControlPlane) {
        for i in 0..self.procs.len() {
            if self.procs[i].running() {
                continue;
            }
            let text = self.procs[i].log_text();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(8)..].join("\n");
            eprintln!("replica {i} exited; restarting it. Its last log lines:\n{tail}");
            self.restarts.push((i, tail));
            self.exited_logs.push(self.procs[i].log.clone());
            self.procs[i] = ControllerProcess::start_on(cp, &self.dirs[i], &pairs(&self.env));
        }
    }

    pub fn procs(&mut self) -> &mut [ControllerProcess] {
        &mut self.procs
    }

    /// The last lines of every replica's log, for failure messages (the whole logs are kept
    /// with `HAUL_FAULT_LOGS`, see [`Project`]'s `Drop`).
    pub fn logs(&self) -> String {
        self.procs
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let text = p.log_text();
                let lines: Vec<&str> = text.lines().collect();
                format!(
                    "===== replica {i} ({}), last lines =====\n{}",
                    p.log.display(),
                    lines[lines.len().saturating_sub(150)..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// With `HAUL_FAULT_LOGS=DIR` set, each project leaves its replicas' logs and kube-apiserver's
/// in `DIR/<namespace>/` (the control plane's directory is removed with it).
impl Drop for Project<'_> {
    fn drop(&mut self) {
        let Some(root) = std::env::var_os("HAUL_FAULT_LOGS") else {
            return;
        };
        let dir = PathBuf::from(root).join(&self.ns);
        if std::fs::create_dir_all(&dir).is_err() {
            return;
        }
        for (i, p) in self.replicas.procs.iter().enumerate() {
            let _ = std::fs::write(dir.join(format!("replica-{i}.log")), p.log_text());
        }
        for (n, ((i, _), log)) in self
            .replicas
            .restarts
            .iter()
            .zip(&self.replicas.exited_logs)
            .enumerate()
        {
            let _ = std::fs::copy(log, dir.join(format!("exited-{n}-replica-{i}.log")));
        }
        let _ = std::fs::copy(
            self.cluster.cp.dir().join("kube-apiserver.log"),
            dir.join("kube-apiserver.log"),
        );
        eprintln!("logs of {} kept in {}", self.ns, dir.display());
    }
}

fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// A project on a [`Cluster`]: Warehouse `w` (interval [`WAREHOUSE_INTERVAL`]), Stage `dev`
/// (auto-promoted by the ProjectConfig) and Stage `uat` (promoted by hand), both editing their
/// overlay of a GitOps repository on the test git server with retried git steps.
pub struct Project<'a> {
    pub cluster: &'a Cluster,
    pub ns: String,
    pub images: Images,
    /// The repository URL the Warehouse subscribes to.
    pub image_repo: String,
    /// The bare GitOps repository on disk.
    pub bare: PathBuf,
    /// The commit of branch `gitops` before any promotion.
    seeded: String,
    /// Every tag pushed, in order.
    pub pushed: Vec<String>,
    pub replicas: Replicas,
    spec_changes: u32,
    /// The tags seen auto-promoted to dev.
    seen_in_dev: std::collections::BTreeSet<String>,
}

/// The template of Stage `stage`: clone, set the image in the Stage's overlay, commit, push.
/// The git steps tolerate 5 errors in a row (Kargo's `retry.errorThreshold`), as a user who
/// expects the git server to blink sets them.
fn template(repo_url: &str, image_repo: &str, stage: &str) -> String {
    format!(
        r#"      steps:
      - uses: git-clone
        retry: {{errorThreshold: 5}}
        config:
          repoURL: "{repo_url}"
          checkout: [{{branch: gitops, path: ./src}}]
      - uses: kustomize-set-image
        as: set
        config:
          path: ./src/apps/svc/env/{stage}
          images: [{{image: "{image_repo}", name: my-app}}]
      - uses: git-commit
        as: commit
        config:
          path: ./src
          message: ${{{{ outputs.set.commitMessage }}}}
      - uses: git-push
        retry: {{errorThreshold: 5}}
        config: {{path: ./src}}
"#
    )
}

fn manifests(ns: &str, repo_url: &str, image_repo: &str) -> String {
    let stage = |name: &str| {
        format!(
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w}}\n    sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n{}",
            template(repo_url, image_repo, name)
        )
    };
    format!(
        "{secret}---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata:\n  name: w\n  namespace: {ns}\nspec:\n  interval: {WAREHOUSE_INTERVAL}\n  subscriptions:\n  - image:\n      repoURL: {image_repo}\n---\n{dev}---\n{uat}---\napiVersion: kargo.akuity.io/v1alpha1\nkind: ProjectConfig\nmetadata:\n  name: {ns}\n  namespace: {ns}\nspec:\n  promotionPolicies:\n  - stageSelector: {{name: dev}}\n    autoPromotionEnabled: true\n",
        secret = git_credentials_secret(ns, "git", repo_url),
        dev = stage("dev"),
        uat = stage("uat"),
    )
}

/// A GitOps repository with overlays `apps/svc/env/{dev,uat}` (image `my-app`) on branch
/// `gitops`, seeded from `work`. Returns (clone URL, bare repository).
fn seed(work: &Path, name: &str) -> (String, PathBuf) {
    let url = services().new_repo(name);
    for env in ["dev", "uat"] {
        let d = work.join(format!("apps/svc/env/{env}"));
        std::fs::create_dir_all(&d).expect("overlay dir");
        std::fs::write(
            d.join("kustomization.yaml"),
            "resources: []\nimages:\n  - name: my-app\n    newTag: \"0\"\n",
        )
        .expect("write overlay");
    }
    git(work, &["init", "-q", "-b", "gitops"]);
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", "init"]);
    git(work, &["push", "-q", &encoded_auth_url(&url), "gitops"]);
    let bare = services().bare_path(&url);
    (url, bare)
}

/// Pushes `tag` to the anonymous registry (a tiny OCI image; its digest differs per tag).
fn registry_push(repo: &str, tag: &str) {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/push-image.sh"))
        .args([services().var("HAUL_TEST_REGISTRY"), repo, tag])
        .output()
        .expect("push-image.sh");
    assert!(
        out.status.success(),
        "push {repo}:{tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Pushes `tag` to ECR repository `repo` in moto (creating it first if needed), as CI does.
fn ecr_push(repo: &str, tag: &str) {
    let py = super::tools_dir().join("venv/bin/python");
    let script = r#"
import boto3, hashlib, json, sys
ecr = boto3.client("ecr", endpoint_url=sys.argv[1], region_name="eu-central-1",
                   aws_access_key_id="x", aws_secret_access_key="x")
try:
    ecr.create_repository(repositoryName=sys.argv[2])
except ecr.exceptions.RepositoryAlreadyExistsException:
    pass
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + "c" * 64, "size": 2},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + hashlib.sha256(sys.argv[3].encode()).hexdigest(), "size": 1}]})
ecr.put_image(repositoryName=sys.argv[2], imageManifest=m, imageTag=sys.argv[3],
              imageDigest="sha256:" + hashlib.sha256(m.encode()).hexdigest())
"#;
    let out = Command::new(&py)
        .args([
            "-c",
            script,
            services().var("HAUL_TEST_MOTO_URL"),
            repo,
            tag,
        ])
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", py.display()));
    assert!(
        out.status.success(),
        "pushing {repo}:{tag} to moto: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `f` every [`POLL`] until it returns `Some` or `bound` has passed since `since`;
/// `tick` runs before each poll (the replicas' supervision). `None` on timeout.
fn poll<T>(
    since: Instant,
    bound: Duration,
    mut tick: impl FnMut(),
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    // Bounded in count as well as in time: at most one poll per POLL over the bound, plus one.
    let max_polls = bound.as_millis() / POLL.as_millis() + 2;
    for _ in 0..max_polls {
        tick();
        if let Some(v) = f() {
            return Some(v);
        }
        if since.elapsed() >= bound {
            return None;
        }
        std::thread::sleep(POLL);
    }
    None
}

fn name_of(v: &Value) -> String {
    v["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

impl<'a> Project<'a> {
    /// Creates the project, pushes tag `1.0.0`, starts `replicas` controllers (with `env` added
    /// to their environment) and waits until dev runs `1.0.0` (auto-promoted).
    pub fn create(
        cluster: &'a Cluster,
        prefix: &str,
        images: Images,
        replicas: usize,
        env_extra: &[(&str, &str)],
    ) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        // Unique across control planes: the registry, moto and the git server are shared.
        let ns = format!("{prefix}-{:x}", nanos & 0xff_ffff);
        cluster
            .kubectl(&["create", "namespace", &ns])
            .success("create namespace");
        let image_repo = match images {
            Images::Registry => format!("{}/{ns}/app", services().var("HAUL_TEST_REGISTRY")),
            Images::Ecr => format!("{ECR_HOST}/{ns}/app"),
        };
        let work = cluster.cp.dir().join(format!("seed-{ns}"));
        std::fs::create_dir_all(&work).expect("seed dir");
        let (repo_url, bare) = seed(&work, &ns);
        let seeded = git(&bare, &["rev-parse", "gitops"]).trim().to_string();

        let mut env: Vec<(String, String)> = match images {
            Images::Registry => Vec::new(),
            Images::Ecr => {
                let token = cluster.cp.dir().join("web-identity-token");
                std::fs::write(
                    &token,
                    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6aGF1bDpoYXVsIn0.c2ln",
                )
                .expect("token");
                [
                    (
                        "AWS_ROLE_ARN",
                        "arn:aws:iam::123456789012:role/haul-controller",
                    ),
                    ("AWS_WEB_IDENTITY_TOKEN_FILE", &token.display().to_string()),
                    ("AWS_ROLE_SESSION_NAME", "haul"),
                    ("AWS_REGION", "eu-central-1"),
                    ("AWS_ENDPOINT_URL", services().var("HAUL_TEST_MOTO_URL")),
                    ("AWS_ACCESS_KEY_ID", ""),
                    ("AWS_SECRET_ACCESS_KEY", ""),
                ]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
            }
        };
        // Plain logs: they end up in failure messages.
        env.push(("NO_COLOR".into(), "1".into()));
        env.extend(
            env_extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let mut p = Project {
            cluster,
            ns,
            images,
            image_repo,
            bare,
            seeded,
            pushed: Vec::new(),
            replicas: Replicas::start(&cluster.cp, replicas, env),
            spec_changes: 0,
            seen_in_dev: Default::default(),
        };
        p.push("1.0.0");
        cluster.apply(&manifests(&p.ns, &repo_url, &p.image_repo));
        let t0 = Instant::now();
        p.auto_promoted("1.0.0", t0, Duration::from_secs(90));
        eprintln!(
            "{}: dev runs 1.0.0 after {:.1}s",
            p.ns,
            t0.elapsed().as_secs_f64()
        );
        p
    }

    /// Pushes `tag` to the project's image repository, as CI does.
    pub fn push(&mut self, tag: &str) {
        let repo = self
            .image_repo
            .split_once('/')
            .map(|(_, r)| r)
            .unwrap_or_default();
        match self.images {
            Images::Registry => registry_push(repo, tag),
            Images::Ecr => ecr_push(repo, tag),
        }
        self.pushed.push(tag.to_string());
    }

    /// The next tag: `1.0.<n>` after the last one pushed.
    pub fn next_tag(&self) -> String {
        format!("1.0.{}", self.pushed.len())
    }

    /// Sleeps `d`, restarting replicas that exit meanwhile.
    pub fn sleep(&mut self, d: Duration) {
        let t0 = Instant::now();
        while t0.elapsed() < d {
            self.replicas.supervise(&self.cluster.cp);
            std::thread::sleep(POLL.min(d.saturating_sub(t0.elapsed())));
        }
    }

    /// Polls `f` until it answers or `bound` has passed since `since`, supervising the replicas.
    pub fn wait<T>(
        &mut self,
        since: Instant,
        bound: Duration,
        what: &str,
        mut f: impl FnMut(&Cluster, &str) -> Option<T>,
    ) -> T {
        let (cluster, ns) = (self.cluster, self.ns.clone());
        let replicas = &mut self.replicas;
        match poll(
            since,
            bound,
            || replicas.supervise(&cluster.cp),
            || f(cluster, &ns),
        ) {
            Some(v) => v,
            None => panic!(
                "{ns}: timed out after {bound:?} waiting for {what}\n\nPromotions:\n{}\n\n{}",
                self.cluster
                    .kubectl(&["get", "promotions", "-n", &self.ns])
                    .stdout,
                self.replicas.logs()
            ),
        }
    }

    /// The name of the Freight holding `tag`, once the Warehouse recorded it.
    pub fn freight_of(cluster: &Cluster, ns: &str, tag: &str) -> Option<String> {
        cluster
            .list("freight", ns)?
            .iter()
            .find(|f| f["images"][0]["tag"] == tag)
            .map(name_of)
    }

    /// The Promotions of `stage` for Freight `freight`.
    pub fn promotions_of(cluster: &Cluster, ns: &str, stage: &str, freight: &str) -> Vec<Value> {
        cluster
            .list("promotions", ns)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p["spec"]["stage"] == stage && p["spec"]["freight"] == freight)
            .collect()
    }

    /// Waits (within `bound` of `since`) until `tag` has Freight and dev's auto-promotion of
    /// it succeeded; returns (Freight, Promotion). Panics at once if that Promotion fails.
    pub fn auto_promoted(
        &mut self,
        tag: &str,
        since: Instant,
        bound: Duration,
    ) -> (String, String) {
        let freight = self.wait(since, bound, &format!("Freight for {tag}"), |c, ns| {
            Self::freight_of(c, ns, tag)
        });
        let what = format!("dev's auto-promotion of {tag} ({freight}) to succeed");
        let promotion = self.wait(since, bound, &what, |c, ns| {
            let p = Self::promotions_of(c, ns, "dev", &freight)
                .into_iter()
                .next()?;
            match p["status"]["phase"].as_str() {
                Some("Succeeded") => Some(name_of(&p)),
                Some(phase @ ("Failed" | "Errored" | "Aborted")) => {
                    panic!(
                        "{ns}: the auto-promotion of {tag} ended {phase}: {:#}",
                        p["status"]
                    )
                }
                _ => None,
            }
        });
        let p = self
            .cluster
            .get("promotion", &promotion, &self.ns)
            .expect("the promotion");
        assert_eq!(
            p["metadata"]["annotations"]["kargo.akuity.io/create-actor"],
            "controller:haul-controller",
            "{p:#}"
        );
        self.seen_in_dev.insert(tag.to_string());
        (freight, promotion)
    }

    /// Changes Stage dev's spec (its `vars`), retrying while the API server does not answer;
    /// returns the generation the change made.
    pub fn change_stage_spec(&mut self, since: Instant, bound: Duration) -> i64 {
        self.spec_changes += 1;
        let patch = format!(
            r#"{{"spec":{{"vars":[{{"name":"change","value":"{}"}}]}}}}"#,
            self.spec_changes
        );
        self.wait(
            since,
            bound,
            "the Stage spec change to be accepted",
            |c, ns| {
                let out = c.kubectl(&[
                    "patch",
                    "stage",
                    "dev",
                    "-n",
                    ns,
                    "--type=merge",
                    "-p",
                    &patch,
                    "-o",
                    "json",
                ]);
                let v: Value = serde_json::from_str(&out.stdout).ok()?;
                v["metadata"]["generation"].as_i64()
            },
        )
    }

    /// Creates a Promotion of `freight` to uat, as a person does, and waits until it
    /// succeeded; returns how long it took.
    pub fn promote_by_hand(&mut self, freight: &str, bound: Duration) -> Duration {
        let name = format!("uat-by-hand-{}", self.pushed.len());
        let yaml = super::fixtures::promotion_yaml(&self.ns, &name, "uat", freight);
        let t0 = Instant::now();
        // A create the API server applied but did not answer in time shows up in the get.
        self.wait(t0, bound, "the manual Promotion to be accepted", |c, ns| {
            c.kubectl_stdin(&["create", "-f", "-"], &yaml)
                .ok
                .then_some(())
                .or_else(|| c.get("promotion", &name, ns).map(drop))
        });
        self.wait(
            t0,
            bound,
            &format!("Promotion {name} to succeed"),
            |c, ns| {
                let p = c.get("promotion", &name, ns)?;
                match p["status"]["phase"].as_str() {
                    Some("Succeeded") => Some(()),
                    Some(phase @ ("Failed" | "Errored" | "Aborted")) => {
                        panic!("{ns}: Promotion {name} ended {phase}: {:#}", p["status"])
                    }
                    _ => None,
                }
            },
        );
        t0.elapsed()
    }

    /// What must hold after any fault: every pushed tag has exactly one Freight; no Stage has
    /// two Promotions of one Freight; every Promotion finished Succeeded; the GitOps branch has
    /// exactly one commit per Promotion (none lost, none twice).
    pub fn check_invariants(&mut self) {
        let since = Instant::now();
        let bound = Duration::from_secs(30);
        let freight = self.wait(since, bound, "the Freight list", |c, ns| {
            c.list("freight", ns)
        });
        for tag in &self.pushed {
            let n = freight
                .iter()
                .filter(|f| f["images"][0]["tag"] == tag.as_str())
                .count();
            assert_eq!(n, 1, "{}: Freight for tag {tag}: {n}", self.ns);
        }
        let promotions = self.wait(since, bound, "the Promotion list", |c, ns| {
            c.list("promotions", ns)
        });
        let mut seen = std::collections::BTreeMap::<(String, String), Vec<String>>::new();
        for p in &promotions {
            let key = (
                p["spec"]["stage"].as_str().unwrap_or_default().to_string(),
                p["spec"]["freight"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
            seen.entry(key).or_default().push(name_of(p));
            assert_eq!(
                p["status"]["phase"],
                "Succeeded",
                "{}: Promotion {} did not succeed: {:#}",
                self.ns,
                name_of(p),
                p["status"]
            );
        }
        for ((stage, freight), names) in &seen {
            assert_eq!(
                names.len(),
                1,
                "{}: {} Promotions of Freight {freight} to {stage}: {names:?}",
                self.ns,
                names.len()
            );
        }
        let commits = git(
            &self.bare,
            &["rev-list", "--count", &format!("{}..gitops", self.seeded)],
        );
        assert_eq!(
            commits.trim().parse::<usize>().unwrap_or(usize::MAX),
            promotions.len(),
            "{}: one commit per Promotion; git log:\n{}",
            self.ns,
            git(
                &self.bare,
                &["log", "--format=%h %s", &format!("{}..gitops", self.seeded)]
            )
        );
    }

    /// The checks after a fault that ended at `resumed`, each within `bound`:
    /// - the Stage spec changed now is observed;
    /// - the newest pushed tag (pushed during the fault, or now if none was) is auto-promoted
    ///   to dev: the time from `resumed` is the recovery time printed as `RECOVERY <fault>`;
    /// - a tag pushed after that is auto-promoted too (the Warehouse's own timer runs again);
    /// - a manual Promotion to uat succeeds;
    /// - [`Project::check_invariants`].
    pub fn recovers(&mut self, fault: &str, resumed: Instant, bound: Duration) {
        let generation = self.change_stage_spec(resumed, bound);
        // A tag pushed during the fault is what recovery is measured by (the first poll may
        // find it promoted already); without one, a tag pushed now.
        let pushed_during_fault = self
            .pushed
            .last()
            .is_some_and(|t| !self.seen_in_dev.contains(t));
        if !pushed_during_fault {
            let tag = self.next_tag();
            self.push(&tag);
        }
        let tag = self.pushed.last().cloned().unwrap_or_default();
        // Both watched in one loop, so each time is its own, not the sum.
        let (mut promoted, mut observed) = (None, None);
        self.wait(
            resumed,
            bound,
            &format!("{tag} to reach dev and Stage dev to observe generation {generation}"),
            |c, ns| {
                if observed.is_none()
                    && c.get("stage", "dev", ns)
                        .and_then(|s| s["status"]["observedGeneration"].as_i64())
                        .is_some_and(|g| g >= generation)
                {
                    observed = Some(resumed.elapsed());
                }
                if promoted.is_none()
                    && let Some(f) = Self::freight_of(c, ns, &tag)
                    && Self::promotions_of(c, ns, "dev", &f)
                        .iter()
                        .any(|p| p["status"]["phase"] == "Succeeded")
                {
                    promoted = Some(resumed.elapsed());
                }
                (promoted.is_some() && observed.is_some()).then_some(())
            },
        );
        // Done by now: this checks it was the controller's, and no Promotion failed.
        self.auto_promoted(&tag, resumed, bound);
        let secs = |d: Option<Duration>| d.unwrap_or_default().as_secs_f64();
        eprintln!("RECOVERY {fault}: {:.1}s", secs(promoted));
        eprintln!(
            "RECOVERY {fault} (Stage spec change observed after): {:.1}s",
            secs(observed)
        );

        let tag = self.next_tag();
        self.push(&tag);
        let t0 = Instant::now();
        let (freight, _) = self.auto_promoted(&tag, t0, bound);
        eprintln!(
            "RECOVERY {fault} (next image pushed after recovery, to dev in): {:.1}s",
            t0.elapsed().as_secs_f64()
        );
        let took = self.promote_by_hand(&freight, bound);
        eprintln!(
            "RECOVERY {fault} (manual Promotion to uat ran in): {:.1}s",
            took.as_secs_f64()
        );
        self.check_invariants();
    }
}
