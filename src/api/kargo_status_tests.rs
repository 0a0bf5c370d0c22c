//! Status written by Kargo, in the exact shape of its `api/v1alpha1/*_types.go`, read into
//! haul's types and written back: no field may be lost or renamed.

use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::*;

/// `value` read as `T` and serialized again, compared as JSON values.
fn assert_lossless<T: DeserializeOwned + Serialize>(what: &str, value: Value) {
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{what}: Kargo-shaped JSON does not read: {e}"));
    let back = serde_json::to_value(&typed).expect("serialize");
    assert_eq!(back, value, "{what}: lost or changed fields");
}

fn condition(type_: &str, reason: &str) -> Value {
    json!({
        "type": type_,
        "status": "True",
        "reason": reason,
        "message": format!("{type_} because {reason}"),
        "observedGeneration": 3,
        "lastTransitionTime": "2026-11-30T09:00:00Z",
    })
}

/// A Warehouse status as Kargo (main, v1.12 line) writes it: a named and an unnamed git
/// subscription (branch and tag observations), images with a platform, charts (one that found
/// nothing, which Kargo writes as an empty list) and a generic subscription's results.
pub(crate) fn kargo_warehouse_status() -> Value {
    json!({
        "conditions": [condition("Ready", "ArtifactsDiscovered"), condition("Healthy", "DiscoverySucceeded")],
        "lastHandledRefresh": "2026-11-30T08:59:00Z",
        "observedGeneration": 3,
        "lastFreightID": "2d6b9c37b1a6e2c3a6c0b1e0f2d4c8a9e7f6b5a4",
        "discoveredArtifacts": {
            "discoveredAt": "2026-11-30T09:00:00Z",
            "git": [
                {
                    "repoURL": "https://github.com/example/config.git",
                    "commits": [
                        {
                            "id": "8c4f1e5b2a9d3c7e6f0a1b2c3d4e5f60718293a4",
                            "branch": "main",
                            "subject": "scale to 3",
                            "author": "Alice <alice@example.com>",
                            "committer": "Bob <bob@example.com>",
                            "creatorDate": "2026-11-30T08:00:00Z",
                        },
                        {
                            "id": "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d",
                            "branch": "main",
                            "subject": "first config",
                            "author": "Alice <alice@example.com>",
                            "committer": "Alice <alice@example.com>",
                            "creatorDate": "2026-11-29T08:00:00Z",
                        },
                    ],
                    "subscriptionName": "config",
                    "observedRefs": {"branchHead": "8c4f1e5b2a9d3c7e6f0a1b2c3d4e5f60718293a4"},
                },
                {
                    "repoURL": "git@github.com:example/app.git",
                    "commits": [{
                        "id": "aa11bb22cc33dd44ee55ff6677889900aabbccdd",
                        "tag": "v1.2.0",
                        "subject": "release 1.2.0",
                        "author": "Carol <carol@example.com>",
                        "committer": "Carol <carol@example.com>",
                        "creatorDate": "2026-11-28T12:00:00Z",
                    }],
                    "observedRefs": {"tags": [
                        {"name": "v1.1.0", "id": "0f0e0d0c0b0a09080706050403020100ffeeddcc"},
                        {"name": "v1.2.0", "id": "aa11bb22cc33dd44ee55ff6677889900aabbccdd"},
                    ]},
                },
            ],
            "images": [{
                "repoURL": "ghcr.io/example/app",
                "platform": "linux/amd64",
                "references": [
                    {
                        "tag": "1.2.0",
                        "digest": "sha256:0b9f2b5c8e7d6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a19",
                        "annotations": {"org.opencontainers.image.revision": "aa11bb22"},
                        "createdAt": "2026-11-28T12:05:00Z",
                    },
                    {
                        "tag": "1.1.0",
                        "digest": "sha256:1c0a3b6d9f8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a",
                    },
                ],
                "subscriptionName": "app",
            }],
            "charts": [
                {
                    "repoURL": "oci://ghcr.io/example/charts/app",
                    "semverConstraint": "^1.0.0",
                    "versions": ["1.2.0", "1.1.0"],
                    "subscriptionName": "app-chart",
                },
                {
                    "repoURL": "https://charts.example.com",
                    "name": "web",
                    "versions": [],
                },
            ],
            "results": [{
                "name": "bundle",
                "artifactReferences": [{
                    "artifactType": "application/vnd.example.bundle",
                    "subscriptionName": "bundle",
                    "version": "v42",
                    "metadata": {"size": 1024, "labels": ["a", "b"], "nested": {"k": "v"}},
                }],
            }],
        },
    })
}

