use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::{CustomResourceExt, Resource};
use serde_json::{Value, json};

use super::*;

fn schema(crd: &CustomResourceDefinition) -> &JSONSchemaProps {
    crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("CRD has a schema")
}

fn prop<'a>(schema: &'a JSONSchemaProps, path: &[&str]) -> &'a JSONSchemaProps {
    path.iter().fold(schema, |s, key| match *key {
        "[]" => match s.items.as_ref() {
            Some(JSONSchemaPropsOrArray::Schema(items)) => items,
            other => panic!("no items schema: {other:?}"),
        },
        "{}" => match s.additional_properties.as_ref() {
            Some(JSONSchemaPropsOrBool::Schema(values)) => values,
            other => panic!("no additionalProperties schema: {other:?}"),
        },
        key => s
            .properties
            .as_ref()
            .and_then(|p| p.get(key))
            .unwrap_or_else(|| panic!("no property {key} in {path:?}")),
    })
}

fn rules(schema: &JSONSchemaProps) -> Vec<(String, String)> {
    schema
        .x_kubernetes_validations
        .iter()
        .flatten()
        .map(|r| (r.rule.clone(), r.message.clone().unwrap_or_default()))
        .collect()
}

/// Fails on any null in the JSON form of a value.
fn assert_no_nulls(value: &Value, path: &str) {
    match value {
        Value::Null => panic!("null at {path}"),
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| assert_no_nulls(v, &format!("{path}.{k}"))),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| assert_no_nulls(v, &format!("{path}[{i}]"))),
        _ => {}
    }
}

/// Walks a schema and checks the structural-schema rules the API server enforces that schemars
/// output could break: every node has a type (unless it preserves unknown fields or is
/// int-or-string), and no anyOf/oneOf/allOf/$ref/additionalProperties: true remain.
fn assert_structural(value: &Value, path: &str) {
    let Value::Object(map) = value else {
        panic!("schema at {path} is not an object: {value}");
    };
    for forbidden in [
        "$ref",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
        "definitions",
        "$defs",
    ] {
        assert!(!map.contains_key(forbidden), "{forbidden} at {path}");
    }
    let preserves = map.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    let int_or_string = map.get("x-kubernetes-int-or-string") == Some(&json!(true));
    assert!(
        map.contains_key("type") || preserves || int_or_string,
        "no type at {path}: {value}"
    );
    if let Some(values) = map.get("enum").and_then(Value::as_array) {
        assert!(!values.contains(&Value::Null), "null enum value at {path}");
    }
    if let Some(props) = map.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            assert_structural(v, &format!("{path}.{k}"));
        }
    }
    if let Some(items) = map.get("items") {
        assert_structural(items, &format!("{path}[]"));
    }
    match map.get("additionalProperties") {
        Some(Value::Bool(true)) => panic!("additionalProperties: true at {path}"),
        Some(v @ Value::Object(_)) => assert_structural(v, &format!("{path}{{}}")),
        _ => {}
    }
}

#[test]
fn all_crds_have_kargo_names_in_stable_order() {
    let names: Vec<_> = all_crds()
        .iter()
        .map(|c| c.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        [
            "projects.kargo.akuity.io",
            "projectconfigs.kargo.akuity.io",
            "warehouses.kargo.akuity.io",
            "freights.kargo.akuity.io",
            "stages.kargo.akuity.io",
            "promotions.kargo.akuity.io",
            "promotiontasks.kargo.akuity.io",
            "clusterpromotiontasks.kargo.akuity.io",
            "clusterconfigs.kargo.akuity.io",
        ]
    );
}

#[test]
fn crds_serialise_and_are_structural() {
    for crd in all_crds().iter().chain([&application_crd()]) {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let yaml = serde_saphyr::to_string(crd).expect("CRD serialises to YAML");
        assert!(yaml.contains("openAPIV3Schema"), "{name}");
        let value = serde_json::to_value(crd).expect("CRD serialises to JSON");
        let root = &value["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        assert_structural(root, &name);
        assert_eq!(root["type"], "object", "{name}");
        for key in ["apiVersion", "kind"] {
            assert_eq!(root["properties"][key]["type"], "string", "{name} {key}");
        }
        assert_eq!(
            root["properties"]["metadata"],
            json!({"type": "object"}),
            "{name}"
        );
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.served && version.storage, "{name}");
        // Round-trips through the typed CRD without loss.
        let back: CustomResourceDefinition = serde_json::from_value(value.clone()).expect("parse");
        assert_eq!(serde_json::to_value(&back).expect("json"), value, "{name}");
    }
}

