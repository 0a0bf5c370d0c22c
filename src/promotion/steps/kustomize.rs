//! kustomize-set-image (a byte-preserving edit of the kustomization's `images`) and
//! kustomize-build (rendering with a real kustomize: the one built into kubectl).

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::env::StepEnv;
use super::spec::step;
use super::toolkit::{StepError, StepOutcome, lenient, path_in, write_edited};
use crate::api::Image;
use crate::yaml::{ImageUpdate, commit_message, set_images};

const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetImageConfig {
    path: String,
    images: Option<Vec<ImageConfig>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageConfig {
    #[serde(deserialize_with = "lenient::string")]
    #[schemars(with = "lenient::Text")]
    image: String,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<lenient::Text>")]
    tag: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<lenient::Text>")]
    digest: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<lenient::Text>")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<lenient::Text>")]
    new_name: Option<String>,
    #[serde(default)]
    use_digest: bool,
}

/// The kustomization file in `dir`: exactly one of the names kustomize recognises.
fn kustomization_in(dir: &Path, shown: &str) -> Result<PathBuf, StepError> {
    let found: Vec<PathBuf> = KUSTOMIZATION_FILES
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.is_file())
        .collect();
    match found.len() {
        1 => Ok(found.into_iter().next().unwrap_or_default()),
        0 => Err(StepError::Failed(format!(
            "config.path: no kustomization.yaml, kustomization.yml or Kustomization in {shown}"
        ))),
        _ => Err(StepError::Failed(format!(
            "config.path: more than one kustomization file in {shown}; kustomize would refuse it too"
        ))),
    }
}

/// Every image of the Freight being promoted, across origins.
fn freight_images(env: &StepEnv<'_>) -> Vec<Image> {
    env.freight
        .items
        .values()
        .flat_map(|f| f.images.iter().cloned())
        .collect()
}