#[test]
fn kargo_warehouse_status_round_trips() {
    assert_lossless::<WarehouseStatus>("Warehouse status", kargo_warehouse_status());
}

#[test]
fn kargo_v1_11_warehouse_status_without_subscription_names_round_trips() {
    let mut status = kargo_warehouse_status();
    let d = &mut status["discoveredArtifacts"];
    for list in ["git", "images", "charts"] {
        for r in d[list].as_array_mut().expect("list") {
            r.as_object_mut()
                .expect("object")
                .remove("subscriptionName");
        }
    }
    assert_lossless::<WarehouseStatus>("v1.11 Warehouse status", status);
}

#[test]
fn older_haul_warehouse_status_still_reads() {
    let old = json!({
        "discoveredArtifacts": {
            "git": [{
                "name": "config",
                "repoURL": "https://github.com/example/config.git",
                "commits": [{"id": "8c4f1e5b"}],
                "observedRefs": ["config=0011", "refs/heads/main=8c4f1e5b"],
            }],
            "images": [{"name": "app", "repoURL": "ghcr.io/example/app", "references": []}],
        },
    });
    let s: WarehouseStatus = serde_json::from_value(old).expect("older haul status reads");
    let d = s.discovered_artifacts.expect("artifacts");
    assert_eq!(d.git[0].subscription_name.as_deref(), Some("config"));
    assert_eq!(
        d.git[0].observed_refs, None,
        "an old observation forces one discovery"
    );
    assert_eq!(d.images[0].subscription_name.as_deref(), Some("app"));
    // Written back in Kargo's shape.
    let back = serde_json::to_value(&d.git[0]).expect("serialize");
    assert_eq!(back["subscriptionName"], "config");
    assert!(back.get("name").is_none() && back.get("observedRefs").is_none());
}

#[test]
fn go_nil_lists_read_as_empty() {
    let r: GitDiscoveryResult =
        serde_json::from_value(json!({"repoURL": "https://h/x.git", "commits": null}))
            .expect("null commits");
    assert!(r.commits.is_empty());
    assert_eq!(
        serde_json::to_value(&r).expect("json")["commits"],
        json!([])
    );
}

fn freight_reference() -> Value {
    json!({
        "name": "2d6b9c37b1a6e2c3a6c0b1e0f2d4c8a9e7f6b5a4",
        "origin": {"kind": "Warehouse", "name": "w"},
        "commits": [{
            "repoURL": "https://github.com/example/config.git",
            "id": "8c4f1e5b2a9d3c7e6f0a1b2c3d4e5f60718293a4",
            "branch": "main",
            "message": "scale to 3",
            "author": "Alice <alice@example.com>",
            "committer": "Bob <bob@example.com>",
            "subscriptionName": "config",
        }],
        "images": [{
            "repoURL": "ghcr.io/example/app",
            "tag": "1.2.0",
            "digest": "sha256:0b9f2b5c8e7d6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a19",
            "annotations": {"org.opencontainers.image.revision": "aa11bb22"},
            "subscriptionName": "app",
        }],
        "charts": [{"repoURL": "https://charts.example.com", "name": "web", "version": "2.0.0"}],
        "artifacts": [{
            "artifactType": "application/vnd.example.bundle",
            "subscriptionName": "bundle",
            "version": "v42",
            "metadata": {"size": 1024},
        }],
    })
}

