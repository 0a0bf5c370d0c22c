//! `haul run-local`: runs a Stage's promotion steps for a piece of Freight on this machine,
//! with no cluster, through the same step engine the controller uses. It prints the diff each
//! git-commit step commits, and stops before the first git-push unless `--push` is given, so a
//! promotion template can be tried against a checkout before it is applied.
//!
//! What differs from the controller is only the step environment it gives the engine: git
//! credentials come from the command line (or none) instead of Secrets; there is no cluster,
//! so steps that need one are skipped or fail as their declared needs say (argocd-update is
//! skipped, set-metadata fails); pushing is allowed only with `--push`; `file://` URLs and
//! local paths are accepted, and `--repo-override` makes the git layer fetch a repository URL
//! from a local checkout (expressions still see the URL). The Freight's availability to the
//! Stage is reported but not enforced.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::{CliError, RunLocalArgs};
use crate::api::{
    ClusterPromotionTask, ExpressionVariable, Freight, FreightCollection, PromotionPhase,
    PromotionStatus, PromotionStep, PromotionTask, Stage,
};
use crate::expressions::{PromotionContext, TargetFreight};
use crate::git::{Author, Credentials, RepoCache, RepoCacheConfig, normalize_url};
use crate::promotion::engine::{self, Progress};
use crate::promotion::inflate::{self, TaskKind, Tasks};
use crate::promotion::steps::{self, FixedCredentials, StepEnv};

/// Longest pause between two attempts of a step that asked to be called again.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// A repository URL fetched from a local checkout instead.
#[derive(Debug, Clone, PartialEq)]
struct Override {
    url: String,
    normalized: String,
    target: String,
    used: bool,
}

pub async fn run(args: RunLocalArgs) -> Result<(), CliError> {
    let (stage, tasks) = read_stage_file(&args.stage_file, args.stage.as_deref())?;
    let freight = read_freight_file(&args.freight_file, args.freight.as_deref())?;
    let mut overrides = parse_overrides(&args.repo_overrides)?;
    let stage_name = stage.metadata.name.clone().unwrap_or_default();
    let template = stage
        .spec
        .promotion_template
        .as_ref()
        .map(|t| t.spec.clone())
        .filter(|t| !t.steps.is_empty())
        .ok_or_else(|| {
            CliError::Usage(format!(
                "Stage {stage_name} has no promotionTemplate steps: there is nothing to run"
            ))
        })?;
    let vars: Vec<ExpressionVariable> = stage
        .spec
        .vars
        .iter()
        .chain(template.vars.iter())
        .cloned()
        .collect();
    let steps_list = inflate::inflate(&template, &vars, &tasks).map_err(|e| {
        CliError::Usage(format!(
            "Stage {stage_name} promotionTemplate: {e}\n(put the PromotionTasks it uses in the --stage-file as more YAML documents)"
        ))
    })?;
    mark_used_overrides(&steps_list, &vars, &mut overrides);
    for o in &overrides {
        if o.used {
            eprintln!("repo override: {} -> {}", o.url, o.target);
        } else {
            eprintln!(
                "warning: --repo-override {} matched no repository URL in the steps or vars of Stage {stage_name}",
                o.url
            );
        }
    }
    if let Err(e) = crate::availability::check(&stage, &freight, Timestamp::now()) {
        eprintln!("note: the cluster would refuse this promotion today: {e}");
    }
    let work_dir = prepare_work_dir(&args.work_dir)?;
    let cache = RepoCache::with_config(
        work_dir.join(".haul").join("git-cache"),
        RepoCacheConfig {
            allow_file_urls: true,
            fetch_urls: overrides
                .iter()
                .map(|o| (o.url.clone(), o.target.clone()))
                .collect(),
            ..RepoCacheConfig::default()
        },
    )
    .map_err(|e| CliError::Other(format!("preparing the git cache: {e}")))?;
    let creds = match (args.git_username, args.git_password) {
        (Some(username), Some(password)) => Credentials::Basic { username, password },
        (None, Some(password)) => Credentials::Basic {
            username: "git".into(),
            password,
        },
        (Some(_), None) => {
            return Err(CliError::Usage(
                "--git-username needs --git-password (or HAUL_GIT_PASSWORD)".into(),
            ));
        }
        (None, None) => Credentials::None,
    };
    let run = Run {
        stage,
        freight,
        steps: steps_list,
        vars,
        work_dir,
        cache,
        author: Author {
            name: args.git_name,
            email: args.git_email,
        },
        creds: FixedCredentials(creds),
        push: args.push,
        signing_key: crate::controller::git_user::key_from_path(
            args.git_signing_key_path.as_deref(),
        ),
    };
    run.execute().await
}