#[test]
fn scopes_short_names_and_status_subresources_match_kargo() {
    let by_name = |name: &str| {
        all_crds()
            .into_iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
            .expect("CRD present")
    };
    let cases = [
        ("projects.kargo.akuity.io", "Cluster", vec![], true),
        ("projectconfigs.kargo.akuity.io", "Namespaced", vec![], true),
        ("warehouses.kargo.akuity.io", "Namespaced", vec![], true),
        ("freights.kargo.akuity.io", "Namespaced", vec![], true),
        ("stages.kargo.akuity.io", "Namespaced", vec![], true),
        (
            "promotions.kargo.akuity.io",
            "Namespaced",
            vec!["promo", "promos"],
            true,
        ),
        (
            "promotiontasks.kargo.akuity.io",
            "Namespaced",
            vec!["promotask", "promotasks"],
            false,
        ),
        (
            "clusterpromotiontasks.kargo.akuity.io",
            "Cluster",
            vec!["clusterpromotask", "clusterpromotasks"],
            false,
        ),
        (
            "clusterconfigs.kargo.akuity.io",
            "Cluster",
            vec!["clusterconfig", "clusterconfigs"],
            true,
        ),
    ];
    for (name, scope, short, status) in cases {
        let crd = by_name(name);
        assert_eq!(crd.spec.scope, scope, "{name}");
        assert_eq!(
            crd.spec.names.short_names.clone().unwrap_or_default(),
            short,
            "{name}"
        );
        let has_status = crd.spec.versions[0]
            .subresources
            .as_ref()
            .is_some_and(|s| s.status.is_some());
        assert_eq!(has_status, status, "{name}");
    }
    assert_eq!(Freight::kind(&()), "Freight");
    assert_eq!(Freight::plural(&()), "freights");
    assert_eq!(Project::api_version(&()), "kargo.akuity.io/v1alpha1");
    assert_eq!(Application::plural(&()), "applications");
}

#[test]
fn printer_columns_match_kargo() {
    let columns = |crd: CustomResourceDefinition| -> Vec<(String, String)> {
        crd.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.name, c.json_path))
            .collect()
    };
    let ready = r#".status.conditions[?(@.type=="Ready")].status"#;
    let ready_msg = r#".status.conditions[?(@.type=="Ready")].message"#;
    let age = ".metadata.creationTimestamp";
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        columns(Stage::crd()),
        [
            s("Shard", ".spec.shard"),
            s("Current Freight", ".status.freightSummary"),
            s("Health", ".status.health.status"),
            s("Ready", ready),
            s("Status", ready_msg),
            s("Age", age),
        ]
    );
    assert_eq!(
        columns(Promotion::crd()),
        [
            s("Shard", ".metadata.labels.kargo\\.akuity\\.io/shard"),
            s("Stage", ".spec.stage"),
            s("Freight", ".spec.freight"),
            s("Phase", ".status.phase"),
            s("Age", age),
        ]
    );
    assert_eq!(
        columns(Warehouse::crd()),
        [s("Shard", ".spec.shard"), s("Age", age)]
    );
    assert_eq!(
        columns(Freight::crd()),
        [
            s("Alias", ".metadata.labels.kargo\\.akuity\\.io/alias"),
            s("Origin (Kind)", ".origin.kind"),
            s("Origin (Name)", ".origin.name"),
            s("Age", age),
        ]
    );
    for crd in [Project::crd(), ProjectConfig::crd(), ClusterConfig::crd()] {
        assert_eq!(
            columns(crd),
            [s("Ready", ready), s("Status", ready_msg), s("Age", age)]
        );
    }
    assert_eq!(columns(PromotionTask::crd()), [s("Age", age)]);
    assert_eq!(columns(ClusterPromotionTask::crd()), [s("Age", age)]);
}

