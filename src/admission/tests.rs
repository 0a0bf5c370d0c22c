use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;

fn apply(mut doc: Value, patch: &Patch) -> Value {
    json_patch::patch(&mut doc, patch).expect("patch applies");
    doc
}

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn records_the_requester_when_the_object_has_no_annotations() {
    let patch = create_actor_patch(None, "alice").expect("a patch");
    let doc = apply(json!({"metadata": {"name": "p"}}), &patch);
    assert_eq!(
        doc["metadata"]["annotations"]["kargo.akuity.io/create-actor"],
        "kubernetes:alice"
    );
}

#[test]
fn keeps_other_annotations_and_overwrites_a_forged_actor() {
    let a = annotations(&[
        ("team", "payments"),
        (ANNOTATION_CREATE_ACTOR, "kubernetes:bob"),
    ]);
    let patch = create_actor_patch(Some(&a), "alice").expect("a patch");
    let doc = apply(
        json!({"metadata": {"annotations": {"team": "payments", "kargo.akuity.io/create-actor": "kubernetes:bob"}}}),
        &patch,
    );
    assert_eq!(
        doc["metadata"]["annotations"],
        json!({"team": "payments", "kargo.akuity.io/create-actor": "kubernetes:alice"})
    );
}

#[test]
fn leaves_a_correct_actor_and_the_controller_stamp_alone() {
    let right = annotations(&[(ANNOTATION_CREATE_ACTOR, "kubernetes:alice")]);
    assert!(create_actor_patch(Some(&right), "alice").is_none());
    // Whether the requester may claim to be the controller is the admission policy's decision.
    let controller = annotations(&[(ANNOTATION_CREATE_ACTOR, "controller:haul-controller")]);
    assert!(create_actor_patch(Some(&controller), "system:serviceaccount:haul:haul").is_none());
}

fn review(operation: &str, annotations: Value) -> AdmissionReview<DynamicObject> {
    serde_json::from_value(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "kargo.akuity.io", "version": "v1alpha1", "kind": "Promotion"},
            "resource": {"group": "kargo.akuity.io", "version": "v1alpha1", "resource": "promotions"},
            "namespace": "my-app",
            "name": "prod-1",
            "operation": operation,
            "userInfo": {"username": "alice", "groups": ["developers"]},
            "object": {
                "apiVersion": "kargo.akuity.io/v1alpha1",
                "kind": "Promotion",
                "metadata": {"name": "prod-1", "namespace": "my-app", "annotations": annotations},
                "spec": {"stage": "prod", "freight": "abc"}
            }
        }
    }))
    .expect("a valid review")
}

#[test]
fn a_create_review_is_answered_with_the_patch() {
    let out = serde_json::to_value(review_promotion(review("CREATE", json!({})))).expect("json");
    let response = &out["response"];
    assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");
    // kube-core writes the bytes as a JSON array of numbers, which the API server's Go decoder
    // reads into []byte as it reads base64.
    let bytes: Vec<u8> = serde_json::from_value(response["patch"].clone()).expect("patch bytes");
    let patch: Value = serde_json::from_slice(&bytes).expect("json patch");
    assert_eq!(
        patch,
        json!([
            {"op": "add", "path": "/metadata/labels", "value": {"kargo.akuity.io/stage": "prod"}},
            {"op": "add", "path": "/metadata/annotations/kargo.akuity.io~1stage", "value": "prod"},
            {"op": "add", "path": "/metadata/annotations/kargo.akuity.io~1create-actor", "value": "kubernetes:alice"}
        ])
    );
}

#[test]
fn promotions_get_the_stage_label_shortened_and_the_full_name_annotated() {
    let long = "s".repeat(70);
    let patch = promotion_patch(None, None, &long, "alice").expect("a patch");
    let doc = apply(json!({"metadata": {"name": "p"}}), &patch);
    let label = doc["metadata"]["labels"]["kargo.akuity.io/stage"]
        .as_str()
        .expect("label");
    // Kargo's HashShorten: 54 leading characters, "-", 8 hex digits of the SHA-256.
    assert_eq!(label.len(), 63);
    assert!(label.starts_with(&"s".repeat(54)), "{label}");
    assert_eq!(
        doc["metadata"]["annotations"]["kargo.akuity.io/stage"],
        long
    );
    // Already labelled and annotated: nothing to do.
    let labels = annotations(&[("kargo.akuity.io/stage", "dev")]);
    let a = annotations(&[
        ("kargo.akuity.io/stage", "dev"),
        (ANNOTATION_CREATE_ACTOR, "kubernetes:alice"),
    ]);
    assert!(promotion_patch(Some(&labels), Some(&a), "dev", "alice").is_none());
}

#[test]
fn other_operations_pass_unchanged() {
    let out = serde_json::to_value(review_promotion(review("UPDATE", json!({})))).expect("json");
    assert_eq!(out["response"]["allowed"], true);
    assert!(out["response"].get("patch").is_none_or(Value::is_null));
}

#[test]
fn a_review_without_a_request_is_refused_as_malformed() {
    let empty: AdmissionReview<DynamicObject> = serde_json::from_value(json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"
    }))
    .expect("parses");
    let out = serde_json::to_value(review_promotion(empty)).expect("json");
    assert_eq!(out["response"]["allowed"], false);
    assert!(
        out["response"]["status"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("malformed AdmissionReview")),
        "{out}"
    );
}

fn project_review(operation: &str, dry_run: bool) -> AdmissionReview<DynamicObject> {
    serde_json::from_value(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "1",
            "kind": {"group": "kargo.akuity.io", "version": "v1alpha1", "kind": "Project"},
            "resource": {"group": "kargo.akuity.io", "version": "v1alpha1", "resource": "projects"},
            "name": "shop",
            "operation": operation,
            "dryRun": dry_run,
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Project",
                       "metadata": {"name": "shop"}}
        }
    }))
    .expect("a valid review")
}

/// Dry runs, updates and a server without a client admit the Project without touching
/// namespaces (the webhook declares `sideEffects: NoneOnDryRun`; no client is reachable here).
#[tokio::test]
async fn project_reviews_that_must_not_create_a_namespace_are_allowed() {
    for (operation, dry_run) in [("CREATE", true), ("UPDATE", false), ("CREATE", false)] {
        let out = project::review_project(None, project_review(operation, dry_run)).await;
        let out = serde_json::to_value(out).expect("json");
        assert_eq!(
            out["response"]["allowed"], true,
            "{operation} dry-run {dry_run}"
        );
        assert!(out["response"].get("patch").is_none_or(Value::is_null));
    }
}
