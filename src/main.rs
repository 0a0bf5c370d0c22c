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
    /// Run the reference pipeline locally: a control plane, moto's ECR, a git server with a
    /// sample GitOps monorepo, the controller and the examples; Ctrl-C stops everything.
    Quickstart {
        /// Where the quickstart keeps its state (git checkouts, work directories).
        #[arg(long, default_value = ".haul-quickstart")]
        state_dir: PathBuf,
        /// Push this image tag to the running quickstart's ECR instead (e.g. 1007).
        #[arg(long, value_name = "TAG")]
        push: Option<String>,
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
    /// Abort a Promotion that has not finished.
    Abort(haul::cli::AbortArgs),
    /// Run a Stage's promotion steps for a piece of Freight on this machine, with no cluster,
    /// printing the diff each git-commit step commits; stops before git-push unless --push.
    RunLocal(haul::cli::RunLocalArgs),
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
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
    match cli.command {
        Command::Quickstart { state_dir, push } => match push {
            Some(tag) => quickstart_push(&state_dir, &tag),
            None => quickstart(&state_dir),
        },
        Command::Controller {
            work_dir,
            shared_namespace,
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
        } => {
            let mut config = haul::controller::Config {
                shared_namespace,
                argocd_namespace,
                git_author: haul::git::Author {
                    name: git_name,
                    email: git_email,
                },
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
                lease: "haul-controller".into(),
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
            controller(config, metrics_addr, webhook, receivers, leader)
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

fn controller(
    config: haul::controller::Config,
    metrics_addr: std::net::SocketAddr,
    webhook: Option<(std::net::SocketAddr, PathBuf)>,
    receivers: Option<std::net::SocketAddr>,
    leader: Option<haul::controller::LeaderElection>,
) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("starting the async runtime: {e}")),
    };
    rt.block_on(async move {
        let client = match kube::Client::try_default().await {
            Ok(c) => c,
            Err(e) => return fail(&format!("connecting to Kubernetes: {e}")),
        };
        let opts = haul::controller::RunOptions {
            leader,
            ..Default::default()
        };
        let (metrics, ready) = (opts.metrics.clone(), opts.ready.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = haul::metrics::serve(metrics_addr, metrics, ready).await {
                tracing::error!(error = %e, addr = %metrics_addr, "metrics server stopped");
            }
        });
        // Every replica serves the receivers too: they only patch refresh annotations.
        let receivers = receivers.map(|addr| {
            let client = client.clone();
            tokio::spawn(async move {
                if let Err(e) = haul::receivers::server::serve(addr, client).await {
                    tracing::error!(error = %e, %addr, "webhook receivers stopped");
                }
            })
        });
        // Every replica serves the webhook, the leader and the standbys alike: it is stateless.
        let result = match webhook {
            Some((addr, dir)) => tokio::select! {
                r = haul::controller::run_with(client, config, opts) => r,
                Err(e) = haul::admission::server::serve(addr, &dir) => Err(haul::controller::Error::Setup(e.to_string())),
            },
            None => haul::controller::run_with(client, config, opts).await,
        };
        server.abort();
        if let Some(r) = receivers {
            r.abort();
        }
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e.to_string()),
        }
    })
}

