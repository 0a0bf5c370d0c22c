//! helm-template: renders a Helm chart of the work directory with the `helm` binary (found on
//! `PATH`), as Kargo's `helm_template_runner.go` renders it with Helm's library.
//!
//! Kargo's rules kept: an `outPath` ending in `.yaml` or `.yml` gets everything in one file
//! (the manifests, then the hooks, each `---\n# Source: …`); any other `outPath` is a
//! directory, laid out as `helm template --output-dir` does (`outLayout: helm`, the default:
//! `<chart or release name>/templates/…`) or one file per resource (`outLayout: flat`:
//! `[group-]kind[-namespace]-name.yaml`, lowercase). The namespace defaults to the Project's;
//! values files are merged in order and `setValues` last (`--set`, or `--set-literal` with
//! `literal: true`). `buildDependencies` runs `helm dependency build` first, which resolves
//! from Chart.lock, or from Chart.yaml when there is no lock.
//!
//! helm runs with its home, cache and config in a temporary directory and no kubeconfig, so it
//! reads no user or cluster state; repository indexes are not refreshed (`--skip-refresh`), and
//! registry or repository credentials are not passed, so dependencies must be local (`file://`)
//! or already vendored in `charts/`.

use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::env::StepEnv;
use super::spec::step;
use super::toolkit::{StepError, StepOutcome, lenient, path_in};

/// Most of helm's error output kept in a message.
const MAX_STDERR: usize = 4096;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// The chart's directory (or packaged .tgz) in the work directory.
    path: String,
    /// A `.yaml`/`.yml` file for everything, or a directory laid out by `outLayout`.
    out_path: String,
    /// `helm` (default): `helm template --output-dir`'s layout; `flat`: one file per resource.
    #[serde(default)]
    out_layout: Option<OutLayout>,
    #[serde(deserialize_with = "lenient::string")]
    #[schemars(with = "lenient::Text")]
    release_name: String,
    /// Use the release name instead of the chart name as the output subdirectory (`helm`
    /// layout only).
    #[serde(default)]
    use_release_name: bool,
    /// The release namespace (default: the Project's namespace).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<lenient::Text>")]
    namespace: Option<String>,
    /// Values files in the work directory, merged in order.
    #[serde(default)]
    values_files: Vec<String>,
    /// Skip values files that do not exist instead of failing.
    #[serde(default)]
    ignore_missing_value_files: bool,
    /// Values set inline, after the values files.
    #[serde(default)]
    set_values: Vec<SetValue>,
    #[serde(default)]
    build_dependencies: bool,
    #[serde(default, rename = "includeCRDs")]
    include_crds: bool,
    #[serde(default)]
    disable_hooks: bool,
    #[serde(default)]
    skip_tests: bool,
    /// The Kubernetes version for `.Capabilities.KubeVersion`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<lenient::Text>")]
    kube_version: Option<String>,
    /// API versions for `.Capabilities.APIVersions`.
    #[serde(default)]
    api_versions: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutLayout {
    Helm,
    Flat,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetValue {
    /// The key, dot-delimited for nested values (`image.tag`).
    key: String,
    /// The value; without `literal`, typed as `--set` types it (numbers, booleans, null).
    #[serde(deserialize_with = "lenient::string")]
    #[schemars(with = "lenient::Text")]
    value: String,
    /// Pass the value as a literal string (`--set-literal`).
    #[serde(default)]
    literal: bool,
}

fn invalid(field: &str, why: impl std::fmt::Display) -> StepError {
    StepError::Failed(format!("invalid config: config.{field}: {why}"))
}

/// Where the rendered manifests go.
#[derive(Debug, PartialEq)]
enum Output {
    /// Everything in one file.
    File,
    /// `helm template --output-dir`.
    HelmDir,
    /// One file per resource.
    FlatDir,
}

/// Kargo's rule: a `.yaml` or `.yml` extension means one file, anything else a directory.
fn output(cfg: &Config) -> Output {
    let ext = Path::new(&cfg.out_path)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    if ext == "yaml" || ext == "yml" {
        Output::File
    } else if cfg.out_layout == Some(OutLayout::Flat) {
        Output::FlatDir
    } else {
        Output::HelmDir
    }
}

/// Checks what needs no filesystem.
fn validate(cfg: &Config) -> Result<(), StepError> {
    if cfg.release_name.is_empty() {
        return Err(invalid("releaseName", "must not be empty"));
    }
    for (i, s) in cfg.set_values.iter().enumerate() {
        if s.key.is_empty() {
            return Err(invalid(&format!("setValues[{i}].key"), "must not be empty"));
        }
    }
    if let Some(k) = cfg.kube_version.as_deref().filter(|k| !k.is_empty())
        && !kube_version_ok(k)
    {
        return Err(invalid(
            "kubeVersion",
            format!("{k:?} is not a Kubernetes version such as 1.29.0 or v1.29"),
        ));
    }
    for (i, v) in cfg.api_versions.iter().enumerate() {
        if v.is_empty() {
            return Err(invalid(&format!("apiVersions[{i}]"), "must not be empty"));
        }
    }
    Ok(())
}

/// Whether `k` parses as helm parses `--kube-version` (a semantic version, `v` and the minor
/// and patch optional).
fn kube_version_ok(k: &str) -> bool {
    static RE: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^v?\d+(\.\d+){0,2}(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$").ok()
    });
    RE.as_ref().is_some_and(|re| re.is_match(k))
}

