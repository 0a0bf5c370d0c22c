//! Harbor: `PUSH_ARTIFACT` events (images and OCI charts), authenticated by the `Authorization`
//! header Harbor sends as configured ("Auth Header"), which must equal the Secret's
//! `auth-header` exactly.

use serde_json::Value;

use super::registry::{Receiver, Request};
use super::{
    Event, RequestError, constant_time_eq, header, image_repo_urls, parse_json, refresh, str_at,
};

pub static HARBOR: Receiver = Receiver::new(
    "harbor",
    |c| c.harbor.as_ref().map(|s| &s.secret_ref),
    |r: Request<'_>| {
        verify_harbor(header(r.headers, "authorization"), r.secret)?;
        parse_harbor(r.body)
    },
)
// Kargo's key for Harbor: the whole header value, not a signing key.
.with_secret_key("auth-header");

/// Checks the `Authorization` header against the configured value.
pub fn verify_harbor(authorization: Option<&str>, secret: &[u8]) -> Result<(), RequestError> {
    match authorization.filter(|a| !a.is_empty()) {
        None => Err(RequestError::MissingAuthorization),
        Some(a) if constant_time_eq(a.as_bytes(), secret) => Ok(()),
        Some(_) => Err(RequestError::Unauthorized),
    }
}

/// A Harbor event with its authenticated body.
pub fn parse_harbor(body: &[u8]) -> Result<Event, RequestError> {
    let v = parse_json(body)?;
    let event_type = str_at(&v, "/type");
    if event_type != "PUSH_ARTIFACT" {
        return Err(RequestError::UnsupportedEvent(event_type.to_string()));
    }
    let resources = v
        .pointer("/event_data/resources")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    // One event is about one repository; Kargo reads it from the first resource.
    let repo_urls = resources
        .first()
        .map(|r| image_repo_urls(str_at(r, "/resource_url")))
        .unwrap_or_default();
    let tags = resources
        .iter()
        .map(|r| str_at(r, "/tag").to_string())
        .collect();
    Ok(refresh(repo_urls, tags))
}
