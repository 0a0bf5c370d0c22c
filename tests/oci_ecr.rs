//! The credentials oci-download and oci-push send to an ECR repository: a registry token from
//! moto's ECR `GetAuthorizationToken` (on 127.0.0.1), asked with IRSA web identity (moto's STS)
//! or with AWS keys from a Secret, through the same function the steps call
//! (`ImageDiscoverer::registry_api_credentials`). ECR's registry API itself (the data plane the
//! token is then sent to) is not reachable here: moto has no registry. The transfers over basic
//! credentials are covered by `steps_kargo_oci_argocd`.
//!
//! As in `image_discovery`, the AWS cases run in a child process (this binary, an `#[ignore]`d
//! `child_*` test) because the AWS SDK reads IRSA variables and endpoints from the process
//! environment, which a multi-threaded test process must not change.

mod support;

#[path = "support/aws_child.rs"]
mod aws_child;

use std::collections::BTreeMap;

use aws_child::{ECR_ACCOUNT, ECR_REGION};
use haul::discovery::artifacts::ArtifactRef;
use haul::discovery::{
    DiscovererConfig, ImageDiscoverer, ImageDiscoveryError, RegistryCredentials,
};
use support::services::services;

const ECR_REF: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:v1";

fn run_child(name: &str, irsa: bool) {
    aws_child::run_child(name, irsa, services().var("HAUL_TEST_MOTO_URL"), &[]);
}

/// In a child started by [`run_child`]; a direct run (`--ignored`) skips.
fn in_child() -> bool {
    std::env::var_os("HAUL_TEST_CHILD").is_some()
}

/// The steps' registry client, configured from the environment as the steps configure it.
fn discoverer() -> ImageDiscoverer {
    ImageDiscoverer::new(DiscovererConfig::from_env()).expect("discoverer")
}

fn ecr_repo() -> ArtifactRef {
    ArtifactRef::parse(ECR_REF).expect("ECR reference")
}

/// moto's token for the account (`AWS:<account>-auth-token`, base64), decoded.
fn moto_token() -> String {
    format!("{ECR_ACCOUNT}-auth-token")
}

fn assert_token(creds: Option<RegistryCredentials>) {
    match creds {
        Some(RegistryCredentials::Basic { username, password }) => {
            assert_eq!(username, "AWS");
            assert_eq!(password, moto_token());
        }
        other => panic!("expected AWS + token, got {other:?}"),
    }
}

#[test]
fn ecr_token_through_irsa() {
    run_child("child_ecr_token_through_irsa", true);
}

#[test]
fn ecr_token_through_secret_keys() {
    run_child("child_ecr_token_through_secret_keys", false);
}

#[test]
fn ecr_without_aws_credentials_fails_naming_the_repository() {
    run_child("child_ecr_without_aws_credentials", false);
}

#[tokio::test]
async fn username_password_and_other_registries_pass_through() {
    let d = discoverer();
    let basic = RegistryCredentials::Basic {
        username: "AWS".into(),
        password: "pasted".into(),
    };
    let got = d
        .registry_api_credentials(&ecr_repo().repo, Some(basic.clone()))
        .await
        .expect("basic");
    assert!(
        matches!(got, Some(RegistryCredentials::Basic { password, .. }) if password == "pasted")
    );
    let other = ArtifactRef::parse("ghcr.io/o/app:v1").expect("ref");
    assert!(
        d.registry_api_credentials(&other.repo, None)
            .await
            .expect("anonymous")
            .is_none()
    );
}

#[tokio::test]
#[ignore = "run in a child process by ecr_token_through_irsa"]
async fn child_ecr_token_through_irsa() {
    if !in_child() {
        return;
    }
    assert!(std::env::var_os("AWS_ACCESS_KEY_ID").is_none());
    let d = discoverer();
    let repo = ecr_repo().repo;
    let id = d
        .ecr_identity(&ecr_repo().repository(), None)
        .await
        .expect("identity");
    assert_eq!(id.source, "web-identity");
    let tokens = || d.stats().registry(&repo.registry).ecr_token;
    assert_token(
        d.registry_api_credentials(&repo, None)
            .await
            .expect("token"),
    );
    assert_eq!(tokens(), 1);
    // Cached: a second step reuses the token (moto's is always the same, so count requests).
    assert_token(
        d.registry_api_credentials(&repo, None)
            .await
            .expect("token"),
    );
    assert_eq!(tokens(), 1);
}

#[tokio::test]
#[ignore = "run in a child process by ecr_token_through_secret_keys"]
async fn child_ecr_token_through_secret_keys() {
    if !in_child() {
        return;
    }
    assert!(std::env::var_os("AWS_ROLE_ARN").is_none());
    let data: BTreeMap<String, Vec<u8>> = [
        ("awsAccessKeyID", "AKIAIOSFODNN7EXAMPLE"),
        (
            "awsSecretAccessKey",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        ("awsRegion", ECR_REGION),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.as_bytes().to_vec()))
    .collect();
    let creds = RegistryCredentials::from_secret_data(&data)
        .expect("valid secret")
        .expect("credentials");
    assert_token(
        discoverer()
            .registry_api_credentials(&ecr_repo().repo, Some(creds))
            .await
            .expect("token"),
    );
}

#[tokio::test]
#[ignore = "run in a child process by ecr_without_aws_credentials_fails_naming_the_repository"]
async fn child_ecr_without_aws_credentials() {
    if !in_child() {
        return;
    }
    let artifact = ecr_repo();
    let err = discoverer()
        .registry_api_credentials(&artifact.repo, None)
        .await
        .expect_err("no AWS credentials");
    assert!(matches!(err, ImageDiscoveryError::Auth { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&artifact.repository()), "{text}");
    assert!(text.contains("AWS credentials"), "{text}");
}