#[test]
fn freight_crd_is_spec_less_and_immutable() {
    let crd = Freight::crd();
    let root = schema(&crd);
    let props = root.properties.as_ref().expect("properties");
    assert!(!props.contains_key("spec"));
    for key in [
        "alias",
        "origin",
        "commits",
        "images",
        "charts",
        "artifacts",
        "status",
    ] {
        assert!(props.contains_key(key), "{key}");
    }
    assert_eq!(root.required.clone().unwrap_or_default(), ["origin"]);
    let rules = rules(root);
    for field in ["origin", "commits", "images", "charts", "artifacts"] {
        assert!(
            rules
                .iter()
                .any(|(rule, message)| rule.contains(&format!("oldSelf.{field}"))
                    && message
                        == &format!(
                            "Freight {field} {} immutable",
                            if field == "origin" { "is" } else { "are" }
                        )),
            "no immutability rule for {field}: {rules:?}"
        );
    }
    // The lists the rules compare, and their identifying strings, are bounded to keep the CEL
    // cost estimate small.
    for field in ["commits", "images", "charts", "artifacts"] {
        assert_eq!(prop(root, &[field]).max_items, Some(100), "{field}");
    }
    assert!(
        prop(root, &["images", "[]", "repoURL"])
            .max_length
            .is_some()
    );
    assert!(prop(root, &["commits", "[]", "id"]).max_length.is_some());
    assert!(
        prop(root, &["images", "[]", "annotations"])
            .max_properties
            .is_none()
    );
    assert_eq!(
        prop(root, &["origin", "kind"])
            .enum_
            .iter()
            .flatten()
            .map(|v| v.0.clone())
            .collect::<Vec<_>>(),
        [json!("Warehouse")]
    );
    assert_eq!(
        prop(root, &["artifacts", "[]", "metadata"]).x_kubernetes_preserve_unknown_fields,
        Some(true)
    );
    assert_eq!(
        prop(root, &["status", "metadata", "{}"]).x_kubernetes_preserve_unknown_fields,
        Some(true)
    );
}

#[test]
fn warehouse_schema_has_kargo_defaults_enums_and_patterns() {
    let crd = Warehouse::crd();
    let spec = prop(schema(&crd), &["spec"]);
    assert_eq!(
        spec.required.clone().unwrap_or_default(),
        ["subscriptions"],
        "interval is defaulted, so only subscriptions must be given"
    );
    let interval = prop(spec, &["interval"]);
    assert_eq!(
        interval.default.as_ref().map(|d| &d.0),
        Some(&json!("5m0s"))
    );
    assert_eq!(interval.pattern.as_deref(), Some(common::DURATION_PATTERN));
    let policy = prop(spec, &["freightCreationPolicy"]);
    assert_eq!(
        policy.default.as_ref().map(|d| &d.0),
        Some(&json!("Automatic"))
    );
    assert_eq!(
        policy
            .enum_
            .iter()
            .flatten()
            .map(|v| v.0.clone())
            .collect::<Vec<_>>(),
        [json!("Automatic"), json!("Manual")]
    );
    assert_eq!(prop(spec, &["subscriptions"]).min_items, Some(1));

    let image = prop(spec, &["subscriptions", "[]", "image"]);
    assert_eq!(image.required.clone().unwrap_or_default(), ["repoURL"]);
    assert_eq!(
        prop(image, &["repoURL"]).pattern.as_deref(),
        Some(warehouse::IMAGE_REPO_URL_PATTERN)
    );
    let strategy = prop(image, &["imageSelectionStrategy"]);
    assert_eq!(
        strategy.default.as_ref().map(|d| &d.0),
        Some(&json!("SemVer"))
    );
    assert_eq!(
        strategy
            .enum_
            .iter()
            .flatten()
            .map(|v| v.0.clone())
            .collect::<Vec<_>>(),
        [
            json!("Digest"),
            json!("Lexical"),
            json!("NewestBuild"),
            json!("SemVer")
        ]
    );
    assert_eq!(
        prop(image, &["strictSemvers"])
            .default
            .as_ref()
            .map(|d| &d.0),
        Some(&json!(true))
    );
    let limit = prop(image, &["discoveryLimit"]);
    assert_eq!(limit.default.as_ref().map(|d| &d.0), Some(&json!(20)));
    assert_eq!((limit.minimum, limit.maximum), (Some(1.0), Some(100.0)));
    assert_eq!(rules(image).len(), 2);

    let git = prop(spec, &["subscriptions", "[]", "git"]);
    let strategy = prop(git, &["commitSelectionStrategy"]);
    assert_eq!(
        strategy.default.as_ref().map(|d| &d.0),
        Some(&json!("NewestFromBranch"))
    );
    assert_eq!(
        strategy
            .enum_
            .iter()
            .flatten()
            .map(|v| v.0.clone())
            .collect::<Vec<_>>(),
        [
            json!("Lexical"),
            json!("NewestFromBranch"),
            json!("NewestTag"),
            json!("SemVer")
        ]
    );
    assert!(prop(git, &["repoURL"]).pattern.is_some());
    assert_eq!(prop(git, &["branch"]).max_length, Some(255));
    assert!(prop(git, &["insecureSkipTLSVerify"]).type_.is_some());

    let chart = prop(spec, &["subscriptions", "[]", "chart"]);
    assert_eq!(
        prop(chart, &["repoURL"]).pattern.as_deref(),
        Some(warehouse::CHART_REPO_URL_PATTERN)
    );
    let conditions = prop(schema(&crd), &["status", "conditions"]);
    assert_eq!(conditions.x_kubernetes_list_type.as_deref(), Some("map"));
    assert_eq!(
        conditions
            .x_kubernetes_list_map_keys
            .clone()
            .unwrap_or_default(),
        ["type"]
    );
}

