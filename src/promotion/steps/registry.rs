//! The one list of the steps haul runs. Everything else that knows step names (the engine's
//! defaults, `haul run-local`, `haul schemas`, the unknown-step message) reads it from here.
//!
//! Adding a step: a file in `steps/` with its config type (`Deserialize`, `JsonSchema`,
//! `deny_unknown_fields`) and a unit struct implementing `spec::Step` (most declare it with
//! `spec::step!`), a `mod` line in `steps/mod.rs`, one line in [`STEPS`], then `haul schemas` to
//! write its schema. The test below adds one that way.

use serde_json::Value;

use super::env::StepEnv;
use super::spec::StepSpec;
use super::toolkit::{StepError, StepOutcome};
use super::{
    argocd, argocd_wait, compose_output, data_files, fail, file_write, files, freight_alias, git,
    git_pr, git_tag, github_push, helm_chart, helm_template, http, http_download, kustomize,
    metadata, oci, tar, toml_files, untar, yaml_merge, yaml_update,
};

/// Every step, one line each, in the order the unknown-step message lists them.
pub static STEPS: &[StepSpec] = &[
    StepSpec::of::<git::GitClone>(),
    StepSpec::of::<git::GitClear>(),
    StepSpec::of::<git::GitCommit>(),
    StepSpec::of::<git::GitPush>(),
    StepSpec::of::<git_tag::GitTag>(),
    StepSpec::of::<git_pr::GitOpenPr>(),
    StepSpec::of::<git_pr::GitWaitForPr>(),
    StepSpec::of::<git_pr::GitMergePr>(),
    StepSpec::of::<github_push::GithubPush>(),
    StepSpec::of::<kustomize::KustomizeSetImage>(),
    StepSpec::of::<kustomize::KustomizeBuild>(),
    StepSpec::of::<yaml_update::YamlUpdate>(),
    StepSpec::of::<yaml_merge::YamlMerge>(),
    StepSpec::of::<toml_files::TomlUpdate>(),
    StepSpec::of::<data_files::TomlParse>(),
    StepSpec::of::<untar::Untar>(),
    StepSpec::of::<data_files::JsonUpdate>(),
    StepSpec::of::<data_files::YamlParse>(),
    StepSpec::of::<data_files::JsonParse>(),
    StepSpec::of::<helm_chart::HelmUpdateChart>(),
    StepSpec::of::<argocd::ArgocdUpdate>(),
    StepSpec::of::<argocd_wait::ArgocdWait>(),
    StepSpec::of::<compose_output::ComposeOutput>(),
    StepSpec::of::<files::CopyStep>(),
    StepSpec::of::<files::DeleteStep>(),
    StepSpec::of::<fail::Fail>(),
    StepSpec::of::<http::Http>(),
    StepSpec::of::<metadata::SetMetadata>(),
    StepSpec::of::<file_write::FileWrite>(),
    StepSpec::of::<tar::Tar>(),
    StepSpec::of::<http_download::HttpDownload>(),
    StepSpec::of::<freight_alias::SetFreightAlias>(),
    StepSpec::of::<helm_template::HelmTemplate>(),
    StepSpec::of::<oci::OciDownload>(),
    StepSpec::of::<oci::OciPush>(),
];

/// The step `uses` names, if haul has it.
pub fn find(uses: &str) -> Option<&'static StepSpec> {
    find_in(STEPS, uses)
}

/// Steps whose effects stay in the Promotion's work dir (reads of remotes aside): re-running
/// one after a restart changes nothing outside, so the status need not be saved after it.
const LOCAL_STEPS: &[&str] = &[
    "git-clone",
    "git-clear",
    "git-commit",
    "kustomize-set-image",
    "kustomize-build",
    "helm-template",
    "yaml-update",
    "yaml-parse",
    "yaml-merge",
    "json-update",
    "json-parse",
    "toml-update",
    "toml-parse",
    "copy",
    "delete",
    "file-write",
    "tar",
    "untar",
    "compose-output",
];

/// Whether step `uses` only changes the Promotion's work dir (reads of remotes aside), so the
/// controller need not save the status after it.
pub fn replays_locally(uses: &str) -> bool {
    LOCAL_STEPS.contains(&uses)
}

/// The names of the steps haul runs.
pub fn names() -> impl Iterator<Item = &'static str> {
    STEPS.iter().map(|s| s.name)
}

/// Runs step `uses` with its evaluated `config`.
pub async fn run(uses: &str, config: Value, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    run_in(STEPS, uses, config, env).await
}

fn find_in<'r>(steps: &'r [StepSpec], uses: &str) -> Option<&'r StepSpec> {
    steps.iter().find(|s| s.name == uses)
}

