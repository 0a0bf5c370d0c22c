//! The environment a step runs in. The controller and `haul run-local` run the same engine and
//! the same steps; they differ only in what this environment gives: where git credentials come
//! from, whether there is a cluster (and Argo CD) to talk to, and whether pushing is allowed.
//! A step declares what it needs ([`Needs`]); [`StepEnv::refusal`] says, from that declaration
//! alone, what the engine does when this environment lacks it.

use std::path::Path;

use futures::future::BoxFuture;

use super::spec::Needs;
use super::toolkit::StepError;
use crate::api::FreightCollection;
use crate::credentials::{self, CredType};
use crate::git::{Author, Credentials, RepoCache, SigningKey};

/// Where git steps get the credentials for a repository.
pub trait CredentialsProvider: Send + Sync {
    /// The credentials for `repo_url` (`Credentials::None` when there are none).
    fn git<'a>(&'a self, repo_url: &'a str) -> BoxFuture<'a, Result<Credentials, StepError>>;

    /// The `image` or `helm` credentials Secret matching `repo_url`, if any (OCI steps). None
    /// outside a cluster.
    fn registry<'a>(
        &'a self,
        _cred_type: CredType,
        _repo_url: &'a str,
    ) -> BoxFuture<'a, Result<Option<credentials::FoundCredentials>, StepError>> {
        Box::pin(async { Ok(None) })
    }
}

/// The controller's credentials: `kargo.akuity.io/cred-type: git` Secrets in the Project's
/// namespace, then in the shared namespace.
pub struct ClusterCredentials<'a> {
    pub client: &'a kube::Client,
    pub project: &'a str,
    pub shared_namespace: Option<&'a str>,
}

impl CredentialsProvider for ClusterCredentials<'_> {
    fn git<'a>(&'a self, repo_url: &'a str) -> BoxFuture<'a, Result<Credentials, StepError>> {
        Box::pin(async move {
            let found = credentials::find(
                self.client,
                self.project,
                self.shared_namespace,
                CredType::Git,
                repo_url,
            )
            .await
            .map_err(|e| StepError::Retryable(e.to_string()))?;
            let Some(found) = found else {
                return Ok(Credentials::None);
            };
            credentials::to_git(&found)
                .map_err(|e| StepError::Failed(format!("{e} (it matches {repo_url})")))
        })
    }

    fn registry<'a>(
        &'a self,
        cred_type: CredType,
        repo_url: &'a str,
    ) -> BoxFuture<'a, Result<Option<credentials::FoundCredentials>, StepError>> {
        Box::pin(async move {
            credentials::find(
                self.client,
                self.project,
                self.shared_namespace,
                cred_type,
                repo_url,
            )
            .await
            .map_err(|e| StepError::Retryable(e.to_string()))
        })
    }
}

/// The same credentials for every repository (`haul run-local`'s command line, or none).
pub struct FixedCredentials(pub Credentials);

impl CredentialsProvider for FixedCredentials {
    fn git<'a>(&'a self, _repo_url: &'a str) -> BoxFuture<'a, Result<Credentials, StepError>> {
        let creds = self.0.clone();
        Box::pin(async move { Ok(creds) })
    }
}

/// Everything a step may use besides its config.
pub struct StepEnv<'a> {
    /// The cluster, when there is one (`None` in `haul run-local`).
    pub client: Option<&'a kube::Client>,
    /// The namespace of Argo CD's Applications, when Argo CD can be reached.
    pub argocd_namespace: Option<&'a str>,
    pub credentials: &'a dyn CredentialsProvider,
    /// Whether steps may push (`haul run-local` stops before the first push without `--push`).
    pub push_allowed: bool,
    /// Who runs the steps, as messages about what it lacks name it ("run-local").
    pub runner: &'a str,
    pub git: &'a RepoCache,
    pub work_dir: &'a Path,
    pub project: &'a str,
    /// Kargo's shared resources namespace, read by `sharedSecret`/`sharedConfigMap`.
    pub shared_namespace: Option<&'a str>,
    pub stage: &'a str,
    pub promotion: &'a str,
    pub actor: &'a str,
    pub freight: &'a FreightCollection,
    pub author: &'a Author,
    /// This step's output from its previous call while it was Running (Kargo's
    /// `SharedState[alias]`); the engine sets it per step. argocd-wait tells health regressions
    /// by it.
    pub previous_output: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// The default author's signing key (ClusterConfig `gitClient.signingKeySecret`, else
    /// `GITCLIENT_SIGNING_KEY_PATH`), or why it could not be read: reported by the git steps
    /// that would sign with it, so a promotion without git is not held up by it.
    pub signing_key: &'a DefaultSigningKey,
}

