//! The side services of `hack/test-services.sh` — moto (ECR + STS), the distribution registry
//! with and without auth, git over HTTP with basic auth — installed on first use and started on
//! free loopback ports. The script does the work; this module runs it and reads what it wrote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::{hack_script, process};

#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    #[error("cannot run {script}: {source}")]
    Spawn {
        script: String,
        source: std::io::Error,
    },
    #[error("hack/test-services.sh {command} failed:\n{stderr}")]
    Script { command: String, stderr: String },
    #[error("i/o on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("installing the side services: {0}")]
    Install(String),
    #[error("neither HAUL_TOOLS nor HOME is set, so the tools directory is unknown")]
    NoHome,
    #[error("{0} is not in the services' env file")]
    MissingVar(String),
}

/// Runs `hack/test-services.sh ARGS…` and returns its standard output.
fn script(args: &[&str]) -> Result<String, ServicesError> {
    let path = hack_script("test-services.sh");
    let out = Command::new("bash")
        .arg(&path)
        .args(args)
        .output()
        .map_err(|source| ServicesError::Spawn {
            script: path.display().to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(ServicesError::Script {
            command: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Installs what the services need (apt packages, moto's venv, helm), once per machine: the
/// script checks each piece first and holds a lock while installing, so a warm machine pays
/// only the checks and two first uses at once install once.
pub fn install() -> Result<(), ServicesError> {
    script(&["install"]).map(drop)
}

/// Where `install` puts the tools (moto's venv, helm, kubectl): `$HAUL_TOOLS`, else
/// `~/.cache/haul/tools` — the script's own default. Installs them first, once per process, so a
/// test that only needs helm works on a fresh machine too.
pub fn tools_dir() -> Result<PathBuf, ServicesError> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| install().map_err(|e| e.to_string()))
        .clone()
        .map_err(ServicesError::Install)?;
    std::env::var_os("HAUL_TOOLS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/haul/tools")))
        .ok_or(ServicesError::NoHome)
}

/// Running side services; `stop` (or the exit of this process) ends them.
#[derive(Debug)]
pub struct Services {
    pub vars: BTreeMap<String, String>,
    pub dir: PathBuf,
}

impl Services {
    /// Installs (on first use) and starts every service, keeping their state in `dir` (short:
    /// the git server's socket path must fit in `sun_path`). The processes are killed when this
    /// process exits, also when it panics.
    pub fn start(dir: &Path) -> Result<Self, ServicesError> {
        install()?;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|source| ServicesError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        process::remove_at_exit(dir.to_path_buf());
        let dir_arg = dir.display().to_string();
        script(&["start", &dir_arg])?;
        let env_file = dir.join("env");
        let env = std::fs::read_to_string(&env_file).map_err(|source| ServicesError::Io {
            path: env_file.display().to_string(),
            source,
        })?;
        let vars = parse_env(&env);
        for (k, v) in &vars {
            if k.ends_with("_PID")
                && let Ok(pid) = v.parse::<i32>()
            {
                process::kill_group_at_exit(pid);
            }
        }
        Ok(Self {
            vars,
            dir: dir.to_path_buf(),
        })
    }

    /// A variable of the services' env file (`HAUL_TEST_*`).
    pub fn get(&self, k: &str) -> Result<&str, ServicesError> {
        self.vars
            .get(k)
            .map(String::as_str)
            .ok_or_else(|| ServicesError::MissingVar(k.to_string()))
    }

    /// The git server's base URL.
    pub fn git_url(&self) -> Result<&str, ServicesError> {
        self.get("HAUL_TEST_GIT_URL")
    }

    /// A new bare repository on the git server; its clone URL.
    pub fn new_repo(&self, name: &str) -> Result<String, ServicesError> {
        let dir = self.dir.display().to_string();
        Ok(script(&["new-repo", &dir, name])?.trim().to_string())
    }

    /// The bare repository behind a clone URL, on disk.
    pub fn bare_path(&self, url: &str) -> Result<PathBuf, ServicesError> {
        let rel = url
            .strip_prefix(self.git_url()?)
            .unwrap_or(url)
            .trim_start_matches('/');
        Ok(PathBuf::from(self.get("HAUL_TEST_GIT_ROOT")?).join(rel))
    }

    /// The process groups of a service by name — `moto`, `registry`, `registry-auth`, or `git`
    /// (nginx and fcgiwrap) — as `start` recorded them (`HAUL_TEST_*_PID`).
    pub fn process_groups(&self, service: &str) -> Result<Vec<i32>, ServicesError> {
        let vars: &[&str] = match service {
            "moto" => &["HAUL_TEST_MOTO_PID"],
            "registry" => &["HAUL_TEST_REGISTRY_PID"],
            "registry-auth" => &["HAUL_TEST_REGISTRY_AUTH_PID"],
            "git" => &["HAUL_TEST_NGINX_PID", "HAUL_TEST_FCGIWRAP_PID"],
            other => {
                return Err(ServicesError::MissingVar(format!(
                    "a service named {other:?}"
                )));
            }
        };
        vars.iter()
            .map(|v| {
                let pid = self.get(v)?;
                pid.parse()
                    .map_err(|_| ServicesError::MissingVar(format!("{v} (not a pid: {pid:?})")))
            })
            .collect()
    }

    /// Freezes a service (SIGSTOP to its process groups): connections are accepted by the kernel
    /// but nothing answers, as with a hung server or a network partition. See
    /// [`Services::process_groups`] for the names.
    pub fn pause(&self, service: &str) -> Result<(), ServicesError> {
        for pgid in self.process_groups(service)? {
            process::signal_group(pgid, libc::SIGSTOP);
        }
        Ok(())
    }

    /// Lets a paused service go on (SIGCONT).
    pub fn resume(&self, service: &str) -> Result<(), ServicesError> {
        for pgid in self.process_groups(service)? {
            process::signal_group(pgid, libc::SIGCONT);
        }
        Ok(())
    }

    /// Stops every service now.
    pub fn stop(&self) -> Result<(), ServicesError> {
        let dir = self.dir.display().to_string();
        script(&["stop", &dir]).map(drop)
    }
}

/// `export K="v"` lines, as the script writes them.
fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.trim_start_matches("export ").split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.trim_matches(|c| c == '"' || c == '\'').to_string(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_env;

    #[test]
    fn env_lines_are_read_without_export_and_quotes() {
        let vars = parse_env("export A=1\nexport B=\"two words\"\nC='x=y'\n");
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two words");
        assert_eq!(vars["C"], "x=y");
    }
}
