//! helm-update-chart: sets umbrella-chart dependency versions in Chart.yaml and keeps Chart.lock
//! consistent with them (Kargo: `helm_chart_updater.go`, `pkg/helm/dependency_manager.go`).
//!
//! Kargo runs Helm's `dependency update`. haul writes Chart.lock itself instead of shelling out
//! to `helm`: the lock's `digest` is Helm's `HashReq` (see `chart_lock`), so `helm dependency
//! build` (Argo CD) accepts it; the image needs no helm binary, no Helm home or repository
//! logins per Promotion, and no network: the versions come from Freight that discovery already
//! found in the repository. Consequences, documented for users: the chart archives are not
//! downloaded into `charts/` (Argo CD builds them from the lock), and a dependency this step does
//! not update keeps its locked version (Helm would float a range to the newest match).

use std::collections::BTreeMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::chart_lock::{self, Dependency, Locked};
use super::env::StepEnv;
use super::spec::step;
use super::toolkit::{StepError, StepOutcome, lenient, path_in};
use crate::discovery::Constraint;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    path: String,
    #[serde(default)]
    charts: Option<Vec<ChartUpdate>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChartUpdate {
    #[serde(deserialize_with = "lenient::string")]
    #[schemars(with = "lenient::Text")]
    repository: String,
    #[serde(deserialize_with = "lenient::string")]
    #[schemars(with = "lenient::Text")]
    name: String,
    #[serde(deserialize_with = "lenient::string")]
    #[schemars(with = "lenient::Text")]
    version: String,
}

fn failed(msg: String) -> StepError {
    StepError::Failed(msg)
}

