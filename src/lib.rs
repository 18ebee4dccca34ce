//! credwatch watches Jira credentials and says, before an integration breaks, that one is
//! dead, locked or about to expire.
//!
//! Where to start reading: [`config`] turns TOML into validated [`config::Connection`]s;
//! [`probe`] sends one `GET myself` per connection and [`probe::classify`] turns Jira's
//! answer into a state and a reason; [`check`] runs a probe round for the `check` command;
//! [`sim`] is the Jira simulator that the tests, the demo and the benchmarks run against.

pub mod check;
pub mod config;
pub mod demo;
pub mod probe;
pub mod sim;