/// Everything one local run needs.
struct Run {
    stage: Stage,
    freight: Freight,
    steps: Vec<PromotionStep>,
    vars: Vec<ExpressionVariable>,
    work_dir: PathBuf,
    cache: RepoCache,
    author: Author,
    creds: FixedCredentials,
    push: bool,
    signing_key: crate::promotion::steps::env::DefaultSigningKey,
}

impl Run {
    async fn execute(self) -> Result<(), CliError> {
        let stage_name = self.stage.metadata.name.clone().unwrap_or_default();
        let freight_name = self.freight.metadata.name.clone().unwrap_or_default();
        let project = self
            .stage
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "local".into());
        let promotion = crate::cli::promote::promotion_name(&stage_name, &freight_name);
        let actor = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "unknown".into());
        let collection = collection_of(&self.freight);
        let alias = self.freight.alias.clone().unwrap_or_default();
        let pctx = PromotionContext {
            project: project.clone(),
            stage: stage_name.clone(),
            promotion: promotion.clone(),
            target_freight: TargetFreight {
                name: freight_name.clone(),
                alias: alias.clone(),
                origin: self.freight.origin.clone(),
            },
            actor: actor.clone(),
            ..Default::default()
        };
        let env = StepEnv {
            client: None,
            argocd_namespace: None,
            credentials: &self.creds,
            push_allowed: self.push,
            runner: "run-local",
            git: &self.cache,
            work_dir: &self.work_dir,
            project: &project,
            shared_namespace: None,
            stage: &stage_name,
            promotion: &promotion,
            actor: &actor,
            freight: &collection,
            author: &self.author,
            signing_key: &self.signing_key,
            previous_output: None,
        };
        let total = self.steps.len();
        let shown_alias = if alias.is_empty() {
            String::new()
        } else {
            format!(" ({alias})")
        };
        eprintln!(
            "Promoting Freight {freight_name}{shown_alias} to Stage {stage_name} locally: {total} step(s) in {}",
            self.work_dir.display()
        );
        let mut status = PromotionStatus {
            phase: Some(PromotionPhase::Running),
            steps: self.steps.clone(),
            vars: self.vars.clone(),
            current_step: Some(0),
            freight: Some(self.freight.to_reference()),
            freight_collection: Some(collection.clone()),
            ..Default::default()
        };
        let mut shown_diffs: BTreeMap<PathBuf, String> = BTreeMap::new();
        let mut last_wait_message: Option<String> = None;
        loop {
            let i = status.current_step.unwrap_or(0).max(0) as usize;
            // Before a step that commits first runs, show what it will commit.
            if let Some(step) = self.steps.get(i)
                && commits(step)
                && status
                    .step_execution_metadata
                    .get(i)
                    .is_none_or(|m| m.started_at.is_none())
            {
                let alias = alias_of(step, i);
                self.print_diffs(
                    &format!("to be committed by step {alias:?}"),
                    &mut shown_diffs,
                )
                .await?;
            }
            match engine::step_once(&self.steps, &self.vars, &pctx, &mut status, &env).await {
                Progress::Continue => {
                    last_wait_message = None;
                    report(&status, &self.steps, i);
                }
                Progress::Wait(d) => {
                    let message = status
                        .step_execution_metadata
                        .get(i)
                        .and_then(|m| m.message.clone());
                    if message.is_some() && message != last_wait_message {
                        eprintln!(
                            "[{}/{total}] {}: {}",
                            i + 1,
                            self.steps
                                .get(i)
                                .map(|s| alias_of(s, i))
                                .unwrap_or_default(),
                            message.clone().unwrap_or_default()
                        );
                        last_wait_message = message;
                    }
                    tokio::time::sleep(d.min(MAX_WAIT)).await;
                }
                // Only a push is withheld here (without --push).
                Progress::Stopped(_) => return self.stop_before_push(&status, i),
                Progress::Done(phase, message) => {
                    // Changes no git-commit step took (a template without one).
                    self.print_diffs("not committed by any step", &mut shown_diffs)
                        .await?;
                    if phase == PromotionPhase::Succeeded {
                        eprintln!("Done: {message}.");
                        return Ok(());
                    }
                    return Err(CliError::Other(format!(
                        "the promotion steps ended {phase}: {message}"
                    )));
                }
            }
        }
    }

    /// Reports the first push that is not run, the steps after it, and where the result is;
    /// fails when an earlier step did.
    fn stop_before_push(&self, status: &PromotionStatus, i: usize) -> Result<(), CliError> {
        let total = self.steps.len();
        let uses = self
            .steps
            .get(i)
            .and_then(|s| s.uses.as_deref())
            .unwrap_or_default();
        let alias = self
            .steps
            .get(i)
            .map(|s| alias_of(s, i))
            .unwrap_or_default();
        eprintln!(
            "[{}/{total}] {alias} ({uses}): not run; pass --push to push",
            i + 1
        );
        for (j, s) in self.steps.iter().enumerate().skip(i + 1) {
            eprintln!(
                "[{}/{total}] {} ({}): not run",
                j + 1,
                alias_of(s, j),
                s.uses.as_deref().unwrap_or_default()
            );
        }
        let (phase, message) = engine::final_phase(&status.step_execution_metadata);
        if phase != PromotionPhase::Succeeded {
            return Err(CliError::Other(format!(
                "the promotion steps ended {phase}: {message}"
            )));
        }
        let trees: Vec<String> = steps::worktrees(&self.work_dir)
            .into_iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        eprintln!(
            "Stopped before {uses}: nothing was pushed. The work is in {} (inspect it with `git -C <dir> show`).",
            trees.join(", ")
        );
        Ok(())
    }

    /// Prints (on stdout) the diff of every worktree with changes not shown before in that
    /// state, staged as git-commit stages them.
    async fn print_diffs(
        &self,
        why: &str,
        shown: &mut BTreeMap<PathBuf, String>,
    ) -> Result<(), CliError> {
        for (path, _) in steps::worktrees(&self.work_dir) {
            if !path.is_dir() {
                continue;
            }
            git(&path, &["add", "--all"]).await?;
            let diff = git(
                &path,
                &[
                    "diff",
                    "--cached",
                    "--no-color",
                    "--no-ext-diff",
                    "--no-renames",
                ],
            )
            .await?;
            if diff.is_empty() || shown.get(&path) == Some(&diff) {
                continue;
            }
            let rel = path.strip_prefix(&self.work_dir).unwrap_or(&path);
            eprintln!("==> changes in ./{}, {why}:", rel.display());
            print!("{diff}");
            shown.insert(path, diff);
        }
        Ok(())
    }
}

