//! The committed step config schemas (`schemas/steps/`) are exactly what `haul schemas`
//! generates from the step registry.

#[test]
fn committed_step_schemas_match_the_code() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let drift = haul::promotion::schemas::drift(root).expect("render schemas");
    assert!(
        drift.is_empty(),
        "step schemas drifted from the code; run `cargo run -- schemas` and commit:\n{}",
        drift.join("\n")
    );
}

#[test]
fn every_registered_step_has_a_schema_that_refuses_unknown_fields() {
    let files = haul::promotion::schemas::render().expect("render schemas");
    let names: Vec<&str> = haul::promotion::steps::names().collect();
    assert_eq!(files.len(), names.len());
    for (f, name) in files.iter().zip(&names) {
        assert_eq!(f.file_name, format!("{name}.json"));
        let schema: serde_json::Value = serde_json::from_str(&f.json).expect("JSON");
        assert_eq!(schema["title"], *name, "{}", f.file_name);
        // compose-output takes any map of outputs; every other config is a closed object.
        if *name != "compose-output" {
            assert_eq!(
                schema["additionalProperties"], false,
                "{} accepts unknown fields",
                f.file_name
            );
        }
    }
    // A lenient string says it takes numbers too (a tag such as 1006).
    let image = files
        .iter()
        .find(|f| f.file_name == "kustomize-set-image.json")
        .expect("kustomize-set-image");
    assert!(
        image.json.contains(r#""number""#),
        "lenient strings accept numbers: {}",
        image.json
    );
}
