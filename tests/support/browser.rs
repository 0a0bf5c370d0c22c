//! Driving `haul ui` in a real browser: headless Debian Chromium through a chromedriver of its
//! own (WebDriver, fantoccini), page polling, clicks, screenshots, and promoting from the page.
//! Nothing here starts the test control plane: the quickstart's tests bring their own cluster.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::{free_port, wait_for};

/// A process killed (with its group) when dropped or when the test binary exits, and its log.
pub struct Proc(pub Child, pub PathBuf);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` in a process group of its own with both streams in `log`.
pub fn spawn(cmd: &mut Command, log: &Path) -> Proc {
    use std::os::unix::process::CommandExt;
    let f = std::fs::File::create(log).expect("log file");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(f.try_clone().expect("log")))
        .stderr(Stdio::from(f))
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    haul_testenv::kill_group_at_exit(child.id() as i32);
    Proc(child, log.to_path_buf())
}

/// The runtime the browser session runs on (multi-threaded: the tests' blocking kubectl and
/// wait helpers occupy one worker while the WebDriver connection runs on another).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Headless Chromium through a chromedriver of its own, logging into `log_dir`.
pub async fn browser(log_dir: &Path) -> (Proc, Client) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let driver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chromedriver is installed (Debian: chromium-driver; hack/install-deps.sh)");
    let port = free_port();
    let proc = spawn(
        Command::new(driver).arg(format!("--port={port}")),
        &log_dir.join(format!("chromedriver-{port}.log")),
    );
    wait_for(30, "chromedriver to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                        "--disable-gpu", "--window-size=1400,900"]}),
    );
    let client = ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session with Chromium");
    (proc, client)
}

/// Polls `script` (a function body returning a value) until it returns something truthy.
pub async fn wait_js(c: &Client, secs: u64, what: &str, script: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        match c.execute(script, vec![]).await {
            Ok(v) if !(v.is_null() || v == json!(false) || v == json!("")) => return v,
            Ok(v) => last = v,
            Err(e) => last = json!(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = c
        .execute("return document.body.innerText", vec![])
        .await
        .unwrap_or_default();
    panic!("timed out after {secs}s waiting for {what} (last: {last}); page:\n{text}");
}

/// The alias text a Stage card shows (a function body for [`wait_js`]).
pub fn alias_in(stage: &str) -> String {
    format!(
        "const e = document.querySelector('[data-stage=\"{stage}\"] .freight-alias'); return e ? e.textContent : null;"
    )
}

/// The page's id: a reload changes it, so equal ids before and after mean no reload.
pub async fn page_id(c: &Client) -> Value {
    c.execute("return window.__haulPageId", vec![])
        .await
        .expect("page id")
}

pub async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
}

fn screenshot_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![super::repo_root().join("target").join("ui-screenshots")];
    if std::env::var("HAUL_UI_SCREENSHOTS").as_deref() == Ok("1") {
        dirs.push(super::repo_root().join("docs").join("ui"));
    }
    dirs
}

/// Writes the page to target/ui-screenshots/`name`.png, and to docs/ui/ when
/// HAUL_UI_SCREENSHOTS=1 (how the committed ones are made).
pub async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    for dir in screenshot_dirs() {
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), &png).expect("write screenshot");
    }
}

/// kubectl as `kubeconfig`'s user; stdout on success.
fn kubectl_json(kubeconfig: &Path, args: &[&str]) -> Option<Value> {
    let out = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .args(["-o", "json"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// The phase of Promotion `name` in `ns`.
pub fn promotion_phase(kubeconfig: &Path, ns: &str, name: &str) -> Option<String> {
    kubectl_json(kubeconfig, &["get", "promotion", name, "-n", ns])?["status"]["phase"]
        .as_str()
        .map(String::from)
}

/// Promotions of `stage` in `ns`, as names.
pub fn promotions_of(kubeconfig: &Path, ns: &str, stage: &str) -> Vec<String> {
    let v = kubectl_json(kubeconfig, &["get", "promotions", "-n", ns]).expect("list promotions");
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["spec"]["stage"] == stage)
        .filter_map(|p| p["metadata"]["name"].as_str().map(String::from))
        .collect()
}

/// Clicks Promote on `stage`'s card and then on `freight` in the dialog (waiting up to
/// `offer_secs` for the dialog to offer it); returns the new Promotion once it Succeeded
/// (within `success_secs`), as `kubeconfig`'s user sees it.
pub async fn promote_in_page(
    c: &Client,
    kubeconfig: &Path,
    ns: &str,
    stage: &str,
    freight: &str,
    success_secs: u64,
) -> String {
    let before = promotions_of(kubeconfig, ns, stage);
    click(c, &format!("[data-stage=\"{stage}\"] button.promote")).await;
    let confirm = format!("li[data-freight=\"{freight}\"] button.confirm-promote:not([disabled])");
    wait_js(
        c,
        60,
        "the promote dialog to offer the Freight",
        &format!("return !!document.querySelector('{confirm}');"),
    )
    .await;
    click(c, &confirm).await;
    let name = wait_for(30, "the Promotion to be created", || {
        promotions_of(kubeconfig, ns, stage)
            .into_iter()
            .find(|p| !before.contains(p))
    });
    wait_for(success_secs, "the Promotion to succeed", || {
        (promotion_phase(kubeconfig, ns, &name).as_deref() == Some("Succeeded")).then_some(())
    });
    name
}