/// The alias the engine gives step `i`.
fn alias_of(step: &PromotionStep, i: usize) -> String {
    step.r#as
        .clone()
        .unwrap_or_else(|| format!("step-{}", i + 1))
}

/// Whether `step` records the worktree's changes in a commit, as the registry declares.
pub(crate) fn commits(step: &PromotionStep) -> bool {
    step.uses
        .as_deref()
        .and_then(steps::find)
        .is_some_and(|s| s.needs.commit)
}

/// Prints the outcome of step `i` on stderr.
fn report(status: &PromotionStatus, steps_list: &[PromotionStep], i: usize) {
    let Some(step) = steps_list.get(i) else {
        return;
    };
    let meta = status.step_execution_metadata.get(i);
    let alias = alias_of(step, i);
    let outcome = meta
        .and_then(|m| m.status)
        .map(|s| s.to_string())
        .unwrap_or_default();
    let mut line = format!(
        "[{}/{}] {alias} ({}): {outcome}",
        i + 1,
        steps_list.len(),
        step.uses.as_deref().unwrap_or_default()
    );
    if let Some(m) = meta.and_then(|m| m.message.as_deref()) {
        let m = m.strip_prefix("skipped: ").unwrap_or(m);
        line.push_str(&format!(": {m}"));
    }
    if commits(step)
        && let Some(sha) = status
            .state
            .as_ref()
            .and_then(|s| s.get(&alias))
            .and_then(|o| o.get("commit"))
            .and_then(Value::as_str)
    {
        line.push_str(&format!(" (commit {})", &sha[..sha.len().min(12)]));
    }
    eprintln!("{line}");
}