#[test]
fn stage_promotion_and_task_step_rules_match_kargo() {
    let stage = Stage::crd();
    let steps = prop(
        schema(&stage),
        &["spec", "promotionTemplate", "spec", "steps"],
    );
    assert_eq!(steps.min_items, Some(1));
    let step_rules = rules(prop(steps, &["[]"]));
    assert_eq!(step_rules.len(), 3);
    assert_eq!(
        step_rules[0].0,
        "(has(self.uses) ? !has(self.task) : has(self.task))"
    );
    let step = prop(steps, &["[]"]);
    for key in [
        "uses",
        "task",
        "as",
        "if",
        "continueOnError",
        "retry",
        "vars",
        "config",
    ] {
        assert!(
            step.properties
                .as_ref()
                .is_some_and(|p| p.contains_key(key)),
            "{key}"
        );
    }
    assert_eq!(
        prop(step, &["config"]).x_kubernetes_preserve_unknown_fields,
        Some(true)
    );
    let requested = prop(schema(&stage), &["spec", "requestedFreight"]);
    assert_eq!(requested.min_items, Some(1));
    assert_eq!(
        prop(requested, &["[]", "sources", "availabilityStrategy"])
            .enum_
            .iter()
            .flatten()
            .map(|v| v.0.clone())
            .collect::<Vec<_>>(),
        [json!("All"), json!("OneOf"), json!("")]
    );

    let promotion = Promotion::crd();
    let spec = prop(schema(&promotion), &["spec"]);
    let spec_rules = rules(spec);
    assert!(spec_rules.contains(&("self == oldSelf".into(), "spec is immutable".into())));
    assert!(
        spec_rules
            .iter()
            .any(|(r, _)| r == "has(self.freight) != has(self.origin)")
    );
    assert_eq!(spec.required.clone().unwrap_or_default(), ["stage"]);
    assert_eq!(
        rules(prop(spec, &["steps", "[]"])),
        [(
            "has(self.uses) && !has(self.task)".to_string(),
            "Promotion step must have uses set and must not reference a task".to_string()
        )]
    );

    for crd in [PromotionTask::crd(), ClusterPromotionTask::crd()] {
        let spec = prop(schema(&crd), &["spec"]);
        assert_eq!(spec.required.clone().unwrap_or_default(), ["steps"]);
        assert_eq!(prop(spec, &["steps"]).min_items, Some(1));
        assert_eq!(rules(prop(spec, &["steps", "[]"])).len(), 1);
    }
}

const WAREHOUSE_YAML: &str = r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata:
  name: guestbook
  namespace: kargo-demo
