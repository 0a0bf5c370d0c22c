//! Every field of Kargo's step config schemas (copied from Kargo into
//! `tests/fixtures/kargo-step-schemas/`, see its README) is a field of haul's schema for the same
//! step (`schemas/steps/<step>.json`, generated from the config types that parse step configs):
//! a Kargo template's config is never refused for a field haul does not know. Steps haul does
//! not run yet are listed in [`NOT_YET_REGISTERED`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// Kargo steps haul does not register yet. The test fails when one lands without leaving here.
const NOT_YET_REGISTERED: &[&str] = &[];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kargo_dir() -> PathBuf {
    root().join("tests/fixtures/kargo-step-schemas")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Kargo steps with a schema: `<step>-config.json` → step.
fn kargo_steps() -> BTreeMap<String, PathBuf> {
    std::fs::read_dir(kargo_dir())
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter_map(|p| {
            let name = p
                .file_name()?
                .to_str()?
                .strip_suffix("-config.json")?
                .to_string();
            Some((name, p))
        })
        .collect()
}

/// Resolves `$ref`s: `#/definitions/x`, `#/$defs/x`, or `other.json#/definitions/x` (a file next
/// to the schema).
struct Resolver {
    dir: PathBuf,
    files: BTreeMap<String, Value>,
}

impl Resolver {
    fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            files: BTreeMap::new(),
        }
    }

    fn resolve(&mut self, current: &Value, reference: &str) -> (Value, Option<String>) {
        let (file, pointer) = reference.split_once('#').unwrap_or((reference, ""));
        let doc = if file.is_empty() {
            current.clone()
        } else {
            self.files
                .entry(file.to_string())
                .or_insert_with(|| read_json(&self.dir.join(file)))
                .clone()
        };
        let target = doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("unresolvable $ref {reference}"))
            .clone();
        (target, (!file.is_empty()).then(|| file.to_string()))
    }
}

/// Every property path a schema accepts: `a.b`, `a[].c` for array items, `a.*` for the values of
/// a map. `doc` is the document `#` refers to.
fn paths(schema: &Value, doc: &Value, resolver: &mut Resolver) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    walk(schema, doc, resolver, "", &mut out, 0);
    out
}

fn walk(
    schema: &Value,
    doc: &Value,
    resolver: &mut Resolver,
    at: &str,
    out: &mut BTreeSet<String>,
    depth: usize,
) {
    assert!(depth < 40, "schema recursion too deep at {at}");
    let Value::Object(s) = schema else { return };
    if let Some(Value::String(r)) = s.get("$ref") {
        let (target, file) = resolver.resolve(doc, r);
        let next_doc = match file {
            Some(f) => resolver.files[&f].clone(),
            None => doc.clone(),
        };
        walk(&target, &next_doc, resolver, at, out, depth + 1);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(alts)) = s.get(key) {
            for a in alts {
                walk(a, doc, resolver, at, out, depth + 1);
            }
        }
    }
    for key in ["if", "then", "else", "not"] {
        if let Some(sub) = s.get(key) {
            walk(sub, doc, resolver, at, out, depth + 1);
        }
    }
    let join = |name: &str| {
        if at.is_empty() {
            name.to_string()
        } else {
            format!("{at}.{name}")
        }
    };
    if let Some(Value::Object(props)) = s.get("properties") {
        for (name, sub) in props {
            let p = join(name);
            out.insert(p.clone());
            walk(sub, doc, resolver, &p, out, depth + 1);
        }
    }
    if let Some(items) = s.get("items") {
        let p = format!("{at}[]");
        walk(items, doc, resolver, &p, out, depth + 1);
    }
    if let Some(extra @ Value::Object(_)) = s.get("additionalProperties") {
        let p = join("*");
        walk(extra, doc, resolver, &p, out, depth + 1);
    }
}

fn kargo_paths(step: &str, file: &Path) -> BTreeSet<String> {
    let schema = read_json(file);
    let mut r = Resolver::new(kargo_dir());
    let mut p = paths(&schema, &schema, &mut r);
    // `if`/`then` branches name properties (`"then": {"properties": {"x": {"minLength": 1}}}`)
    // that the object declares anyway; a name only there would still be a Kargo field.
    p.retain(|x| !x.is_empty());
    let _ = step;
    p
}

fn haul_paths(step: &str) -> BTreeSet<String> {
    let file = root().join("schemas/steps").join(format!("{step}.json"));
    let schema = read_json(&file);
    let mut r = Resolver::new(root().join("schemas/steps"));
    paths(&schema, &schema, &mut r)
}

