//! credwatch watches Jira credentials and says, before an integration breaks, that one is
//! dead, locked or about to expire.
//!
//! The way of a probe (`docs/architecture.md` walks it file by file): [`config`] turns TOML
//! into validated connections, each with its [`config::Settings`]; a connection's task in the
//! scheduler (`scheduler/probe_loop.rs`) waits for the due time, admits the probe
//! (`scheduler/admission.rs`: gates, permits, the login account's budget in [`store`]), and
//! runs the probe cycle, [`probe::Prober::cycle`], which sends the requests and has
//! [`probe::classify`] decide the [`probe::Verdict`] from the answer and the facts known before
//! ([`probe::Facts`]); the policy decides the next wait; the outcome lands in the board of
//! every connection (`state/`), which the store keeps across restarts and the server
//! (`server.rs`) serves: `/metrics` through the project's own streaming writer (`metrics/`),
//! the status page and the JSON API. [`daemon`] ties them together with reload and shutdown;
//! [`check`] is the one-shot command, over the same cycle. No top-level module imports one
//! that imports it back (`tests/architecture.rs`).
//!
//! Where to start reading: `scheduler/probe_loop.rs` for a connection's life, `probe/cycle.rs`
//! for one probe,
//! `probe/classify.rs` for the verdicts, `config/settings.rs` to add a setting (one line of a
//! table), `metrics/families.rs` to add a metric. [`sim`] is the Jira simulator (a crate of its
//! own) that the tests, the demo and the benchmarks run against.
//!
//! The public API is what the binary and the integration tests use; the rest is crate-private.

#![warn(unreachable_pub)]

pub(crate) mod api;
pub mod build;
pub mod check;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod expiry;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod listing;
pub(crate) mod metrics;
pub mod org;
pub(crate) mod page;
pub mod probe;
pub mod replica;
pub mod resume;
pub(crate) mod scheduler;
pub(crate) mod serve;
pub(crate) mod server;
pub mod shard;
pub(crate) mod state;
pub mod store;
pub(crate) mod view;
pub mod webconfig;

/// Where within its first interval a connection's first probe comes (stable per name).
pub use scheduler::policy::start_offset;

/// The Jira simulator, a crate of its own (`sim/`), re-exported for the tests and the demo.
pub use credwatch_sim as sim;
