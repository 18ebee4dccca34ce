//! `basic_auth_users`: HTTP basic authentication against bcrypt hashes.
//!
//! - Every check that is not a remembered success costs one bcrypt verification, the bcrypt
//!   crate's constant-time comparison included: against the user's hash, or, for a name that is
//!   not configured or a header that does not parse, against the costliest configured hash with
//!   the answer thrown away. A wrong name and a wrong password take the same work as a right one
//!   when every user's hash has the same cost (give them all the same cost: with mixed costs, an
//!   unknown name costs what the costliest hash does, and a known one its own).
//! - A success is remembered (as a SHA-256 digest of the name, the password and the hash, never
//!   the password itself) so that a scrape every 15 s does not pay bcrypt's cost each time; the
//!   memory goes with the configuration on reload. Failures are never remembered.
//! - Verifications run on the blocking pool, at most as many at once as there are cores, so that
//!   a flood of wrong guesses cannot take the runtime's threads.
//! - Nothing offered (name or password) is logged.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr as _;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use http::HeaderValue;
use tokio::sync::Semaphore;

/// How many remembered successes are kept before the memory starts again.
const REMEMBERED: usize = 256;

/// The configured users.
pub(crate) struct Users {
    hashes: HashMap<String, String>,
    /// The costliest hash, verified against when the name is unknown.
    decoy: String,
    remembered: Mutex<HashSet<[u8; 32]>>,
    verifying: Arc<Semaphore>,
    /// bcrypt verifications run, and the cost of each, summed: the work a check took.
    work: std::sync::atomic::AtomicU64,
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
    /// Checks every hash; errors name the user's key.
    pub(super) fn new(users: BTreeMap<String, String>) -> Result<Users, (String, String)> {
        if users.is_empty() {
            return Err((
                "basic_auth_users".into(),
                "names no user: remove the key to serve without authentication".into(),
            ));
        }
        let mut decoy: Option<(u32, String)> = None;
        for (name, hash) in &users {
            let key = format!("basic_auth_users.{name}");
            if name.contains(':') {
                return Err((key, "a user name cannot contain ':'".into()));
            }
            // The hash is not quoted: it is as secret as the file.
            let parts = bcrypt::HashParts::from_str(hash).map_err(|_| {
                (
                    key.clone(),
                    "is not a bcrypt hash ($2a$, $2b$ or $2y$): hash the password with htpasswd -nBC 10 or similar".to_string(),
                )
            })?;
            if decoy
                .as_ref()
                .is_none_or(|(cost, _)| parts.get_cost() > *cost)
            {
                decoy = Some((parts.get_cost(), hash.clone()));
            }
        }
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Users {
            hashes: users.into_iter().collect(),
            decoy: decoy.map(|(_, hash)| hash).unwrap_or_default(),
            remembered: Mutex::new(HashSet::new()),
            verifying: Arc::new(Semaphore::new(parallel)),
            work: std::sync::atomic::AtomicU64::new(0),
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

    /// Whether `authorization` (the request's header, if any) names a user with the right
    /// password.
    pub(crate) async fn allow(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(header) = authorization else {
            return false;
        };
        let offered = parse(header);
        let (name, password) = offered.unwrap_or_default();
        let (hash, known) = match self.hashes.get(&name) {
            Some(hash) => (hash.clone(), true),
            None => (self.decoy.clone(), false),
        };
        let digest = Self::digest(&name, &password, &hash);
        if known && self.remembered().contains(&digest) {
            return true;
        }
        let Ok(_permit) = self.verifying.clone().acquire_owned().await else {
            return false;
        };
        // bcrypt's work doubles with each step of its cost.
        let cost = bcrypt::HashParts::from_str(&hash).map_or(0, |p| p.get_cost());
        self.work
            .fetch_add(1u64 << cost.min(31), std::sync::atomic::Ordering::Relaxed);
        let verified =
            tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        let allowed = known && verified;
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

    fn header(name: &str, password: &str) -> HeaderValue {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("a header")
    }

    fn users() -> Users {
        // Cost 4 keeps the test fast; the daemon takes whatever cost the file has.
        let hash = bcrypt::hash("right horse", 4).expect("a hash");
        Users::new(BTreeMap::from([("prometheus".to_string(), hash)])).expect("valid users")
    }

    #[tokio::test]
    async fn the_right_password_passes_and_is_remembered() {
        let users = users();
        assert!(
            users
                .allow(Some(&header("prometheus", "right horse")))
                .await
        );
        assert_eq!(users.remembered().len(), 1);
        assert!(
            users
                .allow(Some(&header("prometheus", "right horse")))
                .await
        );
    }

    #[tokio::test]
    async fn wrong_missing_and_malformed_credentials_fail_and_are_not_remembered() {
        let users = users();
        assert!(!users.allow(None).await);
        assert!(!users.allow(Some(&header("prometheus", "wrong"))).await);
        assert!(!users.allow(Some(&header("nobody", "right horse"))).await);
        assert!(
            !users
                .allow(Some(&HeaderValue::from_static("Basic !!!")))
                .await
        );
        assert!(
            !users
                .allow(Some(&HeaderValue::from_static("Bearer abc")))
                .await
        );
        assert!(users.remembered().is_empty());
    }

    #[tokio::test]
    async fn a_wrong_name_costs_the_work_of_the_costliest_hash_and_a_wrong_password_its_own() {
        let users = Users::new(BTreeMap::from([
            ("cheap".to_string(), bcrypt::hash("a", 4).expect("hash")),
            ("dear".to_string(), bcrypt::hash("b", 6).expect("hash")),
        ]))
        .expect("users");
        let work = |users: &Users| users.work.swap(0, std::sync::atomic::Ordering::Relaxed);
        assert!(users.allow(Some(&header("dear", "b"))).await);
        let right = work(&users);
        assert_eq!(right, 1 << 6, "the right password: its hash's work");
        assert!(!users.allow(Some(&header("nobody", "b"))).await);
        assert_eq!(
            work(&users),
            right,
            "an unknown name: the costliest hash's work"
        );
        assert!(
            !users
                .allow(Some(&HeaderValue::from_static("Basic !!")))
                .await
        );
        assert_eq!(
            work(&users),
            right,
            "a header that does not parse: the same"
        );
        assert!(!users.allow(Some(&header("dear", "wrong"))).await);
        assert_eq!(
            work(&users),
            right,
            "a wrong password: its user's hash's work"
        );
        assert!(!users.allow(Some(&header("cheap", "wrong"))).await);
        assert_eq!(work(&users), 1 << 4);
    }

    #[test]
    fn a_hash_that_is_not_bcrypt_is_refused_without_quoting_it() {
        let error = Users::new(BTreeMap::from([(
            "prometheus".to_string(),
            "plaintext-canary".to_string(),
        )]))
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
