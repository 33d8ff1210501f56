//! The coordinator: one process of a member's Raft group, serving the metadata API.

pub mod bootstrap;
pub mod config;
pub mod data_plan;
mod errors;
pub mod federation;
mod forward;
pub mod gc;
pub mod grants;
pub mod liveness;
mod membership;
mod meta_service;
mod network;
mod raft_service;
mod reads;
pub mod reconcile;
pub mod repair;
pub mod revocation;
pub mod rotation;
pub mod run;
mod state;
mod status;

pub use config::{CoordinatorConfig, Layout};
pub use meta_service::now_unix_ms;
pub use run::{Running, run, start};
pub use state::Coordinator;
