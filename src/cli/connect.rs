//! Reaching the cluster the way kubectl does: `--kubeconfig`, then `KUBECONFIG`, then
//! `~/.kube/config`, then the in-cluster service account; the project is `-n`, else the
//! namespace of the kubeconfig context.

use std::path::Path;

use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::{CliError, ClusterArgs};

/// A client and the project (namespace) a command works in.
#[derive(Clone)]
pub struct Cluster {
    pub client: kube::Client,
    pub namespace: String,
}

impl Cluster {
    /// Connects as `args` say.
    pub async fn connect(args: &ClusterArgs) -> Result<Self, CliError> {
        let kubeconfig = match &args.kubeconfig {
            Some(path) => Some(read(path)?),
            None => match Kubeconfig::from_env() {
                Ok(Some(kc)) => Some(kc),
                Ok(None) => match default_path().filter(|p| p.exists()) {
                    Some(p) => Some(read(&p)?),
                    None => None,
                },
                Err(e) => return Err(CliError::Config(format!("reading KUBECONFIG: {e}"))),
            },
        };
        let (config, context_namespace) = match kubeconfig {
            Some(kc) => {
                let context = args.context.clone().or_else(|| kc.current_context.clone());
                let namespace = context.as_ref().and_then(|name| {
                    kc.contexts
                        .iter()
                        .find(|c| &c.name == name)
                        .and_then(|c| c.context.as_ref())
                        .and_then(|c| c.namespace.clone())
                        .filter(|n| !n.is_empty())
                });
                let options = KubeConfigOptions {
                    context: args.context.clone(),
                    ..KubeConfigOptions::default()
                };
                let config = kube::Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(|e| CliError::Config(format!("using the kubeconfig: {e}")))?;
                (config, namespace)
            }
            None => {
                let config = kube::Config::incluster().map_err(|e| {
                    CliError::Config(format!(
                        "no kubeconfig found (~/.kube/config) and not running in a cluster ({e})"
                    ))
                })?;
                let namespace = Some(config.default_namespace.clone());
                (config, namespace)
            }
        };
        let namespace = args
            .namespace
            .clone()
            .or(context_namespace)
            .ok_or(CliError::NoNamespace)?;
        let client = crate::kube_client::uncounted(config)
            .map_err(|e| CliError::Config(format!("building the API client: {e}")))?;
        Ok(Self { client, namespace })
    }

    /// The authenticated user as an actor (`kubernetes:<username>`, what the admission webhook
    /// records), from a SelfSubjectReview; `None` when the API server does not say (it needs
    /// Kubernetes ≥ 1.28).
    pub async fn whoami(&self) -> Option<String> {
        use k8s_openapi::api::authentication::v1::SelfSubjectReview;
        let api: Api<SelfSubjectReview> = Api::all(self.client.clone());
        let review = api
            .create(&PostParams::default(), &SelfSubjectReview::default())
            .await
            .ok()?;
        review
            .status?
            .user_info?
            .username
            .filter(|u| !u.is_empty())
            .map(|u| crate::admission::kubernetes_actor(&u))
    }
}

fn read(path: &Path) -> Result<Kubeconfig, CliError> {
    Kubeconfig::read_from(path)
        .map_err(|e| CliError::Config(format!("reading the kubeconfig {}: {e}", path.display())))
}

fn default_path() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".kube").join("config"))
}
