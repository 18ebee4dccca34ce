//! One probe of one connection, whole: everything it needs (an OAuth token, the cloudId, the
//! identity probe, the gateway's second try) and, when it is due and the credential is valid,
//! the product's list of the account's personal access tokens. The daemon's loop and `credwatch
//! check` both run it; what decides a verdict (the answers, and the facts known before, see
//! [`Facts`]) is all inside, so that nothing rewrites the verdict afterwards.

use http::HeaderValue;

use super::{Facts, GatewayTry, LastMyself, Outcome, Prober, State, TokenListOutcome};
use crate::config::{Connection, CredentialError};

/// What one probe of a connection found.
#[derive(Debug)]
pub struct Cycle {
    /// The identity probe's outcome: the verdict.
    pub outcome: Outcome,
    /// Jira's token list, when it was due and the credential valid.
    pub list: Option<TokenListOutcome>,
    /// What the API gateway has said of this secret after the site rejected it, as the probe
    /// leaves it (kept with the connection's state).
    pub gateway: Option<GatewayTry>,
}

impl Prober {
    /// Runs one probe of `connection`: `authorization` is its `Authorization` value (kept by
    /// the caller while the secret stays the same), `facts` what is known of the credential
    /// before, `memory` what its last `myself` body and the gateway said (updated), and
    /// `list_due` whether its token list is due (the caller's cadence, and its site open).
    pub async fn cycle(
        &self,
        connection: &Connection,
        authorization: &Result<HeaderValue, CredentialError>,
        facts: Facts,
        memory: &mut LastMyself,
        list_due: bool,
    ) -> Cycle {
        let outcome = self
            .probe_authorized(connection, authorization, facts, memory)
            .await;
        // The list rides on a valid probe: never more often than the probe.
        let list = if list_due && outcome.state == State::Valid && connection.lists_tokens() {
            Some(
                self.list_tokens(connection, outcome.identity.as_deref())
                    .await,
            )
        } else {
            None
        };
        Cycle {
            outcome,
            list,
            gateway: memory.gateway.clone(),
        }
    }
}