/// `helm template`'s arguments. `values` are the resolved values files, `out_dir` the
/// directory for `--output-dir` (helm layout only).
fn template_args(
    cfg: &Config,
    chart: &Path,
    namespace: &str,
    values: &[PathBuf],
    out_dir: Option<&Path>,
) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        "template".into(),
        cfg.release_name.clone().into(),
        chart.into(),
        "--namespace".into(),
        namespace.into(),
    ];
    for v in values {
        a.push("--values".into());
        a.push(v.into());
    }
    // helm applies --set before --set-literal whatever their order, as Kargo's MergeValues.
    for s in &cfg.set_values {
        a.push(if s.literal { "--set-literal" } else { "--set" }.into());
        a.push(format!("{}={}", s.key, s.value).into());
    }
    let flags = [
        (cfg.include_crds, "--include-crds"),
        (cfg.disable_hooks, "--no-hooks"),
        (cfg.skip_tests, "--skip-tests"),
    ];
    a.extend(flags.iter().filter(|(on, _)| *on).map(|(_, f)| f.into()));
    if let Some(k) = cfg.kube_version.as_deref().filter(|k| !k.is_empty()) {
        a.push("--kube-version".into());
        a.push(k.into());
    }
    for v in &cfg.api_versions {
        a.push("--api-versions".into());
        a.push(v.into());
    }
    if let Some(dir) = out_dir {
        a.push("--output-dir".into());
        a.push(dir.into());
        if cfg.use_release_name {
            a.push("--release-name".into());
        }
    }
    a
}

/// The YAML documents of a rendered stream, split as Kubernetes' YAML reader splits them: at
/// lines that are `---`, optionally followed by spaces or a comment. Empty documents dropped.
fn documents(stream: &str) -> Vec<String> {
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in stream.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("---") {
            let rest = rest.trim();
            if rest.is_empty() || rest.starts_with('#') {
                docs.push(std::mem::take(&mut current));
                continue;
            }
        }
        current.push_str(line);
    }
    docs.push(current);
    docs.into_iter()
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
        .collect()
}

/// Kargo's flat file name of a resource, `[group-]kind[-namespace]-name.yaml` in lowercase (a
/// group's dots become underscores), or `None` without a kind and a name.
fn flat_name(doc: &str) -> Option<String> {
    let v: Value = serde_saphyr::from_str(doc).ok()?;
    let text = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let (kind, name, ns) = (
        text("/kind"),
        text("/metadata/name"),
        text("/metadata/namespace"),
    );
    if kind.is_empty() || name.is_empty() {
        return None;
    }
    let group = text("/apiVersion")
        .rsplit_once('/')
        .map(|(g, _)| g)
        .unwrap_or_default();
    let mut file = String::new();
    if !group.is_empty() {
        file.push_str(&group.replace('.', "_"));
        file.push('-');
    }
    file.push_str(kind);
    if !ns.is_empty() {
        file.push('-');
        file.push_str(ns);
    }
    file.push('-');
    file.push_str(name);
    Some(format!("{}.yaml", file.to_lowercase()))
}