fn quickstart_push(state: &std::path::Path, tag: &str) -> ExitCode {
    let Ok(moto) = std::fs::read_to_string(state.join("moto-url")) else {
        return fail("no quickstart is running here (start one with `cargo run -- quickstart`)");
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&e.to_string()),
    };
    match rt.block_on(haul::quickstart::push_ecr_image(moto.trim(), tag)) {
        Ok(digest) => {
            println!(
                "pushed {tag} ({digest}); the Warehouse sees it within its interval, or now with:"
            );
            println!(
                "  kubectl annotate warehouse my-app -n my-app --overwrite kargo.akuity.io/refresh=\"$(date)\""
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

fn quickstart(state: &std::path::Path) -> ExitCode {
    let state = match std::path::absolute(state) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    let env = match haul::quickstart::prepare(&state) {
        Ok(env) => env,
        Err(e) => return fail(&e.to_string()),
    };
    let moto = env
        .vars
        .get("HAUL_TEST_MOTO_URL")
        .cloned()
        .unwrap_or_default();
    let token = state.join("irsa-token");
    if let Err(e) = std::fs::write(
        &token,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6aGF1bDpoYXVsIn0.c2ln",
    )
    .and_then(|_| std::fs::write(state.join("moto-url"), &moto))
    {
        return fail(&e.to_string());
    }
    // IRSA as EKS sets it up: the controller finds STS and ECR through these variables only.
    // SAFETY: set before the async runtime starts; no other thread reads the environment.
    unsafe {
        std::env::set_var(
            "AWS_ROLE_ARN",
            "arn:aws:iam::123456789012:role/haul-controller",
        );
        std::env::set_var("AWS_WEB_IDENTITY_TOKEN_FILE", &token);
        std::env::set_var("AWS_REGION", "eu-central-1");
        std::env::set_var("AWS_ENDPOINT_URL", &moto);
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&e.to_string()),
    };
    let code = rt.block_on(quickstart_run(&env, &state, &moto));
    let _ = std::fs::remove_file(state.join("moto-url"));
    eprintln!("==> stopping everything");
    drop(env);
    code
}

async fn quickstart_run(
    env: &haul::quickstart::Environment,
    state: &std::path::Path,
    moto: &str,
) -> ExitCode {
    use std::io::Write;
    let kubeconfig = env.control_plane.kubeconfig().to_path_buf();
    let client = match haul::envtest::client_from(&kubeconfig).await {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    eprintln!("==> starting the haul controller, its admission webhook and an Argo CD stand-in");
    let config = haul::controller::Config {
        work_root: state.join("work"),
        ..Default::default()
    };
    if let Err(e) = haul::quickstart::start_webhook(env, state).await {
        return fail(&e.to_string());
    }
    let controller = tokio::spawn(haul::controller::run(client.clone(), config));
    tokio::spawn(haul::quickstart::argocd_stand_in(client.clone()));
    eprintln!("==> CI pushes build 1006 to ECR");
    if let Err(e) = haul::quickstart::push_ecr_image(moto, "1006").await {
        return fail(&e.to_string());
    }
    eprintln!("==> applying examples/reference-pipeline");
    let manifests = match haul::quickstart::example_manifests(env) {
        Ok(m) => m,
        Err(e) => return fail(&e.to_string()),
    };
    let applied = std::process::Command::new("kubectl")
        .env("KUBECONFIG", &kubeconfig)
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .and_then(|mut c| {
            if let Some(mut i) = c.stdin.take() {
                i.write_all(manifests.as_bytes())?;
            }
            c.wait()
        });
    if !applied.is_ok_and(|s| s.success()) {
        return fail("kubectl apply of the examples failed");
    }
    eprintln!("==> waiting for Freight and the automatic promotion to dev");
    let stages: kube::Api<haul::api::Stage> = kube::Api::namespaced(client.clone(), "my-app");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let dev_freight = loop {
        if let Ok(Some(s)) = stages.get_opt("dev").await
            && let Some(f) = s
                .status
                .as_ref()
                .and_then(|st| st.freight_summary.clone())
                .filter(|f| f != "N/A")
            && s.status
                .as_ref()
                .and_then(|st| st.health.as_ref())
                .and_then(|h| h.status)
                == Some(haul::api::HealthState::Healthy)
        {
            break f;
        }
        if std::time::Instant::now() > deadline || controller.is_finished() {
            return fail(
                "dev was not promoted within 2 minutes; see `kubectl describe stage dev -n my-app`",
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    let bare = env
        .vars
        .get("HAUL_TEST_GIT_ROOT")
        .map(|r| std::path::Path::new(r).join("my-gitops-repo.git"))
        .unwrap_or_default();
    println!();
    println!(
        "dev runs Freight {dev_freight} (image 123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app:1006)."
    );
    println!();
    println!("Try next (in another terminal):");
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  kubectl get freight,stages,promotions -n my-app");
    println!(
        "  git --git-dir {} log --stat gitops          # the commit haul made",
        bare.display()
    );
    println!(
        "  # promote the same Freight to uat, then prod (prod refuses it before uat verifies it):"
    );
    println!(
        "  kubectl create -f - <<EOF
apiVersion: kargo.akuity.io/v1alpha1
kind: Promotion
metadata: {{name: to-uat, namespace: my-app}}
spec: {{stage: uat, freight: {dev_freight}}}
EOF"
    );
    println!(
        "  kubectl get promotions -n my-app -o custom-columns='NAME:.metadata.name,STAGE:.spec.stage,BY:.metadata.annotations.kargo\\.akuity\\.io/create-actor'"
    );
    println!("  cargo run -- quickstart --push 1007          # CI pushes a new build; dev follows");
    println!();
    println!("Ctrl-C stops everything.");
    let _ = tokio::signal::ctrl_c().await;
    controller.abort();
    ExitCode::SUCCESS
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::FAILURE
}
