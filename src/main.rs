use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// haul promotes releases through environments the GitOps way (Kargo's kargo.akuity.io/v1alpha1 API).
#[derive(Parser)]
#[command(name = "haul", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[cfg(feature = "quickstart")]
    /// Run the reference pipeline locally: a control plane, moto's ECR, a git server with a
    /// sample GitOps monorepo, the controller and the examples; Ctrl-C stops everything.
    Quickstart {
        /// Where the quickstart keeps its state (git checkouts, work directories).
        #[arg(long, default_value = ".haul-quickstart")]
        state_dir: PathBuf,
        /// Push this image tag to the running quickstart's ECR instead (e.g. 1007).
        #[arg(long, value_name = "TAG")]
        push: Option<String>,
        /// Host the GitOps repository on a local Gitea and promote prod through a pull request
        /// you merge (the first run builds Gitea, several minutes).
        #[arg(long, conflicts_with = "push")]
        pull_requests: bool,
        /// Merge the open pull requests of the running `--pull-requests` quickstart (what a
        /// reviewer does on the Gitea web page).
        #[arg(long, conflicts_with_all = ["push", "pull_requests"])]
        merge_prs: bool,
        /// Replace Argo CD with a small stand-in that reports every requested sync done and
        /// healthy (no Argo CD build on the first run).
        #[arg(long, conflicts_with_all = ["push", "merge_prs"])]
        argocd_stand_in: bool,
    },
    /// Run the controllers (Warehouses, Promotions) against the cluster in KUBECONFIG or the
    /// in-cluster service account.
    Controller {
        /// Where promotion work directories and the git cache live.
        #[arg(long, env = "HAUL_WORK_DIR")]
        work_dir: Option<PathBuf>,
        /// Namespace of Secrets shared by every project (Kargo's SHARED_RESOURCES_NAMESPACE).
        #[arg(long, env = "SHARED_RESOURCES_NAMESPACE")]
        shared_namespace: Option<String>,
        /// Namespace of Secrets of cluster-level resources (ClusterConfig's signing key and
        /// webhook receivers; Kargo's SYSTEM_RESOURCES_NAMESPACE). Default: the shared
        /// namespace, else the namespace haul runs in.
        #[arg(long, env = "SYSTEM_RESOURCES_NAMESPACE")]
        system_namespace: Option<String>,
        /// File holding the default author's signing key (armored GPG or OpenSSH private key,
        /// no passphrase); ClusterConfig `gitClient.signingKeySecret` takes precedence.
        #[arg(long, env = "GITCLIENT_SIGNING_KEY_PATH")]
        git_signing_key_path: Option<PathBuf>,
        /// Namespace of Argo CD Applications when a step names none.
        #[arg(long, env = "ARGOCD_NAMESPACE", default_value = "argocd")]
        argocd_namespace: String,
        /// Author name of promotion commits.
        #[arg(long, env = "GITCLIENT_NAME", default_value = "haul")]
        git_name: String,
        /// Author email of promotion commits.
        #[arg(long, env = "GITCLIENT_EMAIL", default_value = "no-reply@haul.invalid")]
        git_email: String,
        /// Address of the /metrics, /healthz and /readyz endpoints.
        #[arg(long, env = "HAUL_METRICS_ADDR", default_value = "0.0.0.0:8080")]
        metrics_addr: std::net::SocketAddr,
        /// Address of the admission webhook that records who created a Promotion (HTTPS).
        #[arg(long, env = "HAUL_WEBHOOK_ADDR", default_value = "0.0.0.0:9443")]
        webhook_addr: std::net::SocketAddr,
        /// Address of the webhook receivers (GitHub, GitLab, Quay, Docker Hub pushes); "off" disables them.
        #[arg(long, env = "HAUL_RECEIVERS_ADDR", default_value = "0.0.0.0:8081")]
        receivers_addr: String,
        /// Directory holding the webhook's tls.crt and tls.key; the webhook runs only when set.
        #[arg(long, env = "HAUL_WEBHOOK_CERT_DIR")]
        webhook_cert_dir: Option<PathBuf>,
        /// Run only while holding the Lease (two replicas, one active).
        #[arg(long, env = "HAUL_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
        leader_elect: bool,
        /// Namespace of the leader Lease (the namespace haul runs in).
        #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
        lease_namespace: String,
        /// Seconds a leader's lease lasts without renewal.
        #[arg(long, env = "HAUL_LEASE_DURATION", default_value_t = 15)]
        lease_duration: u64,
        /// Log as JSON lines (for log collectors) instead of text.
        #[arg(long, env = "HAUL_LOG_JSON")]
        log_json: bool,
        /// /healthz fails when a watch has yielded only errors for longer than this (seconds).
        #[arg(long, env = "HAUL_LIVENESS_WATCH_DOWN", default_value_t = 300)]
        liveness_watch_down: u64,
        /// /healthz fails when objects have waited for a controller that finished no reconcile
        /// for longer than this (seconds).
        #[arg(long, env = "HAUL_LIVENESS_QUEUE_STALLED", default_value_t = 300)]
        liveness_queue_stalled: u64,
        /// /healthz fails when one reconcile has been in flight for longer than this (seconds;
        /// default 2× the 120 s reconcile deadline, which cuts a reconcile off unless the process
        /// is stuck).
        #[arg(long, env = "HAUL_LIVENESS_RECONCILE_STUCK", default_value_t = 240)]
        liveness_reconcile_stuck: u64,
        /// Every reconcile is cut off after this long (seconds) and counted as
        /// DeadlineExceeded; a long Promotion hands over between steps at half of it.
        #[arg(long, env = "HAUL_RECONCILE_DEADLINE", default_value_t = 120)]
        reconcile_deadline: u64,
        /// Seconds between checks that the controller runs as the identity haul's admission
        /// policies expect (the first runs at start); 0 turns the check off.
        #[arg(long, env = "HAUL_IDENTITY_CHECK_INTERVAL", default_value_t = 300)]
        identity_check_interval: u64,
        /// Give every project Kargo's default roles: ServiceAccounts kargo-admin,
        /// kargo-promoter and kargo-viewer bound to the ClusterRoles haul-admin, haul-promoter
        /// and haul-viewer (the chart's rbac.userRoles) in the project namespace.
        #[arg(long, env = "HAUL_PROJECT_ROLES", default_value_t = true, action = clap::ArgAction::Set)]
        project_roles: bool,
        /// Seconds between re-checks of each Project's namespace and default roles (a deleted
        /// default RoleBinding or ServiceAccount is recreated within this).
        #[arg(long, env = "HAUL_PROJECT_RESYNC", default_value_t = 600)]
        project_resync: u64,
        /// Reconcile only Stages, Warehouses and Promotions of this shard (labelled
        /// kargo.akuity.io/shard=<name>, or Stage/Warehouse spec.shard), under a Lease of its
        /// own. Unset: the default controller, which takes the unlabelled ones and the Projects.
        #[arg(long, env = "SHARD_NAME")]
        shard: Option<String>,
        /// With --shard: take the unlabelled objects and the Projects too (Kargo's
        /// IS_DEFAULT_CONTROLLER).
        #[arg(long, env = "IS_DEFAULT_CONTROLLER", default_value_t = false, action = clap::ArgAction::Set)]
        default_controller: bool,
    },
    /// List Warehouses, Freight, Stages or Promotions of a project, or show one (-o yaml|json|wide).
    Get(haul::cli::GetArgs),
    /// Promote Freight to a Stage: creates a Promotion, after checking the Freight is available
    /// to the Stage; --wait follows its steps.
    Promote(haul::cli::PromoteArgs),
    /// Approve Freight for a Stage, so it can be promoted there without passing the upstream
    /// Stages.
    Approve(haul::cli::ApproveArgs),
    /// Ask a Warehouse to discover artifacts now (or a Stage to reconcile).
    Refresh(haul::cli::RefreshArgs),
    /// Abort a Promotion that has not finished, or a Stage's running verification.
    Abort(haul::cli::AbortArgs),
    /// Run a Stage's promotion steps for a piece of Freight on this machine, with no cluster,
    /// printing the diff each git-commit step commits; stops before git-push unless --push.
    RunLocal(haul::cli::RunLocalArgs),
    /// Serve the web UI on localhost: pipelines, Freight, promote/approve buttons, with your
    /// kubeconfig's identity.
    Ui(haul::ui::UiArgs),
    /// Delete old Promotions and Freight once (Kargo's garbage collector; the chart runs it as
    /// a CronJob). Exits non-zero if a delete failed.
    Gc(haul::gc::GcArgs),
    /// Write the CRD YAML into crds/ and charts/haul/crds/ (or, with --check, report drift).
    Crds {
        /// Repository root to write under.
        #[arg(long, default_value = ".")]
        root: PathBuf,
        /// Do not write; exit non-zero if the committed files differ from the code.
        #[arg(long)]
        check: bool,
        /// Print the CRDs to stdout instead of writing files.
        #[arg(long, conflicts_with = "check")]
        stdout: bool,
    },
    /// Write the JSON Schema of every promotion step's config into schemas/steps/ (or, with
    /// --check, report drift).
    Schemas {
        /// Repository root to write under.
        #[arg(long, default_value = ".")]
        root: PathBuf,
        /// Do not write; exit non-zero if the committed files differ from the code.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The quickstart prints its own progress; the controller inside it only warns.
    let default_filter = match cli.command {
        #[cfg(feature = "quickstart")]
        Command::Quickstart { .. } => "warn,kube_client=off",
        Command::Get(_)
        | Command::Promote(_)
        | Command::Approve(_)
        | Command::Refresh(_)
        | Command::Abort(_)
        | Command::RunLocal(_) => "warn",
        _ => "info",
    };
    let json = match &cli.command {
        Command::Controller { log_json, .. } => *log_json,
        Command::Gc(args) => args.log_json,
        _ => false,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_filter.into());
    // Colours only on a terminal: a pod's log (or any file or pipe) must not fill with
    // escape sequences.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // The quickstart's controller runs in this process: its full log goes to a file.
    #[cfg(feature = "quickstart")]
    if let Command::Quickstart {
        state_dir,
        push: None,
        merge_prs: false,
        ..
    } = &cli.command
        && let Some(file) = haul::quickstart::command::open_controller_log(state_dir)
    {
        use tracing_subscriber::prelude::*;
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(colour)
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(std::sync::Mutex::new(file))
                    .with_filter(tracing_subscriber::EnvFilter::new("info,kube_client=off")),
            )
            .init();
        return run(cli);
    }
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
    run(cli)
}

