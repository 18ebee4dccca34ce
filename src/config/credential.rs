//! The credential of a connection: which secret key it is given by, and the
//! `Authorization` header built from it (`Bearer` for PATs, Basic otherwise).

use base64::Engine as _;
use http::header::HeaderValue;

use super::build::Errors;
use super::keys;
use super::settings::Settings;
use super::Kind;
use super::{AuthMethod, RawTable, Secret, SecretSource};
use std::path::Path;

/// Why a secret cannot be sent as an `Authorization` header. The messages never show the
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// A token with whitespace or control characters: usually a paste gone wrong.
    #[error("the token holds spaces, line breaks or control characters: check what was pasted")]
    TokenWhitespace,
    /// A password with a line break or a control character, which would fail every login
    /// and lock the account.
    #[error("the password holds line breaks or control characters: check the file or variable")]
    PasswordControl,
    /// Basic authentication cannot carry a `:` in the user name.
    #[error("username must not contain ':' (Basic authentication cannot carry it)")]
    ColonInUsername,
    /// Non-ASCII or control characters that an HTTP header cannot hold.
    #[error("the token holds characters that cannot be sent in an HTTP header (non-ASCII or control characters)")]
    NotAHeader,
}

/// Builds the pre-emptive `Authorization` value: `Bearer` for PATs, Basic otherwise.
pub fn authorization_header(
    auth: AuthMethod,
    username: Option<&str>,
    secret: &Secret,
) -> Result<HeaderValue, CredentialError> {
    let exposed = secret.expose();
    let text = match auth {
        AuthMethod::Pat | AuthMethod::ApiToken | AuthMethod::OAuthClientCredentials
            if exposed.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            return Err(CredentialError::TokenWhitespace);
        }
        AuthMethod::Basic if exposed.chars().any(char::is_control) => {
            return Err(CredentialError::PasswordControl);
        }
        AuthMethod::Pat => format!("Bearer {exposed}"),
        // OAuth: the client's credentials as RFC 6749 §2.3.1 puts them in Basic; credwatch sends
        // them in the token request's form, but checks here that they can be sent at all.
        AuthMethod::ApiToken | AuthMethod::Basic | AuthMethod::OAuthClientCredentials => {
            let user = username.unwrap_or_default();
            if user.contains(':') {
                return Err(CredentialError::ColonInUsername);
            }
            let pair = format!("{user}:{}", secret.expose());
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        }
    };
    let mut value = HeaderValue::from_str(&text).map_err(|_| CredentialError::NotAHeader)?;
    value.set_sensitive(true);
    Ok(value)
}

const TOKEN_KEYS: [&str; 3] = ["token", "token_env", "token_file"];
const PASSWORD_KEYS: [&str; 3] = ["password", "password_env", "password_file"];
const CLIENT_SECRET_KEYS: [&str; 3] = ["client_secret", "client_secret_env", "client_secret_file"];

/// The secret keys `auth` takes.
fn family(auth: AuthMethod) -> [&'static str; 3] {
    match auth {
        AuthMethod::Basic => PASSWORD_KEYS,
        AuthMethod::Pat | AuthMethod::ApiToken => TOKEN_KEYS,
        AuthMethod::OAuthClientCredentials => CLIENT_SECRET_KEYS,
    }
}

/// The key that names this secret source for this kind of credential.
pub(super) fn secret_key(auth: AuthMethod, source: &SecretSource) -> &'static str {
    let family = family(auth);
    match source {
        SecretSource::Inline(_) => family[0],
        SecretSource::Env(_) => family[1],
        SecretSource::File(_) => family[2],
    }
}

/// Finds exactly one secret key of the family that `auth` takes.
pub(super) fn secret_source(
    table: &RawTable,
    auth: AuthMethod,
    base_dir: &Path,
    errors: &mut Errors<'_>,
) -> Option<(&'static str, SecretSource)> {
    let family = family(auth);
    let family_list = family.join(", ");
    let others = [TOKEN_KEYS, PASSWORD_KEYS, CLIENT_SECRET_KEYS];
    for key in others.into_iter().flatten().filter(|k| !family.contains(k)) {
        if let Some(value) = table.get(key) {
            errors.at(
                key,
                Some(value.span().start),
                format!("auth = \"{auth}\" takes one of {family_list}, not {key}"),
            );
        }
    }
    one_of(table, family, base_dir, errors)
}

