//! Pure logic behind the Stage reconciler: the Stage graph's validity, which promotion policy
//! applies to a Stage, and which Freight auto-promotion picks.

pub mod candidates;
pub mod graph;
pub mod policy;
pub mod health_checks;
