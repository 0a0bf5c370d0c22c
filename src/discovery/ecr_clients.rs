//! AWS SDK clients for ECR per (region, credentials) and the registry tokens they issue,
//! shared by every discovery.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;

use super::registry_limits::lock;
use super::types::RegistryCredentials;

pub(crate) type ClientKey = (String, String);

#[derive(Debug, Clone)]
pub(crate) struct DataPlaneToken {
    pub password: String,
    pub renew_at: Instant,
}

/// An SDK client and the credentials provider it was built with.
#[derive(Debug, Clone)]
pub(crate) struct EcrClient {
    pub client: aws_sdk_ecr::Client,
    pub credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
}

/// SDK clients per (region, credentials fingerprint) and registry tokens.
#[derive(Debug, Default)]
pub(crate) struct EcrClients {
    clients: Mutex<HashMap<ClientKey, Arc<tokio::sync::OnceCell<EcrClient>>>>,
    pub tokens: tokio::sync::Mutex<HashMap<ClientKey, DataPlaneToken>>,
}

pub(crate) fn client_key(region: &str, creds: Option<&RegistryCredentials>) -> ClientKey {
    (
        region.to_owned(),
        creds
            .map(RegistryCredentials::fingerprint)
            .unwrap_or_default(),
    )
}

impl EcrClients {
    pub async fn client(&self, region: &str, creds: Option<&RegistryCredentials>) -> EcrClient {
        let cell = Arc::clone(
            lock(&self.clients)
                .entry(client_key(region, creds))
                .or_default(),
        );
        cell.get_or_init(|| async {
            let mut loader = aws_config::defaults(BehaviorVersion::latest())
                .region(aws_config::Region::new(region.to_owned()))
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(10))
                        .operation_attempt_timeout(Duration::from_secs(30))
                        .build(),
                );
            if let Some(RegistryCredentials::AwsStatic {
                access_key_id,
                secret_access_key,
                ..
            }) = creds
            {
                loader = loader.credentials_provider(aws_sdk_ecr::config::Credentials::new(
                    access_key_id.clone(),
                    secret_access_key.clone(),
                    None,
                    None,
                    "kargo-image-secret",
                ));
            }
            let conf = loader.load().await;
            tracing::debug!(region, static_keys = creds.is_some(), "created ECR client");
            EcrClient {
                client: aws_sdk_ecr::Client::new(&conf),
                credentials: conf.credentials_provider(),
            }
        })
        .await
        .clone()
    }
}
