//! A Stage's steps run with `haul run-local`, as a user runs them on a laptop: the Stage and a
//! Freight written to files, the GitOps repository overridden by a local bare repository.

use std::path::Path;
use std::process::{Command, Stdio};

use super::Outcome;
use super::fixtures::Stage;

/// The repository URL the steps' git-clone names; `--repo-override` maps it to a local path.
pub const REPO_URL: &str = "https://git.example.com/org/config.git";

/// Writes a Stage with `steps` (the YAML list, indented six spaces) and a Freight with `image`
/// tag 1006 into `dir`, and runs them with `haul run-local --push` in `work`.
pub fn run_steps(
    dir: &Path,
    steps: &str,
    image: &str,
    work: &Path,
    repo: Option<&Path>,
) -> Outcome {
    let template = format!("      steps:\n{steps}");
    let stage = dir.join("stage.yaml");
    std::fs::write(
        &stage,
        Stage {
            ns: "my-app",
            name: "uat",
            warehouse: "w",
            sources: "{direct: true}",
            template: &template,
        }
        .yaml(),
    )
    .expect("stage file");
    let freight = dir.join("freight.yaml");
    std::fs::write(
        &freight,
        format!(
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {{name: 0123456789abcdef0123456789abcdef01234567, namespace: my-app}}\nalias: wonky-wombat\norigin: {{kind: Warehouse, name: w}}\nimages:\n- {{repoURL: {image}, tag: \"1006\", digest: \"sha256:1006\"}}\n"
        ),
    )
    .expect("freight file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_haul"));
    cmd.arg("run-local")
        .arg("--stage-file")
        .arg(&stage)
        .arg("--freight-file")
        .arg(&freight)
        .arg("--work-dir")
        .arg(work)
        .arg("--push")
        .env_remove("HAUL_GIT_USERNAME")
        .env_remove("HAUL_GIT_PASSWORD")
        .stdin(Stdio::null());
    if let Some(repo) = repo {
        cmd.arg("--repo-override")
            .arg(format!("{REPO_URL}={}", repo.display()));
    }
    Outcome::from(cmd.output().expect("haul runs"))
}
