//! Taking a moved Stage's Promotions from a shard whose controller is gone.
//!
//! A shard's controller is alive while it renews its leader Lease; a standby replica of it
//! takes over once that Lease is free or has not been renewed for its duration. An arriving
//! shard judges the old shard the same way, by trying to take the old shard's Lease itself
//! (with the same crate, so with the same rules as a standby): when it gets it, no controller
//! of the old shard runs or can start until it lets go, so relabelling the old shard's
//! Promotions cannot race with that shard running them. While the old shard's controller
//! renews its Lease the attempt fails and the arriving shard keeps waiting for the handover.

use std::time::Duration;

use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseManagerBuilder};

use super::{LEASE_BASE, Shard};

/// Where the shards' leader Leases live, and who this controller is. Set only when this
/// controller runs under leader election: without it, the other shards presumably run
/// without Leases too, and an absent Lease would say nothing about whether they are alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leases {
    pub namespace: String,
    pub identity: String,
    /// The duration of the fence this controller puts on a dead shard's Lease (a crash while
    /// holding it delays that shard's restart by at most this).
    pub duration_secs: u64,
}

/// How long one attempt to take a Lease may last. Taking an expired Lease releases it and
/// waits up to a second before locking it (the crate's collision avoidance); a live Lease
/// makes the crate sleep until its expiry, which this cuts short.
const ATTEMPT: Duration = Duration::from_secs(5);

/// The Lease of the controller that runs the Promotions labelled `shard` (`None`: the
/// unlabelled ones, the default controller's).
pub fn lease_of(shard: Option<&str>) -> String {
    Shard {
        name: shard.map(str::to_string),
        ..Default::default()
    }
    .lease_name(LEASE_BASE)
}

/// Whether an absent Lease may be created (and so taken). The unlabelled Promotions may be
/// run by a named shard that is also the default (`IS_DEFAULT_CONTROLLER`), whose Lease has
/// its own name: only an existing, expired `haul-controller` Lease says the default is gone.
/// A labelled Promotion's shard with no Lease at all never ran (a mistyped shard name).
pub fn create_mode(holder: Option<&str>) -> LeaseCreateMode {
    match holder {
        None => LeaseCreateMode::UseExistent,
        Some(_) => LeaseCreateMode::AutoCreate,
    }
}

/// The Lease of a gone shard, held by this controller while it takes that shard's
/// Promotions over.
pub struct Fence {
    manager: LeaseManager,
    lease: String,
}

impl Fence {
    /// Takes the Lease of the controller of shard `holder` if it is free or expired; `None`
    /// while that controller (or a standby of it) holds it, or on an API error.
    pub async fn take(
        client: &kube::Client,
        leases: &Leases,
        holder: Option<&str>,
    ) -> Option<Self> {
        let lease = lease_of(holder);
        let manager = LeaseManagerBuilder::new(client.clone(), &lease)
            .with_namespace(&leases.namespace)
            .with_identity(format!("{}-takeover", leases.identity))
            .with_duration(leases.duration_secs.max(2))
            .with_grace(1)
            .with_create_mode(create_mode(holder))
            .build()
            .await
            .inspect_err(
                |e| tracing::debug!(lease = %lease, error = %e, "cannot use the Lease of a shard"),
            )
            .ok()?;
        match tokio::time::timeout(ATTEMPT, manager.changed()).await {
            Ok(Ok(true)) => Some(Self { manager, lease }),
            Ok(Err(e)) => {
                tracing::warn!(lease = %lease, error = %e, "cannot check whether a shard's controller is alive");
                None
            }
            // Held by a live controller.
            Ok(Ok(false)) | Err(_) => None,
        }
    }

    pub fn lease(&self) -> &str {
        &self.lease
    }

    /// Frees the Lease, so a controller of that shard can start again.
    pub async fn release(self) {
        if let Err(e) = self.manager.release().await {
            // It expires on its own after its duration.
            tracing::warn!(lease = %self.lease, error = %e, "cannot release a gone shard's Lease");
        }
    }
}
