//! The families of the Atlassian organizations: the inventory of each one's API tokens,
//! counted (no series per token: a token no connection uses has none), when its list was last
//! read, and its admin key's state and expiry. Only the replica whose shard owns an
//! organization's name writes them.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::text::{flag, seconds, Family};
use crate::org::OrgStatus;
use crate::probe::State;

/// Writes every organization family (each header even without organizations).
pub(super) fn render(out: &mut String, orgs: &[Arc<OrgStatus>], now: DateTime<Utc>) {
    let orgs: Vec<&OrgStatus> = orgs.iter().map(|o| &**o).filter(|o| o.exported).collect();
    let inventories: Vec<_> = orgs.iter().map(|o| o.inventory(now)).collect();

    let mut family = Family::new(
        out,
        "credwatch_org_tokens",
        "gauge",
        "The organization's user API tokens by status, from its admin API's list: allowed, blocked, expired (allowed but past its expiry).",
    );
    for (org, inventory) in orgs.iter().zip(&inventories) {
        if let Some(i) = inventory {
            for (status, count) in [
                ("allowed", i.allowed),
                ("blocked", i.blocked),
                ("expired", i.expired),
            ] {
                family.sample(&[("org", &org.org.name), ("status", status)], count as f64);
            }
        }
    }
    let mut family = Family::new(
        out,
        "credwatch_org_tokens_expiring",
        "gauge",
        "The organization's allowed API tokens that expire within 7d or 30d from now (each count includes the sooner ones; expired ones are not counted).",
    );
    for (org, inventory) in orgs.iter().zip(&inventories) {
        if let Some(i) = inventory {
            family.sample(
                &[("org", &org.org.name), ("within", "7d")],
                i.expiring_7d as f64,
            );
            family.sample(
                &[("org", &org.org.name), ("within", "30d")],
                i.expiring_30d as f64,
            );
        }
    }
    let mut family = Family::new(
        out,
        "credwatch_org_tokens_unused",
        "gauge",
        "The organization's allowed API tokens not used for unused_after, or never used.",
    );
    for (org, inventory) in orgs.iter().zip(&inventories) {
        if let Some(i) = inventory {
            family.sample(&[("org", &org.org.name)], i.unused as f64);
        }
    }
    let mut family = Family::new(
        out,
        "credwatch_org_last_list_success_timestamp_seconds",
        "gauge",
        "When the organization's API token list was last read whole; absent until a read succeeds.",
    );
    for org in &orgs {
        if let Some((at, _)) = &org.tokens {
            family.sample(&[("org", &org.org.name)], seconds(*at));
        }
    }
    let mut family = Family::new(
        out,
        "credwatch_org_api_key_state",
        "gauge",
        "The organization admin API key's state: 1 for the current one (valid once a list was read; invalid, expired or forbidden when the API rejected it; unknown before any answer), 0 for the others.",
    );
    for org in &orgs {
        for state in State::ALL {
            family.sample(
                &[("org", &org.org.name), ("state", state.as_str())],
                flag(state == org.key_state),
            );
        }
    }
    let mut family = Family::new(
        out,
        "credwatch_org_api_key_expiry_timestamp_seconds",
        "gauge",
        "When the organization admin API key expires, as api_key_expires_at declares; absent when not declared.",
    );
    for org in &orgs {
        if let Some(at) = org.org.api_key_expires_at {
            family.sample(&[("org", &org.org.name)], seconds(at));
        }
    }
}
