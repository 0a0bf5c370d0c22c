//! The `haul` command line for people, in kubectl's style: `get`, `promote`, `approve`,
//! `refresh`, `abort` against the cluster of the kubeconfig (Kargo's CLI verbs, reference §8),
//! and `run-local`, which runs a Stage's promotion steps against a local checkout with no
//! cluster and prints the diff it would commit.
//!
//! Each command returns an [`ExitCode`]: 0 on success, 1 with a message on stderr that says
//! what to do next otherwise.

mod connect;
mod get;
pub(crate) mod local;
pub(crate) mod promote;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub use connect::Cluster;

/// Where the cluster is and which project (namespace) to use; shared by the cluster commands.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClusterArgs {
    /// The project (namespace). Default: the namespace of the kubeconfig context.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Path to the kubeconfig file. Default: KUBECONFIG, then ~/.kube/config, then the
    /// in-cluster service account.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use. Default: its current-context.
    #[arg(long)]
    pub context: Option<String>,
}

/// The kinds `haul get` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    #[value(alias = "warehouse")]
    Warehouses,
    #[value(alias = "freights")]
    Freight,
    #[value(alias = "stage")]
    Stages,
    #[value(aliases = ["promotion", "promo", "promos"])]
    Promotions,
}

/// Output formats of `haul get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Yaml,
    Json,
    Wide,
}

