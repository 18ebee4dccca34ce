//! `min_version`, `max_version`, `cipher_suites` and `curve_preferences`: Go's names mapped onto
//! rustls's ring provider.
//!
//! As in Go, `cipher_suites` chooses among the TLS 1.2 suites; the TLS 1.3 suites are always on
//! (rustls, like Go, lets nobody turn them off), and their names (`TLS_AES_128_GCM_SHA256`,
//! `TLS_AES_256_GCM_SHA384`, `TLS_CHACHA20_POLY1305_SHA256`, which Go's `tls.CipherSuites()`
//! lists) are accepted and change nothing. What Go offers and rustls does not is refused by
//! name: TLS 1.0 and 1.1, the CBC suites and the RSA key-exchange suites, and P-521.

use rustls::crypto::CryptoProvider;
use rustls::{NamedGroup, SupportedProtocolVersion};

use super::tls::{fail, Failure};

/// The TLS 1.3 suites Go names; always on.
const TLS13_SUITES: [&str; 3] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// The suites Go's `tls.CipherSuites()` lists that rustls does not implement.
const NOT_IN_RUSTLS: [&str; 8] = [
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
];

/// The protocol version Go's name stands for.
pub(super) fn version(key: &str, name: &str) -> Result<&'static SupportedProtocolVersion, Failure> {
    match name {
        "TLS12" => Ok(&rustls::version::TLS12),
        "TLS13" => Ok(&rustls::version::TLS13),
        "TLS10" | "TLS11" => Err(fail(
            key,
            format!("{name} is not supported: credwatch speaks TLS 1.2 and 1.3 (TLS12, TLS13)"),
        )),
        other => Err(fail(
            key,
            format!("unknown TLS version {other:?} (TLS12 or TLS13)"),
        )),
    }
}

/// The versions from `min` to `max`.
pub(super) fn versions(
    min: &'static SupportedProtocolVersion,
    max: &'static SupportedProtocolVersion,
) -> Result<Vec<&'static SupportedProtocolVersion>, Failure> {
    match (u16::from(min.version), u16::from(max.version)) {
        (lo, hi) if lo > hi => Err(fail("min_version", "is above max_version")),
        (lo, hi) if lo == hi => Ok(vec![min]),
        _ => Ok(vec![&rustls::version::TLS12, &rustls::version::TLS13]),
    }
}

/// The ring provider restricted to the suites and curves the file names.
pub(super) fn provider(
    cipher_suites: Option<&[String]>,
    curves: Option<&[String]>,
) -> Result<CryptoProvider, Failure> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = cipher_suites {
        provider.cipher_suites = suites(&provider, names)?;
    }
    if let Some(names) = curves {
        let all = provider.kx_groups.clone();
        let mut chosen = Vec::new();
        for name in names {
            let wanted = curve(name)?;
            if let Some(group) = all.iter().find(|g| g.name() == wanted) {
                chosen.push(*group);
            }
        }
        provider.kx_groups = chosen;
    }
    Ok(provider)
}

fn curve(name: &str) -> Result<NamedGroup, Failure> {
    match name {
        "X25519" => Ok(NamedGroup::X25519),
        "CurveP256" => Ok(NamedGroup::secp256r1),
        "CurveP384" => Ok(NamedGroup::secp384r1),
        "CurveP521" => Err(fail(
            "curve_preferences",
            "CurveP521 is not supported: rustls has no P-521 key exchange (X25519, CurveP256 or CurveP384)",
        )),
        other => Err(fail(
            "curve_preferences",
            format!("unknown curve {other:?} (X25519, CurveP256 or CurveP384)"),
        )),
    }
}

/// The TLS 1.3 suites and the TLS 1.2 suites `names` chooses, in the provider's order.
fn suites(
    provider: &CryptoProvider,
    names: &[String],
) -> Result<Vec<rustls::SupportedCipherSuite>, Failure> {
    let all = &provider.cipher_suites;
    let tls12 = || {
        all.iter()
            .filter(|s| s.version() == &rustls::version::TLS12)
    };
    let mut chosen: Vec<_> = all
        .iter()
        .filter(|s| s.version() == &rustls::version::TLS13)
        .copied()
        .collect();
    for name in names {
        if TLS13_SUITES.contains(&name.as_str()) {
            continue;
        }
        if NOT_IN_RUSTLS.contains(&name.as_str()) {
            return Err(fail(
                "cipher_suites",
                format!("{name} is not supported: rustls has no CBC and no RSA key-exchange suites (use the ECDHE suites with AES-GCM or ChaCha20)"),
            ));
        }
        // Go also knows the ChaCha20 suites without their `_SHA256`.
        let standard = if name.ends_with("_CHACHA20_POLY1305") {
            format!("{name}_SHA256")
        } else {
            name.clone()
        };
        let suite = tls12()
            .find(|s| format!("{:?}", s.suite()) == standard)
            .ok_or_else(|| {
                let offered: Vec<String> = tls12().map(|s| format!("{:?}", s.suite())).collect();
                fail(
                    "cipher_suites",
                    format!(
                        "unknown cipher {name:?} (the TLS 1.2 suites: {}; the TLS 1.3 suites are always on)",
                        offered.join(", ")
                    ),
                )
            })?;
        if !chosen.iter().any(|c| c.suite() == suite.suite()) {
            chosen.push(*suite);
        }
    }
    Ok(chosen)
}