/// The Freight as the Promotion's FreightCollection (no other origins: there is no Stage state).
fn collection_of(freight: &Freight) -> FreightCollection {
    use sha1::{Digest, Sha1};
    let name = freight.metadata.name.clone().unwrap_or_default();
    FreightCollection {
        id: Sha1::digest(name.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        items: BTreeMap::from([(freight.origin.to_string(), freight.to_reference())]),
        verification_history: Vec::new(),
    }
}

/// Runs git in `dir` with no user or system configuration; returns stdout.
pub(crate) async fn git(dir: &Path, args: &[&str]) -> Result<String, CliError> {
    let out = tokio::process::Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .args([
            "-c",
            "core.quotePath=false",
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.autocrlf=false",
        ])
        .args(args)
        .output()
        .await
        .map_err(|e| CliError::Other(format!("running git: {e}")))?;
    if !out.status.success() {
        return Err(CliError::Other(format!(
            "git {} in {} failed: {}",
            args.first().copied().unwrap_or_default(),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A new or empty directory, created if needed, as a canonical path.
fn prepare_work_dir(dir: &Path) -> Result<PathBuf, CliError> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir)
            .map_err(|e| CliError::Usage(format!("--work-dir {}: {e}", dir.display())))?;
        if entries.next().is_some() {
            return Err(CliError::Usage(format!(
                "--work-dir {} is not empty: pass a new or empty directory (the steps clone into it)",
                dir.display()
            )));
        }
    } else {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::Usage(format!("creating --work-dir {}: {e}", dir.display())))?;
    }
    dir.canonicalize()
        .map_err(|e| CliError::Usage(format!("--work-dir {}: {e}", dir.display())))
}

/// `URL=PATH` pairs; PATH must be a local repository, used as an absolute `file://` URL.
fn parse_overrides(raw: &[String]) -> Result<Vec<Override>, CliError> {
    raw.iter()
        .map(|r| {
            let (url, path) = r.split_once('=').ok_or_else(|| {
                CliError::Usage(format!("--repo-override {r:?}: expected URL=PATH"))
            })?;
            let (url, path) = (url.trim(), path.trim());
            if url.is_empty() || path.is_empty() {
                return Err(CliError::Usage(format!(
                    "--repo-override {r:?}: expected URL=PATH"
                )));
            }
            let abs = Path::new(path)
                .canonicalize()
                .map_err(|e| CliError::Usage(format!("--repo-override {url}: {path}: {e}")))?;
            if !abs.join(".git").exists() && !abs.join("HEAD").is_file() {
                return Err(CliError::Usage(format!(
                    "--repo-override {url}: {} is not a git repository",
                    abs.display()
                )));
            }
            Ok(Override {
                url: url.to_string(),
                normalized: normalize_url(url),
                target: format!("file://{}", abs.display()),
                used: false,
            })
        })
        .collect()
}

/// Marks the overrides whose URL some step config or var names literally, so a mistyped
/// `--repo-override` is reported before anything runs. Nothing is rewritten: the git layer
/// fetches an overridden URL from its checkout, and expressions see the URL as written.
fn mark_used_overrides(
    steps_list: &[PromotionStep],
    vars: &[ExpressionVariable],
    overrides: &mut [Override],
) {
    fn mark(s: &str, overrides: &mut [Override]) {
        let t = s.trim();
        if let Some(o) = overrides
            .iter_mut()
            .find(|o| t == o.url || normalize_url(t) == o.normalized)
        {
            o.used = true;
        }
    }
    fn walk(v: &Value, overrides: &mut [Override]) {
        match v {
            Value::String(s) => mark(s, overrides),
            Value::Array(a) => a.iter().for_each(|x| walk(x, overrides)),
            Value::Object(m) => m.values().for_each(|x| walk(x, overrides)),
            _ => {}
        }
    }
    if overrides.is_empty() {
        return;
    }
    let all_vars = vars
        .iter()
        .chain(steps_list.iter().flat_map(|s| s.vars.iter()));
    for v in all_vars {
        if let Some(value) = &v.value {
            mark(value, overrides);
        }
    }
    for config in steps_list.iter().filter_map(|s| s.config.as_ref()) {
        walk(config, overrides);
    }
}

fn read_documents(path: &Path) -> Result<Vec<Value>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("reading {}: {e}", path.display())))?;
    let docs = serde_saphyr::from_multiple::<Value>(&text)
        .map_err(|e| CliError::Usage(format!("{} is not YAML: {e}", path.display())))?;
    // A List (as `haul get -o yaml` prints) stands for its items.
    Ok(docs
        .into_iter()
        .flat_map(|d| match d.get("items").and_then(Value::as_array) {
            Some(items)
                if d.get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List")) =>
            {
                items.clone()
            }
            _ => vec![d],
        })
        .filter(|d| !d.is_null())
        .collect())
}