/// Finds exactly one of the three keys of a secret (`x`, `x_env`, `x_file`) in `table` and
/// reads where it points; records why not otherwise.
pub(super) fn one_of(
    table: &RawTable,
    family: [&'static str; 3],
    base_dir: &Path,
    errors: &mut Errors<'_>,
) -> Option<(&'static str, SecretSource)> {
    let family_list = family.join(", ");
    let present: Vec<&'static str> = family
        .into_iter()
        .filter(|k| table.contains_key(*k))
        .collect();
    let key = match present.as_slice() {
        [] => {
            errors.at("", None, format!("no secret: set one of {family_list}"));
            return None;
        }
        [key] => *key,
        several => {
            errors.at(
                several[1],
                table.get(several[1]).map(|v| v.span().start),
                format!(
                    "set exactly one of {family_list}, found {}",
                    several.join(" and ")
                ),
            );
            return None;
        }
    };
    let value = table.get(key)?;
    let span = Some(value.span().start);
    let source = if key.ends_with("_env") {
        keys::string(value.get_ref()).and_then(|name| {
            if is_env_name(&name) {
                Ok(SecretSource::Env(name))
            } else {
                // Not echoed: a value that is no variable name may be the secret itself.
                Err("must name an environment variable ([A-Za-z_][A-Za-z0-9_]*): is this the secret itself?".to_owned())
            }
        })
    } else if key.ends_with("_file") {
        keys::string(value.get_ref()).and_then(|text| {
            if looks_like_a_secret(&text) {
                Err("does not look like a path: is this the secret itself? Set it to the path of a file that holds the secret".to_owned())
            } else {
                keys::path(value.get_ref(), base_dir).map(SecretSource::File)
            }
        })
    } else {
        keys::string(value.get_ref()).map(|s| SecretSource::Inline(Secret::new(s)))
    };
    match source {
        Ok(source) => Some((key, source)),
        Err(message) => {
            errors.at(key, span, message);
            None
        }
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A long run of token characters with no path separator, dot or `$` is more likely a
/// pasted token than a file name, and must not be echoed in "cannot read" errors.
fn looks_like_a_secret(text: &str) -> bool {
    text.len() >= 24 && !text.contains(['/', '.', '$', ' '])
}

/// The rules of scoped API tokens and OAuth 2.0 client credentials (docs/jira-answers.md §9,
/// §10): which keys go with which credential.
pub(super) fn check_newer_credentials(
    settings: &Settings,
    span: &dyn Fn(&str) -> Option<usize>,
    errors: &mut Errors<'_>,
) {
    let (kind, auth) = (settings.kind, settings.auth);
    let oauth = auth == AuthMethod::OAuthClientCredentials;
    if settings.scoped && (kind != Kind::Cloud || auth != AuthMethod::ApiToken) {
        errors.at(
            "scoped",
            span("scoped"),
            "scoped API tokens exist on Jira Cloud only: scoped = true takes kind = \"cloud\" and auth = \"api_token\"",
        );
    }
    if settings.cloud_id.is_some() && kind != Kind::Cloud {
        errors.at(
            "cloud_id",
            span("cloud_id"),
            "a cloudId names a Jira Cloud site: it takes kind = \"cloud\"",
        );
    } else if settings.cloud_id.is_some() && !settings.scoped && !oauth {
        errors.at(
            "cloud_id",
            span("cloud_id"),
            "is used only by the API gateway: set scoped = true (a scoped API token) or auth = \"oauth_client_credentials\"",
        );
    }
    if let Some(id) = &settings.cloud_id {
        let valid = id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid {
            errors.at(
                "cloud_id",
                span("cloud_id"),
                "a cloudId is a UUID (letters, digits and '-')",
            );
        }
    }
    for key in ["client_id", "client_secret_expires_at", "token_url"] {
        let set = match key {
            "client_id" => settings.client_id.is_some(),
            "client_secret_expires_at" => settings.client_secret_expires_at.is_some(),
            _ => settings.token_url.is_some(),
        };
        if set && !oauth {
            errors.at(
                key,
                span(key),
                "goes with auth = \"oauth_client_credentials\"",
            );
        }
    }
    if oauth {
        if settings.client_id.is_none() {
            errors.at(
                "client_id",
                None,
                "is required for auth = \"oauth_client_credentials\"",
            );
        }
        if settings.username.is_some() {
            errors.at(
                "username",
                span("username"),
                "is not used by auth = \"oauth_client_credentials\": the client id names the service account",
            );
        }
        if settings.expires_at.is_some() {
            errors.at(
                "expires_at",
                span("expires_at"),
                "an OAuth client's access tokens expire by themselves: declare the secret's expiry with client_secret_expires_at",
            );
        }
    }
    for key in ["gateway_url", "token_url"] {
        let text = if key == "gateway_url" {
            &settings.gateway_url
        } else {
            &settings.token_url
        };
        if let Some(text) = text {
            if let Err(message) = super::build::check_url(text, settings.allow_insecure_http) {
                errors.at(key, span(key), message);
            }
        }
    }
}
