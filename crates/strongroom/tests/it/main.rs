//! End-to-end tests: the real `strongroom` binary in a temp dir, driven by the real `kubectl`
//! and by kube-rs. One integration-test binary for the crate (linking stays fast).

mod access;
mod agent;
mod canary;
mod corruption;
mod durability;
mod encryption;
mod events;
mod kube_client;
mod kubectl;
mod leaks;
mod protocol;
mod rbac_objects;
mod registry;
mod token_attacks;
mod workflows;

use strongroom_testkit::Server;

/// Starts the binary under test.
pub fn server() -> Server {
    Server::start(env!("CARGO_BIN_EXE_strongroom"))
}

pub fn server_with(args: &[&str]) -> Server {
    Server::start_with(env!("CARGO_BIN_EXE_strongroom"), args)
}