fn kind_of(doc: &Value) -> &str {
    doc.get("kind").and_then(Value::as_str).unwrap_or_default()
}

fn typed<T: serde::de::DeserializeOwned>(doc: Value, path: &Path) -> Result<T, CliError> {
    let kind = kind_of(&doc).to_string();
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    serde_path_to_error::deserialize(doc).map_err(|e| {
        CliError::Usage(format!(
            "{}: {kind} {name}: {}: {}",
            path.display(),
            e.path(),
            e.inner()
        ))
    })
}

/// The Stage to run (the only one, or the one named) and the tasks in the same file.
fn read_stage_file(path: &Path, want: Option<&str>) -> Result<(Stage, Tasks), CliError> {
    let mut stages = Vec::new();
    let mut tasks = Tasks::default();
    for doc in read_documents(path)? {
        match kind_of(&doc) {
            "Stage" => stages.push(typed::<Stage>(doc, path)?),
            "PromotionTask" => {
                let t: PromotionTask = typed(doc, path)?;
                let name = t.metadata.name.clone().unwrap_or_default();
                tasks.tasks.insert((TaskKind::Namespaced, name), t.spec);
            }
            "ClusterPromotionTask" => {
                let t: ClusterPromotionTask = typed(doc, path)?;
                let name = t.metadata.name.clone().unwrap_or_default();
                tasks.tasks.insert((TaskKind::Cluster, name), t.spec.into());
            }
            _ => {}
        }
    }
    let names: Vec<String> = stages
        .iter()
        .map(|s| s.metadata.name.clone().unwrap_or_default())
        .collect();
    let stage = match want {
        Some(w) => stages
            .into_iter()
            .find(|s| s.metadata.name.as_deref() == Some(w))
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "{} has no Stage {w} (it has: {})",
                    path.display(),
                    names.join(", ")
                ))
            })?,
        None if stages.len() == 1 => stages.remove(0),
        None if stages.is_empty() => {
            return Err(CliError::Usage(format!(
                "{} holds no Stage",
                path.display()
            )));
        }
        None => {
            return Err(CliError::Usage(format!(
                "{} holds several Stages ({}): say which with --stage",
                path.display(),
                names.join(", ")
            )));
        }
    };
    Ok((stage, tasks))
}

