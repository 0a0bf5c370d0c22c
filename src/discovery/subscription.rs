//! What every kind of subscription (image, git, chart) shares: the problems its compilation
//! finds, and the [`Subscriber`] that discovers it.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::credentials::{CredType, FoundCredentials};

/// Something wrong with one field of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionProblem {
    /// The field, relative to the subscription (`constraint`); empty for the subscription.
    pub field: &'static str,
    pub message: String,
}

impl SubscriptionProblem {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for SubscriptionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// The problems of a subscription as one message.
pub fn describe_problems(problems: &[SubscriptionProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Discovers one kind of subscription from its compiled form (`Plan`), with the credentials
/// of its kind of Secret.
pub trait Subscriber {
    /// The subscription as the Warehouse spec has it.
    type Spec;
    /// The subscription compiled once (regexes, constraints, globs).
    type Plan;
    type Credentials;
    /// What discovery records in the Warehouse status.
    type Found;
    type Error: fmt::Display;

    /// The `kargo.akuity.io/cred-type` of the Secrets it reads.
    const CRED_TYPE: CredType;

    /// The repository URL Secrets are matched against.
    fn repo_url(spec: &Self::Spec) -> &str;

    /// Credentials from the Secret found for the repository (`None`: anonymous). The error
    /// names the Secret when it is at fault.
    fn credentials(found: Option<&FoundCredentials>) -> Result<Self::Credentials, String>;

    /// Discovers `spec`; `previous` is what it found last time, for a short-circuit.
    fn discover(
        &self,
        spec: &Self::Spec,
        plan: &Self::Plan,
        creds: &Self::Credentials,
        previous: Option<&Self::Found>,
    ) -> impl Future<Output = Result<Self::Found, Self::Error>> + Send;

    /// How long the repository asked to be left alone after this error, if it did.
    fn retry_after(_error: &Self::Error) -> Option<Duration> {
        None
    }
}
