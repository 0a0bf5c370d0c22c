//! The Stage reconciler's logic, pure: [`plan`] decides a Stage's status and the effects
//! that go with it from what the controller observed, using the graph checks, promotion
//! policies, auto-promotion choice, Promotion tracking, health and verification modules
//! below. [`health_checks`] is the registry of the health checks promotion steps leave.

pub mod analysis_run;
pub mod candidates;
pub mod graph;
pub mod health;
pub mod health_checks;
pub mod holds;
pub mod plan;
pub mod policy;
pub mod promotions;
pub mod verification;
