//! Development authentication: a fixed list of tokens from the config file,
//! each mapped to a user, a project and roles.
//!
//! This exists so that the embedded default (one machine, no Keystone) and
//! CI can call the API with `X-Auth-Token` exactly as they would in
//! production. It must never be used in production: the tokens never expire
//! and cannot be revoked without a restart. [`StaticTokens::new`] says so in
//! a `warn!` every time it is built.
//!
//! Tokens are kept only as SHA-256 hashes. Looking a presented token up by
//! its hash needs no constant-time comparison: timing can at most reveal
//! something about a hash, which does not help to find a token.

use std::collections::{BTreeSet, HashMap};

use futures_util::future::BoxFuture;

use super::{
    AuthConfigError, AuthError, Authenticate, Caller, ConfigProblem, Secret, TokenHash,
    deserialize_secret, normalize_roles,
};
use crate::domain::{ProjectId, UserId};

/// Shortest token accepted: short tokens can be guessed, and a dev
/// deployment reachable from a network is still a deployment.
pub const MIN_STATIC_TOKEN_LEN: usize = 16;

/// Longest token accepted; it must fit comfortably in an HTTP header.
pub const MAX_STATIC_TOKEN_LEN: usize = 1024;

/// One configured token and the caller it stands for.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticToken {
    /// The token clients send as `X-Auth-Token`: at least
    /// [`MIN_STATIC_TOKEN_LEN`] printable ASCII characters. Required; never logged.
    #[serde(deserialize_with = "deserialize_secret")]
    pub token: Secret<String>,
    /// The user it authenticates as (`[A-Za-z0-9._-]`, at most 64). Required.
    pub user_id: String,
    /// The project it is scoped to (`[A-Za-z0-9._-]`, at most 64). Required.
    pub project_id: String,
    /// Role names on that project; matched case-insensitively (`admin`,
    /// `member`, `reader`). Default: none, which policy treats like `member`.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// Checks a static token list, reporting every problem at once. Keys are
/// `tokens[i].field`.
///
/// # Errors
/// [`AuthConfigError`] when the list is empty, a token is too short, too
/// long, not printable ASCII or repeated, or an id or role is malformed.
pub fn validate(tokens: &[StaticToken]) -> Result<(), AuthConfigError> {
    build(tokens).map(drop)
}

fn build(tokens: &[StaticToken]) -> Result<HashMap<TokenHash, Caller>, AuthConfigError> {
    let mut problems = Vec::new();
    let mut by_hash = HashMap::with_capacity(tokens.len());
    if tokens.is_empty() {
        problems.push(ConfigProblem {
            key: "tokens".into(),
            reason: "dev auth needs at least one token".into(),
        });
    }
    for (i, entry) in tokens.iter().enumerate() {
        let key = |field: &str| format!("tokens[{i}].{field}");
        let token = entry.token.expose();
        let token_ok = check_token(token).map_err(|reason| {
            problems.push(ConfigProblem {
                key: key("token"),
                reason: reason.into(),
            });
        });
        let user_id = UserId::parse(&entry.user_id).map_err(|e| {
            problems.push(ConfigProblem {
                key: key("user_id"),
                reason: e.to_string(),
            });
        });
        let project_id = ProjectId::parse(&entry.project_id).map_err(|e| {
            problems.push(ConfigProblem {
                key: key("project_id"),
                reason: e.to_string(),
            });
        });
        let roles: BTreeSet<String> = normalize_roles(&key("roles"), &entry.roles, &mut problems);
        let (Ok(()), Ok(user_id), Ok(project_id)) = (token_ok, user_id, project_id) else {
            continue;
        };
        let caller = Caller {
            user_id,
            project_id,
            roles,
        };
        if by_hash.insert(TokenHash::of(token), caller).is_some() {
            problems.push(ConfigProblem {
                key: key("token"),
                reason: "the same token is listed twice".into(),
            });
        }
    }
    AuthConfigError::check(problems)?;
    Ok(by_hash)
}

fn check_token(token: &str) -> Result<(), &'static str> {
    if token.len() < MIN_STATIC_TOKEN_LEN {
        return Err("must be at least 16 characters");
    }
    if token.len() > MAX_STATIC_TOKEN_LEN {
        return Err("must be at most 1024 characters");
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces");
    }
    Ok(())
}

/// [`Authenticate`] against a fixed token list: the dev-mode default.
pub struct StaticTokens {
    by_hash: HashMap<TokenHash, Caller>,
}

impl std::fmt::Debug for StaticTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticTokens")
            .field("tokens", &self.by_hash.len())
            .finish_non_exhaustive()
    }
}

