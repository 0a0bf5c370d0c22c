//! What the page's user may do, asked of the API server with SelfSubjectAccessReviews in the
//! user's own identity, so a button is disabled with the reason before anyone clicks it. The
//! API server still decides every action itself; this only informs the page.

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;
use serde::Serialize;

/// How many reviews run at once.
const CONCURRENCY: usize = 16;
const GROUP: &str = "kargo.akuity.io";

/// Whether an action is allowed, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Allowed {
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The project's answers: per Stage (`promote` needs both the Promotion create and the
/// `promote` verb on the Stage) and project-wide actions.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectPermissions {
    /// Promote to (and approve for) the Stage.
    pub promote: BTreeMap<String, Allowed>,
    /// Reverify or abort a Stage's verification (patch stages).
    pub patch_stages: Option<Allowed>,
    /// Refresh a Warehouse (patch warehouses).
    pub refresh_warehouses: Option<Allowed>,
    /// Abort a Promotion (patch promotions).
    pub abort_promotions: Option<Allowed>,
    /// Approve Freight (patch freights/status), besides `promote` on the Stage.
    pub approve: Option<Allowed>,
}

/// One question: may the user `verb` the `resource` (`/subresource`) named `name`?
#[derive(Debug, Clone)]
struct Ask {
    verb: &'static str,
    resource: &'static str,
    subresource: Option<&'static str>,
    name: Option<String>,
}

impl Ask {
    fn describe(&self, ns: &str) -> String {
        let sub = self
            .subresource
            .map(|s| format!("/{s}"))
            .unwrap_or_default();
        let name = self
            .name
            .as_ref()
            .map(|n| format!("/{n}"))
            .unwrap_or_default();
        format!("`{}` on {}{sub}{name} in {ns}", self.verb, self.resource)
    }
}

async fn review(client: &kube::Client, ns: &str, ask: &Ask) -> Allowed {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(GROUP.into()),
                namespace: Some(ns.into()),
                resource: Some(ask.resource.into()),
                subresource: ask.subresource.map(Into::into),
                verb: Some(ask.verb.into()),
                name: ask.name.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &review).await {
        Ok(r) if r.status.as_ref().is_some_and(|s| s.allowed) => Allowed {
            allowed: true,
            reason: None,
        },
        Ok(_) => Allowed {
            allowed: false,
            reason: Some(format!(
                "you lack {} (ask a project admin)",
                ask.describe(ns)
            )),
        },
        Err(e) => Allowed {
            allowed: false,
            reason: Some(format!("could not check {}: {e}", ask.describe(ns))),
        },
    }
}

fn both(a: Allowed, b: Allowed) -> Allowed {
    if !a.allowed { a } else { b }
}

/// Asks everything the project page needs.
pub async fn project(client: &kube::Client, ns: &str, stages: &[String]) -> ProjectPermissions {
    let ask = |verb, resource, subresource, name: Option<String>| Ask {
        verb,
        resource,
        subresource,
        name,
    };
    let mut asks = vec![
        ask("create", "promotions", None, None),
        ask("patch", "stages", None, None),
        ask("patch", "warehouses", None, None),
        ask("patch", "promotions", None, None),
        ask("patch", "freights", Some("status"), None),
    ];
    asks.extend(
        stages
            .iter()
            .map(|s| ask("promote", "stages", None, Some(s.clone()))),
    );
    let answers: Vec<Allowed> = futures::stream::iter(asks)
        .map(|a| {
            let client = client.clone();
            let ns = ns.to_string();
            async move { review(&client, &ns, &a).await }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut it = answers.into_iter();
    let mut next = || {
        it.next().unwrap_or(Allowed {
            allowed: false,
            reason: Some("not checked".into()),
        })
    };
    let create = next();
    let mut out = ProjectPermissions {
        patch_stages: Some(next()),
        refresh_warehouses: Some(next()),
        abort_promotions: Some(next()),
        approve: Some(next()),
        ..Default::default()
    };
    for s in stages {
        out.promote.insert(s.clone(), both(create.clone(), next()));
    }
    out
}
