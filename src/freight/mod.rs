//! Freight identity: the deterministic name and the human-friendly alias.

mod alias;
mod id;

pub use alias::{generate_alias, is_valid_alias};
pub use id::freight_id;