fn run(cli: Cli) -> ExitCode {
    match cli.command {
        #[cfg(feature = "quickstart")]
        Command::Quickstart {
            state_dir,
            push,
            pull_requests,
            merge_prs,
            argocd_stand_in,
        } => {
            if merge_prs {
                haul::quickstart::command::merge_prs(&state_dir)
            } else {
                haul::quickstart::command::run(
                    &state_dir,
                    push.as_deref(),
                    pull_requests,
                    argocd_stand_in,
                )
            }
        }
        Command::Controller {
            work_dir,
            shared_namespace,
            system_namespace,
            git_signing_key_path,
            argocd_namespace,
            git_name,
            git_email,
            metrics_addr,
            webhook_addr,
            webhook_cert_dir,
            receivers_addr,
            leader_elect,
            lease_namespace,
            lease_duration,
            log_json: _,
            liveness_watch_down,
            liveness_queue_stalled,
            liveness_reconcile_stuck,
            reconcile_deadline,
            identity_check_interval,
            project_roles,
            project_resync,
            shard,
            default_controller,
        } => {
            use std::time::Duration;
            let shard = match haul::controller::shard::Shard::new(shard, default_controller) {
                Ok(s) => s,
                Err(e) => return fail(&e.to_string()),
            };
            let lease_name = shard.lease_name(haul::controller::shard::LEASE_BASE);
            let health = haul::metrics::Health {
                liveness: Default::default(),
                thresholds: haul::controller::liveness::Thresholds {
                    watch_down: Duration::from_secs(liveness_watch_down),
                    queue_stalled: Duration::from_secs(liveness_queue_stalled),
                    reconcile_stuck: Duration::from_secs(liveness_reconcile_stuck),
                },
            };
            let identity_check = (identity_check_interval > 0).then(|| IdentityCheck {
                period: Duration::from_secs(identity_check_interval),
                lease: haul::controller::identity::lease_reference(&lease_namespace, &lease_name),
            });
            let system_namespace = system_namespace
                .or_else(|| shared_namespace.clone())
                .or_else(|| Some(lease_namespace.clone()));
            let mut config = haul::controller::Config {
                system_namespace,
                git_signing_key: haul::controller::git_user::key_from_path(
                    git_signing_key_path.as_deref(),
                ),
                shared_namespace,
                argocd_namespace,
                git_author: haul::git::Author {
                    name: git_name,
                    email: git_email,
                },
                reconcile_deadline: Duration::from_secs(reconcile_deadline.max(1)),
                project_roles: project_roles
                    .then(haul::controller::project::plan::ProjectRoles::default),
                project_resync: Duration::from_secs(project_resync.max(1)),
                shard,
                ..Default::default()
            };
            if let Some(d) = work_dir {
                config.work_root = d;
            }
            let identity = std::env::var("POD_NAME").unwrap_or_else(|_| {
                format!(
                    "{}-{}",
                    std::fs::read_to_string("/proc/sys/kernel/hostname")
                        .map(|h| h.trim().to_string())
                        .unwrap_or_else(|_| "haul".into()),
                    std::process::id()
                )
            });
            let leader = leader_elect.then(|| haul::controller::LeaderElection {
                namespace: lease_namespace,
                lease: lease_name,
                identity,
                duration_secs: lease_duration.max(2),
            });
            let webhook = webhook_cert_dir.map(|dir| (webhook_addr, dir));
            let receivers = match receivers_addr.as_str() {
                "off" | "" => None,
                a => match a.parse() {
                    Ok(addr) => Some(addr),
                    Err(e) => return fail(&format!("HAUL_RECEIVERS_ADDR {a:?}: {e}")),
                },
            };
            controller(
                config,
                metrics_addr,
                webhook,
                receivers,
                leader,
                health,
                identity_check,
            )
        }
        Command::Crds {
            root,
            check,
            stdout,
        } => crds(&root, check, stdout),
        Command::Schemas { root, check } => schemas(&root, check),
        Command::Get(args) => haul::cli::get(args),
        Command::Promote(args) => haul::cli::promote(args),
        Command::Approve(args) => haul::cli::approve(args),
        Command::Refresh(args) => haul::cli::refresh(args),
        Command::Abort(args) => haul::cli::abort(args),
        Command::RunLocal(args) => haul::cli::run_local(args),
        Command::Gc(args) => haul::gc::command(&args),
        Command::Ui(args) => haul::ui::command(args),
    }
}

