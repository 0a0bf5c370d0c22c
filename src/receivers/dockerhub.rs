//! Docker Hub: repository-push notifications. Docker Hub does not sign them; the secret path is
//! the only authentication.

use super::registry::Receiver;
use super::{Event, RequestError, image_repo_urls, parse_json, refresh, str_at};

pub static DOCKERHUB: Receiver = Receiver::new(
    "dockerhub",
    |c| c.dockerhub.as_ref().map(|s| &s.secret_ref),
    |r| parse_dockerhub(r.body),
);

/// A Docker Hub push notification.
pub fn parse_dockerhub(body: &[u8]) -> Result<Event, RequestError> {
    let v = parse_json(body)?;
    Ok(refresh(
        image_repo_urls(str_at(&v, "/repository/repo_name")),
        vec![str_at(&v, "/push_data/tag").to_string()],
    ))
}
