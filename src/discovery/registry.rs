//! One image registry back end (ECR through its API, any OCI distribution registry), bound to
//! one repository and its credentials. Image discovery picks the back end; chart discovery
//! lists tags through the same one.

use std::future::Future;

use super::image_plan::ImagePlan;
use super::types::ImageDiscoveryError;
use crate::api::warehouse::DiscoveredImageReference;

pub(crate) trait ImageRegistry {
    /// Up to the plan's limit of images, in its strategy's order.
    fn discover(
        &self,
        plan: &ImagePlan,
    ) -> impl Future<Output = Result<Vec<DiscoveredImageReference>, ImageDiscoveryError>> + Send;

    /// Every tag, in the registry's order.
    fn list_tags(&self) -> impl Future<Output = Result<Vec<String>, ImageDiscoveryError>> + Send;
}
