//! Secrets and ConfigMaps for `secret`, `configMap`, `sharedSecret` and `sharedConfigMap` in
//! a promotion step's expressions, listed once per step that calls them. As Kargo: `secret` and
//! `configMap` read the Project's namespace; the shared ones read the shared resources
//! namespace, where `sharedSecret` only sees Secrets labelled `kargo.akuity.io/cred-type:
//! generic`. A missing object reads as an empty map. Values are never logged; errors name only
//! the namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams};

const CRED_TYPE_LABEL: &str = "kargo.akuity.io/cred-type";

/// Data by object name.
type Objects = BTreeMap<String, BTreeMap<String, String>>;

/// One kind of object in one namespace, or why it could not be read.
type Listed = Result<Objects, String>;

/// What a step's expressions may read; `None` for a kind the step does not call.
#[derive(Debug, Default)]
pub struct ClusterData {
    pub secrets: Option<Listed>,
    pub config_maps: Option<Listed>,
    pub shared_secrets: Option<Listed>,
    pub shared_config_maps: Option<Listed>,
}

/// Which of the four functions a step's text calls.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub secret: bool,
    pub config_map: bool,
    pub shared_secret: bool,
    pub shared_config_map: bool,
}

impl Needs {
    /// A cheap textual scan: a false positive only costs a list.
    pub fn of(text: &str) -> Self {
        Self {
            secret: text.contains("secret("),
            config_map: text.contains("configMap("),
            shared_secret: text.contains("sharedSecret("),
            shared_config_map: text.contains("sharedConfigMap("),
        }
    }

    pub fn any(self) -> bool {
        self != Self::default()
    }
}

impl ClusterData {
    /// Lists what `needs` asks for; `client` is `None` outside a cluster (`runner` says who).
    pub async fn load(
        client: Option<&kube::Client>,
        runner: &str,
        project: &str,
        shared_namespace: Option<&str>,
        needs: Needs,
    ) -> Self {
        let Some(client) = client else {
            let why = || Some(Err(format!("needs a cluster, and {runner} has none")));
            return Self {
                secrets: needs.secret.then(why).flatten(),
                config_maps: needs.config_map.then(why).flatten(),
                shared_secrets: needs.shared_secret.then(why).flatten(),
                shared_config_maps: needs.shared_config_map.then(why).flatten(),
            };
        };
        let no_shared = || Err("no shared resources namespace is configured".to_string());
        let mut data = Self::default();
        if needs.secret {
            data.secrets = Some(secrets(client, project, false).await);
        }
        if needs.config_map {
            data.config_maps = Some(config_maps(client, project).await);
        }
        if needs.shared_secret {
            data.shared_secrets = Some(match shared_namespace {
                Some(ns) => secrets(client, ns, true).await,
                None => no_shared(),
            });
        }
        if needs.shared_config_map {
            data.shared_config_maps = Some(match shared_namespace {
                Some(ns) => config_maps(client, ns).await,
                None => no_shared(),
            });
        }
        data
    }

    /// The data of `name` in `listed`; empty when there is no such object.
    pub fn lookup(listed: Option<&Listed>, name: &str) -> Result<BTreeMap<String, String>, String> {
        match listed {
            None => Err("not available here".to_string()),
            Some(Err(why)) => Err(why.clone()),
            Some(Ok(objects)) => Ok(objects.get(name).cloned().unwrap_or_default()),
        }
    }
}

async fn secrets(client: &kube::Client, namespace: &str, generic_only: bool) -> Listed {
    let lp = if generic_only {
        ListParams::default().labels(&format!("{CRED_TYPE_LABEL}=generic"))
    } else {
        ListParams::default()
    };
    let list = Api::<Secret>::namespaced(client.clone(), namespace)
        .list(&lp)
        .await
        .map_err(|e| format!("reading Secrets in namespace {namespace:?}: {e}"))?;
    Ok(list
        .items
        .into_iter()
        .map(|s| {
            let name = s.name_any();
            let data = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect();
            (name, data)
        })
        .collect())
}

async fn config_maps(client: &kube::Client, namespace: &str) -> Listed {
    let list = Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("reading ConfigMaps in namespace {namespace:?}: {e}"))?;
    Ok(list
        .items
        .into_iter()
        .map(|c| (c.name_any(), c.data.unwrap_or_default()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_tells_the_four_functions_apart() {
        let n = Needs::of("${{ sharedSecret('a').b }}");
        assert!(n.shared_secret && !n.secret && !n.config_map && !n.shared_config_map);
        let n = Needs::of("${{ secret('a').b }} ${{ sharedConfigMap('c').d }}");
        assert!(n.secret && n.shared_config_map && !n.shared_secret && !n.config_map);
        assert!(!Needs::of("${{ vars.x }}").any());
    }

    #[test]
    fn lookup_is_empty_for_a_missing_object_and_reports_why_otherwise() {
        let listed: Listed = Ok(BTreeMap::from([(
            "x".to_string(),
            BTreeMap::from([("k".to_string(), "v".to_string())]),
        )]));
        assert_eq!(ClusterData::lookup(Some(&listed), "x").unwrap()["k"], "v");
        assert!(ClusterData::lookup(Some(&listed), "y").unwrap().is_empty());
        assert!(ClusterData::lookup(None, "x").is_err());
        let why = "reading Secrets in namespace \"p\": forbidden";
        let failed: Listed = Err(why.to_string());
        assert_eq!(ClusterData::lookup(Some(&failed), "x").unwrap_err(), why);
    }
}
