//! credwatch watches Jira credentials and says, before an integration breaks, that one is
//! dead, locked or about to expire.
//!
//! The flow: [`config`] turns TOML into validated [`config::Connection`]s; the [`scheduler`]
//! runs one task per connection that calls [`probe`] on a jittered, rate-limit-aware schedule
//! ([`scheduler::policy`] holds the rules); [`probe::classify`] turns Jira's answer into a
//! state and a reason; the outcomes land in the shared [`state::Board`], which [`metrics`]
//! renders for Prometheus and [`server`] serves with the API and health endpoints; the
//! [`store`] keeps what the status learned across restarts (verdicts, schedules, history, and
//! the Basic login budget, which [`check`] shares); [`daemon`] ties them together with reload
//! and shutdown.
//!
//! Where to start reading: `daemon.rs` for the main loop, `scheduler/mod.rs` for a
//! connection's life, `probe/classify.rs` for the verdicts, `metrics.rs` for the exposition.
//! [`check`] is the one-shot command; [`sim`] is the Jira simulator that the tests, the demo
//! and the benchmarks run against.

pub mod build;
pub mod check;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod expiry;
pub mod metrics;
pub mod page;
pub mod probe;
pub mod resume;
pub mod scheduler;
pub mod server;
pub mod shard;
pub mod state;
pub mod store;
pub mod view;

/// The Jira simulator, a crate of its own (`sim/`), re-exported for the tests and the demo.
pub use credwatch_sim as sim;
