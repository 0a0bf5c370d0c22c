//! Child processes that cannot outlive the process that started them.
//!
//! Test binaries keep one control plane in a `static`, and statics are never dropped, so cleanup
//! cannot rely on `Drop` alone. Every child is started from one long-lived thread with
//! `PR_SET_PDEATHSIG = SIGKILL` (the kernel kills it when that thread, and so the process, dies,
//! even on SIGKILL of the test binary), in its own process group, and an `atexit` hook kills the
//! groups and removes their directories on a normal exit.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use crate::EnvtestError;

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

struct Registry {
    pids: Vec<i32>,
    dirs: Vec<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    pids: Vec::new(),
    dirs: Vec::new(),
});
static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();

extern "C" fn cleanup_at_exit() {
    // try_lock: never block process exit on a poisoned or held lock.
    if let Ok(reg) = REGISTRY.try_lock() {
        for pid in &reg.pids {
            kill_group(*pid, libc::SIGKILL);
        }
        for d in &reg.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("envtest-spawner".into())
            .spawn(move || {
                // Lives as long as the process: PDEATHSIG fires when *this thread* exits.
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
                loop {
                    std::thread::park();
                }
            })
            .ok();
        // SAFETY: registering a plain extern "C" function with no captured state.
        unsafe {
            libc::atexit(cleanup_at_exit);
        }
        Mutex::new(tx)
    })
}

/// Starts `cmd` in its own process group, to be killed with this process.
pub fn spawn(mut cmd: Command) -> Result<Child, EnvtestError> {
    let parent = std::process::id() as i32;
    cmd.process_group(0);
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .map_err(|_| EnvtestError::Process("spawner lock poisoned".into()))?
        .send((cmd, tx))
        .map_err(|_| EnvtestError::Process("spawner thread is gone".into()))?;
    let child = rx
        .recv()
        .map_err(|_| EnvtestError::Process("spawner thread is gone".into()))?
        .map_err(|e| EnvtestError::Process(format!("spawn failed: {e}")))?;
    if let Ok(mut reg) = REGISTRY.lock() {
        reg.pids.push(child.id() as i32);
    }
    Ok(child)
}

/// Registers a process group (led by `pid`) to kill when this process exits, for services
/// started by scripts rather than by `spawn`.
pub fn kill_group_at_exit(pid: i32) {
    // Make sure the atexit hook is registered.
    let _ = spawner();
    if let Ok(mut reg) = REGISTRY.lock() {
        reg.pids.push(pid);
    }
}

/// Registers a directory to remove when the process exits.
pub fn remove_at_exit(dir: PathBuf) {
    if let Ok(mut reg) = REGISTRY.lock() {
        reg.dirs.push(dir);
    }
}

/// Kills a child's process group and reaps the child.
pub fn stop(child: &mut Child) {
    let pid = child.id() as i32;
    kill_group(pid, libc::SIGTERM);
    // A paused (SIGSTOP) process handles SIGTERM only once it runs again.
    kill_group(pid, libc::SIGCONT);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => break,
            Ok(None) if std::time::Instant::now() >= deadline => {
                kill_group(pid, libc::SIGKILL);
                let _ = child.wait();
                break;
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
    if let Ok(mut reg) = REGISTRY.lock() {
        reg.pids.retain(|p| *p != pid);
    }
}

/// Sends `sig` to the process group led by `pid` (SIGSTOP/SIGCONT for fault injection).
pub fn signal_group(pid: i32, sig: i32) {
    kill_group(pid, sig)
}

fn kill_group(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group we created for the child.
    unsafe {
        libc::kill(-pid, sig);
    }
}

/// Whether a process with this pid exists (used to find directories of dead test runs).
pub fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}
