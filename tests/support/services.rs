//! The side services of `hack/test-services.sh` (moto, docker-registry with and without auth,
//! git over HTTP with basic auth), installed on first use, started once per test binary and
//! killed when it exits.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The running services, with accessors that panic: in a test, a missing service variable is a
/// broken environment, not a case to handle.
pub struct TestServices(haul_testenv::Services);

static SERVICES: OnceLock<TestServices> = OnceLock::new();

pub fn services() -> &'static TestServices {
    SERVICES.get_or_init(|| {
        // Short path: the fcgiwrap socket path must fit in sun_path.
        let dir = PathBuf::from(format!("/tmp/hsvc-{}", std::process::id()));
        TestServices(
            haul_testenv::Services::start(&dir)
                .unwrap_or_else(|e| panic!("starting the test services: {e}")),
        )
    })
}

impl TestServices {
    pub fn var(&self, k: &str) -> &str {
        self.0.get(k).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn git_url(&self) -> &str {
        self.var("HAUL_TEST_GIT_URL")
    }

    /// A new bare repository on the git server; its clone URL.
    pub fn new_repo(&self, name: &str) -> String {
        self.0.new_repo(name).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The bare repository behind a clone URL, on disk.
    pub fn bare_path(&self, url: &str) -> PathBuf {
        self.0.bare_path(url).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Freezes a service (`moto`, `registry`, `registry-auth`, `git`) until [`Self::resume`].
    pub fn pause(&self, service: &str) {
        self.0.pause(service).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Lets a paused service go on.
    pub fn resume(&self, service: &str) {
        self.0.resume(service).unwrap_or_else(|e| panic!("{e}"))
    }
}