spec:
  subscriptions:
  - image:
      repoURL: public.ecr.aws/nginx/nginx
      imageSelectionStrategy: SemVer
      constraint: ^1.0.0
  - git:
      repoURL: https://github.com/example/kargo-demo.git
      branch: main
      includePaths:
      - glob:apps/*
  - chart:
      repoURL: oci://ghcr.io/example/charts/guestbook
      semverConstraint: ">=0.1.0"
"#;

const STAGE_YAML: &str = r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: test
  namespace: kargo-demo
spec:
  requestedFreight:
  - origin:
      kind: Warehouse
      name: guestbook
    sources:
      direct: true
  promotionTemplate:
    spec:
      vars:
      - name: gitRepo
        value: https://github.com/example/kargo-demo.git
      steps:
      - uses: git-clone
        config:
          repoURL: ${{ vars.gitRepo }}
          checkout:
          - branch: main
            path: ./src
      - uses: kustomize-set-image
        as: update
        config:
          path: ./src/base
          images:
          - image: public.ecr.aws/nginx/nginx
            tag: ${{ imageFrom("public.ecr.aws/nginx/nginx").Tag }}
      - task:
          name: open-pr
        vars:
        - name: branch
          value: main
  verification:
    analysisTemplates:
    - name: smoke
"#;

const PROMOTION_YAML: &str = r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: Promotion
metadata:
  name: test.01j8z1q2w3e4r5t6y7u8i9o0p.1a2b3c4
  namespace: kargo-demo
spec:
  stage: test
  freight: 1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b
  steps:
  - uses: git-clone
    config:
      repoURL: https://github.com/example/kargo-demo.git
status:
  phase: Succeeded
  currentStep: 1
  stepExecutionMetadata:
  - alias: step-1
    status: Succeeded
    errorCount: 0
  state:
    step-1:
      commit: abc123
"#;

const FREIGHT_YAML: &str = r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: Freight
metadata:
  name: 1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b
  namespace: kargo-demo
  labels:
    kargo.akuity.io/alias: wonky-wombat
alias: wonky-wombat
origin:
  kind: Warehouse
  name: guestbook
images:
- repoURL: public.ecr.aws/nginx/nginx
  tag: 1.27.0
  digest: sha256:0123456789abcdef
commits:
- repoURL: https://github.com/example/kargo-demo.git
  id: 0123456789abcdef0123456789abcdef01234567
  branch: main
status:
  verifiedIn:
    test:
      verifiedAt: "2025-01-02T03:04:05Z"
  metadata:
    approvedBy:
      name: someone
"#;

fn round_trip<T>(yaml: &str) -> (T, Value)
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let typed: T = serde_saphyr::from_str(yaml).expect("Kargo manifest deserialises");
    let back = serde_json::to_value(&typed).expect("serialises");
    assert_no_nulls(&back, "$");
    (typed, back)
}

#[test]
fn kargo_warehouse_manifest_round_trips() {
    let (w, back) = round_trip::<Warehouse>(WAREHOUSE_YAML);
    assert_eq!(w.spec.subscriptions.len(), 3);
    let image = w.spec.subscriptions[0].image.as_ref().expect("image");
    assert_eq!(
        image.image_selection_strategy,
        ImageSelectionStrategy::SemVer
    );
    assert_eq!(image.effective_constraint(), Some("^1.0.0"));
    assert!(image.strict_semvers);
    assert_eq!(image.discovery_limit, 20);
    assert_eq!(w.spec.interval, "5m0s");
    let git = w.spec.subscriptions[1].git.as_ref().expect("git");
    assert_eq!(
        git.commit_selection_strategy,
        CommitSelectionStrategy::NewestFromBranch
    );
    assert_eq!(back["apiVersion"], "kargo.akuity.io/v1alpha1");
    assert_eq!(back["kind"], "Warehouse");
    assert_eq!(
        back["spec"]["subscriptions"][0]["image"]["repoURL"],
        "public.ecr.aws/nginx/nginx"
    );
    assert_eq!(
        back["spec"]["subscriptions"][2]["chart"]["repoURL"],
        "oci://ghcr.io/example/charts/guestbook"
    );
    assert!(back.get("status").is_none());
    assert!(back["spec"]["subscriptions"][0].get("git").is_none());
    let again: Warehouse = serde_json::from_value(back).expect("re-parse");
    assert_eq!(again, w);

    let bogus = WAREHOUSE_YAML.replace(
        "imageSelectionStrategy: SemVer",
        "imageSelectionStrategy: Bogus",
    );
    assert!(serde_saphyr::from_str::<Warehouse>(&bogus).is_err());
}

#[test]
fn kargo_stage_manifest_round_trips() {
    let (s, back) = round_trip::<Stage>(STAGE_YAML);
    let template = s.spec.promotion_template.as_ref().expect("template");
    assert_eq!(template.spec.steps.len(), 3);
    assert_eq!(template.spec.steps[1].r#as.as_deref(), Some("update"));
    assert_eq!(
        template.spec.steps[2]
            .task
            .as_ref()
            .map(|t| t.name.as_str()),
        Some("open-pr")
    );
    assert!(!s.spec.is_control_flow());
    assert_eq!(
        back["spec"]["promotionTemplate"]["spec"]["steps"][1]["as"],
        "update"
    );
    assert_eq!(
        back["spec"]["promotionTemplate"]["spec"]["steps"][0]["config"]["checkout"][0]["path"],
        "./src"
    );
    assert_eq!(
        back["spec"]["requestedFreight"][0]["origin"]["kind"],
        "Warehouse"
    );
    assert_eq!(
        s.spec.requested_freight[0].origin.to_string(),
        "Warehouse/guestbook"
    );
}

#[test]
fn kargo_promotion_manifest_round_trips() {
    let (p, back) = round_trip::<Promotion>(PROMOTION_YAML);
    let status = p.status.as_ref().expect("status");
    assert_eq!(status.phase, Some(PromotionPhase::Succeeded));
    assert!(status.is_terminal());
    assert_eq!(
        status.step_execution_metadata[0].status,
        Some(StepStatus::Succeeded)
    );
    assert_eq!(back["status"]["state"]["step-1"]["commit"], "abc123");
    assert_eq!(
        back["spec"]["freight"],
        "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
    );
    assert!(back["spec"].get("origin").is_none());
}

#[test]
fn kargo_freight_manifest_round_trips() {
    let (f, back) = round_trip::<Freight>(FREIGHT_YAML);
    assert_eq!(f.origin, FreightOrigin::warehouse("guestbook"));
    assert_eq!(f.images[0].tag.as_deref(), Some("1.27.0"));
    assert_eq!(back["apiVersion"], "kargo.akuity.io/v1alpha1");
    assert_eq!(back["kind"], "Freight");
    assert_eq!(back["images"][0]["repoURL"], "public.ecr.aws/nginx/nginx");
    assert_eq!(
        back["commits"][0]["repoURL"],
        "https://github.com/example/kargo-demo.git"
    );
    assert_eq!(back["status"]["metadata"]["approvedBy"]["name"], "someone");
    assert!(back.get("charts").is_none() && back.get("spec").is_none());
    let again: Freight = serde_json::from_value(back).expect("re-parse");
    assert_eq!(again, f);
    assert_eq!(f.to_reference().name.as_deref(), f.metadata.name.as_deref());
}

#[test]
fn project_round_trips_without_spec() {
    let (p, back) = round_trip::<Project>(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata:\n  name: kargo-demo\n",
    );
    assert_eq!(p.metadata.name.as_deref(), Some("kargo-demo"));
    assert_eq!(
        back,
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Project", "metadata": {"name": "kargo-demo"}})
    );
}

#[test]
fn project_config_round_trips() {
    let (pc, back) = round_trip::<ProjectConfig>(
        r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata:
  name: kargo-demo
  namespace: kargo-demo
spec:
  promotionPolicies:
  - stageSelector:
      name: glob:dev-*
    autoPromotionEnabled: true
  - stage: prod
  webhookReceivers:
  - name: gh
    github:
      secretRef:
        name: gh-secret
"#,
    );
    assert_eq!(pc.spec.promotion_policies.len(), 2);
    assert_eq!(
        back["spec"]["webhookReceivers"][0]["github"]["secretRef"]["name"],
        "gh-secret"
    );
}

#[test]
fn freight_origin_key_format() {
    let origin = FreightOrigin::warehouse("guestbook");
    assert_eq!(origin.to_string(), "Warehouse/guestbook");
    assert_eq!("Warehouse/guestbook".parse::<FreightOrigin>(), Ok(origin));
    assert!("Stage/x".parse::<FreightOrigin>().is_err());
    assert!("Warehouse/".parse::<FreightOrigin>().is_err());
}

#[test]
fn phases_and_step_statuses() {
    use PromotionPhase::*;
    for (phase, terminal) in [
        (Pending, false),
        (Running, false),
        (Succeeded, true),
        (Failed, true),
        (Errored, true),
        (Aborted, true),
    ] {
        assert_eq!(phase.is_terminal(), terminal, "{phase}");
        assert_eq!(
            serde_json::to_value(phase).expect("json"),
            json!(phase.as_str())
        );
    }
    let mut statuses = [
        StepStatus::Errored,
        StepStatus::Running,
        StepStatus::Succeeded,
        StepStatus::Failed,
        StepStatus::Skipped,
        StepStatus::Aborted,
    ];
    statuses.sort_by_key(|s| s.severity());
    assert_eq!(
        statuses,
        [
            StepStatus::Succeeded,
            StepStatus::Skipped,
            StepStatus::Running,
            StepStatus::Aborted,
            StepStatus::Failed,
            StepStatus::Errored,
        ]
    );
}

#[test]
fn argocd_application_reads_and_keeps_unknown_fields() {
    let yaml = r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: guestbook-test
  namespace: argocd
  annotations:
    kargo.akuity.io/authorized-stage: kargo-demo:test
spec:
  project: default
  source:
    repoURL: https://github.com/example/kargo-demo.git
    targetRevision: stage/test
    path: ./test
    directory:
      recurse: true
  destination:
    server: https://kubernetes.default.svc
    namespace: guestbook-test
  syncPolicy:
    automated: {}
  revisionHistoryLimit: 3
status:
  health:
    status: Healthy
  sync:
    status: Synced
    revision: 0123456789abcdef
    comparedTo:
      source:
        repoURL: https://github.com/example/kargo-demo.git
  operationState:
    phase: Succeeded
    startedAt: "2025-01-02T03:04:05Z"
    finishedAt: "2025-01-02T03:04:09Z"
    syncResult:
      revision: 0123456789abcdef
  reconciledAt: "2025-01-02T03:05:00Z"
  conditions:
  - type: SyncError
    message: boom
  resources: []
operation:
  sync:
    revision: 0123456789abcdef
    prune: true
  initiatedBy:
    username: kargo
  info:
  - name: Reason
    value: Promotion
"#;
    let app: Application = serde_saphyr::from_str(yaml).expect("Application deserialises");
    assert_eq!(app.sources().len(), 1);
    let status = app.status.as_ref().expect("status");
    assert_eq!(
        status.health.as_ref().and_then(|h| h.status.as_deref()),
        Some(argocd::HEALTH_HEALTHY)
    );
    assert_eq!(
        status
            .operation_state
            .as_ref()
            .and_then(|o| o.sync_result.as_ref())
            .and_then(|r| r.revision.as_deref()),
        Some("0123456789abcdef")
    );
    let back = serde_json::to_value(&app).expect("json");
    assert_eq!(back["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(back["spec"]["revisionHistoryLimit"], 3);
    assert_eq!(back["spec"]["source"]["directory"]["recurse"], true);
    assert_eq!(back["operation"]["sync"]["prune"], true);
    assert_eq!(back["operation"]["info"][0]["value"], "Promotion");

    let crd = application_crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("applications.argoproj.io")
    );
    assert!(crd.spec.versions[0].subresources.is_none());
    assert_eq!(
        crd.spec.names.short_names.clone().unwrap_or_default(),
        ["app", "apps"]
    );
    let root = schema(&crd);
    for key in ["spec", "status", "operation"] {
        assert_eq!(
            prop(root, &[key]).x_kubernetes_preserve_unknown_fields,
            Some(true)
        );
    }
}
