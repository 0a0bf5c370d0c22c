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
    },
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
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Controller {
            work_dir,
            shared_namespace,
            argocd_namespace,
            git_name,
            git_email,
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
            controller(config)
        }
        Command::Crds {
            root,
            check,
            stdout,
        } => crds(&root, check, stdout),
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

fn controller(config: haul::controller::Config) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("starting the async runtime: {e}")),
    };
    rt.block_on(async move {
        let client = match kube::Client::try_default().await {
            Ok(c) => c,
            Err(e) => return fail(&format!("connecting to Kubernetes: {e}")),
        };
        match haul::controller::run(client, config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e.to_string()),
        }
    })
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::FAILURE
}
