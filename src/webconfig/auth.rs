//! `basic_auth_users`: HTTP basic authentication against bcrypt hashes.
//!
//! - A check that is not a remembered success costs one bcrypt verification, the bcrypt
//!   crate's constant-time comparison included: against the user's hash, or, for a name that is
//!   not configured, against one fixed decoy hash of cost 10 (as the exporter-toolkit does),
//!   whose answer is thrown away. An unknown name thus costs cost 10's work whatever the file's
//!   costs, never the costliest configured hash's; a known name costs its own hash's. Give every
//!   user cost 10 and a wrong name, a wrong password and a right one cost the same work; with
//!   other costs, the time a refusal takes tells a known name from an unknown one.
//! - A header that is not `Basic` with a name and a password is refused without a verification
//!   (as the exporter-toolkit does): it tells nothing about the users.
//! - A success is remembered (as a SHA-256 digest of the name, the password and the hash, never
//!   the password itself) so that a scrape every 15 s does not pay bcrypt's cost each time; the
//!   memory goes with the configuration on reload. Failures are never remembered.
//! - Verifications run on the blocking pool, on the [`Workers`]: at most one per core, at most
//!   one per client address, and an address whose last one failed never takes the last free
//!   worker.
//! - Nothing offered (name or password) is logged.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use http::HeaderValue;

use super::workers::Workers;

/// How many remembered successes are kept before the memory starts again.
const REMEMBERED: usize = 256;

/// The hash an unknown name is verified against: bcrypt, cost 10, of a random password nobody
/// kept. Its answer is thrown away.
const DECOY: &str = "$2b$10$MdQoX0SSTSNtatkUdiXQO.aYn8hQ414oWMM6fkqFsQeb3YF/dqoAK";