/// The Freight to promote (the only one, or the one named by name or alias).
fn read_freight_file(path: &Path, want: Option<&str>) -> Result<Freight, CliError> {
    let mut all: Vec<Freight> = Vec::new();
    for doc in read_documents(path)? {
        if kind_of(&doc) == "Freight" {
            all.push(typed(doc, path)?);
        }
    }
    let names: Vec<String> = all
        .iter()
        .map(|f| f.metadata.name.clone().unwrap_or_default())
        .collect();
    match want {
        Some(w) => all
            .into_iter()
            .find(|f| f.metadata.name.as_deref() == Some(w) || f.alias.as_deref() == Some(w))
            .ok_or_else(|| CliError::Usage(format!("{} has no Freight {w}", path.display()))),
        None if all.len() == 1 => Ok(all.remove(0)),
        None if all.is_empty() => Err(CliError::Usage(format!(
            "{} holds no Freight",
            path.display()
        ))),
        None => Err(CliError::Usage(format!(
            "{} holds several Freight ({}): say which with --freight",
            path.display(),
            names.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_found_in_vars_and_configs_and_rewrite_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join(".git")).expect("git dir");
        let spec = format!(
            "https://git.example.com/org/gitops.git={}",
            dir.path().display()
        );
        let mut overrides = parse_overrides(&[spec]).expect("parse");
        let vars = vec![ExpressionVariable {
            name: "repo".into(),
            value: Some("https://git.example.com/org/gitops".into()),
        }];
        let steps_list: Vec<PromotionStep> = serde_json::from_value(serde_json::json!([
            {"uses": "git-clone", "config": {"repoURL": "https://git.example.com/org/gitops.git",
                "checkout": [{"branch": "main", "path": "./src"}]}},
            {"uses": "git-clone", "config": {"repoURL": "${{ vars.repo }}"}},
        ]))
        .expect("steps");
        mark_used_overrides(&steps_list, &vars, &mut overrides);
        let target = format!(
            "file://{}",
            dir.path().canonicalize().expect("canon").display()
        );
        assert_eq!(overrides[0].target, target);
        assert!(overrides[0].used);
        let mut unused = overrides.clone();
        unused[0].used = false;
        mark_used_overrides(&steps_list[1..], &[], &mut unused);
        assert!(!unused[0].used, "an expression is not a literal use");
        assert!(parse_overrides(&["no-equals".into()]).is_err());
        assert!(parse_overrides(&[format!("u={}", dir.path().join("missing").display())]).is_err());
    }

    #[test]
    fn stage_files_may_hold_several_stages_and_tasks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stages.yaml");
        std::fs::write(
            &path,
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {name: dev}\nspec:\n  requestedFreight: [{origin: {kind: Warehouse, name: w}, sources: {direct: true}}]\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {name: uat}\nspec:\n  requestedFreight: [{origin: {kind: Warehouse, name: w}, sources: {stages: [dev]}}]\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: PromotionTask\nmetadata: {name: t}\nspec:\n  steps: [{uses: compose-output}]\n",
        )
        .expect("write");
        let e = read_stage_file(&path, None).expect_err("ambiguous");
        assert!(e.to_string().contains("--stage"), "{e}");
        let (s, tasks) = read_stage_file(&path, Some("uat")).expect("uat");
        assert_eq!(s.metadata.name.as_deref(), Some("uat"));
        assert!(
            tasks
                .tasks
                .contains_key(&(TaskKind::Namespaced, "t".to_string()))
        );
    }
}
