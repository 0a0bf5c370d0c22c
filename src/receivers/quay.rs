//! Quay: repository-push notifications. Quay does not sign them; the secret path is the only
//! authentication.

use serde_json::Value;

use super::registry::Receiver;
use super::{Event, RequestError, image_repo_urls, parse_json, refresh, str_at};

pub static QUAY: Receiver = Receiver::new(
    "quay",
    |c| c.quay.as_ref().map(|s| &s.secret_ref),
    |r| parse_quay(r.body),
);

/// A Quay repository-push notification.
pub fn parse_quay(body: &[u8]) -> Result<Event, RequestError> {
    let v = parse_json(body)?;
    let tags = v
        .get("updated_tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    Ok(refresh(image_repo_urls(str_at(&v, "/docker_url")), tags))
}