/// The configured users.
pub(crate) struct Users {
    hashes: HashMap<String, String>,
    remembered: Mutex<HashSet<[u8; 32]>>,
    workers: Arc<Workers>,
    /// The cost of each verification run, for the tests that count work.
    #[cfg(test)]
    costs: Mutex<Vec<u32>>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hashes stay out of debug output too.
        f.debug_struct("Users")
            .field("names", &self.hashes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Users {
    /// Checks every hash; errors name the user's key. A name that can never log in is added
    /// to `warnings`.
    pub(super) fn new(
        users: BTreeMap<String, String>,
        warnings: &mut Vec<String>,
    ) -> Result<Users, (String, String)> {
        Users::with_workers(users, Workers::shared(), warnings)
    }

    fn with_workers(
        users: BTreeMap<String, String>,
        workers: Arc<Workers>,
        warnings: &mut Vec<String>,
    ) -> Result<Users, (String, String)> {
        for (name, hash) in &users {
            let key = format!("basic_auth_users.{name}");
            // The hash is not quoted: it is as secret as the file.
            bcrypt::HashParts::from_str(hash).map_err(|_| {
                (
                    key.clone(),
                    "is not a bcrypt hash ($2a$, $2b$ or $2y$): hash the password with htpasswd -nBC 10 or similar".to_string(),
                )
            })?;
            if name.contains(':') {
                warnings.push(format!(
                    "{key}: a name with ':' can never log in (basic auth ends the name at the first ':')"
                ));
            }
        }
        Ok(Users {
            hashes: users.into_iter().collect(),
            remembered: Mutex::new(HashSet::new()),
            workers,
            #[cfg(test)]
            costs: Mutex::new(Vec::new()),
        })
    }

    fn digest(name: &str, password: &[u8], hash: &str) -> [u8; 32] {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [name.as_bytes(), b"\0", password, b"\0", hash.as_bytes()] {
            context.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(context.finish().as_ref());
        out
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.remembered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `authorization` (the request's header, if any), sent from `client`, names a user
    /// with the right password.
    pub(crate) async fn allow(&self, authorization: Option<&HeaderValue>, client: IpAddr) -> bool {
        let Some((name, password)) = authorization.and_then(parse) else {
            return false;
        };
        let (hash, known) = match self.hashes.get(&name) {
            Some(hash) => (hash.clone(), true),
            None => (DECOY.to_string(), false),
        };
        let digest = Self::digest(&name, &password, &hash);
        if known && self.remembered().contains(&digest) {
            return true;
        }
        let cost = bcrypt::HashParts::from_str(&hash).map_or(0, |p| p.get_cost());
        #[cfg(test)]
        self.costs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(cost);
        let ticket = self.workers.acquire(client, cost).await;
        // The ticket goes with the blocking work: the worker stays taken until bcrypt is done,
        // even when the client has gone.
        let allowed = tokio::task::spawn_blocking(move || {
            // Verified whatever `known` says: an unknown name costs the decoy's work.
            let verified = bcrypt::verify(&password, &hash).unwrap_or(false);
            let allowed = verified && known;
            ticket.finish(allowed);
            allowed
        })
        .await
        .unwrap_or(false);
        if allowed {
            let mut remembered = self.remembered();
            if remembered.len() >= REMEMBERED {
                remembered.clear();
            }
            remembered.insert(digest);
        }
        allowed
    }
}

/// `Basic base64(name:password)` as (name, password bytes); `None` when it is not that.
fn parse(header: &HeaderValue) -> Option<(String, Vec<u8>)> {
    let value = header.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let name = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((name, decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn header(name: &str, password: &str) -> HeaderValue {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("a header")
    }

    fn users() -> Users {
        // Cost 4 keeps the test fast; the daemon takes whatever cost the file has.
        let hash = bcrypt::hash("right horse", 4).expect("a hash");
        Users::with_workers(
            BTreeMap::from([("prometheus".to_string(), hash)]),
            Workers::new(2),
            &mut Vec::new(),
        )
        .expect("valid users")
    }

    fn costs(users: &Users) -> Vec<u32> {
        std::mem::take(&mut *users.costs.lock().expect("lock"))
    }

    #[tokio::test]
    async fn the_right_password_passes_and_is_remembered() {
        let users = users();
        let right = header("prometheus", "right horse");
        assert!(users.allow(Some(&right), HERE).await);
        assert_eq!(users.remembered().len(), 1);
        assert!(users.allow(Some(&right), HERE).await);
        assert_eq!(costs(&users), [4], "the second time: no verification");
    }

    #[tokio::test]
    async fn wrong_missing_and_malformed_credentials_fail_and_are_not_remembered() {
        let users = users();
        assert!(!users.allow(None, HERE).await);
        assert!(
            !users
                .allow(Some(&header("prometheus", "wrong")), HERE)
                .await
        );
        assert!(
            !users
                .allow(Some(&header("nobody", "right horse")), HERE)
                .await
        );
        let malformed = [
            HeaderValue::from_static("Basic !!!"),
            HeaderValue::from_static("Bearer abc"),
        ];
        for header in &malformed {
            assert!(!users.allow(Some(header), HERE).await);
        }
        assert!(users.remembered().is_empty());
        assert_eq!(
            costs(&users),
            [4, 10],
            "the wrong password and the unknown name; nothing for the rest"
        );
    }

    #[tokio::test]
    async fn an_unknown_name_costs_the_decoys_work_whatever_the_configured_costs() {
        let users = Users::with_workers(
            BTreeMap::from([
                ("cheap".to_string(), bcrypt::hash("a", 4).expect("hash")),
                // Never verified here: only its cost matters, and a cost-31 hash's is unpayable.
                (
                    "dear".to_string(),
                    "$2b$31$MdQoX0SSTSNtatkUdiXQO.aYn8hQ414oWMM6fkqFsQeb3YF/dqoAK".to_string(),
                ),
            ]),
            Workers::new(2),
            &mut Vec::new(),
        )
        .expect("users");
        assert!(!users.allow(Some(&header("nobody", "b")), HERE).await);
        assert!(!users.allow(Some(&header("nobody-else", "c")), HERE).await);
        assert!(!users.allow(Some(&header("cheap", "wrong")), HERE).await);
        assert_eq!(costs(&users), [10, 10, 4]);
    }

    #[test]
    fn the_decoy_is_a_cost_10_bcrypt_hash() {
        let parts = bcrypt::HashParts::from_str(DECOY).expect("bcrypt");
        assert_eq!(parts.get_cost(), 10);
    }

    #[test]
    fn a_hash_that_is_not_bcrypt_is_refused_without_quoting_it() {
        let error = Users::new(
            BTreeMap::from([("prometheus".to_string(), "plaintext-canary".to_string())]),
            &mut Vec::new(),
        )
        .expect_err("not bcrypt");
        assert_eq!(error.0, "basic_auth_users.prometheus");
        assert!(!error.1.contains("plaintext-canary"));
    }

    #[test]
    fn the_header_parses_as_rfc_7617_says() {
        assert_eq!(
            parse(&header("a", "b:c")),
            Some(("a".to_string(), b"b:c".to_vec()))
        );
        assert_eq!(
            parse(&HeaderValue::from_static("basic YTpi")),
            Some(("a".into(), b"b".to_vec()))
        );
        assert_eq!(parse(&HeaderValue::from_static("Basic")), None);
    }
}
