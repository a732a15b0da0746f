//! AEGIS integration tests: one binary, modules by area. Each test gets a fresh database
//! on the throwaway cluster started by scripts/test.sh.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod agents;
mod agents_audit;
mod cli;
mod embedded;
mod extraction;
mod gateway;
mod isolation;
mod jobs;
mod knowledge;
mod migrate;
mod models;
mod server;
mod tenancy;
mod text_search;