#[test]
fn kargo_steps_haul_lacks_are_exactly_the_not_yet_registered_list() {
    let registered: BTreeSet<&str> = haul::promotion::steps::names().collect();
    let missing: BTreeSet<String> = kargo_steps()
        .into_keys()
        .filter(|s| !registered.contains(s.as_str()))
        .collect();
    let listed: BTreeSet<String> = NOT_YET_REGISTERED.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        missing, listed,
        "NOT_YET_REGISTERED must list exactly the Kargo steps haul does not register"
    );
}

#[test]
fn every_kargo_field_of_a_registered_step_is_a_haul_field() {
    let registered: BTreeSet<&str> = haul::promotion::steps::names().collect();
    let mut missing = Vec::new();
    let mut checked = 0;
    for (step, file) in kargo_steps() {
        if !registered.contains(step.as_str()) {
            continue;
        }
        let theirs = kargo_paths(&step, &file);
        let ours = haul_paths(&step);
        for p in &theirs {
            checked += 1;
            if !ours.contains(p) {
                missing.push(format!("{step}: {p}"));
            }
        }
    }
    assert!(checked > 100, "only {checked} Kargo fields walked");
    assert!(
        missing.is_empty(),
        "{} Kargo fields haul's step schemas lack:\n{}",
        missing.len(),
        missing.join("\n")
    );
}

#[test]
fn the_walk_follows_refs_items_maps_and_alternatives() {
    let schema = json!({
        "definitions": {"kv": {"type": "object", "properties": {"k": {}, "v": {}}}},
        "properties": {
            "list": {"type": "array", "items": {"$ref": "#/definitions/kv"}},
            "either": {"oneOf": [
                {"properties": {"a": {}}},
                {"properties": {"b": {"type": "object", "additionalProperties": {"properties": {"c": {}}}}}}
            ]},
            "o": {"$ref": "common.json#/definitions/origin"}
        },
        "allOf": [{"if": {"properties": {"list": {}}}, "then": {"properties": {"z": {}}}}]
    });
    let mut r = Resolver::new(kargo_dir());
    let got: Vec<String> = paths(&schema, &schema, &mut r).into_iter().collect();
    assert_eq!(
        got,
        [
            "either",
            "either.a",
            "either.b",
            "either.b.*.c",
            "list",
            "list[].k",
            "list[].v",
            "o",
            "o.kind",
            "o.name",
            "z"
        ]
    );
}

/// Configs as Kargo's documentation writes them, with the fields haul used to refuse, parse
/// with haul's own deserialisers.
#[test]
fn kargo_doc_shaped_configs_parse() {
    let examples = [
        (
            "git-clone",
            json!({
                "repoURL": "https://github.com/example/repo.git",
                "insecureSkipTLSVerify": true, "blobless": true, "recurseSubmodules": true,
                "checkout": [
                    {"branch": "main", "path": "./src"},
                    {"branch": "stage/test", "create": true, "path": "./out"}
                ]
            }),
        ),
        (
            "git-clone",
            json!({"repoURL": "https://x/r.git", "insecureSkipTlsVerify": true,
                   "checkout": [{"path": "./src"}]}),
        ),
        (
            "copy",
            json!({"inPath": "./src/app", "outPath": "./out/app", "ignore": "*.md\n!README.md\n"}),
        ),
        (
            "delete",
            json!({"paths": ["./out/**/*.tmp", "./out/cache"], "pathsAreGlobs": true, "strict": true}),
        ),
        (
            "kustomize-build",
            json!({"path": "./src/stages/test", "outPath": "./out", "outputFormat": "kustomize",
                   "plugin": {"helm": {"apiVersions": ["monitoring.coreos.com/v1"], "kubeVersion": "1.31.0"}}}),
        ),
        (
            "http",
            json!({
                "method": "POST", "url": "https://slack.com/api/chat.postMessage",
                "headers": [{"name": "Content-Type", "value": "application/json"}],
                "bodyFromFile": "./out/payload.json",
                "proxy": "http://proxy.internal:3128",
                "timeout": "30s",
                "responseContentType": "application/yaml",
                "successExpression": "response.status == 200",
                "failureExpression": "response.status >= 400",
                "errorExpression": "response.body.error",
                "outputs": [{"name": "ts", "fromExpression": "response.body.ts"}]
            }),
        ),
    ];
    let mut errors = Vec::new();
    for (step, config) in examples {
        let spec = haul::promotion::steps::find(step).expect("registered");
        if let Err(e) = spec.check_config(config.clone()) {
            errors.push(format!("{step}: {e}\n  {config}"));
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // Unknown fields are still refused, naming the field.
    let e = haul::promotion::steps::find("copy")
        .expect("copy")
        .check_config(json!({"inPath": "a", "outPath": "b", "ignored": "x"}))
        .expect_err("unknown field");
    assert!(e.to_string().contains("config.ignored"), "{e}");
}
