//! The committed CRD files are exactly what `haul crds` generates from the code.

#[test]
fn committed_crds_match_the_code() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let drift = haul::crds::drift(root).expect("render CRDs");
    assert!(
        drift.is_empty(),
        "CRDs drifted from the code; run `cargo run -- crds` and commit:\n{}",
        drift.join("\n")
    );
}

#[test]
fn every_kind_is_generated_once_into_both_directories() {
    let files = haul::crds::render().expect("render CRDs");
    let mut names: Vec<&str> = files.iter().map(|f| f.file_name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "kargo.akuity.io_clusterconfigs.yaml",
            "kargo.akuity.io_clusterpromotiontasks.yaml",
            "kargo.akuity.io_freights.yaml",
            "kargo.akuity.io_projectconfigs.yaml",
            "kargo.akuity.io_projects.yaml",
            "kargo.akuity.io_promotions.yaml",
            "kargo.akuity.io_promotiontasks.yaml",
            "kargo.akuity.io_stages.yaml",
            "kargo.akuity.io_warehouses.yaml",
        ]
    );
    for f in &files {
        // Every file parses back as a CRD.
        let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_saphyr::from_str(f.yaml.trim_start_matches(|c| c != '\n').trim_start_matches("\n---\n"))
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", f.file_name));
        assert_eq!(crd.spec.group, "kargo.akuity.io");
    }
}
