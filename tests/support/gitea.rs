//! A real Gitea (API, pull requests, webhooks, git over HTTP), started once per test binary on
//! first use and killed when it exits. The binary is built once per machine from the Go module
//! proxy by `hack/gitea-binary.sh` (or taken from `HAUL_GITEA_DIR`).

use std::sync::OnceLock;

use haul_testenv::Gitea;

static GITEA: OnceLock<Gitea> = OnceLock::new();

/// The Gitea shared by every test of this test binary. Its admin user (`username()`) owns the
/// repositories the helpers create; give each test its own repository names.
pub fn gitea() -> &'static Gitea {
    GITEA.get_or_init(|| {
        let g = Gitea::start_temp().unwrap_or_else(|e| panic!("starting gitea: {e}"));
        eprintln!("gitea {} ready in {:?}", g.url(), g.started_in());
        g
    })
}
