//! The chart's web UI (`ui.enabled`): off by default it renders nothing; on, it renders a
//! ServiceAccount allowed only to impersonate, a Deployment running `haul ui` in proxy-header
//! mode with the Secret mounted where its argument points, and a Service, all accepted by the
//! API server. Installed (its RBAC applied, `haul ui` run with the Deployment's arguments and the
//! ServiceAccount's token), it serves nothing without the proxy's secret, and with it reads as
//! the user the proxy names: what that user may read, and nothing more.

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::{Value, json};
use support::browser::spawn;
use support::helm::{isolated, render};
use support::{cp, free_port, kubectl, kubectl_stdin, namespace, wait_for};

const SECRET: &str = "a-proxy-secret-of-24-chars";

fn ui_objects(docs: &[Value]) -> Vec<Value> {
    docs.iter()
        .filter(|d| d["metadata"]["labels"]["app.kubernetes.io/component"] == "ui")
        .cloned()
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} among {docs:?}"))
}

/// The value after `flag` in `args`.
fn arg<'a>(args: &'a [Value], flag: &str) -> &'a str {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} not in {args:?}"));
    args[i + 1].as_str().expect("a string argument")
}

#[test]
fn the_charts_ui_renders_installs_and_trusts_only_its_proxy() {
    let ns = namespace("chart-ui");
    // Off by default.
    assert!(
        ui_objects(&render(&ns, &[])).is_empty(),
        "ui is off by default"
    );
    // On without the proxy's secret: refused at render time, naming the value.
    let out = isolated(&[
        "template",
        "haul",
        "charts/haul",
        "--set",
        "ui.enabled=true",
    ]);
    assert!(
        !out.status.success(),
        "ui.enabled rendered without a secret"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ui.proxySecret.name"), "{err}");

    let docs = ui_objects(&render(
        &ns,
        &[
            "--set",
            "ui.enabled=true",
            "--set",
            "ui.proxySecret.name=ui-proxy",
        ],
    ));
    let kinds: BTreeSet<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Service",
            "ServiceAccount"
        ])
    );
    // Its own rights: impersonation only; every read and write is the user's.
    assert_eq!(
        find(&docs, "ClusterRole")["rules"],
        json!([{"apiGroups": [""], "resources": ["users", "groups"], "verbs": ["impersonate"]}])
    );
    let deployment = find(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let sa = find(&docs, "ServiceAccount")["metadata"]["name"]
        .as_str()
        .expect("the ServiceAccount's name")
        .to_string();
    assert_eq!(pod["serviceAccountName"], sa.as_str());
    let container = &pod["containers"][0];
    let args = container["args"].as_array().expect("args").clone();
    assert_eq!(args[0], "ui");
    // Proxy-header mode: the secret file is the mounted Secret's key.
    let secret_file = arg(&args, "--proxy-secret-file");
    let mount = container["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| secret_file.starts_with(m["mountPath"].as_str().unwrap_or("-")))
        .expect("the secret file is on a mounted volume");
    let volume = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    assert_eq!(volume["secret"]["secretName"], "ui-proxy");
    let item = &volume["secret"]["items"][0];
    assert_eq!(item["key"], "secret");
    assert_eq!(
        format!(
            "{}/{}",
            mount["mountPath"].as_str().unwrap_or_default(),
            item["path"].as_str().unwrap_or_default()
        ),
        secret_file
    );
    let port = arg(&args, "--address")
        .rsplit_once(':')
        .map(|(_, p)| p.to_string())
        .expect("a port");
    let service = find(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["port"].to_string(), port);
    assert_eq!(container["ports"][0]["containerPort"].to_string(), port);

    // Accepted by the API server as rendered.
    let list = json!({"apiVersion": "v1", "kind": "List", "items": docs}).to_string();
    kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &list)
        .success("the UI's objects, --dry-run=server");

    // Installed: its ServiceAccount and RBAC for real; `haul ui` as that ServiceAccount with the
    // Deployment's arguments (address and secret path made local).
    let rbac: Vec<Value> = docs
        .iter()
        .filter(|d| d["kind"] != "Deployment" && d["kind"] != "Service")
        .cloned()
        .collect();
    kubectl_stdin(
        &["apply", "-f", "-"],
        &json!({"apiVersion": "v1", "kind": "List", "items": rbac}).to_string(),
    )
    .success("the UI's ServiceAccount and RBAC");
    let app = namespace("chart-ui-app");
    kubectl_stdin(
        &["apply", "-f", "-"],
        &json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
             "metadata": {"name": "dev", "namespace": app},
             "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"},
                                            "sources": {"direct": true}}]}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": "reader", "namespace": app},
             "rules": [{"apiGroups": ["kargo.akuity.io"],
                        "resources": ["stages", "freights", "warehouses", "promotions"],
                        "verbs": ["get", "list", "watch"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": "dana-reads", "namespace": app},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
             "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dana"}]}
        ]})
        .to_string(),
    )
    .success("a project dana may read");
    let token = kubectl(&["create", "token", &sa, "-n", &ns, "--duration=1h"]).success("token");
    let admin = std::fs::read_to_string(cp().kubeconfig()).expect("kubeconfig");
    let cluster: String = admin
        .lines()
        .take_while(|l| !l.starts_with("users:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let kubeconfig = cp().dir().join("kubeconfig-ui-sa");
    std::fs::write(
        &kubeconfig,
        format!(
            "{cluster}users:\n- name: envtest\n  user:\n    token: {}\ncontexts:\n- name: envtest\n  context:\n    cluster: envtest\n    user: envtest\n    namespace: {ns}\ncurrent-context: envtest\n",
            token.stdout.trim()
        ),
    )
    .expect("the ServiceAccount's kubeconfig");
    // The ServiceAccount itself reads nothing of the project.
    let can = kubectl(&[
        "auth",
        "can-i",
        "list",
        "stages.kargo.akuity.io",
        "-n",
        &app,
        "--as",
        &format!("system:serviceaccount:{ns}:{sa}"),
    ]);
    assert_eq!(can.stdout.trim(), "no");

    let secret_path = cp().dir().join("ui-proxy-secret");
    std::fs::write(&secret_path, SECRET).expect("the secret file");
    let listen = free_port();
    let local: Vec<String> = args[1..]
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let prev = &args[i];
            if prev == "--address" {
                format!("127.0.0.1:{listen}")
            } else if prev == "--proxy-secret-file" {
                secret_path.display().to_string()
            } else {
                a.as_str().unwrap_or_default().to_string()
            }
        })
        .collect();
    let _ui = spawn(
        Command::new(env!("CARGO_BIN_EXE_haul"))
            .arg("ui")
            .args(&local)
            .env("KUBECONFIG", &kubeconfig),
        &cp().dir().join("chart-ui.log"),
    );
    wait_for(60, "haul ui to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", listen)).ok()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let http = reqwest::Client::new();
    let get = |path: String, user: Option<&str>, secret: Option<&str>| {
        let mut r = http.get(format!("http://127.0.0.1:{listen}{path}"));
        if let Some(u) = user {
            r = r.header("x-forwarded-user", u);
        }
        if let Some(s) = secret {
            r = r.header("x-haul-proxy-secret", s);
        }
        rt.block_on(async move {
            let res = r.send().await.expect("request");
            let status = res.status().as_u16();
            (status, res.text().await.unwrap_or_default())
        })
    };
    let candidates = format!("/api/projects/{app}/stages/dev/candidates");
    for (path, user, secret) in [
        ("/".to_string(), None, None),
        ("/".to_string(), Some("dana"), None),
        (
            candidates.clone(),
            Some("dana"),
            Some("a-wrong-secret-of-24-chars"),
        ),
    ] {
        let (status, text) = get(path.clone(), user, secret);
        assert_eq!(status, 403, "{path} as {user:?}: {text}");
        assert!(text.contains("authenticating proxy"), "{text}");
    }
    let (status, text) = get("/".into(), Some("dana"), Some(SECRET));
    assert_eq!(status, 200, "{text}");
    let (status, text) = get(candidates.clone(), Some("dana"), Some(SECRET));
    assert_eq!(status, 200, "dana reads her project through the UI: {text}");
    assert_eq!(text.trim(), "[]", "no Freight yet");
    let (status, text) = get(candidates, Some("mallory"), Some(SECRET));
    assert_eq!(status, 403, "mallory may not read it: {text}");
    assert!(
        text.contains("mallory"),
        "the API server names the user: {text}"
    );
}