/// A file name made from rendered (untrusted) metadata must be a plain name in the directory.
fn plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\\')
        && !name.contains('\0')
}

/// Writes each resource of `stream` to its own file in `dir`; returns how many.
fn write_flat(dir: &Path, stream: &str) -> Result<usize, StepError> {
    let docs = documents(stream);
    if docs.is_empty() {
        return Ok(0);
    }
    mkdir(dir)?;
    for (i, doc) in docs.iter().enumerate() {
        // Kargo names every unnamed resource resource-0.yaml; numbering them loses none.
        let name = flat_name(doc).unwrap_or_else(|| format!("resource-{i}.yaml"));
        if !plain_file_name(&name) {
            return Err(StepError::Failed(format!(
                "a rendered resource would be written to {name:?}, which is not a plain file name"
            )));
        }
        write_private(&dir.join(&name), doc.as_bytes())?;
    }
    Ok(docs.len())
}

fn mkdir(dir: &Path) -> Result<(), StepError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| StepError::Errored(format!("creating {}: {e}", dir.display())))
}

fn write_private(file: &Path, body: &[u8]) -> Result<(), StepError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(file)
        .map_err(|e| StepError::Errored(format!("writing {}: {e}", file.display())))?;
    std::io::Write::write_all(&mut f, body)
        .map_err(|e| StepError::Errored(format!("writing {}: {e}", file.display())))
}

/// Runs helm with `args` and its state in `home`; its stdout, or an error with its stderr.
async fn helm(args: &[OsString], home: &Path, what: &str) -> Result<String, StepError> {
    let out = tokio::process::Command::new("helm")
        .args(args)
        .env("HOME", home)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env("KUBECONFIG", home.join("no-kubeconfig"))
        .env_remove("HELM_NAMESPACE")
        .env_remove("HELM_KUBECONTEXT")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| {
            StepError::Errored(format!("{what}: running helm (it must be on PATH): {e}"))
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr = stderr.trim();
        let cut = stderr
            .char_indices()
            .nth(MAX_STDERR)
            .map_or(stderr, |(i, _)| &stderr[..i]);
        return Err(StepError::Errored(format!("{what}: {cut}")));
    }
    String::from_utf8(out.stdout)
        .map_err(|e| StepError::Errored(format!("{what}: helm's output is not UTF-8: {e}")))
}

pub async fn run(cfg: Config, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    validate(&cfg)?;
    let chart = path_in(env, &cfg.path, "path")?;
    if !chart.exists() {
        return Err(invalid("path", format!("{:?} does not exist", cfg.path)));
    }
    let mut values = Vec::new();
    for (i, v) in cfg.values_files.iter().enumerate() {
        let field = format!("valuesFiles[{i}]");
        let file = path_in(env, v, &field)?;
        if !file.is_file() {
            if cfg.ignore_missing_value_files && !file.exists() {
                continue;
            }
            return Err(invalid(&field, format!("{v:?} is not a file")));
        }
        values.push(file);
    }
    let out = path_in(env, &cfg.out_path, "outPath")?;
    let layout = output(&cfg);
    let namespace = cfg
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(env.project);
    let home = tempfile::tempdir()
        .map_err(|e| StepError::Errored(format!("creating a home for helm: {e}")))?;
    if cfg.build_dependencies {
        let args: Vec<OsString> = vec![
            "dependency".into(),
            "build".into(),
            chart.clone().into(),
            "--skip-refresh".into(),
        ];
        helm(&args, home.path(), "building the chart's dependencies").await?;
    }
    let out_dir = (layout == Output::HelmDir).then_some(out.as_path());
    if let Some(dir) = out_dir {
        mkdir(dir)?;
    }
    let args = template_args(&cfg, &chart, namespace, &values, out_dir);
    let rendered = helm(&args, home.path(), "rendering the chart").await?;
    match layout {
        Output::File => {
            if let Some(parent) = out.parent() {
                mkdir(parent)?;
            }
            write_private(&out, rendered.as_bytes())?;
        }
        Output::FlatDir => {
            write_flat(&out, &rendered)?;
        }
        Output::HelmDir => {}
    }
    tracing::debug!(chart = %cfg.path, out = %cfg.out_path, ?layout, "helm-template");
    Ok(StepOutcome::succeeded(Map::new()))
}

