use std::collections::BTreeMap;

use serde_json::json;

use super::*;

#[test]
fn references_by_tag_digest_and_helm_prefix() {
    let r = ArtifactRef::parse("127.0.0.1:5000/team/app:v1.2").expect("tag");
    assert_eq!(r.repo.registry, "127.0.0.1:5000");
    assert_eq!(r.repo.path, "team/app");
    assert_eq!(r.reference, Reference::Tag("v1.2".into()));
    assert_eq!(r.cred_type(), CredType::Image);
    assert_eq!(r.cred_url(), "127.0.0.1:5000/team/app");
    assert_eq!(r.name(), "127.0.0.1:5000/team/app:v1.2");

    let d = format!("sha256:{}", "a".repeat(64));
    let r = ArtifactRef::parse(&format!("oci://ghcr.io/o/chart@{d}")).expect("digest");
    assert!(r.helm);
    assert_eq!(r.reference, Reference::Digest(d.clone()));
    assert_eq!(r.cred_type(), CredType::Helm);
    assert_eq!(r.cred_url(), "oci://ghcr.io/o/chart");
    assert_eq!(r.name(), format!("ghcr.io/o/chart@{d}"));

    let hub = ArtifactRef::parse("nginx:1.27").expect("hub");
    assert_eq!(hub.repository(), "index.docker.io/library/nginx");
}

#[test]
fn references_without_tag_or_with_bad_parts_are_refused() {
    for (bad, why) in [
        ("127.0.0.1:5000/app", "a tag (:tag) or digest"),
        ("registry.example.com/app", "a tag (:tag) or digest"),
        ("r.io/app@sha256:abc", "64 hex"),
        ("r.io/app@md5:abc", "not sha256"),
        ("r.io/app:-x", "invalid tag"),
        ("r.io/app:", "invalid tag"),
    ] {
        let err = ArtifactRef::parse(bad).expect_err(bad);
        assert!(err.contains(why), "{bad}: {err}");
    }
}

fn layers() -> Vec<Descriptor> {
    vec![
        Descriptor {
            media_type: "application/vnd.cncf.helm.config.v1+json".into(),
            digest: "sha256:1".into(),
            size: 1,
        },
        Descriptor {
            media_type: "application/vnd.cncf.helm.chart.content.v1.tar+gzip".into(),
            digest: "sha256:2".into(),
            size: 2,
        },
    ]
}

#[test]
fn layer_choice_is_first_of_media_type_else_first() {
    let l = layers();
    assert_eq!(select_layer(&l, None).expect("first").digest, "sha256:1");
    assert_eq!(
        select_layer(
            &l,
            Some("application/vnd.cncf.helm.chart.content.v1.tar+gzip")
        )
        .expect("typed")
        .digest,
        "sha256:2"
    );
    let err = select_layer(&l, Some("text/plain")).expect_err("none");
    assert!(
        err.contains("no layer found with media type \"text/plain\""),
        "{err}"
    );
    assert_eq!(
        select_layer(&[], None).expect_err("empty"),
        "image has no layers"
    );
}

#[test]
fn annotation_keys_are_scoped_by_prefix() {
    let a: BTreeMap<String, String> = [("index:a", "1"), ("manifest:b", "2"), ("c", "3")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let s = annotation_scopes(&a);
    assert_eq!(
        s.index,
        BTreeMap::from([("a".to_string(), "1".to_string())])
    );
    assert_eq!(
        s.manifest,
        BTreeMap::from([
            ("b".to_string(), "2".to_string()),
            ("c".to_string(), "3".to_string())
        ])
    );
}

#[test]
fn annotate_merges_and_leaves_bytes_alone_without_annotations() {
    let doc = br#"{"schemaVersion":2,"annotations":{"keep":"x","over":"old"}}"#;
    assert_eq!(annotate(doc, &BTreeMap::new()).expect("same"), doc.to_vec());
    let a = BTreeMap::from([
        ("over".to_string(), "new".to_string()),
        ("add".to_string(), "y".to_string()),
    ]);
    let out: serde_json::Value =
        serde_json::from_slice(&annotate(doc, &a).expect("annotated")).expect("json");
    assert_eq!(
        out["annotations"],
        json!({"keep": "x", "over": "new", "add": "y"})
    );
    let bare: serde_json::Value =
        serde_json::from_slice(&annotate(br#"{"schemaVersion":2}"#, &a).expect("annotated"))
            .expect("json");
    assert_eq!(bare["annotations"]["add"], "y");
}

#[test]
fn index_resolves_to_linux_amd64() {
    let idx = json!({"manifests": [
        {"digest": "sha256:arm", "platform": {"os": "linux", "architecture": "arm64"}},
        {"digest": "sha256:amd", "platform": {"os": "linux", "architecture": "amd64"}}
    ]});
    assert_eq!(default_platform_entry(&idx).as_deref(), Some("sha256:amd"));
    assert_eq!(default_platform_entry(&json!({"manifests": []})), None);
}

#[test]
fn image_blobs_and_sizes() {
    let m = json!({
        "config": {"mediaType": "c", "digest": "sha256:c", "size": 10},
        "layers": [{"mediaType": "l", "digest": "sha256:l", "size": 32}]
    });
    let (config, layers) = image_blobs(&m).expect("blobs");
    assert_eq!(config.size + layers[0].size, 42);
    assert!(image_blobs(&json!({"layers": []})).is_err());
    assert_eq!(format_bytes(512), "512 B");
    assert_eq!(format_bytes(1536 << 20), "1.5 GiB");
}
