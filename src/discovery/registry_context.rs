//! What every image registry back end shares within one [`ImageDiscoverer`](super::ImageDiscoverer):
//! settings, per-registry budgets, the manifest metadata cache and the HTTP and ECR clients.

use super::config::DiscovererConfig;
use super::ecr_clients::EcrClients;
use super::oci::{ManifestMeta, OciClient};
use super::registry_limits::{BoundedCache, RegistryBudgets};

pub(crate) struct RegistryContext {
    pub(crate) config: DiscovererConfig,
    pub(crate) budgets: RegistryBudgets,
    pub(crate) metadata: BoundedCache<String, ManifestMeta>,
    pub(crate) oci: OciClient,
    pub(crate) ecr: EcrClients,
}
