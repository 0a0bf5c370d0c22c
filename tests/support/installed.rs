//! haul installed as the chart installs it, against this binary's control plane: the chart's
//! admission policies and user ClusterRoles (from the real helm render), one `haul controller`
//! serving the admission webhooks on loopback, and the chart's webhook configurations pointed
//! at it. Started once per test binary; a test may restart the controller (a crash) on the
//! same port, so the webhooks keep pointing at it.

use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

use super::helm::render;
use super::{ControllerProcess, cp, free_port, kubectl, kubectl_stdin, wait_for};

/// Projects labelled with this skip the Project webhook: how the tests see what the reconciler
/// does where the webhook is not installed.
pub const SKIP_WEBHOOK: &str = "haul-test/skip-project-webhook";

pub struct Installed {
    controller: Mutex<ControllerProcess>,
    env: Vec<(String, String)>,
}

impl Installed {
    /// Kills the controller (SIGKILL, a crashed pod), runs `meanwhile`, and starts it again with
    /// the same webhook address and environment.
    pub fn crash_and_restart(&self, meanwhile: impl FnOnce()) {
        let mut c = self
            .controller
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        c.kill();
        meanwhile();
        *c = start(&self.env);
    }

    pub fn log_text(&self) -> String {
        self.controller
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .log_text()
    }
}

/// A directory holding `tls.crt`/`tls.key` for a webhook served on 127.0.0.1, signed by the
/// control plane's CA (`HAUL_WEBHOOK_CERT_DIR`).
pub fn webhook_cert_dir() -> std::path::PathBuf {
    let dir = cp().dir().join("webhook-tls");
    std::fs::create_dir_all(&dir).expect("webhook cert dir");
    let cert = cp().loopback_serving_cert().expect("serving certificate");
    std::fs::write(dir.join("tls.crt"), &cert.cert_pem).expect("write tls.crt");
    std::fs::write(dir.join("tls.key"), &cert.key_pem).expect("write tls.key");
    dir
}

fn apply(objects: Vec<Value>, what: &str) {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    kubectl_stdin(&["apply", "-f", "-"], &list.to_string()).success(what);
}

fn start(env: &[(String, String)]) -> ControllerProcess {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    ControllerProcess::start_with_env(&cp().dir().join("work"), &env)
}

/// The installed controller, set up on first call with `extra_env` (later calls' `extra_env` is
/// ignored: there is one per test binary).
pub fn controller(extra_env: &[(&str, &str)]) -> &'static Installed {
    static INSTALLED: OnceLock<Installed> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let docs = render("haul", &[]);
        let installed: Vec<Value> = docs
            .iter()
            .filter(|d| match d["kind"].as_str() {
                Some("ValidatingAdmissionPolicy" | "ValidatingAdmissionPolicyBinding") => true,
                Some("ClusterRole") => matches!(
                    d["metadata"]["name"].as_str(),
                    Some("haul-admin" | "haul-promoter" | "haul-viewer")
                ),
                _ => false,
            })
            .cloned()
            .collect();
        apply(installed, "the chart's policies and user roles");

        let dir = webhook_cert_dir();
        let port = free_port();
        let mut env: Vec<(String, String)> = vec![
            ("HAUL_WEBHOOK_ADDR".into(), format!("127.0.0.1:{port}")),
            (
                "HAUL_WEBHOOK_CERT_DIR".into(),
                dir.to_string_lossy().into_owned(),
            ),
            ("POD_NAMESPACE".into(), "default".into()),
        ];
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let controller = start(&env);
        let ca = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            cp().ca_cert_pem(),
        );
        let configs: Vec<Value> = docs
            .iter()
            .filter(|d| {
                matches!(
                    d["kind"].as_str(),
                    Some("MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration")
                )
            })
            .map(|d| {
                let mut c = d.clone();
                for w in c["webhooks"].as_array_mut().expect("webhooks") {
                    let path = w["clientConfig"]["service"]["path"]
                        .as_str()
                        .expect("path")
                        .to_string();
                    w["clientConfig"] = json!({
                        "url": format!("https://127.0.0.1:{port}{path}"),
                        "caBundle": ca,
                    });
                    if path == "/validate-project" {
                        w["objectSelector"] = json!({"matchExpressions": [
                            {"key": SKIP_WEBHOOK, "operator": "DoesNotExist"}
                        ]});
                    }
                }
                c
            })
            .collect();
        assert_eq!(
            configs.len(),
            2,
            "the chart renders both webhook configurations"
        );
        apply(configs, "the webhook configurations");
        // In force once a Project's namespace appears with its create.
        let mut n = 0;
        wait_for(30, "the Project webhook to create namespaces", || {
            n += 1;
            let name = format!("probe-{n}");
            let project = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Project",
                                 "metadata": {"name": name}});
            kubectl_stdin(&["create", "-f", "-"], &project.to_string())
                .success("create a probe Project");
            let created = kubectl(&["get", "namespace", &name]).ok;
            kubectl(&["delete", "project", &name, "--wait=false"]);
            created.then_some(())
        });
        Installed {
            controller: Mutex::new(controller),
            env,
        }
    })
}