async fn run_in(
    steps: &[StepSpec],
    uses: &str,
    config: Value,
    env: &StepEnv<'_>,
) -> Result<StepOutcome, StepError> {
    match find_in(steps, uses) {
        Some(spec) => spec.run(config, env).await,
        None => Err(StepError::Errored(format!(
            "unknown step {uses:?}; haul runs: {}",
            steps.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::promotion::steps::env::TestEnv;

    /// A new step, exactly as its own file (`steps/echo.rs`) would hold it: a config type, a
    /// unit struct and its `impl Step`. Registering it is the one line in `TEST_STEPS` below.
    mod echo {
        use schemars::JsonSchema;
        use serde::Deserialize;
        use serde_json::{Map, Value};

        use crate::promotion::steps::env::StepEnv;
        use crate::promotion::steps::spec::Step;
        use crate::promotion::steps::toolkit::{StepError, StepOutcome, lenient};

        #[derive(Debug, Deserialize, JsonSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct Config {
            /// What to publish as the `message` output.
            #[serde(deserialize_with = "lenient::string")]
            #[schemars(with = "lenient::Text")]
            message: String,
        }

        pub struct Echo;

        impl Step for Echo {
            const NAME: &'static str = "echo";
            type Config = Config;

            async fn run(cfg: Config, _env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
                let mut out = Map::new();
                out.insert("message".into(), Value::String(cfg.message));
                Ok(StepOutcome::succeeded(out))
            }
        }
    }

    /// The built-in steps' registry with one more line.
    fn test_steps() -> Vec<StepSpec> {
        let mut steps = STEPS.to_vec();
        steps.push(StepSpec::of::<echo::Echo>());
        steps
    }

    async fn run_here(
        steps: &[StepSpec],
        uses: &str,
        config: Value,
    ) -> Result<StepOutcome, StepError> {
        let test_env = TestEnv::new();
        let env = test_env.env("a unit test");
        run_in(steps, uses, config, &env).await
    }

    #[tokio::test]
    async fn a_step_added_in_one_file_and_one_line_runs_with_a_checked_config_and_a_schema() {
        let steps = test_steps();
        let out = run_here(&steps, "echo", json!({"message": 1006}))
            .await
            .expect("echo runs");
        assert_eq!(out.output["message"], "1006");
        let e = run_here(&steps, "echo", json!({"message": "x", "extra": 1}))
            .await
            .expect_err("unknown field");
        assert!(
            e.to_string()
                .starts_with("invalid config: config.extra: unknown field `extra`"),
            "{e}"
        );
        let echo = find_in(&steps, "echo").expect("registered");
        assert_eq!(echo.defaults.timeout, None);
        let schema = serde_json::to_value((echo.schema)()).expect("schema");
        assert_eq!(schema["required"], json!(["message"]));
        assert_eq!(schema["additionalProperties"], json!(false));
        // Without the line, it is an unknown step, named in a message listing what there is.
        let e = run_here(STEPS, "echo", Value::Null)
            .await
            .expect_err("unknown");
        let StepError::Errored(m) = e else {
            panic!("unknown steps are Errored: {e:?}")
        };
        assert!(
            m.starts_with("unknown step \"echo\"; haul runs: git-clone, git-clear"),
            "{m}"
        );
        assert!(m.contains("http, set-metadata"), "{m}");
    }

    #[test]
    fn the_steps_that_replay_locally_are_registered_ones() {
        for name in LOCAL_STEPS {
            assert!(find(name).is_some(), "{name} is not a registered step");
        }
    }

    #[test]
    fn names_are_unique_and_defaults_and_needs_are_declared() {
        let names: BTreeSet<&str> = names().collect();
        assert_eq!(names.len(), STEPS.len());
        for waiting in ["argocd-update", "argocd-wait"] {
            assert_eq!(
                find(waiting).and_then(|s| s.defaults.timeout),
                Some(Duration::from_secs(300))
            );
        }
        assert!(
            STEPS
                .iter()
                .filter(|s| !s.name.starts_with("argocd-"))
                .all(|s| s.defaults.timeout.is_none() && s.defaults.error_threshold == 1)
        );
        let needing = |f: fn(&StepSpec) -> bool| -> Vec<&str> {
            STEPS.iter().filter(|s| f(s)).map(|s| s.name).collect()
        };
        assert_eq!(
            needing(|s| s.needs.cluster.is_some()),
            [
                "argocd-update",
                "argocd-wait",
                "set-metadata",
                "set-freight-alias"
            ]
        );
        assert_eq!(
            needing(|s| s.needs.argocd),
            ["argocd-update", "argocd-wait"]
        );
        assert_eq!(
            needing(|s| s.needs.push),
            [
                "git-push",
                "git-open-pr",
                "git-merge-pr",
                "github-push",
                "oci-push"
            ]
        );
        assert_eq!(needing(|s| s.needs.commit), ["git-commit"]);
        assert_eq!(
            needing(|s| s.needs.git_credentials),
            [
                "git-clone",
                "git-push",
                "git-open-pr",
                "git-wait-for-pr",
                "git-merge-pr",
                "github-push"
            ]
        );
        assert_eq!(needing(|s| s.outputs_to_task), ["compose-output"]);
    }
}