step! { pub struct HelmTemplate = "helm-template", Config, |cfg, env| run(cfg, env) }

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(v: Value) -> Config {
        super::super::toolkit::parse(v).expect("config")
    }

    #[test]
    fn out_path_extension_decides_file_or_directory() {
        let c = |out: &str, layout: Option<&str>| {
            let mut v = json!({"path": "c", "outPath": out, "releaseName": "r"});
            if let Some(l) = layout {
                v["outLayout"] = json!(l);
            }
            output(&config(v))
        };
        assert_eq!(c("out/all.yaml", None), Output::File);
        assert_eq!(c("out/all.yml", Some("flat")), Output::File);
        assert_eq!(c("out/", None), Output::HelmDir);
        assert_eq!(c("out.d", Some("helm")), Output::HelmDir);
        assert_eq!(c("out", Some("flat")), Output::FlatDir);
        let e = super::super::toolkit::parse::<Config>(
            json!({"path": "c", "outPath": "o", "releaseName": "r", "outLayout": "tree"}),
        )
        .expect_err("bad layout")
        .to_string();
        assert!(e.contains("config.outLayout"), "{e}");
    }

    #[test]
    fn arguments_carry_every_field() {
        let cfg = config(json!({
            "path": "c", "outPath": "o", "releaseName": "rel", "useReleaseName": true,
            "setValues": [
                {"key": "image.tag", "value": 1006},
                {"key": "note", "value": "a,b", "literal": true},
            ],
            "includeCRDs": true, "disableHooks": true, "skipTests": true,
            "kubeVersion": "1.29.0", "apiVersions": ["monitoring.coreos.com/v1"],
        }));
        let args: Vec<String> = template_args(
            &cfg,
            Path::new("/w/c"),
            "ns",
            &[PathBuf::from("/w/v.yaml")],
            Some(Path::new("/w/o")),
        )
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
        assert_eq!(
            args.join(" "),
            "template rel /w/c --namespace ns --values /w/v.yaml --set image.tag=1006 \
             --set-literal note=a,b --include-crds --no-hooks --skip-tests --kube-version 1.29.0 \
             --api-versions monitoring.coreos.com/v1 --output-dir /w/o --release-name"
        );
    }

    #[test]
    fn flat_names_follow_kargo() {
        let docs = documents(
            "---\n# Source: c/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Web\n  namespace: ns\n---   \n\n--- # hook\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n---\nnot: [a resource\n",
        );
        assert_eq!(docs.len(), 3, "{docs:?}");
        assert!(docs[0].starts_with("# Source: c/templates/cm.yaml"));
        assert_eq!(
            flat_name(&docs[0]).as_deref(),
            Some("configmap-ns-web.yaml")
        );
        assert_eq!(
            flat_name(&docs[1]).as_deref(),
            Some("apps-deployment-web.yaml")
        );
        assert_eq!(flat_name(&docs[2]), None);
        assert_eq!(
            flat_name("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: x}\n")
                .as_deref(),
            Some("networking_k8s_io-ingress-x.yaml")
        );
        assert!(!plain_file_name("configmap-../x.yaml"));
        assert!(!plain_file_name(".."));
        assert!(plain_file_name("configmap-x.yaml"));
    }

    #[test]
    fn kube_versions_are_checked() {
        for ok in ["1.29.0", "v1.29", "1", "v1.30.1-eks.2"] {
            assert!(kube_version_ok(ok), "{ok}");
        }
        for bad in ["latest", "1.29.0.1", "v", ""] {
            assert!(!kube_version_ok(bad), "{bad}");
        }
        let cfg = config(
            json!({"path": "c", "outPath": "o", "releaseName": "r", "kubeVersion": "latest"}),
        );
        let e = validate(&cfg).expect_err("bad version").to_string();
        assert!(e.contains("config.kubeVersion"), "{e}");
    }
}