/// `haul get`.
#[derive(Debug, Clone, clap::Args)]
pub struct GetArgs {
    /// What to list: warehouses, freight, stages or promotions.
    pub kind: Kind,
    /// Show only this one.
    pub name: Option<String>,
    /// Output format: a table (default), wide (more columns), yaml or json.
    #[arg(short = 'o', long)]
    pub output: Option<Output>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Which Freight a command means: by name or by alias.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct FreightArg {
    /// The Freight's name.
    #[arg(long)]
    pub freight: Option<String>,
    /// The Freight's alias (e.g. wonky-wombat).
    #[arg(long, alias = "freight-alias")]
    pub alias: Option<String>,
}

/// `haul promote`.
#[derive(Debug, Clone, clap::Args)]
pub struct PromoteArgs {
    /// The Stage to promote to.
    #[arg(long)]
    pub stage: String,
    #[command(flatten)]
    pub freight: FreightArg,
    /// Follow the Promotion's steps until it finishes; exit non-zero unless it succeeds.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (e.g. 30s, 10m).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `haul approve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApproveArgs {
    #[command(flatten)]
    pub freight: FreightArg,
    /// The Stage the Freight is approved for.
    #[arg(long)]
    pub stage: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `haul refresh`.
#[derive(Debug, Clone, clap::Args)]
pub struct RefreshArgs {
    #[command(subcommand)]
    pub target: RefreshTarget,
}

/// What `haul refresh` refreshes.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum RefreshTarget {
    /// Make a Warehouse discover artifacts now.
    Warehouse {
        name: String,
        /// Wait until the Warehouse has handled the refresh, and show the outcome.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits (e.g. 30s, 10m).
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        timeout: Duration,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Make a Stage reconcile now.
    Stage {
        name: String,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

/// `haul abort`.
#[derive(Debug, Clone, clap::Args)]
pub struct AbortArgs {
    #[command(subcommand)]
    pub target: AbortTarget,
}

/// What `haul abort` aborts.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AbortTarget {
    /// Abort a Promotion that has not finished.
    Promotion {
        name: String,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Abort the running verification of a Stage's current Freight (Kargo's
    /// `kargo.akuity.io/abort` request on the Stage).
    Verification {
        /// The Stage.
        stage: String,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

/// `haul run-local`. (No `Debug`: it holds a password.)
#[derive(Clone, clap::Args)]
pub struct RunLocalArgs {
    /// The Stage manifest (YAML). It may also hold the PromotionTasks and
    /// ClusterPromotionTasks its template references, as more documents.
    #[arg(long, value_name = "FILE")]
    pub stage_file: PathBuf,
    /// Which Stage of the file to run, when it holds more than one.
    #[arg(long)]
    pub stage: Option<String>,
    /// The Freight manifest (YAML or JSON), e.g. from `haul get freight NAME -o yaml`.
    #[arg(long, value_name = "FILE")]
    pub freight_file: PathBuf,
    /// Which Freight of the file to use (name or alias), when it holds more than one.
    #[arg(long)]
    pub freight: Option<String>,
    /// A new or empty directory to run in: the steps' paths are relative to it.
    #[arg(long, value_name = "DIR")]
    pub work_dir: PathBuf,
    /// Clone PATH (a local repository) wherever the steps name repository URL (repeatable).
    #[arg(long = "repo-override", value_name = "URL=PATH")]
    pub repo_overrides: Vec<String>,
    /// Run git-push steps too (and everything after them). Without it the run stops before
    /// the first git-push and nothing leaves this machine.
    #[arg(long)]
    pub push: bool,
    /// Username for git over HTTP(S).
    #[arg(long, env = "HAUL_GIT_USERNAME")]
    pub git_username: Option<String>,
    /// Password or token for git over HTTP(S).
    #[arg(long, env = "HAUL_GIT_PASSWORD", hide_env_values = true)]
    pub git_password: Option<String>,
    /// Author name of the commits.
    #[arg(long, env = "GITCLIENT_NAME", default_value = "haul")]
    pub git_name: String,
    /// Author email of the commits.
    #[arg(long, env = "GITCLIENT_EMAIL", default_value = "no-reply@haul.invalid")]
    pub git_email: String,
    /// File holding a signing key (armored GPG or OpenSSH private key, no passphrase) for the
    /// commits and tags of steps that name no author of their own.
    #[arg(long, env = "GITCLIENT_SIGNING_KEY_PATH")]
    pub git_signing_key_path: Option<std::path::PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::duration::parse(s).map_err(|e| e.to_string())
}

/// Why a command failed, worded for the person who ran it.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line or an input file is wrong.
    #[error("{0}")]
    Usage(String),
    /// No namespace was given and the kubeconfig context names none.
    #[error(
        "no project given: pass -n/--namespace <project> (the kubeconfig context sets no namespace)"
    )]
    NoNamespace,
    /// The kubeconfig could not be read or used.
    #[error("{0}; pass --kubeconfig <path> or set KUBECONFIG")]
    Config(String),
    /// The API server refused or failed a request.
    #[error("{what}: {message}{}", hint.as_deref().map(|h| format!("\n{h}")).unwrap_or_default())]
    Api {
        what: String,
        code: u16,
        message: String,
        hint: Option<String>,
    },
    /// The API server could not be reached.
    #[error("{what}: {source}\ncheck that the cluster of your kubeconfig is reachable")]
    Connect {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// An object the command needs does not exist.
    #[error(
        "{kind} {name:?} not found in project {namespace}\nlist them with: haul get {plural} -n {namespace}"
    )]
    NotFound {
        kind: &'static str,
        plural: &'static str,
        name: String,
        namespace: String,
    },
    /// Promoting would be refused: the Freight is not available to the Stage.
    #[error("{reason}\n{next}")]
    NotAvailable { reason: String, next: String },
    /// A followed Promotion ended other than Succeeded.
    #[error("Promotion {name} {phase}: {message}")]
    PromotionEnded {
        name: String,
        phase: String,
        message: String,
    },
    /// A wait ran out of time.
    #[error("timed out after {after:?} waiting for {what}\n{hint}")]
    Timeout {
        what: String,
        after: Duration,
        hint: String,
    },
    /// Something else failed (files, git, the step engine).
    #[error("{0}")]
    Other(String),
}

impl CliError {
    /// Wraps a failed API call: `what` says what was being done ("creating Promotion x").
    pub(crate) fn api(
        what: impl Into<String>,
        hint: Option<String>,
    ) -> impl FnOnce(kube::Error) -> Self {
        let what = what.into();
        move |e| match e {
            kube::Error::Api(status) => {
                let hint = match status.code {
                    403 => Some(hint.unwrap_or_else(|| {
                        "ask a project admin for access (see docs/authorization.md)".into()
                    })),
                    401 => Some(
                        "the API server did not accept your credentials; renew them in your kubeconfig"
                            .into(),
                    ),
                    _ => None,
                };
                let message = if status.message.is_empty() {
                    format!("{} ({})", status.reason, status.code)
                } else {
                    status.message.clone()
                };
                CliError::Api {
                    what,
                    code: status.code,
                    message,
                    hint,
                }
            }
            other => CliError::Connect {
                what,
                source: other,
            },
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Other(format!("starting the async runtime: {e}")))
}

fn finish(result: Result<(), CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn block_on<F: std::future::Future<Output = Result<(), CliError>>>(f: F) -> ExitCode {
    finish(runtime().and_then(|rt| rt.block_on(f)))
}

/// `haul get KIND [NAME] [-o yaml|json|wide]`.
pub fn get(args: GetArgs) -> ExitCode {
    block_on(get::run(args))
}

/// `haul promote --stage S (--freight F | --alias A) [--wait]`.
pub fn promote(args: PromoteArgs) -> ExitCode {
    block_on(promote::promote(args))
}

/// `haul approve (--freight F | --alias A) --stage S`.
pub fn approve(args: ApproveArgs) -> ExitCode {
    block_on(promote::approve(args))
}

/// `haul refresh warehouse|stage NAME`.
pub fn refresh(args: RefreshArgs) -> ExitCode {
    block_on(promote::refresh(args))
}

/// `haul abort promotion NAME`.
pub fn abort(args: AbortArgs) -> ExitCode {
    block_on(promote::abort(args))
}

/// `haul run-local`.
pub fn run_local(args: RunLocalArgs) -> ExitCode {
    block_on(local::run(args))
}