pub async fn set_image(cfg: SetImageConfig, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    let dir = path_in(env, &cfg.path, "path")?;
    let file = kustomization_in(&dir, &cfg.path)?;
    let images = freight_images(env);
    let find = |repo: &str| images.iter().find(|i| i.repo_url.as_deref() == Some(repo));

    let mut updates = Vec::new();
    let mut summary = Vec::new();
    match cfg.images {
        // No images listed: every image in the Freight, by repository (Kargo's behaviour).
        None => {
            if images.is_empty() {
                return Err(StepError::Failed(
                    "config.images: not set, and the Freight has no images to set".into(),
                ));
            }
            for i in &images {
                let repo = i.repo_url.clone().unwrap_or_default();
                updates.push(ImageUpdate {
                    name: repo.clone(),
                    new_name: None,
                    new_tag: i.tag.clone(),
                    digest: i.digest.clone(),
                });
                summary.push((repo, i.tag.clone(), i.digest.clone()));
            }
        }
        Some(list) => {
            for (n, c) in list.into_iter().enumerate() {
                if c.tag.is_some() && c.digest.is_some() {
                    return Err(StepError::Failed(format!(
                        "invalid config: config.images[{n}]: set tag or digest, not both"
                    )));
                }
                // Neither tag nor digest: take the image from the Freight, as Kargo up to
                // v1.2 did and as the ECR reference pipeline's manifests are written.
                let (tag, digest) = match (c.tag, c.digest) {
                    (None, None) => {
                        let i = find(&c.image).ok_or_else(|| {
                            StepError::Failed(format!(
                                "config.images[{n}]: no tag or digest given, and the Freight has no image from {}",
                                c.image
                            ))
                        })?;
                        if c.use_digest {
                            (None, i.digest.clone())
                        } else {
                            (i.tag.clone(), None)
                        }
                    }
                    other => other,
                };
                updates.push(ImageUpdate {
                    name: c.name.clone().unwrap_or_else(|| c.image.clone()),
                    new_name: c.new_name.clone(),
                    new_tag: tag.clone(),
                    digest: digest.clone(),
                });
                summary.push((c.new_name.unwrap_or(c.image), tag, digest));
            }
        }
    }
    let before = std::fs::read_to_string(&file)
        .map_err(|e| StepError::Errored(format!("reading {}: {e}", file.display())))?;
    let after = set_images(&before, &updates)
        .map_err(|e| StepError::Failed(format!("{}: {e}", cfg.path)))?;
    write_edited(&file, &before, after, commit_message(&cfg.path, &summary))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildConfig {
    path: String,
    out_path: String,
    /// How the files of a directory `outPath` are named: `kargo` (the default,
    /// `[namespace-]kind-name.yaml`) or `kustomize` (as `kustomize build -o dir/`:
    /// `[namespace_]group_version_kind_name.yaml`, the namespace only when there are several).
    #[serde(default)]
    output_format: Option<OutputFormat>,
    /// Settings of kustomize's built-in plugins.
    #[serde(default)]
    plugin: Option<PluginConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Kargo,
    Kustomize,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginConfig {
    #[serde(default)]
    helm: Option<HelmPluginConfig>,
}

/// The Helm chart inflator's `.Capabilities` (`helmCharts` in the kustomization).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HelmPluginConfig {
    /// `.Capabilities.APIVersions` (`helm template --api-versions`).
    #[serde(default)]
    api_versions: Vec<String>,
    /// `.Capabilities.KubeVersion` (`helm template --kube-version`).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<lenient::Text>")]
    kube_version: Option<String>,
}

/// The `kubectl kustomize` arguments after the directory: the Helm chart inflator enabled (as
/// Kargo enables it, running `helm` from PATH) with the config's capabilities.
fn kustomize_args(plugin: Option<&PluginConfig>) -> Result<Vec<String>, StepError> {
    let mut args = vec!["--enable-helm".to_string()];
    if let Some(helm) = plugin.and_then(|p| p.helm.as_ref()) {
        for (i, v) in helm.api_versions.iter().enumerate() {
            if v.is_empty() || v.contains(',') {
                return Err(StepError::Failed(format!(
                    "invalid config: config.plugin.helm.apiVersions[{i}]: {v:?} is not an API version"
                )));
            }
            args.push(format!("--helm-api-versions={v}"));
        }
        if let Some(v) = helm.kube_version.as_deref().filter(|v| !v.is_empty()) {
            args.push(format!("--helm-kube-version={v}"));
        }
    }
    Ok(args)
}

/// The file name of one rendered resource in a directory `outPath` (Kargo's two formats).
fn resource_file_name(
    format: OutputFormat,
    resource: &Value,
    several_namespaces: bool,
) -> Result<String, StepError> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_lowercase();
    let kind = text(&resource["kind"]);
    let name = text(&resource["metadata"]["name"]);
    let namespace = text(&resource["metadata"]["namespace"]);
    let file = match format {
        OutputFormat::Kargo if namespace.is_empty() => format!("{kind}-{name}.yaml"),
        OutputFormat::Kargo => format!("{namespace}-{kind}-{name}.yaml"),
        OutputFormat::Kustomize => {
            let api = text(&resource["apiVersion"]);
            let (group, version) = api.rsplit_once('/').unwrap_or(("", &api));
            let gvk: Vec<&str> = [group, version, kind.as_str()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect();
            let base = format!("{}_{name}.yaml", gvk.join("_"));
            if several_namespaces && !namespace.is_empty() {
                format!("{namespace}_{base}")
            } else {
                base
            }
        }
    };
    // Names come from rendered (untrusted) metadata: only a plain file name may be written.
    if file.contains('/') || file.contains('\\') || file.starts_with('.') {
        return Err(StepError::Failed(format!(
            "a rendered resource would be written as {file:?}, which is not a plain file name"
        )));
    }
    Ok(file)
}

/// Renders `path` with `kubectl kustomize` (kustomize v5 built into kubectl) into `outPath`:
/// one file when it ends in .yaml/.yml, else a directory with one file per resource.
pub async fn build(cfg: BuildConfig, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    let dir = path_in(env, &cfg.path, "path")?;
    let out = path_in(env, &cfg.out_path, "outPath")?;
    let args = kustomize_args(cfg.plugin.as_ref())?;
    let output = tokio::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .args(&args)
        .env_remove("KUBECONFIG")
        .output()
        .await
        .map_err(|e| StepError::Errored(format!("running kubectl kustomize: {e}")))?;
    if !output.status.success() {
        return Err(StepError::Failed(format!(
            "kustomize build {} failed: {}",
            cfg.path,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let rendered = String::from_utf8_lossy(&output.stdout).into_owned();
    let single = cfg.out_path.ends_with(".yaml") || cfg.out_path.ends_with(".yml");
    let write = |p: &Path, body: &str| -> Result<(), StepError> {
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| StepError::Errored(e.to_string()))?;
        }
        std::fs::write(p, body)
            .map_err(|e| StepError::Errored(format!("writing {}: {e}", p.display())))
    };
    if single {
        write(&out, &rendered)?;
    } else {
        std::fs::create_dir_all(&out).map_err(|e| StepError::Errored(e.to_string()))?;
        let docs: Vec<(&str, Value)> = rendered
            .split("\n---\n")
            .filter(|d| !d.trim().is_empty())
            .map(|d| (d, serde_saphyr::from_str(d).unwrap_or(Value::Null)))
            .collect();
        let namespaces: std::collections::BTreeSet<&str> = docs
            .iter()
            .filter_map(|(_, v)| v["metadata"]["namespace"].as_str())
            .filter(|n| !n.is_empty())
            .collect();
        let format = cfg.output_format.unwrap_or(OutputFormat::Kargo);
        for (doc, v) in &docs {
            let name = resource_file_name(format, v, namespaces.len() > 1)?;
            let body = doc.trim_start_matches("---\n");
            write(&out.join(name), &format!("{}\n", body.trim_end()))?;
        }
    }
    Ok(StepOutcome::succeeded(Map::new()))
}

step! {
    pub struct KustomizeSetImage = "kustomize-set-image", SetImageConfig,
    |cfg, env| set_image(cfg, env)
}

step! { pub struct KustomizeBuild = "kustomize-build", BuildConfig, |cfg, env| build(cfg, env) }

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn file_names_follow_kargos_two_formats() {
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "Web", "namespace": "prod"}});
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}});
        let name = |f, r: &Value, several| resource_file_name(f, r, several).expect("name");
        assert_eq!(
            name(OutputFormat::Kargo, &deploy, false),
            "prod-deployment-web.yaml"
        );
        assert_eq!(name(OutputFormat::Kargo, &ns, false), "namespace-prod.yaml");
        assert_eq!(
            name(OutputFormat::Kustomize, &deploy, false),
            "apps_v1_deployment_web.yaml"
        );
        assert_eq!(
            name(OutputFormat::Kustomize, &deploy, true),
            "prod_apps_v1_deployment_web.yaml"
        );
        assert_eq!(
            name(OutputFormat::Kustomize, &ns, true),
            "v1_namespace_prod.yaml"
        );
        let hostile = json!({"kind": "x", "metadata": {"name": "../../etc"}});
        assert!(resource_file_name(OutputFormat::Kargo, &hostile, false).is_err());
    }

    #[test]
    fn helm_capabilities_become_kustomize_flags() {
        let plugin: PluginConfig = serde_json::from_value(json!({
            "helm": {"apiVersions": ["monitoring.coreos.com/v1", "example.com/v1"], "kubeVersion": "1.31.0"}
        }))
        .expect("config");
        assert_eq!(
            kustomize_args(Some(&plugin)).expect("args"),
            [
                "--enable-helm",
                "--helm-api-versions=monitoring.coreos.com/v1",
                "--helm-api-versions=example.com/v1",
                "--helm-kube-version=1.31.0"
            ]
        );
        assert_eq!(kustomize_args(None).expect("args"), ["--enable-helm"]);
    }
}
