//! `haul ui`: a web UI for people: the projects, each project's pipeline as a graph of
//! Warehouses and Stages, the Freight timeline, Stage and Promotion details, and buttons to
//! promote, approve, refresh, reverify and abort. It runs in the same binary, serves pages
//! embedded in it, and makes every read and write with the user's own Kubernetes identity:
//! the caller's kubeconfig locally, or impersonation of the user a trusted authenticating
//! proxy names when run in a cluster. Pages stay live through Server-Sent Events fed by
//! watches of the project's objects.

mod actions;
mod identity;
pub mod layout;
mod live;
mod permissions;
mod preview;
mod server;
pub mod snapshot;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

pub use identity::{GROUPS_HEADER, SECRET_HEADER, USER_HEADER};

/// `haul ui`.
#[derive(Debug, Clone, clap::Args)]
pub struct UiArgs {
    /// Address to serve on. Locally keep it on loopback: whoever reaches it acts as you.
    #[arg(long, env = "HAUL_UI_ADDR", default_value = "127.0.0.1:7780")]
    pub address: SocketAddr,
    /// Serve behind an authenticating proxy: act as the user in X-Forwarded-User /
    /// X-Forwarded-Groups (by impersonation), believed only from requests whose
    /// X-Haul-Proxy-Secret header equals this file's content. Without it, the kubeconfig's
    /// identity is used for everything.
    #[arg(long, env = "HAUL_UI_PROXY_SECRET_FILE", value_name = "PATH")]
    pub proxy_secret_file: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: crate::cli::ClusterArgs,
}

/// Why `haul ui` could not start.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("{0}")]
    Cluster(#[from] crate::cli::CliError),
    #[error("--proxy-secret-file {path}: {message}")]
    Secret { path: String, message: String },
    #[error("serving on {addr}: {source}")]
    Serve {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Serves the UI in the background with `kubeconfig`'s identity on 127.0.0.1:7780 (another
/// free port when that one is taken), for `haul quickstart`; returns the URL of `project`.
pub async fn spawn_local(kubeconfig: PathBuf, project: &str) -> Result<String, UiError> {
    let mut args = UiArgs {
        address: SocketAddr::from(([127, 0, 0, 1], 7780)),
        proxy_secret_file: None,
        cluster: crate::cli::ClusterArgs {
            namespace: Some(project.to_string()),
            kubeconfig: Some(kubeconfig),
            context: None,
        },
    };
    let listener = match tokio::net::TcpListener::bind(args.address).await {
        Ok(l) => l,
        Err(_) => {
            args.address.set_port(0);
            tokio::net::TcpListener::bind(args.address)
                .await
                .map_err(|source| UiError::Serve {
                    addr: args.address,
                    source,
                })?
        }
    };
    let addr = listener.local_addr().map_err(|source| UiError::Serve {
        addr: args.address,
        source,
    })?;
    let app = server::app(&args).await?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the web UI stopped");
        }
    });
    Ok(format!("http://{addr}/p/{project}"))
}

/// Runs `haul ui` until Ctrl-C.
pub fn command(args: UiArgs) -> ExitCode {
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(UiError::Runtime)
        .and_then(|rt| {
            rt.block_on(async {
                let listener =
                    tokio::net::TcpListener::bind(args.address)
                        .await
                        .map_err(|source| UiError::Serve {
                            addr: args.address,
                            source,
                        })?;
                let addr = listener.local_addr().map_err(|source| UiError::Serve {
                    addr: args.address,
                    source,
                })?;
                let app = server::app(&args).await?;
                println!("haul ui: http://{addr}/");
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = tokio::signal::ctrl_c().await;
                    })
                    .await
                    .map_err(|source| UiError::Serve { addr, source })
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
