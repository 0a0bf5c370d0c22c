//! The `haul quickstart` command: prepare the environment, start the controller, its webhook
//! and the Argo CD stand-in in this process, apply the examples, wait for dev, print what to do
//! next, and stop everything on Ctrl-C.

use std::process::ExitCode;

fn fail(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::FAILURE
}

/// Runs the quickstart with its state in `state` (prod promoting through a pull request on a
/// local Gitea when `pull_requests`; the Argo CD stand-in instead of real Argo CD when
/// `argocd_stand_in`), or with `push`, pushes that image tag to the running quickstart's ECR.
pub fn run(
    state: &std::path::Path,
    push: Option<&str>,
    pull_requests: bool,
    argocd_stand_in: bool,
) -> ExitCode {
    match push {
        Some(tag) => quickstart_push(state, tag),
        None => quickstart(state, pull_requests, argocd_stand_in),
    }
}

/// The file the quickstart's in-process controller logs to, in its state directory.
pub const CONTROLLER_LOG: &str = "controller.log";

/// Creates (truncating) the controller's log file; `None`, with a warning, when it cannot.
pub fn open_controller_log(state: &std::path::Path) -> Option<std::fs::File> {
    let path = state.join(CONTROLLER_LOG);
    match std::fs::create_dir_all(state).and_then(|_| std::fs::File::create(&path)) {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!(
                "cannot write the controller's log to {}: {e}",
                path.display()
            );
            None
        }
    }
}

/// Where a running `--pull-requests` quickstart leaves what `--merge-prs` needs: Gitea's URL,
/// the admin token and the repository, one per line (removed when the quickstart stops).
const GITEA_FILE: &str = "gitea-api";

/// Merges the open pull requests of the running quickstart's GitOps repository on its Gitea.
pub fn merge_prs(state: &std::path::Path) -> ExitCode {
    let Ok(text) = std::fs::read_to_string(state.join(GITEA_FILE)) else {
        return fail(
            "no quickstart with pull requests is running here (start one with `cargo run -- quickstart --pull-requests`)",
        );
    };
    let mut lines = text.lines();
    let (Some(url), Some(token), Some((owner, name))) = (
        lines.next(),
        lines.next(),
        lines.next().and_then(|repo| repo.split_once('/')),
    ) else {
        return fail(&format!(
            "{} is not what the quickstart wrote",
            state.join(GITEA_FILE).display()
        ));
    };
    let gitea = haul_testenv::GiteaApi::new(url, token);
    let open = match gitea.list_pulls(owner, name, "open") {
        Ok(open) => open,
        Err(e) => return fail(&e.to_string()),
    };
    if open.is_empty() {
        return fail("no open pull request (prod opens one once it is promoted)");
    }
    for pr in open {
        let Some(n) = pr["number"].as_u64() else {
            continue;
        };
        // Retries while Gitea is still checking a new pull request ("try again later").
        if let Err(e) = gitea.merge_pull(owner, name, n) {
            return fail(&e.to_string());
        }
        println!(
            "merged pull request #{n}: {}",
            pr["title"].as_str().unwrap_or_default()
        );
    }
    ExitCode::SUCCESS
}