fn crds(root: &std::path::Path, check: bool, stdout: bool) -> ExitCode {
    if stdout {
        return match haul::crds::render() {
            Ok(files) => {
                for f in files {
                    print!("{}", f.yaml);
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.to_string()),
        };
    }
    if check {
        return match haul::crds::drift(root) {
            Ok(p) if p.is_empty() => ExitCode::SUCCESS,
            Ok(problems) => {
                for p in problems {
                    eprintln!("{p}");
                }
                fail("CRDs drifted from the code: run `haul crds` and commit the result")
            }
            Err(e) => fail(&e.to_string()),
        };
    }
    match haul::crds::write(root) {
        Ok(paths) => {
            for p in paths {
                println!("wrote {}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

fn schemas(root: &std::path::Path, check: bool) -> ExitCode {
    use haul::promotion::schemas;
    if check {
        return match schemas::drift(root) {
            Ok(p) if p.is_empty() => ExitCode::SUCCESS,
            Ok(problems) => {
                for p in problems {
                    eprintln!("{p}");
                }
                fail("step schemas drifted from the code: run `haul schemas` and commit the result")
            }
            Err(e) => fail(&e.to_string()),
        };
    }
    match schemas::write(root) {
        Ok(paths) => {
            for p in paths {
                println!("wrote {}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

/// When and about what the controller checks its identity against the admission policies.
struct IdentityCheck {
    period: std::time::Duration,
    /// The object its Warning Events are about (the leader Lease).
    lease: k8s_openapi::api::core::v1::ObjectReference,
}

fn controller(
    config: haul::controller::Config,
    metrics_addr: std::net::SocketAddr,
    webhook: Option<(std::net::SocketAddr, PathBuf)>,
    receivers: Option<std::net::SocketAddr>,
    leader: Option<haul::controller::LeaderElection>,
    health: haul::metrics::Health,
    identity_check: Option<IdentityCheck>,
) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("starting the async runtime: {e}")),
    };
    rt.block_on(async move {
        let opts = haul::controller::RunOptions {
            leader,
            liveness: health.liveness.clone(),
            ..Default::default()
        };
        let client = match kube::Config::infer().await {
            Ok(c) => haul::kube_client::client(c, opts.metrics.kube_requests.clone()),
            Err(e) => return fail(&format!("reading the Kubernetes client configuration: {e}")),
        };
        let client = match client {
            Ok(c) => c,
            Err(e) => return fail(&format!("connecting to Kubernetes: {e}")),
        };
        let (metrics, ready) = (opts.metrics.clone(), opts.ready.clone());
        // Every replica checks: a standby may lead next, and the check is two reads.
        let identity = identity_check.map(|check| {
            let report = haul::controller::identity::Reporting {
                liveness: health.liveness.clone(),
                metrics: metrics.clone(),
                about: check.lease,
            };
            tokio::spawn(haul::controller::identity::watch(
                client.clone(),
                report,
                check.period,
            ))
        });
        let server = tokio::spawn(async move {
            if let Err(e) = haul::metrics::serve(metrics_addr, metrics, ready, health).await {
                tracing::error!(error = %e, addr = %metrics_addr, "metrics server stopped");
            }
        });
        // Every replica serves the receivers too: they only patch refresh annotations.
        let receivers = receivers.map(|addr| {
            let client = client.clone();
            let system_namespace = config.system_namespace.clone();
            tokio::spawn(async move {
                if let Err(e) = haul::receivers::server::serve(addr, client, system_namespace).await {
                    tracing::error!(error = %e, %addr, "webhook receivers stopped");
                }
            })
        });
        // Every replica serves the webhook, the leader and the standbys alike: it is stateless.
        let result = match webhook {
            Some((addr, dir)) => tokio::select! {
                r = haul::controller::run_with(client.clone(), config, opts) => r,
                Err(e) = haul::admission::server::serve(addr, &dir, Some(client)) => Err(haul::controller::Error::Setup(e.to_string())),
            },
            None => haul::controller::run_with(client, config, opts).await,
        };
        server.abort();
        if let Some(i) = identity {
            i.abort();
        }
        if let Some(r) = receivers {
            r.abort();
        }
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e.to_string()),
        }
    })
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::FAILURE
}
