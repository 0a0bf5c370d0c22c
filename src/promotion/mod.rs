//! The promotion engine: the steps a Promotion runs, how they are expanded from a Stage's
//! template, and how they run against a work directory.

pub mod engine;
pub mod inflate;
pub mod steps;
pub mod workdir;