fn quickstart_push(state: &std::path::Path, tag: &str) -> ExitCode {
    let Ok(moto) = std::fs::read_to_string(state.join("moto-url")) else {
        return fail("no quickstart is running here (start one with `cargo run -- quickstart`)");
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&e.to_string()),
    };
    match rt.block_on(super::push_ecr_image(moto.trim(), tag)) {
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

fn quickstart(state: &std::path::Path, pull_requests: bool, argocd_stand_in: bool) -> ExitCode {
    let state = match std::path::absolute(state) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    let env = match super::prepare(&state, pull_requests, argocd_stand_in) {
        Ok(env) => env,
        Err(e) => return fail(&e.to_string()),
    };
    let moto = env.var("HAUL_TEST_MOTO_URL");
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
    if let Some(gitea) = &env.gitea
        && let Err(e) = write_private(
            &state.join(GITEA_FILE),
            &format!(
                "{}\n{}\n{}/{}\n",
                gitea.url(),
                gitea.token(),
                gitea.username(),
                super::GITEA_REPO
            ),
        )
    {
        return fail(&e.to_string());
    }
    let code = rt.block_on(quickstart_run(&env, &state, &moto));
    let _ = std::fs::remove_file(state.join("moto-url"));
    let _ = std::fs::remove_file(state.join(GITEA_FILE));
    eprintln!("==> stopping everything");
    drop(env);
    code
}

async fn quickstart_run(env: &super::Environment, state: &std::path::Path, moto: &str) -> ExitCode {
    use std::io::Write;
    let kubeconfig = env.control_plane.kubeconfig().to_path_buf();
    let client = match haul_testenv::client_from(&kubeconfig).await {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    if env.argocd.is_some() {
        eprintln!("==> starting the haul controller and its admission webhook");
    } else {
        eprintln!(
            "==> starting the haul controller, its admission webhook and an Argo CD stand-in"
        );
    }
    let config = crate::controller::Config {
        work_root: state.join("work"),
        ..Default::default()
    };
    if let Err(e) = super::start_webhook(env, state).await {
        return fail(&e.to_string());
    }
    // The controller runs as the chart's ServiceAccount, with the chart's RBAC and under its
    // admission policies, as in a cluster; it checks that identity as `haul controller` does.
    let controller_client = match super::controller_client(env).await {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    let identity = tokio::spawn(crate::controller::identity::watch(
        controller_client.clone(),
        crate::controller::identity::Reporting {
            liveness: Default::default(),
            metrics: Default::default(),
            about: crate::controller::identity::lease_reference("default", "haul-controller"),
        },
        crate::controller::identity::DEFAULT_PERIOD,
    ));
    let controller = tokio::spawn(crate::controller::run(controller_client, config));
    if env.argocd.is_none() {
        tokio::spawn(super::argocd_stand_in(client.clone()));
    }
    eprintln!("==> CI pushes build 1006 to ECR");
    if let Err(e) = super::push_ecr_image(moto, "1006").await {
        return fail(&e.to_string());
    }
    eprintln!("==> applying examples/reference-pipeline");
    let manifests = match super::example_manifests(env) {
        Ok(m) => format!("{m}\n---\n{}", super::DEVELOPERS_ROLE),
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
    let stages: kube::Api<crate::api::Stage> = kube::Api::namespaced(client.clone(), "my-app");
    // Real Argo CD first clones and renders the repository: longer than the stand-in.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
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
                == Some(crate::api::HealthState::Healthy)
        {
            break f;
        }
        if std::time::Instant::now() > deadline || controller.is_finished() {
            return fail(
                "dev was not promoted and healthy within 5 minutes; see `kubectl describe stage dev -n my-app` and `kubectl get application -n argocd my-app-dev -o yaml`",
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    let bare = env.gitops_bare_repo();
    println!();
    println!(
        "dev runs Freight {dev_freight} (image 123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app:1006)."
    );
    println!();
    match crate::ui::spawn_local(kubeconfig.clone(), "my-app").await {
        Ok(url) => println!("Web UI (your pipeline; promote to uat from there): {url}\n"),
        Err(e) => eprintln!("warning: the web UI did not start: {e}"),
    }
    println!("Try next (in another terminal):");
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  kubectl get freight,stages,promotions -n my-app");
    println!(
        "  less {}   # the haul controller's log",
        state.join(CONTROLLER_LOG).display()
    );
    if let Some(argocd) = &env.argocd {
        println!(
            "  kubectl get applications -n argocd; kubectl get cronjobs -n backend -o wide   # what Argo CD synced"
        );
        println!(
            "  # Argo CD's logs: {} and {}",
            argocd.controller_log().display(),
            argocd.repo_server_log().display()
        );
    }
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
    if let Some(gitea) = &env.gitea {
        print_pull_request_path(gitea, &dev_freight);
    }
    println!(
        "  kubectl get promotions -n my-app -o custom-columns='NAME:.metadata.name,STAGE:.spec.stage,BY:.metadata.annotations.kargo\\.akuity\\.io/create-actor'"
    );
    println!(
        "  # who may promote where: group developers may promote to dev and uat only, so haul's admission"
    );
    println!(
        "  # policy refuses alice's Promotion to prod (\"user alice may not promote to Stage prod\"):"
    );
    println!(
        "  kubectl --as=alice --as-group=developers create -f - <<EOF
apiVersion: kargo.akuity.io/v1alpha1
kind: Promotion
metadata: {{name: alice-to-prod, namespace: my-app}}
spec: {{stage: prod, freight: {dev_freight}}}
EOF"
    );
    println!(
        "  # the project's default roles (ServiceAccounts kargo-viewer, kargo-promoter, kargo-admin):"
    );
    println!(
        "  kubectl --as=system:serviceaccount:my-app:kargo-viewer -n my-app get stages                      # allowed"
    );
    println!(
        "  kubectl auth can-i create promotions -n my-app --as=system:serviceaccount:my-app:kargo-viewer    # no"
    );
    println!(
        "  kubectl auth can-i promote stages/prod -n my-app --as=system:serviceaccount:my-app:kargo-promoter # yes"
    );
    println!("  cargo run -- quickstart --push 1007          # CI pushes a new build; dev follows");
    println!();
    println!("Ctrl-C stops everything.");
    let _ = tokio::signal::ctrl_c().await;
    controller.abort();
    identity.abort();
    ExitCode::SUCCESS
}

/// Writes a file only its owner can read (it holds a token).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(text.as_bytes())
}

/// The `--pull-requests` part of "what to do next": how prod promotes, where its pull request is
/// and how to merge it.
fn print_pull_request_path(gitea: &haul_testenv::Gitea, freight: &str) {
    let repo = format!("{}/{}", gitea.username(), super::GITEA_REPO);
    let pulls = format!("{}/{repo}/pulls", gitea.url());
    println!(
        "  # once uat is verified (`kubectl get stage uat -n my-app` shows Ready), promote prod;"
    );
    println!(
        "  # prod pushes a branch and opens a pull request to gitops, then waits for its merge:"
    );
    println!(
        "  cargo run -- promote -n my-app --stage prod --freight {freight}   # or kubectl create, as above"
    );
    println!(
        "  # see the pull request at {pulls}  (log in as {} / {});",
        gitea.username(),
        gitea.password()
    );
    println!(
        "  # the pages are unstyled and have no merge button (this Gitea is built without its front-end"
    );
    println!("  # assets), so merge it as a reviewer would, from the command line:");
    println!("  cargo run -- quickstart --merge-prs   # merges the open pull requests");
    println!("  # or through Gitea's API:");
    // The token is printed on purpose: it belongs to this throwaway, loopback-only Gitea that
    // stops with the quickstart, and the user needs it to merge from the command line.
    println!(
        "  curl -fsS -X POST -H 'Authorization: token {}' -H 'Content-Type: application/json' \\\n       -d '{{\"Do\":\"merge\"}}' {}/api/v1/repos/{repo}/pulls/1/merge",
        gitea.token(),
        gitea.url()
    );
    println!(
        "  # (pulls/1 is the first pull request; within 5 s of the merge prod syncs to the merge commit)"
    );
}
