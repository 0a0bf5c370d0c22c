//! The promotion engine: the steps a Promotion runs, how they are expanded from a Stage's
//! template, how they run against a work directory, and the JSON Schemas of their configs.

pub mod cluster_data;
pub mod engine;
pub mod inflate;
pub mod schemas;
pub mod steps;
pub mod workdir;
