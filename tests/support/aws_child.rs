//! Running one `#[ignore]`d test of this binary in a child process whose AWS environment points at
//! moto: the AWS SDK reads IRSA variables and endpoints from the process environment, which a
//! multi-threaded test process must not change.

use std::process::Command;

pub const ECR_ACCOUNT: &str = "123456789012";
pub const ECR_REGION: &str = "us-east-1";

/// Runs the ignored test `name` in a child process with the AWS environment pointing at `moto`
/// (plus `extra` variables): with `irsa`, the IRSA variables (role ARN + web identity token file);
/// without, no credentials at all. IMDS is disabled so nothing leaves the loopback interface.
pub fn run_child(name: &str, irsa: bool, moto: &str, extra: &[(&str, &str)]) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let token = tmp.path().join("token");
    // Any JWT-shaped string: moto does not verify it.
    std::fs::write(
        &token,
        "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6a2FyZ286a2FyZ28tY29udHJvbGxlciJ9.c2lnbmF0dXJl",
    )
    .expect("token file");
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([
        "--exact",
        name,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HAUL_TEST_CHILD", "1")
        .envs(extra.iter().copied())
        .env("AWS_ENDPOINT_URL", moto)
        .env("AWS_REGION", ECR_REGION)
        .env("AWS_DEFAULT_REGION", ECR_REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", tmp.path().join("no-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            tmp.path().join("no-credentials"),
        );
    if irsa {
        cmd.env(
            "AWS_ROLE_ARN",
            format!("arn:aws:iam::{ECR_ACCOUNT}:role/kargo-controller"),
        )
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token)
        .env("AWS_ROLE_SESSION_NAME", "haul-test");
    }
    let out = cmd.output().expect("child runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
