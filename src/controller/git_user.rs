//! The default author of promotion commits and tags (Kargo's `GitUserResolver`): the
//! ClusterConfig's `gitClient` when it has one, else the install-time settings
//! (GITCLIENT_NAME/EMAIL/SIGNING_KEY_PATH).

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use crate::api::{CLUSTER_CONFIG_NAME, ClusterConfig, SIGNING_KEY_DATA_KEY};
use crate::git::{Author, SigningKey};
use crate::promotion::steps::env::DefaultSigningKey;

/// The default author and signing key for one promotion.
#[derive(Debug, Clone)]
pub struct GitUser {
    pub author: Author,
    /// `Err` says why the configured key cannot be read; the git steps that would sign report
    /// it, so promotions that do not commit are not held up.
    pub signing_key: DefaultSigningKey,
}

/// Reads ClusterConfig `cluster` (from `cached` when given: `Some(None)` when there is none;
/// live otherwise) and, when it names one, the signing key Secret in `system_namespace`. An
/// API error (other than not found) is returned for a retry.
pub async fn resolve(
    client: &kube::Client,
    cached: Option<Option<std::sync::Arc<ClusterConfig>>>,
    system_namespace: Option<&str>,
    fallback_author: &Author,
    fallback_key: &DefaultSigningKey,
) -> Result<GitUser, kube::Error> {
    let fallback = GitUser {
        author: fallback_author.clone(),
        signing_key: fallback_key.clone(),
    };
    let cc = match cached {
        Some(cc) => cc.map(|c| c.spec.git_client.clone()),
        None => {
            let api: Api<ClusterConfig> = Api::all(client.clone());
            api.get_opt(CLUSTER_CONFIG_NAME)
                .await?
                .map(|c| c.spec.git_client)
        }
    };
    let Some(Some(gc)) = cc else {
        return Ok(fallback);
    };
    let author = Author {
        name: non_empty(gc.name).unwrap_or_else(|| fallback_author.name.clone()),
        email: non_empty(gc.email).unwrap_or_else(|| fallback_author.email.clone()),
    };
    let Some(secret_ref) = gc.signing_key_secret else {
        // Name and email only: the install-time key still signs (as in Kargo).
        return Ok(GitUser {
            author,
            signing_key: fallback.signing_key,
        });
    };
    let source = format!(
        "ClusterConfig {CLUSTER_CONFIG_NAME:?} spec.gitClient.signingKeySecret {:?}",
        secret_ref.name
    );
    let Some(ns) = system_namespace else {
        return Ok(GitUser {
            author,
            signing_key: Err(format!(
                "{source}: no system resources namespace is set (SYSTEM_RESOURCES_NAMESPACE)"
            )),
        });
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let signing_key = match secrets.get_opt(&secret_ref.name).await? {
        None => Err(format!("{source}: Secret not found in namespace {ns:?}")),
        Some(s) => match s.data.and_then(|mut d| d.remove(SIGNING_KEY_DATA_KEY)) {
            None => Err(format!(
                "{source}: Secret {ns}/{} has no {SIGNING_KEY_DATA_KEY:?} key",
                secret_ref.name
            )),
            Some(b) => Ok(Some(SigningKey::new(
                String::from_utf8_lossy(&b.0).into_owned(),
                source,
            ))),
        },
    };
    Ok(GitUser {
        author,
        signing_key,
    })
}

fn non_empty(s: String) -> Option<String> {
    (!s.trim().is_empty()).then_some(s)
}

/// The install-time key from GITCLIENT_SIGNING_KEY_PATH (`None` when unset), or why it cannot
/// be read.
pub fn key_from_path(path: Option<&std::path::Path>) -> DefaultSigningKey {
    let Some(path) = path else {
        return Ok(None);
    };
    let source = format!("GITCLIENT_SIGNING_KEY_PATH file {}", path.display());
    std::fs::read_to_string(path)
        .map(|k| Some(SigningKey::new(k, source.clone())))
        .map_err(|e| format!("the signing key from {source} cannot be read: {e}"))
}