#[test]
fn kargo_freight_with_status_round_trips() {
    let mut f = freight_reference();
    let o = f.as_object_mut().expect("object");
    o.insert("apiVersion".into(), json!("kargo.akuity.io/v1alpha1"));
    o.insert("kind".into(), json!("Freight"));
    o.insert(
        "metadata".into(),
        json!({"name": "2d6b9c37b1a6e2c3a6c0b1e0f2d4c8a9e7f6b5a4", "namespace": "p"}),
    );
    o.remove("name");
    o.insert("alias".into(), json!("brave-otter"));
    o.insert("discoveredAt".into(), json!("2026-11-30T09:00:00Z"));
    o.insert(
        "status".into(),
        json!({
            "currentlyIn": {"dev": {"since": "2026-11-30T10:00:00Z"}},
            "verifiedIn": {
                "dev": {"verifiedAt": "2026-11-30T10:05:00Z", "longestSoak": "1h2m3s"},
                "test": {},
            },
            "approvedFor": {"prod": {"approvedAt": "2026-11-30T11:00:00Z"}},
            "metadata": {"ticket": {"id": 42, "url": "https://tickets.example.com/42"}},
        }),
    );
    assert_lossless::<Freight>("Freight", f);
}

#[test]
fn kargo_stage_status_round_trips() {
    let promotion_status = json!({
        "lastHandledRefresh": "t1",
        "phase": "Succeeded",
        "message": "done",
        "freight": freight_reference(),
        "freightCollection": {"id": "f1a2", "items": {"Warehouse/w": freight_reference()}},
        "healthChecks": [{"uses": "argocd-update", "config": {"apps": [{"name": "a"}]}}],
        "startedAt": "2026-11-30T10:00:00Z",
        "finishedAt": "2026-11-30T10:01:00Z",
        "currentStep": 2,
        "stepExecutionMetadata": [{
            "alias": "step-1",
            "startedAt": "2026-11-30T10:00:00Z",
            "finishedAt": "2026-11-30T10:00:30Z",
            "errorCount": 1,
            "status": "Succeeded",
            "message": "ok",
            "continueOnError": true,
        }],
        "state": {"step-1": {"commit": "abc"}},
    });
    let status = json!({
        "conditions": [condition("Ready", "Ready")],
        "lastHandledRefresh": "t1",
        "freightHistory": [{
            "id": "f1a2",
            "items": {"Warehouse/w": freight_reference()},
            "verificationHistory": [{
                "id": "v1",
                "actor": "admin",
                "startTime": "2026-11-30T10:02:00Z",
                "phase": "Successful",
                "message": "verified",
                "analysisRun": {"namespace": "p", "name": "run-1", "phase": "Successful"},
                "finishTime": "2026-11-30T10:05:00Z",
            }],
        }],
        "freightSummary": "2d6b9c3",
        "health": {
            "status": "Healthy",
            "issues": ["none really"],
            "config": {"apps": [{"name": "a"}]},
            "output": [{"status": "Healthy"}],
        },
        "observedGeneration": 4,
        "currentPromotion": {"name": "dev.01"},
        "lastPromotion": {
            "name": "dev.00",
            "freight": freight_reference(),
            "status": promotion_status,
            "finishedAt": "2026-11-30T10:01:00Z",
        },
        "currentPromotionRequest": {"name": "pr-2", "freight": {"name": "f2"}, "phase": "Running"},
        "lastPromotionRequest": {
            "name": "pr-1",
            "freight": {"name": "f1"},
            "phase": "Succeeded",
            "finishedAt": "2026-11-30T09:00:00Z",
        },
        "autoPromotionEnabled": true,
        "promotionWindowStatus": {
            "closed": true,
            "reason": "freeze",
            "nextOpen": "2026-12-01T00:00:00Z",
            "nextClose": "2026-12-02T00:00:00Z",
            "nextCloseReason": "weekend",
        },
        "metadata": {"owner": "team-a"},
    });
    assert_lossless::<StageStatus>("Stage status", status);
}

#[test]
fn kargo_project_and_project_config_status_round_trip() {
    assert_lossless::<ProjectStatus>(
        "Project status",
        json!({
            "conditions": [condition("Ready", "Synced")],
            "stats": {
                "warehouses": {"count": 2, "health": {"healthy": 1}},
                "stages": {"count": 3, "health": {}},
            },
        }),
    );
    assert_lossless::<ProjectConfigStatus>(
        "ProjectConfig status",
        json!({
            "conditions": [condition("Ready", "Synced")],
            "observedGeneration": 2,
            "lastHandledRefresh": "t",
            "webhookReceivers": [{"name": "gh", "path": "/webhook/github/abc", "url": "https://kargo.example.com/webhook/github/abc"}],
        }),
    );
}
