//! The side services of `hack/test-services.sh` (moto, docker-registry with and without auth,
//! git over HTTP with basic auth), started once per test binary and killed when it exits.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

pub struct Services {
    pub vars: BTreeMap<String, String>,
    pub dir: PathBuf,
}

static SERVICES: OnceLock<Services> = OnceLock::new();

pub fn services() -> &'static Services {
    SERVICES.get_or_init(start)
}

fn start() -> Services {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // Short path: the fcgiwrap socket path must fit in sun_path.
    let dir = PathBuf::from(format!("/tmp/hsvc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("services dir");
    haul::envtest::remove_at_exit(dir.clone());
    let script = root.join("hack/test-services.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("start")
        .arg(&dir)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{} start failed (run `hack/test-services.sh install` first):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let env = std::fs::read_to_string(dir.join("env")).expect("env file");
    let mut vars = BTreeMap::new();
    for line in env.lines() {
        let line = line.trim_start_matches("export ");
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim_matches(|c| c == '"' || c == '\'');
            vars.insert(k.to_string(), v.to_string());
        }
    }
    for (k, v) in &vars {
        if k.ends_with("_PID")
            && let Ok(pid) = v.parse::<i32>()
        {
            haul::envtest::kill_group_at_exit(pid);
        }
    }
    Services { vars, dir }
}

impl Services {
    pub fn var(&self, k: &str) -> &str {
        self.vars
            .get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{k} not in the services env"))
    }

    pub fn git_url(&self) -> &str {
        self.var("HAUL_TEST_GIT_URL")
    }

    /// A new bare repository on the git server; its clone URL.
    pub fn new_repo(&self, name: &str) -> String {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new("bash")
            .arg(root.join("hack/test-services.sh"))
            .arg("new-repo")
            .arg(&self.dir)
            .arg(name)
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The bare repository behind a clone URL, on disk.
    pub fn bare_path(&self, url: &str) -> PathBuf {
        let base = self.git_url();
        let rel = url
            .strip_prefix(base)
            .unwrap_or(url)
            .trim_start_matches('/');
        PathBuf::from(self.var("HAUL_TEST_GIT_ROOT")).join(rel)
    }
}
