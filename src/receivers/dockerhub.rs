//! Docker Hub: repository-push notifications. Docker Hub does not sign them; the secret path is
//! the only authentication.

use http::HeaderMap;

use super::registry::Receiver;
use super::{Event, RequestError, image_repo_urls, parse_json, refresh, str_at};
use crate::api::{LocalSecretReference, WebhookReceiverConfig};

pub struct Dockerhub;

impl Receiver for Dockerhub {
    fn kind(&self) -> &'static str {
        "dockerhub"
    }

    fn secret_key(&self) -> &'static str {
        "secret"
    }

    fn secret_ref<'c>(&self, cfg: &'c WebhookReceiverConfig) -> Option<&'c LocalSecretReference> {
        cfg.dockerhub.as_ref().map(|s| &s.secret_ref)
    }

    fn handle(
        &self,
        _headers: &HeaderMap,
        body: &[u8],
        _secret: &[u8],
    ) -> Result<Event, RequestError> {
        parse_dockerhub(body)
    }
}

/// A Docker Hub push notification.
pub fn parse_dockerhub(body: &[u8]) -> Result<Event, RequestError> {
    let v = parse_json(body)?;
    Ok(refresh(
        image_repo_urls(str_at(&v, "/repository/repo_name")),
        vec![str_at(&v, "/push_data/tag").to_string()],
    ))
}