impl StaticTokens {
    /// Checks `tokens` and builds the authenticator, logging a warning that
    /// dev auth is on.
    ///
    /// # Errors
    /// [`AuthConfigError`] with every problem [`validate`] finds.
    pub fn new(tokens: &[StaticToken]) -> Result<Self, AuthConfigError> {
        let by_hash = build(tokens)?;
        let projects: BTreeSet<&str> = by_hash.values().map(|c| c.project_id.as_str()).collect();
        tracing::warn!(
            tokens = by_hash.len(),
            projects = projects.len(),
            "DEV AUTH IS ON: static tokens from the config file are accepted; \
             they never expire and cannot be revoked. Do not use this in production; \
             configure Keystone instead"
        );
        Ok(Self { by_hash })
    }
}

impl Authenticate for StaticTokens {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Caller, AuthError>> {
        let result = if token.is_empty() {
            Err(AuthError::Missing)
        } else {
            self.by_hash
                .get(&TokenHash::of(token))
                .cloned()
                .ok_or(AuthError::Invalid)
        };
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(token: &str, user: &str, project: &str, roles: &[&str]) -> StaticToken {
        StaticToken {
            token: Secret::new(token.to_owned()),
            user_id: user.to_owned(),
            project_id: project.to_owned(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    #[tokio::test]
    async fn configured_token_authenticates_to_its_caller_with_lowercase_roles() {
        let auth = StaticTokens::new(&[
            entry("dev-token-alice-0123456789", "alice", "proj-a", &["Member"]),
            entry(
                "dev-token-admin-0123456789",
                "root",
                "admin",
                &["ADMIN", "member"],
            ),
        ])
        .expect("valid config");
        let alice = auth
            .authenticate("dev-token-alice-0123456789")
            .await
            .expect("known token");
        assert_eq!(alice.user_id.as_str(), "alice");
        assert_eq!(alice.project_id.as_str(), "proj-a");
        assert_eq!(alice.roles, BTreeSet::from(["member".to_owned()]));
        assert!(!alice.is_admin());
        let admin = auth
            .authenticate("dev-token-admin-0123456789")
            .await
            .expect("known token");
        assert!(admin.is_admin());
    }

    #[tokio::test]
    async fn unknown_and_missing_tokens_are_refused() {
        let auth = StaticTokens::new(&[entry("dev-token-alice-0123456789", "alice", "p", &[])])
            .expect("valid config");
        assert!(matches!(
            auth.authenticate("dev-token-alice-012345678").await,
            Err(AuthError::Invalid)
        ));
        assert!(matches!(
            auth.authenticate("").await,
            Err(AuthError::Missing)
        ));
    }

    #[test]
    fn empty_token_list_is_refused() {
        let err = StaticTokens::new(&[]).expect_err("empty list");
        assert_eq!(err.problems[0].key, "tokens");
    }

    #[test]
    fn every_bad_entry_is_reported_at_once_without_the_secret() {
        let err = validate(&[
            entry("short", "alice", "p", &["member"]),
            entry("dev-token-0123456789", "bob", "p", &[]),
            entry("dev-token-other-0123456789", "bad/user", "p", &[""]),
            entry("dev token with spaces", "u", "bad project", &[]),
            entry("dev-token-0123456789", "carol", "p", &[]),
        ])
        .expect_err("bad entries");
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "tokens[0].token",
                "tokens[2].user_id",
                "tokens[2].roles[0]",
                "tokens[3].token",
                "tokens[3].project_id",
                "tokens[4].token",
            ]
        );
        let printed = format!("{err} {err:?}");
        assert!(!printed.contains("dev-token-0123456789"), "{printed}");
        assert!(!printed.contains("short"), "{printed}");
    }

    #[test]
    fn config_parses_and_debug_redacts_tokens() {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Section {
            tokens: Vec<StaticToken>,
        }
        let section: Section = serde_json::from_str(
            r#"{"tokens":[{"token":"dev-token-alice-0123456789","user_id":"alice",
                "project_id":"p","roles":["member"]}]}"#,
        )
        .expect("valid section");
        let printed = format!("{:?}", section.tokens);
        assert!(printed.contains("<redacted>"), "{printed}");
        assert!(!printed.contains("dev-token-alice"), "{printed}");
        let unknown = serde_json::from_str::<Section>(
            r#"{"tokens":[{"token":"dev-token-alice-0123456789","user_id":"a",
                "project_id":"p","is_admin":true}]}"#,
        );
        assert!(unknown.is_err());
    }
}