/// See [`StepEnv::signing_key`].
pub type DefaultSigningKey = Result<Option<SigningKey>, String>;

/// No default signing key.
pub static NO_SIGNING_KEY: DefaultSigningKey = Ok(None);

impl StepEnv<'_> {
    /// The default signing key, or the step error saying why it cannot be read.
    pub fn default_signing_key(&self) -> Result<Option<SigningKey>, StepError> {
        self.signing_key.clone().map_err(StepError::Failed)
    }
}

/// What the engine does with a step whose needs this environment does not meet.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Mark it Skipped with this message and go on (Argo CD is out of reach).
    Skip(String),
    /// Mark it Failed with this message (the step cannot do its job without a cluster).
    Fail(String),
    /// Run nothing more (a push not allowed): the caller reports where it stopped.
    Stop(String),
}

impl StepEnv<'_> {
    /// What stops step `name` with `needs` from running here, if anything.
    pub fn refusal(&self, name: &str, needs: &Needs) -> Option<Refusal> {
        let runner = self.runner;
        if needs.argocd && (self.client.is_none() || self.argocd_namespace.is_none()) {
            let what = if self.client.is_none() {
                "a cluster"
            } else {
                "Argo CD"
            };
            return Some(Refusal::Skip(format!(
                "skipped: {name} needs {what}, and {runner} has none"
            )));
        }
        if let Some(why) = needs.cluster
            && self.client.is_none()
        {
            return Some(Refusal::Fail(format!(
                "{name} needs a cluster ({why}), and {runner} has none"
            )));
        }
        if needs.push && !self.push_allowed {
            return Some(Refusal::Stop(format!(
                "{name} pushes, and {runner} may not push"
            )));
        }
        None
    }

    /// The cluster client, for a step that declared it needs one (so the engine has checked).
    pub fn cluster(&self, name: &str) -> Result<&kube::Client, StepError> {
        self.client.ok_or_else(|| {
            StepError::Failed(format!(
                "{name} needs a cluster, and {} has none",
                self.runner
            ))
        })
    }
}

/// What a unit test of the steps or the engine runs them in: a temporary work directory with a
/// git cache, no Freight, and [`Self::env`] over them (no cluster, no Argo CD, no credentials,
/// no pushing).
#[cfg(test)]
pub(crate) struct TestEnv {
    dir: tempfile::TempDir,
    git: RepoCache,
    creds: FixedCredentials,
    push_allowed: bool,
    freight: FreightCollection,
    author: Author,
}

#[cfg(test)]
impl TestEnv {
    /// Like [`Self::new`], with `creds` for every repository and pushing allowed (steps that
    /// change a remote).
    pub(crate) fn pushing_with(creds: Credentials) -> Self {
        Self {
            creds: FixedCredentials(creds),
            push_allowed: true,
            ..Self::new()
        }
    }

    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let git = RepoCache::new(dir.path().join("cache")).expect("cache");
        Self {
            dir,
            git,
            creds: FixedCredentials(Credentials::None),
            push_allowed: false,
            freight: FreightCollection::default(),
            author: Author {
                name: "t".into(),
                email: "t@example.com".into(),
            },
        }
    }

    /// The environment, its messages naming `runner` as what runs the steps.
    pub(crate) fn env<'a>(&'a self, runner: &'a str) -> StepEnv<'a> {
        StepEnv {
            client: None,
            argocd_namespace: None,
            credentials: &self.creds,
            push_allowed: self.push_allowed,
            runner,
            git: &self.git,
            work_dir: self.dir.path(),
            project: "p",
            shared_namespace: None,
            stage: "s",
            promotion: "pr",
            actor: "a",
            freight: &self.freight,
            author: &self.author,
            signing_key: &NO_SIGNING_KEY,
            previous_output: None,
        }
    }
}
