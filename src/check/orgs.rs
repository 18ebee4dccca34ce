//! `credwatch check` and the Atlassian organizations: each organization's token list is read
//! once, before its connections are probed, and shown in a section of its own
//! (`--orgs --output json` prints them alone).

use chrono::Utc;

use crate::config::{Connection, Org};
use crate::org::{self, OrgStatus};
use crate::probe::{Prober, State};

/// Reads the lists of the organizations that `connections` name, or of every organization
/// when `all`, one after the other (the admin API publishes no rate; it is asked gently).
pub async fn read_orgs(
    prober: &Prober,
    orgs: &[Org],
    connections: &[Connection],
    all: bool,
) -> Vec<OrgStatus> {
    let mut read = Vec::new();
    for org in orgs {
        let named = connections
            .iter()
            .any(|c| c.settings.org.as_deref() == Some(org.name.as_str()));
        if !(all || named) {
            continue;
        }
        let mut status = OrgStatus::new(org.clone(), true);
        let result = org::list::read(prober, org).await;
        if let Err(error) = &result {
            tracing::warn!(org = %org.name, %error, "the organization's API token list was not read");
        }
        status.read(result, Utc::now());
        read.push(status);
    }
    read
}

/// The organizations as JSON: an array of [`org::OrgView`].
pub fn render_json(orgs: &[OrgStatus]) -> String {
    let now = Utc::now();
    let views: Vec<_> = orgs.iter().map(|o| o.view(now)).collect();
    serde_json::to_string_pretty(&views).unwrap_or_else(|e| format!("[] # cannot render: {e}"))
}

/// The organizations' section of the table, empty without organizations.
pub fn render_table(orgs: &[OrgStatus]) -> String {
    if orgs.is_empty() {
        return String::new();
    }
    let now = Utc::now();
    let header = [
        "ORGANIZATION",
        "API KEY",
        "LISTED",
        "ALLOWED",
        "BLOCKED",
        "EXPIRED",
        "EXPIRING 7D",
        "EXPIRING 30D",
        "UNUSED",
    ];
    let rows: Vec<Vec<String>> = orgs
        .iter()
        .map(|status| {
            let inventory = status.inventory(now);
            let count = |pick: fn(&org::Inventory) -> usize| {
                inventory
                    .as_ref()
                    .map_or("-".to_owned(), |i| pick(i).to_string())
            };
            vec![
                status.org.name.clone(),
                status.key_state.to_string(),
                status
                    .tokens
                    .as_ref()
                    .map_or("no".to_owned(), |(_, tokens)| {
                        format!("{} tokens", tokens.len())
                    }),
                count(|i| i.allowed),
                count(|i| i.blocked),
                count(|i| i.expired),
                count(|i| i.expiring_7d),
                count(|i| i.expiring_30d),
                count(|i| i.unused),
            ]
        })
        .collect();
    let mut out = String::from("\n");
    out.push_str(&super::render::aligned(&header, &rows));
    for status in orgs {
        if let Some(error) = &status.last_error {
            out.push_str(&format!("{}: {error}\n", status.org.name));
        }
    }
    out
}

/// 0 when every organization's list was read, else 1.
pub fn exit_code(orgs: &[OrgStatus]) -> u8 {
    u8::from(
        orgs.iter()
            .any(|o| o.key_state != State::Valid || o.tokens.is_none()),
    )
}
