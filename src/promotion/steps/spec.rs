//! How a step declares itself: its name, its typed config, its defaults, what it needs from its
//! environment and its run function ([`Step`]); and the type-erased form the registry keeps
//! ([`StepSpec`]), so the engine, `haul run-local` and `haul schemas` learn everything about a
//! step from one place.

use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::env::StepEnv;
use super::toolkit::{self, StepError, StepOutcome};

/// Kargo's `retry` defaults of a step, used when its `retry` does not say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepDefaults {
    /// `retry.timeout`: how long the step may stay Running (`None`: no limit).
    pub timeout: Option<Duration>,
    /// `retry.errorThreshold`: retryable errors in a row before the step is Errored.
    pub error_threshold: u32,
}

impl StepDefaults {
    /// Kargo's defaults for most steps: no timeout, the first error ends the step.
    pub const STANDARD: Self = Self {
        timeout: None,
        error_threshold: 1,
    };
}

/// What a step needs from its environment beyond a work directory and the git cache.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Needs {
    /// A cluster client, and why (said when there is none): the step fails without one.
    pub cluster: Option<&'static str>,
    /// Argo CD's Applications (through the cluster): the step is skipped without them.
    pub argocd: bool,
    /// Git credentials for the repositories it names.
    pub git_credentials: bool,
    /// Records the worktree's changes in a commit (`haul run-local` prints the diff first and
    /// the commit after).
    pub commit: bool,
    /// Pushes to a remote: nothing more runs where pushing is not allowed.
    pub push: bool,
}

impl Needs {
    /// Nothing beyond the work directory.
    pub const NOTHING: Self = Self {
        cluster: None,
        argocd: false,
        git_credentials: false,
        commit: false,
        push: false,
    };
}

/// A promotion step. Adding one is a file with a unit struct implementing this trait, and one
/// line in `registry.rs`.
pub trait Step: 'static {
    /// The name `uses:` gives.
    const NAME: &'static str;
    const DEFAULTS: StepDefaults = StepDefaults::STANDARD;
    const NEEDS: Needs = Needs::NOTHING;
    /// When the step runs inside a PromotionTask, its outputs are also published under the
    /// task's alias, so steps after the task read `outputs['task'].x` (compose-output).
    const OUTPUTS_TO_TASK: bool = false;

    /// The config, as `uses:`'s `config:` is written (after `${{ }}` evaluation). Its JSON
    /// Schema is generated into `schemas/steps/<name>.json`.
    type Config: DeserializeOwned + JsonSchema + Send;

    /// Parses and validates the evaluated config; the default names the offending field.
    fn parse(config: Value) -> Result<Self::Config, StepError> {
        toolkit::parse(config)
    }

    fn run(
        cfg: Self::Config,
        env: &StepEnv<'_>,
    ) -> impl Future<Output = Result<StepOutcome, StepError>> + Send;
}

/// Declares a step whose `impl Step` is the common one: its unit struct, the name `uses:` gives,
/// its config type, optionally its [`Needs`], and the future it runs, as an expression over the
/// parsed config and the [`StepEnv`] named before it:
///
/// ```ignore
/// step! {
///     pub struct GitPush = "git-push", PushConfig,
///     needs: Needs { git_credentials: true, push: true, ..Needs::NOTHING },
///     |cfg, env| push(cfg, env)
/// }
/// ```
///
/// It expands to `pub struct GitPush;` and an `impl Step` whose `run` awaits `push(cfg, env)`,
/// with the standard `DEFAULTS`, `OUTPUTS_TO_TASK` and `parse`. A step that overrides any of
/// those writes its `impl Step` out (`argocd.rs`, `compose_output.rs`).
macro_rules! step {
    (
        $vis:vis struct $name:ident = $uses:literal, $config:ty,
        $(needs: $needs:expr,)?
        |$cfg:ident, $env:ident| $run:expr
    ) => {
        $vis struct $name;

        impl $crate::promotion::steps::spec::Step for $name {
            const NAME: &'static str = $uses;
            $(const NEEDS: $crate::promotion::steps::spec::Needs = $needs;)?
            type Config = $config;

            async fn run(
                $cfg: $config,
                $env: &$crate::promotion::steps::env::StepEnv<'_>,
            ) -> Result<
                $crate::promotion::steps::toolkit::StepOutcome,
                $crate::promotion::steps::toolkit::StepError,
            > {
                $run.await
            }
        }
    };
}
pub(crate) use step;

/// A step's run function with its config not parsed yet.
type RunFn = for<'a> fn(Value, &'a StepEnv<'a>) -> BoxFuture<'a, Result<StepOutcome, StepError>>;

/// A registered step: [`Step`] with its types erased.
#[derive(Clone, Copy)]
pub struct StepSpec {
    pub name: &'static str,
    pub defaults: StepDefaults,
    pub needs: Needs,
    pub outputs_to_task: bool,
    /// The JSON Schema of its config.
    pub schema: fn() -> schemars::Schema,
    run: RunFn,
    check: fn(Value) -> Result<(), StepError>,
}

impl std::fmt::Debug for StepSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepSpec")
            .field("name", &self.name)
            .field("defaults", &self.defaults)
            .field("needs", &self.needs)
            .finish_non_exhaustive()
    }
}

impl StepSpec {
    /// The registry entry of step `S`.
    pub const fn of<S: Step>() -> Self {
        Self {
            name: S::NAME,
            defaults: S::DEFAULTS,
            needs: S::NEEDS,
            outputs_to_task: S::OUTPUTS_TO_TASK,
            schema: schema_of::<S>,
            run: run_erased::<S>,
            check: check_erased::<S>,
        }
    }

    /// Parses `config` as the step would, running nothing: the error a run would fail with.
    pub fn check_config(&self, config: Value) -> Result<(), StepError> {
        (self.check)(config)
    }

    /// Parses `config` and runs the step.
    pub fn run<'a>(
        &self,
        config: Value,
        env: &'a StepEnv<'a>,
    ) -> BoxFuture<'a, Result<StepOutcome, StepError>> {
        (self.run)(config, env)
    }
}

fn schema_of<S: Step>() -> schemars::Schema {
    schemars::SchemaGenerator::default().into_root_schema_for::<S::Config>()
}

fn check_erased<S: Step>(config: Value) -> Result<(), StepError> {
    S::parse(config).map(|_| ())
}

fn run_erased<'a, S: Step>(
    config: Value,
    env: &'a StepEnv<'a>,
) -> BoxFuture<'a, Result<StepOutcome, StepError>> {
    Box::pin(async move { S::run(S::parse(config)?, env).await })
}
