//! `haul quickstart` run as a newcomer runs it: the binary in a process of its own, its printed
//! instructions read line by line, Ctrl-C (SIGINT) to stop it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Long enough for a cold machine to build Gitea, Argo CD and the control plane (cached after).
pub const READY_TIMEOUT: Duration = Duration::from_secs(900);

/// The quickstart process; interrupted (then killed) when dropped, so a failed assertion leaves
/// nothing running.
pub struct Quickstart {
    pub child: Child,
    pub stderr: PathBuf,
}

impl Quickstart {
    /// Starts `haul quickstart <args> --state-dir <dir>/state`, its stderr in `dir`/quickstart.log.
    pub fn start(args: &[&str], dir: &Path) -> Self {
        let stderr = dir.join("quickstart.log");
        let child = Command::new(env!("CARGO_BIN_EXE_haul"))
            .arg("quickstart")
            .args(args)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(&stderr).expect("a log file"),
            ))
            .spawn()
            .expect("haul quickstart starts");
        Self { child, stderr }
    }

    /// Sends Ctrl-C and waits up to a minute for the exit.
    pub fn interrupt(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// What the quickstart printed: every line up to "Ctrl-C stops everything.".
    pub fn read_instructions(&mut self) -> Vec<String> {
        let stdout = self.child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let done = line.starts_with("Ctrl-C stops everything");
                    lines.push(line);
                    if done {
                        return lines;
                    }
                }
                Err(e) => panic!(
                    "the quickstart printed no instructions ({e}); stdout:\n{}\nstderr:\n{}",
                    lines.join("\n"),
                    self.log()
                ),
            }
        }
    }
}

impl Drop for Quickstart {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) && self.interrupt().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The rest of the first line of `lines` that starts (after indentation) with `prefix`.
pub fn after<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.trim_start().strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{}", lines.join("\n")))
}

/// The Freight the quickstart says dev runs ("dev runs Freight <name> …").
pub fn dev_freight(lines: &[String]) -> String {
    after(lines, "dev runs Freight ")
        .split_whitespace()
        .next()
        .expect("a Freight name")
        .to_string()
}