/// Checks what the JSON schema of Kargo's step requires (minLength 1, minItems 1).
fn validate(cfg: &Config) -> Result<(), StepError> {
    if cfg.path.trim().is_empty() {
        return Err(failed(
            "invalid config: config.path: must not be empty".into(),
        ));
    }
    if let Some(charts) = &cfg.charts {
        if charts.is_empty() {
            return Err(failed(
                "invalid config: config.charts: at least one chart is required when set".into(),
            ));
        }
        for (i, c) in charts.iter().enumerate() {
            for (field, v) in [
                ("repository", &c.repository),
                ("name", &c.name),
                ("version", &c.version),
            ] {
                if v.trim().is_empty() {
                    return Err(failed(format!(
                        "invalid config: config.charts[{i}].{field}: must not be empty"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The dependency index each update applies to; names the config entry that matches none.
pub fn match_updates(
    deps: &[Dependency],
    updates: &[ChartUpdate],
    chart_yaml: &str,
) -> Result<Vec<usize>, StepError> {
    updates
        .iter()
        .enumerate()
        .map(|(k, u)| {
            deps.iter()
                .position(|d| d.name == u.name && d.repository == u.repository)
                .ok_or_else(|| {
                    let have: Vec<String> = deps
                        .iter()
                        .map(|d| format!("{} ({})", d.name, d.repository))
                        .collect();
                    failed(format!(
                        "config.charts[{k}]: no dependency in {chart_yaml} has repository {:?} and name {:?}; it has: {}",
                        u.repository,
                        u.name,
                        if have.is_empty() { "no dependencies".to_string() } else { have.join(", ") }
                    ))
                })
        })
        .collect()
}

/// The locked version of every dependency after the update (pure).
pub fn plan_lock(
    deps: &[Dependency],
    updated: &BTreeMap<usize, String>,
    old_lock: &[Locked],
    chart_dir_versions: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Vec<Locked>, String> {
    deps.iter()
        .enumerate()
        .map(|(i, d)| {
            let at = format!("dependencies[{i}] ({})", d.name);
            if d.repository.starts_with('@') || d.repository.starts_with("alias:") {
                return Err(format!(
                    "{at}: repository {:?} is a repository alias; use the repository URL",
                    d.repository
                ));
            }
            let version = if let Some(v) = updated.get(&i) {
                v.clone()
            } else if let Some(v) = previous(old_lock, d) {
                v
            } else if let Some(rel) = d.repository.strip_prefix("file://") {
                chart_dir_versions(rel).map_err(|e| format!("{at}: {e}"))?
            } else if chart_lock::is_exact(&d.version) {
                d.version.trim().to_owned()
            } else {
                return Err(format!(
                    "{at}: version {:?} is a range and Chart.lock has no version for it; haul \
                     writes Chart.lock without asking the repository, so run `helm dependency \
                     update` once and commit Chart.lock",
                    d.version
                ));
            };
            Ok(Locked {
                name: d.name.clone(),
                version,
                repository: d.repository.clone(),
            })
        })
        .collect()
}

/// The version the old lock holds for `d`, when it still satisfies Chart.yaml's version.
fn previous(old_lock: &[Locked], d: &Dependency) -> Option<String> {
    let l = old_lock
        .iter()
        .find(|l| l.name == d.name && l.repository == d.repository)?;
    let want = d.version.trim();
    let ok = if want.is_empty() || l.version == want {
        true
    } else if chart_lock::is_exact(want) {
        false
    } else {
        let v = crate::discovery::parse_version(&l.version, false)?;
        Constraint::parse(want).is_ok_and(|c| c.matches(&v))
    };
    ok.then(|| l.version.clone())
}

/// Kargo's message: "Updated chart dependencies for <path>" and one line per change.
fn commit_message(path: &str, before: &[Locked], after: &[Locked]) -> Option<String> {
    let old: BTreeMap<&str, &str> = before
        .iter()
        .map(|l| (l.name.as_str(), l.version.as_str()))
        .collect();
    let mut changes: BTreeMap<&str, String> = BTreeMap::new();
    for l in after {
        match old.get(l.name.as_str()) {
            Some(v) if *v == l.version => {}
            Some(v) => {
                changes.insert(&l.name, format!("{v} -> {}", l.version));
            }
            None => {
                changes.insert(&l.name, l.version.clone());
            }
        }
    }
    for l in before {
        if !after.iter().any(|a| a.name == l.name) {
            changes.insert(&l.name, "removed".into());
        }
    }
    if changes.is_empty() {
        return None;
    }
    let mut msg = format!("Updated chart dependencies for {path}\n");
    for (name, change) in changes {
        msg.push_str(&format!("\n- {name}: {change}"));
    }
    Some(msg)
}

fn read(file: &Path, shown: &str) -> Result<Option<String>, StepError> {
    match std::fs::read_to_string(file) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StepError::Errored(format!("reading {shown}: {e}"))),
    }
}

pub async fn run(cfg: Config, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    validate(&cfg)?;
    let rel = cfg.path.trim_end_matches('/');
    let chart_rel = format!("{rel}/Chart.yaml");
    let lock_rel = format!("{rel}/Chart.lock");
    let dir = path_in(env, rel, "path")?;
    let chart_file = path_in(env, &chart_rel, "path")?;
    let lock_file = path_in(env, &lock_rel, "path")?;

    let before = read(&chart_file, &chart_rel)?
        .ok_or_else(|| failed(format!("config.path: {chart_rel} does not exist")))?;
    let chart =
        chart_lock::parse_chart(&before).map_err(|e| failed(format!("{chart_rel}: {e}")))?;
    if chart.api_version == "v1" {
        return Err(failed(format!(
            "{chart_rel}: apiVersion v1 charts keep dependencies in requirements.yaml, which \
             helm-update-chart does not edit"
        )));
    }
    let updates = cfg.charts.as_deref().unwrap_or_default();
    let indexes = match_updates(&chart.dependencies, updates, &chart_rel)?;
    let updated: BTreeMap<usize, String> = indexes
        .iter()
        .zip(updates)
        .map(|(i, u)| (*i, u.version.trim().to_owned()))
        .collect();

    let edits: Vec<(String, Value)> = updated
        .iter()
        .filter(|(i, v)| chart.dependencies[**i].version != **v)
        .map(|(i, v)| {
            (
                format!("dependencies.{i}.version"),
                Value::String(v.clone()),
            )
        })
        .collect();
    let after = if edits.is_empty() {
        before.clone()
    } else {
        crate::yaml::set_values(&before, &edits).map_err(|e| failed(format!("{chart_rel}: {e}")))?
    };
    let chart = chart_lock::parse_chart(&after).map_err(|e| failed(format!("{chart_rel}: {e}")))?;

    let old_lock = match read(&lock_file, &lock_rel)? {
        Some(text) => {
            Some(chart_lock::parse_lock(&text).map_err(|e| failed(format!("{lock_rel}: {e}")))?)
        }
        None => None,
    };
    let old_locked = old_lock
        .as_ref()
        .map(|l| l.dependencies.clone())
        .unwrap_or_default();
    let local_version = |sub: &str| -> Result<String, String> {
        let file =
            path_in(env, &format!("{rel}/{sub}/Chart.yaml"), "path").map_err(|e| e.to_string())?;
        let text = std::fs::read_to_string(&file).map_err(|e| format!("{sub}: {e}"))?;
        #[derive(Deserialize)]
        struct V {
            version: Option<String>,
        }
        let v: V = serde_saphyr::from_str(&text).map_err(|e| format!("{sub}/Chart.yaml: {e}"))?;
        v.version
            .ok_or_else(|| format!("{sub}/Chart.yaml has no version"))
    };
    let locked = plan_lock(&chart.dependencies, &updated, &old_locked, &local_version)
        .map_err(|e| failed(format!("{chart_rel}: {e}")))?;
    let digest = chart_lock::digest(&chart.dependencies, &locked);

    if after != before {
        std::fs::write(&chart_file, &after)
            .map_err(|e| StepError::Errored(format!("writing {chart_rel}: {e}")))?;
    }
    // As Helm: an unchanged lock is left alone, so its timestamp does not make a diff.
    let lock_current = old_lock
        .as_ref()
        .is_some_and(|l| l.digest == digest && l.dependencies == locked);
    if !lock_current && !chart.dependencies.is_empty() {
        let generated = k8s_openapi::jiff::Timestamp::now().to_string();
        std::fs::write(
            &lock_file,
            chart_lock::render_lock(&digest, &locked, &generated),
        )
        .map_err(|e| StepError::Errored(format!("writing {lock_rel}: {e}")))?;
    }
    tracing::info!(chart = %dir.display(), updated = edits.len(), lock_written = !lock_current, "helm-update-chart");

    let mut out = Map::new();
    if let Some(msg) = commit_message(rel, &old_locked, &locked) {
        out.insert("commitMessage".into(), Value::String(msg));
    }
    Ok(StepOutcome::succeeded(out))
}

step! { pub struct HelmUpdateChart = "helm-update-chart", Config, |cfg, env| run(cfg, env) }

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(name: &str, version: &str, repo: &str) -> Dependency {
        Dependency {
            name: name.into(),
            version: version.into(),
            repository: repo.into(),
            ..Dependency::default()
        }
    }

    fn locked(name: &str, version: &str, repo: &str) -> Locked {
        Locked {
            name: name.into(),
            version: version.into(),
            repository: repo.into(),
        }
    }

    fn no_local(_: &str) -> Result<String, String> {
        Err("no local charts here".into())
    }

    #[test]
    fn an_unknown_dependency_names_the_config_entry() {
        let deps = vec![dep("app", "1.0.0", "oci://r/charts")];
        let updates = vec![ChartUpdate {
            repository: "oci://r/other".into(),
            name: "app".into(),
            version: "2.0.0".into(),
        }];
        let err = match_updates(&deps, &updates, "chart/Chart.yaml").unwrap_err();
        let StepError::Failed(msg) = err else {
            panic!("{err:?}")
        };
        assert!(
            msg.starts_with("config.charts[0]: no dependency in chart/Chart.yaml has repository \"oci://r/other\" and name \"app\""),
            "{msg}"
        );
        assert!(msg.contains("app (oci://r/charts)"), "{msg}");
    }

    #[test]
    fn lock_takes_updates_then_the_old_lock_then_exact_versions() {
        let deps = vec![
            dep("app", "2.0.0", "oci://r/charts"),
            dep("db", "^1.0.0", "https://c.example.com"),
            dep("cache", "3.1.0", "https://c.example.com"),
        ];
        let updated = BTreeMap::from([(0, "2.0.0".to_string())]);
        let old = vec![
            locked("app", "1.0.0", "oci://r/charts"),
            locked("db", "1.4.2", "https://c.example.com"),
        ];
        let got = plan_lock(&deps, &updated, &old, &no_local).expect("lock");
        assert_eq!(
            got,
            [
                locked("app", "2.0.0", "oci://r/charts"),
                locked("db", "1.4.2", "https://c.example.com"),
                locked("cache", "3.1.0", "https://c.example.com"),
            ]
        );
        assert_eq!(
            commit_message("chart", &old, &got).as_deref(),
            Some("Updated chart dependencies for chart\n\n- app: 1.0.0 -> 2.0.0\n- cache: 3.1.0")
        );
        assert_eq!(commit_message("chart", &got, &got), None);
    }

    #[test]
    fn a_range_without_a_lock_entry_or_an_alias_is_refused() {
        let deps = vec![dep("db", "^1.0.0", "https://c.example.com")];
        let err = plan_lock(&deps, &BTreeMap::new(), &[], &no_local).unwrap_err();
        assert!(
            err.contains("dependencies[0] (db): version \"^1.0.0\" is a range"),
            "{err}"
        );
        // A lock entry that no longer satisfies the range is not reused.
        let old = vec![locked("db", "2.0.0", "https://c.example.com")];
        assert!(plan_lock(&deps, &BTreeMap::new(), &old, &no_local).is_err());
        let aliased = vec![dep("db", "1.0.0", "@stable")];
        assert!(
            plan_lock(&aliased, &BTreeMap::new(), &[], &no_local)
                .unwrap_err()
                .contains("repository alias")
        );
    }

    #[test]
    fn config_fields_are_checked() {
        let cfg: Config = serde_json::from_value(serde_json::json!({
            "path": "chart",
            "charts": [{"repository": "oci://r", "name": "app", "version": ""}],
        }))
        .expect("config");
        assert_eq!(
            validate(&cfg),
            Err(StepError::Failed(
                "invalid config: config.charts[0].version: must not be empty".into()
            ))
        );
    }
}
